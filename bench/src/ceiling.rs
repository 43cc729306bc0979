//! The ceiling run: connect once, then trigger in steps of rising rate until delivery falls
//! behind, and report the highest deliveries per second the server sustained.
//!
//! Step `k` triggers `start_rate × factor^k` events per second for `step_seconds` to every
//! channel, then drains. It keeps up when every delivery arrived (nothing lost within the
//! drain), every trigger succeeded and its p99 latency stayed under `--max-p99-ms`. The run
//! stops at the first step that does not, at `--max-steps`, or at the deadline. Sequence
//! numbers continue across steps, so a late delivery is never mistaken for a new one.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::ApiClient;
use crate::cli::CeilingArgs;
use crate::clock::Clock;
use crate::connect;
use crate::process;
use crate::recorder::{self, Recorder};
use crate::report::{ConnectStats, Latency, Summary, Table};
use crate::subscriber::Shared;
use crate::trigger::{self, Schedule};
use crate::usage::{Moment, Usage};
use crate::Run;

/// Pause between connecting and the first step, and between steps.
const PAUSE: Duration = Duration::from_millis(500);

#[derive(Debug, Serialize)]
pub struct CeilingReport {
    pub scenario: &'static str,
    pub load_average: Option<f64>,
    pub params: CeilingParams,
    pub connect: ConnectStats,
    pub steps: Vec<Step>,
    /// Received deliveries per second of the fastest step that kept up.
    pub sustained_deliveries_per_second: Option<f64>,
    /// Its event rate.
    pub sustained_events_per_second: Option<f64>,
    pub stopped_because: String,
    /// Connections that closed or failed after subscribing, before the run ended.
    pub dropped_connections: usize,
    pub first_drop_error: Option<String>,
    /// From the first step to the end of the last drain.
    pub server: Option<Usage>,
    pub generator: Usage,
}

#[derive(Debug, Serialize)]
pub struct CeilingParams {
    pub ws_url: String,
    pub http_url: String,
    pub connections: usize,
    pub channels: usize,
    pub payload_bytes: usize,
    pub start_rate: f64,
    pub factor: f64,
    pub step_seconds: u64,
    pub max_steps: u32,
    pub max_p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub events_per_second: f64,
    pub events_sent: u64,
    pub trigger_failures: u64,
    pub max_trigger_lateness_ms: f64,
    /// Event rate × subscribed connections.
    pub offered_deliveries_per_second: f64,
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    /// Received over the time from the step's start to its last delivery.
    pub received_per_second: f64,
    pub latency_us: Option<Latency>,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub generator_cpu_us_per_delivery: Option<f64>,
    pub kept_up: bool,
}

pub async fn run(run: &Run, args: &CeilingArgs) -> anyhow::Result<CeilingReport> {
    let load_average = process::load_average();
    let channels = args.channels();
    let total_events: u64 = (0..args.max_steps).map(|k| args.events(k)).sum();
    let shared = Arc::new(Shared {
        target: run.target.clone(),
        clock: Clock::start(),
        recorder: Recorder::new()?,
        events: total_events,
        stop: CancellationToken::new(),
        deadline: run.deadline,
    });
    let (handles, connect) = connect::connect_all(&shared, &channels, args.connections, args.connect_concurrency).await;
    if connect.opened == 0 {
        shared.stop.cancel();
        let why = connect.first_error.as_deref().unwrap_or("the deadline passed");
        anyhow::bail!("no connection subscribed ({} failed): {why}", connect.failed);
    }
    let api = ApiClient::new(run.target.clone());
    let start = Moment::now(run.server);
    let (steps, stopped_because) = climb(run, args, &shared, &api, &channels, connect.opened).await?;
    let end = Moment::now(run.server);

    let outcomes = connect::stop_all(&shared, handles).await;
    let dropped: Vec<_> = outcomes.iter().filter(|o| o.subscribed && o.error.is_some()).collect();
    let best =
        steps.iter().filter(|s| s.kept_up).max_by(|a, b| a.received_per_second.total_cmp(&b.received_per_second));
    Ok(CeilingReport {
        scenario: "ceiling",
        load_average,
        params: params(run, args),
        connect,
        sustained_deliveries_per_second: best.map(|s| s.received_per_second),
        sustained_events_per_second: best.map(|s| s.events_per_second),
        steps,
        stopped_because,
        dropped_connections: dropped.len(),
        first_drop_error: dropped.first().and_then(|o| o.error.clone()),
        server: Usage::server(run.server, &start, &end),
        generator: Usage::generator(&start, &end),
    })
}

/// Runs steps until one falls behind; returns them and why the climb stopped.
async fn climb(
    run: &Run,
    args: &CeilingArgs,
    shared: &Shared,
    api: &ApiClient,
    channels: &[String],
    opened: usize,
) -> anyhow::Result<(Vec<Step>, String)> {
    let mut steps = Vec::new();
    let mut first_seq = 0;
    for index in 0..args.max_steps {
        tokio::time::sleep_until((Instant::now() + PAUSE).min(run.deadline)).await;
        let schedule = Schedule {
            channels,
            first_seq,
            events: args.events(index),
            rate: args.rate(index),
            payload_bytes: args.payload_bytes,
            batch: false,
        };
        first_seq += schedule.events;
        let step = run_step(run, args, shared, api, &schedule, opened).await?;
        let (kept_up, cut) = (step.kept_up, step.events_sent < schedule.events);
        eprintln!(
            "ceiling: step {} at {:.1} events/s: {:.0} deliveries/s, p99 {:.1} ms, lost {}{}",
            index + 1,
            step.events_per_second,
            step.received_per_second,
            step.latency_us.as_ref().map_or(0.0, |l| l.p99 / 1000.0),
            step.lost,
            if kept_up { "" } else { " — fell behind" }
        );
        steps.push(step);
        if cut && Instant::now() >= run.deadline {
            return Ok((steps, "deadline (--timeout-seconds)".into()));
        }
        if !kept_up {
            return Ok((steps, format!("step {} fell behind", index + 1)));
        }
    }
    Ok((steps, "--max-steps reached without falling behind".into()))
}

/// One step: trigger the schedule, drain, and judge it.
async fn run_step(
    run: &Run,
    args: &CeilingArgs,
    shared: &Shared,
    api: &ApiClient,
    schedule: &Schedule<'_>,
    opened: usize,
) -> anyhow::Result<Step> {
    // Whatever arrived between steps belongs to no step's latency.
    shared.recorder.take()?;
    let before = shared.recorder.delivered();
    let start = Moment::now(run.server);
    let started = Instant::now();
    let trigger = trigger::run(api, schedule, &shared.clock, run.deadline).await;
    let expected = trigger.events_sent * opened as u64;
    let quiet = Duration::from_secs(args.drain_seconds);
    let last = recorder::drain(&shared.recorder, before + expected, quiet, false, run.deadline).await;
    let end = Moment::now(run.server);
    let received = shared.recorder.delivered() - before;
    let latency_us = Latency::from_histogram(&shared.recorder.take()?);
    let lost = expected.saturating_sub(received);
    let p99_ok = latency_us.as_ref().is_some_and(|l| l.p99 <= args.max_p99_ms * 1000.0);
    let complete = trigger.events_sent == schedule.events && trigger.requests_failed == 0;
    let server = Usage::server(run.server, &start, &end);
    Ok(Step {
        events_per_second: schedule.rate,
        events_sent: trigger.events_sent,
        trigger_failures: trigger.requests_failed,
        max_trigger_lateness_ms: trigger.max_lateness_ms,
        offered_deliveries_per_second: schedule.rate * opened as f64,
        expected,
        received,
        lost,
        received_per_second: received as f64 / last.duration_since(started).as_secs_f64().max(1e-9),
        latency_us,
        server_cpu_us_per_delivery: server.and_then(|s| s.cpu_us_per(received)),
        generator_cpu_us_per_delivery: Usage::generator(&start, &end).cpu_us_per(received),
        kept_up: complete && lost == 0 && p99_ok,
    })
}

fn params(run: &Run, args: &CeilingArgs) -> CeilingParams {
    CeilingParams {
        ws_url: run.ws_url.clone(),
        http_url: run.http_url.clone(),
        connections: args.connections,
        channels: args.channels,
        payload_bytes: args.payload_bytes,
        start_rate: args.start_rate,
        factor: args.factor,
        step_seconds: args.step_seconds,
        max_steps: args.max_steps,
        max_p99_ms: args.max_p99_ms,
    }
}

impl Summary for CeilingReport {
    fn table(&self) -> String {
        let p = &self.params;
        let load = self.load_average.map_or("-".to_string(), |l| format!("{l:.2}"));
        let mut t = Table::new(format!(
            "ceiling against {} ({} connections over {} channel(s), load average {load})",
            p.ws_url, p.connections, p.channels
        ));
        let c = &self.connect;
        t.row("connections opened", format!("{} of {} ({} failed)", c.opened, p.connections, c.failed));
        t.row("connect time", format!("{:.2} s ({:.0} conn/s)", c.seconds, c.per_second));
        t.row("step: events/s", "offered → received deliveries/s, p50 / p99 ms, lost, µs/delivery server|generator");
        for (i, s) in self.steps.iter().enumerate() {
            let (p50, p99) = s.latency_us.as_ref().map_or((f64::NAN, f64::NAN), |l| (l.p50 / 1e3, l.p99 / 1e3));
            let us = |cpu: Option<f64>| cpu.map_or("-".to_string(), |c| format!("{c:.1}"));
            let cpu = format!("{}|{}", us(s.server_cpu_us_per_delivery), us(s.generator_cpu_us_per_delivery));
            let verdict = if s.kept_up { "ok" } else { "behind" };
            t.row(
                &format!("step {}: {:.1}", i + 1, s.events_per_second),
                format!(
                    "{:.0} → {:.0}, {p50:.1} / {p99:.1}, lost {}, {cpu} — {verdict}",
                    s.offered_deliveries_per_second, s.received_per_second, s.lost
                ),
            );
        }
        let best = self.sustained_deliveries_per_second.map_or("none".to_string(), |d| {
            format!("{d:.0} deliveries/s ({:.1} events/s)", self.sustained_events_per_second.unwrap_or(0.0))
        });
        t.row("highest sustained", best);
        t.row("stopped because", &self.stopped_because);
        t.usage("server", self.server.as_ref(), None);
        t.usage("generator", Some(&self.generator), None);
        t.finish()
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.connect.failed > 0 {
            let why = self.connect.first_error.as_deref().unwrap_or("deadline");
            out.push(format!("{} connections failed: {why}", self.connect.failed));
        }
        if self.dropped_connections > 0 {
            let why = self.first_drop_error.as_deref().unwrap_or("");
            out.push(format!("{} connections dropped: {why}", self.dropped_connections));
        }
        out
    }
}
