//! The reconnect storm: N sockets subscribed over C public channels are dropped all at once
//! (no close frame: the tasks drop their TCP streams), then all reconnect and resubscribe
//! immediately, at most `connect_concurrency` handshakes in flight.
//!
//! Reported: the time from the drop until every socket is subscribed again, failures, and the
//! server's RSS before, at its peak (sampled every 50 ms from the drop until after the
//! settle) and after.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::StormArgs;
use crate::clock::Clock;
use crate::connect;
use crate::process;
use crate::recorder::Recorder;
use crate::report::{mib, ConnectStats, Summary, Table};
use crate::subscriber::Shared;
use crate::usage::{Moment, RssPeak, Usage};
use crate::Run;

#[derive(Debug, Serialize)]
pub struct StormReport {
    pub scenario: &'static str,
    pub load_average: Option<f64>,
    pub params: StormParams,
    /// The first connect, before the storm.
    pub connect: ConnectStats,
    /// Until every dropped socket's task had ended.
    pub drop_seconds: f64,
    /// The reconnect; its `seconds` run from its own start.
    pub reconnect: ConnectStats,
    /// From the drop until every socket was subscribed again (or gave up).
    pub storm_seconds: f64,
    /// Server RSS after the first connect and settle.
    pub server_rss_before_bytes: Option<u64>,
    /// Highest server RSS sampled every 50 ms from the drop to the end of the settle after it.
    pub server_rss_peak_bytes: Option<u64>,
    /// Server RSS after the reconnect and settle.
    pub server_rss_after_bytes: Option<u64>,
    /// From the drop to the end of the reconnect.
    pub server: Option<Usage>,
    pub generator: Usage,
    pub server_cpu_us_per_reconnect: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct StormParams {
    pub ws_url: String,
    pub connections: usize,
    pub channels: usize,
    pub connect_concurrency: usize,
}

pub async fn run(run: &Run, args: &StormArgs) -> anyhow::Result<StormReport> {
    let load_average = process::load_average();
    let channels = args.channels();
    let settle = Duration::from_millis(args.settle_ms);
    let first = wave(run)?;
    let (handles, connect) = connect::connect_all(&first, &channels, args.connections, args.connect_concurrency).await;
    if connect.opened == 0 {
        first.stop.cancel();
        let why = connect.first_error.as_deref().unwrap_or("the deadline passed");
        anyhow::bail!("no connection subscribed ({} failed): {why}", connect.failed);
    }
    tokio::time::sleep_until((Instant::now() + settle).min(run.deadline)).await;
    let before = Moment::now(run.server);

    let peak = RssPeak::start(run.server);
    let dropped_at = Instant::now();
    // Every task drops its socket as soon as it sees the stop; nothing says goodbye.
    connect::stop_all(&first, handles).await;
    let drop_seconds = dropped_at.elapsed().as_secs_f64();
    let second = wave(run)?;
    let (handles, reconnect) = connect::connect_all(&second, &channels, connect.opened, args.connect_concurrency).await;
    let storm_seconds = dropped_at.elapsed().as_secs_f64();
    let storm_end = Moment::now(run.server);
    tokio::time::sleep_until((Instant::now() + settle).min(run.deadline)).await;
    let after = Moment::now(run.server);
    let rss_peak = peak.finish().await;
    connect::stop_all(&second, handles).await;

    let server = Usage::server(run.server, &before, &storm_end);
    Ok(StormReport {
        scenario: "storm",
        load_average,
        params: StormParams {
            ws_url: run.ws_url.clone(),
            connections: args.connections,
            channels: args.channels,
            connect_concurrency: args.connect_concurrency,
        },
        server_cpu_us_per_reconnect: server.as_ref().and_then(|s| s.cpu_us_per(reconnect.opened as u64)),
        connect,
        drop_seconds,
        reconnect,
        storm_seconds,
        server_rss_before_bytes: before.server.rss_bytes,
        server_rss_peak_bytes: rss_peak,
        server_rss_after_bytes: after.server.rss_bytes,
        server,
        generator: Usage::generator(&before, &storm_end),
    })
}

/// One generation of connections with its own stop signal.
fn wave(run: &Run) -> anyhow::Result<Arc<Shared>> {
    Ok(Arc::new(Shared {
        target: run.target.clone(),
        clock: Clock::start(),
        recorder: Recorder::new()?,
        events: 0,
        stop: CancellationToken::new(),
        deadline: run.deadline,
    }))
}

impl Summary for StormReport {
    fn table(&self) -> String {
        let p = &self.params;
        let load = self.load_average.map_or("-".to_string(), |l| format!("{l:.2}"));
        let mut t = Table::new(format!(
            "storm against {} ({} channel(s), {} handshakes in flight, load average {load})",
            p.ws_url, p.channels, p.connect_concurrency
        ));
        let (c, r) = (&self.connect, &self.reconnect);
        t.row("connections opened", format!("{} of {} ({} failed)", c.opened, p.connections, c.failed));
        t.row("first connect", format!("{:.2} s ({:.0} conn/s)", c.seconds, c.per_second));
        t.row("drop (all tasks ended)", format!("{:.3} s", self.drop_seconds));
        t.row("reconnected", format!("{} of {} ({} failed)", r.opened, c.opened, r.failed));
        t.row("drop → all resubscribed", format!("{:.2} s ({:.0} conn/s)", self.storm_seconds, r.per_second));
        if let Some(error) = &r.first_error {
            t.row("first reconnect error", error);
        }
        t.row(
            "server RSS before/peak/after",
            format!(
                "{} / {} / {}",
                mib(self.server_rss_before_bytes),
                mib(self.server_rss_peak_bytes),
                mib(self.server_rss_after_bytes)
            ),
        );
        let reconnects = r.opened as u64;
        if let Some(server) = &self.server {
            t.cpu("server", server, Some((reconnects, "reconnect")));
        }
        t.cpu("generator", &self.generator, Some((reconnects, "reconnect")));
        t.finish()
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (what, c) in [("connections", &self.connect), ("reconnections", &self.reconnect)] {
            if c.failed > 0 {
                let why = c.first_error.as_deref().unwrap_or("deadline");
                out.push(format!("{} {what} failed: {why}", c.failed));
            }
        }
        out
    }
}
