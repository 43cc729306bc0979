//! What a phase of a run cost: the server's and the generator's CPU time and memory between
//! two moments, and the server's peak RSS sampled while something happens.
//!
//! Every scenario reports the generator's own CPU next to the server's, so a run shows whether
//! the generator was the bottleneck. Reads `/proc` through [`Process`]; never fails a run.

use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::process::{Process, Sample};

/// How often [`RssPeak`] reads the server's RSS.
const PEAK_INTERVAL: Duration = Duration::from_millis(50);

/// The server's and the generator's resources at one moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Moment {
    pub server: Sample,
    pub own: Sample,
}

impl Moment {
    pub fn now(server: Option<Process>) -> Self {
        Self { server: server.map(Process::sample).unwrap_or_default(), own: Process::This.sample() }
    }
}

/// One process over one measured phase.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Usage {
    /// CPU time (user + system) between the start and the end of the phase.
    pub cpu_seconds: Option<f64>,
    pub rss_start_bytes: Option<u64>,
    /// Highest RSS sampled every 50 ms during the phase (the server only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_peak_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
}

impl Usage {
    pub fn between(start: Sample, end: Sample) -> Self {
        let cpu_seconds = match (start.cpu_seconds, end.cpu_seconds) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        Self { cpu_seconds, rss_start_bytes: start.rss_bytes, rss_peak_bytes: None, rss_end_bytes: end.rss_bytes }
    }

    /// The server's usage from `start` to `end` (`None` without `--server-pid`).
    pub fn server(server: Option<Process>, start: &Moment, end: &Moment) -> Option<Self> {
        server.map(|_| Self::between(start.server, end.server))
    }

    /// The generator's own usage from `start` to `end`.
    pub fn generator(start: &Moment, end: &Moment) -> Self {
        Self::between(start.own, end.own)
    }

    /// CPU microseconds per unit of work, when there was any.
    pub fn cpu_us_per(&self, units: u64) -> Option<f64> {
        self.cpu_seconds.filter(|_| units > 0).map(|cpu| cpu * 1e6 / units as f64)
    }
}

/// A task that samples the server's RSS every 50 ms until stopped and keeps the highest.
#[derive(Debug)]
pub struct RssPeak {
    stop: CancellationToken,
    task: Option<JoinHandle<Option<u64>>>,
}

impl RssPeak {
    /// Starts sampling `server`; without a server there is nothing to sample.
    pub fn start(server: Option<Process>) -> Self {
        let stop = CancellationToken::new();
        let task = server.map(|process| tokio::spawn(sample_peak(process, stop.clone())));
        Self { stop, task }
    }

    /// Stops sampling and returns the highest RSS seen.
    pub async fn finish(mut self) -> Option<u64> {
        self.stop.cancel();
        self.task.take()?.await.ok().flatten()
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn sample_peak(process: Process, stop: CancellationToken) -> Option<u64> {
    let mut peak = process.sample().rss_bytes;
    let mut tick = tokio::time::interval(PEAK_INTERVAL);
    loop {
        tokio::select! {
            // Cancel safety: both branches only wait; a lost tick loses nothing.
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        peak = peak.max(process.sample().rss_bytes);
    }
    peak.max(process.sample().rss_bytes)
}
