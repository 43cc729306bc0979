//! The fan-out run: connect and subscribe N sockets, trigger events at a fixed rate, wait for
//! the deliveries, and turn what the receivers saw into a [`Report`].
//!
//! Phases, each bounded by the run's deadline: server RSS before → connect (at most
//! `connect_concurrency` handshakes in flight) → settle, idle RSS → optionally wait for other
//! generator processes' subscribers → trigger (or, listen-only, just receive) → drain → end
//! RSS → stop every connection and collect its outcome.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::ApiClient;
use crate::cli::FanoutPlan;
use crate::clock::Clock;
use crate::process::{self, Process, Sample};
use crate::recorder::Recorder;
use crate::report::{ConnectStats, DeliveryStats, Latency, Params, Report, ResourceStats};
use crate::subscriber::{self, Outcome, Shared};
use crate::target::Target;
use crate::trigger::{self, Schedule};

/// How often progress is checked while waiting for subscribers or deliveries.
const POLL: Duration = Duration::from_millis(20);
/// How often the server is asked for subscription counts.
const COUNT_POLL: Duration = Duration::from_millis(250);

/// The server's and the generator's resources at one moment.
#[derive(Debug, Default, Clone, Copy)]
struct Moment {
    server: Sample,
    own: Sample,
}

impl Moment {
    fn now(server: Option<Process>) -> Self {
        Self { server: server.map(Process::sample).unwrap_or_default(), own: Process::This.sample() }
    }
}

/// Resources before connecting, when idle, when delivery starts and at the end.
#[derive(Debug, Default)]
struct Samples {
    before: Moment,
    idle: Moment,
    delivery_start: Moment,
    end: Moment,
}

pub async fn run(
    target: Target,
    urls: (String, String),
    plan: FanoutPlan,
    server: Option<Process>,
    deadline: Instant,
) -> anyhow::Result<Report> {
    let load_average = process::load_average();
    let mut samples = Samples { before: Moment::now(server), ..Samples::default() };

    let shared = Arc::new(Shared {
        target: target.clone(),
        clock: Clock::start(),
        recorder: Recorder::new()?,
        events: plan.events,
        stop: CancellationToken::new(),
        deadline,
    });
    let (handles, connect) = connect_all(&shared, &plan).await;
    if connect.opened == 0 {
        shared.stop.cancel();
        let why = connect.first_error.as_deref().unwrap_or("the deadline passed");
        anyhow::bail!("no connection subscribed ({} failed): {why}", connect.failed);
    }

    sleep_until_or(deadline, Instant::now() + plan.settle).await;
    samples.idle = Moment::now(server);

    let api = ApiClient::new(target);
    if let Some(expected) = plan.expect_subscribers.filter(|_| !plan.listen_only) {
        wait_for_subscribers(&api, &plan.channels, expected, deadline).await?;
    }
    samples.delivery_start = Moment::now(server);
    let trigger_stats = if plan.listen_only {
        None
    } else {
        let schedule = Schedule {
            channels: &plan.channels,
            events: plan.events,
            rate: plan.rate,
            payload_bytes: plan.payload_bytes,
        };
        Some(trigger::run(&api, &schedule, &shared.clock, deadline).await)
    };
    let events = trigger_stats.as_ref().map_or(plan.events, |t| t.events_sent);
    let expected = events * connect.opened as u64;
    drain(&shared.recorder, expected, plan.drain, plan.listen_only, deadline).await;
    samples.end = Moment::now(server);

    shared.stop.cancel();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(handle.await.unwrap_or_else(|error| Outcome::failed(format!("task failed: {error}"))));
    }
    let delivery = delivery_stats(&outcomes, expected, &plan, connect.opened);
    let latency_us = Latency::from_histogram(&shared.recorder.merged()?);
    let received = delivery.received;
    Ok(Report {
        scenario: "fanout",
        load_average,
        params: params(urls, &plan),
        server: server.map(|_| resource_stats(&samples, |m| m.server, connect.opened, received)),
        generator: resource_stats(&samples, |m| m.own, connect.opened, received),
        connect,
        trigger: trigger_stats,
        delivery,
        latency_us,
    })
}

/// Spawns one task per connection and waits until each has subscribed or failed.
async fn connect_all(shared: &Arc<Shared>, plan: &FanoutPlan) -> (Vec<JoinHandle<Outcome>>, ConnectStats) {
    let gate = Arc::new(Semaphore::new(plan.connect_concurrency));
    let (ready_tx, mut ready_rx) = mpsc::channel(plan.connections.min(4096));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(plan.connections);
    let mut stats = ConnectStats::default();
    for index in 0..plan.connections {
        let permit = tokio::select! {
            // Cancel safety: losing either branch drops nothing but a wait.
            permit = gate.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = tokio::time::sleep_until(shared.deadline) => break,
        };
        let channel = plan.channels[index % plan.channels.len()].clone();
        let task = subscriber::run(index, channel, shared.clone(), permit, ready_tx.clone());
        handles.push(tokio::spawn(task));
        drain_ready(&mut ready_rx, &mut stats);
    }
    drop(ready_tx);
    while stats.opened + stats.failed < handles.len() {
        match tokio::time::timeout_at(shared.deadline, ready_rx.recv()).await {
            Ok(Some(result)) => count_ready(result, &mut stats),
            Ok(None) | Err(_) => break,
        }
    }
    stats.failed = plan.connections - stats.opened;
    stats.seconds = started.elapsed().as_secs_f64();
    stats.per_second = stats.opened as f64 / stats.seconds.max(1e-9);
    (handles, stats)
}

fn drain_ready(rx: &mut mpsc::Receiver<Result<(), String>>, stats: &mut ConnectStats) {
    while let Ok(result) = rx.try_recv() {
        count_ready(result, stats);
    }
}

fn count_ready(result: Result<(), String>, stats: &mut ConnectStats) {
    match result {
        Ok(()) => stats.opened += 1,
        Err(error) => {
            stats.failed += 1;
            stats.first_error.get_or_insert(error);
        }
    }
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

/// Waits until `expected` deliveries arrived, or none arrived for `quiet`, or the deadline.
/// Listen-only runs wait for the first delivery without the quiet limit.
async fn drain(recorder: &Recorder, expected: u64, quiet: Duration, listen_only: bool, deadline: Instant) {
    let mut last_count = recorder.delivered();
    let mut last_progress = Instant::now();
    while recorder.delivered() < expected && Instant::now() < deadline {
        sleep_until_or(deadline, Instant::now() + POLL).await;
        let count = recorder.delivered();
        if count != last_count || (listen_only && count == 0) {
            last_count = count;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= quiet {
            break;
        }
    }
}

async fn sleep_until_or(deadline: Instant, at: Instant) {
    tokio::time::sleep_until(at.min(deadline)).await;
}

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
    d.offered_per_second = plan.rate * opened as f64;
    d
}

fn params((ws_url, http_url): (String, String), plan: &FanoutPlan) -> Params {
    Params {
        ws_url,
        http_url,
        connections: plan.connections,
        channels: plan.channels.clone(),
        events: plan.events,
        rate_per_second: plan.rate,
        payload_bytes: plan.payload_bytes,
        listen_only: plan.listen_only,
    }
}

/// One process's figures; `pick` chooses the server's or the generator's samples.
fn resource_stats(samples: &Samples, pick: fn(&Moment) -> Sample, opened: usize, delivered: u64) -> ResourceStats {
    let [before, idle, start, end] = [&samples.before, &samples.idle, &samples.delivery_start, &samples.end].map(pick);
    let cpu = match (start.cpu_seconds, end.cpu_seconds) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let per_conn = match (before.rss_bytes, idle.rss_bytes) {
        (Some(before), Some(idle)) if opened > 0 => Some((idle as f64 - before as f64) / opened as f64),
        _ => None,
    };
    ResourceStats {
        rss_before_bytes: before.rss_bytes,
        rss_idle_bytes: idle.rss_bytes,
        rss_end_bytes: end.rss_bytes,
        rss_per_connection_bytes: per_conn,
        cpu_seconds: cpu,
        cpu_us_per_delivery: cpu.filter(|_| delivered > 0).map(|c| c * 1e6 / delivered as f64),
    }
}
