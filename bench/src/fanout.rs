//! The fan-out run: connect and subscribe N sockets, trigger events at a fixed rate, wait for
//! the deliveries, and turn what the receivers saw into a [`Report`]. With `--events 0` it is
//! the idle-connection measurement (connect rate and RSS per connection, nothing triggered).
//!
//! Phases, each bounded by the run's deadline: server RSS before → connect (at most
//! `connect_concurrency` handshakes in flight) → settle, idle RSS → optionally wait for other
//! generator processes' subscribers → trigger (or, listen-only, just receive) → drain → end
//! RSS → stop every connection and collect its outcome.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::ApiClient;
use crate::cli::FanoutPlan;
use crate::clock::Clock;
use crate::connect;
use crate::process::{self, Sample};
use crate::recorder::{self, Recorder};
use crate::report::{DeliveryStats, Latency, Params, Report, ResourceStats};
use crate::subscriber::{Outcome, Shared};
use crate::trigger::{self, Schedule};
use crate::usage::Moment;
use crate::Run;

/// How often the server is asked for subscription counts.
const COUNT_POLL: Duration = Duration::from_millis(250);

/// Resources before connecting, when idle, when delivery starts and at the end.
#[derive(Debug, Default)]
struct Samples {
    before: Moment,
    idle: Moment,
    delivery_start: Moment,
    end: Moment,
}

pub async fn run(run: &Run, plan: FanoutPlan) -> anyhow::Result<Report> {
    let (server, deadline) = (run.server, run.deadline);
    let load_average = process::load_average();
    let mut samples = Samples { before: Moment::now(server), ..Samples::default() };

    let shared = Arc::new(Shared {
        target: run.target.clone(),
        clock: Clock::start(),
        recorder: Recorder::new()?,
        events: plan.events,
        stop: CancellationToken::new(),
        deadline,
    });
    let (handles, connect) =
        connect::connect_all(&shared, &plan.channels, plan.connections, plan.connect_concurrency).await;
    if connect.opened == 0 {
        shared.stop.cancel();
        let why = connect.first_error.as_deref().unwrap_or("the deadline passed");
        anyhow::bail!("no connection subscribed ({} failed): {why}", connect.failed);
    }

    tokio::time::sleep_until((Instant::now() + plan.settle).min(deadline)).await;
    samples.idle = Moment::now(server);

    let api = ApiClient::new(run.target.clone());
    if let Some(expected) = plan.expect_subscribers.filter(|_| !plan.listen_only && plan.events > 0) {
        wait_for_subscribers(&api, &plan.channels, expected, deadline).await?;
    }
    samples.delivery_start = Moment::now(server);
    let trigger_stats = if plan.listen_only || plan.events == 0 {
        None
    } else {
        let schedule = Schedule {
            channels: &plan.channels,
            first_seq: 0,
            events: plan.events,
            rate: plan.rate,
            payload_bytes: plan.payload_bytes,
            batch: plan.batch,
        };
        Some(trigger::run(&api, &schedule, &shared.clock, deadline).await)
    };
    let events = trigger_stats.as_ref().map_or(plan.events, |t| t.events_sent);
    let expected = events * connect.opened as u64;
    let wait_for_first = plan.listen_only && plan.events > 0;
    recorder::drain(&shared.recorder, expected, plan.drain, wait_for_first, deadline).await;
    samples.end = Moment::now(server);

    let outcomes = connect::stop_all(&shared, handles).await;
    let delivery = delivery_stats(&outcomes, expected, &plan, connect.opened);
    let latency_us = Latency::from_histogram(&shared.recorder.merged()?);
    let received = delivery.received;
    Ok(Report {
        scenario: "fanout",
        load_average,
        params: params(run, &plan),
        server: server.map(|_| resource_stats(&samples, |m| m.server, connect.opened, received)),
        generator: resource_stats(&samples, |m| m.own, connect.opened, received),
        connect,
        trigger: trigger_stats,
        delivery,
        latency_us,
    })
}

/// Polls the server until this process's channels hold `expected` subscriptions in total.
async fn wait_for_subscribers(
    api: &ApiClient,
    channels: &[String],
    expected: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let mut total = 0;
        for channel in channels {
            total += tokio::time::timeout_at(deadline, api.subscription_count(channel))
                .await
                .map_err(|_| anyhow::anyhow!("timed out waiting for {expected} subscribers"))??;
        }
        if total >= expected {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() + COUNT_POLL < deadline,
            "only {total} of {expected} subscribers before the deadline"
        );
        tokio::time::sleep(COUNT_POLL).await;
    }
}

/// Sums what the connections saw; `per_second` over the window from the first intended send
/// to the last receive.
fn delivery_stats(outcomes: &[Outcome], expected: u64, plan: &FanoutPlan, opened: usize) -> DeliveryStats {
    let mut d = DeliveryStats { expected, ..DeliveryStats::default() };
    let (mut first_sent, mut last_receive) = (u64::MAX, 0);
    for o in outcomes {
        d.received += o.unique;
        d.duplicates += o.duplicates;
        d.foreign += o.foreign;
        first_sent = first_sent.min(o.first_sent_ns);
        last_receive = last_receive.max(o.last_receive_ns);
        if o.subscribed && o.error.is_some() {
            d.dropped_connections += 1;
            d.first_drop_error.get_or_insert_with(|| o.error.clone().unwrap_or_default());
        }
    }
    d.lost = expected.saturating_sub(d.received);
    if last_receive > first_sent {
        d.window_seconds = (last_receive - first_sent) as f64 / 1e9;
        d.per_second = d.received as f64 / d.window_seconds;
    }
    if plan.events > 0 {
        d.offered_per_second = plan.rate * opened as f64;
    }
    d
}

fn params(run: &Run, plan: &FanoutPlan) -> Params {
    Params {
        ws_url: run.ws_url.clone(),
        http_url: run.http_url.clone(),
        connections: plan.connections,
        channels: plan.channels.clone(),
        events: plan.events,
        rate_per_second: plan.rate,
        payload_bytes: plan.payload_bytes,
        listen_only: plan.listen_only,
        batch: plan.batch,
    }
}

/// One process's figures; `pick` chooses the server's or the generator's samples.
fn resource_stats(samples: &Samples, pick: fn(&Moment) -> Sample, opened: usize, delivered: u64) -> ResourceStats {
    let [before, idle, start, end] = [&samples.before, &samples.idle, &samples.delivery_start, &samples.end].map(pick);
    let cpu_between = |a: Sample, b: Sample| Some(b.cpu_seconds? - a.cpu_seconds?);
    let cpu = cpu_between(start, end);
    let per_conn = match (before.rss_bytes, idle.rss_bytes) {
        (Some(before), Some(idle)) if opened > 0 => Some((idle as f64 - before as f64) / opened as f64),
        _ => None,
    };
    ResourceStats {
        rss_before_bytes: before.rss_bytes,
        rss_idle_bytes: idle.rss_bytes,
        rss_end_bytes: end.rss_bytes,
        rss_per_connection_bytes: per_conn,
        cpu_connect_seconds: cpu_between(before, idle),
        cpu_seconds: cpu,
        cpu_us_per_delivery: cpu.filter(|_| delivered > 0).map(|c| c * 1e6 / delivered as f64),
    }
}
