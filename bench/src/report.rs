//! The result of a run: one serializable struct, printed as a table or written as JSON.
//!
//! Figures are computed by `fanout`; this module only lays them out and lists what counts as a
//! failure for `--fail-on-loss` and the smoke run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    /// 1-minute load average when the run started (other work on the machine adds noise).
    pub load_average: Option<f64>,
    pub params: Params,
    pub connect: ConnectStats,
    pub trigger: Option<TriggerStats>,
    pub delivery: DeliveryStats,
    pub latency_us: Option<Latency>,
    pub server: Option<ResourceStats>,
    pub generator: ResourceStats,
}

#[derive(Debug, Serialize)]
pub struct Params {
    pub ws_url: String,
    pub http_url: String,
    pub connections: usize,
    pub channels: Vec<String>,
    pub events: u64,
    pub rate_per_second: f64,
    pub payload_bytes: usize,
    pub listen_only: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct ConnectStats {
    pub opened: usize,
    pub failed: usize,
    pub seconds: f64,
    pub per_second: f64,
    pub first_error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct TriggerStats {
    /// Events whose trigger requests all succeeded.
    pub events_sent: u64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    pub first_error: Option<String>,
    /// Worst delay between an event's intended and actual send time.
    pub max_lateness_ms: f64,
    pub mean_request_ms: f64,
    pub max_request_ms: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct DeliveryStats {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Stamped frames with a sequence number outside this run.
    pub foreign: u64,
    /// Received deliveries over the window from the first intended send to the last receive.
    pub per_second: f64,
    pub window_seconds: f64,
    /// Events per second × subscribed connections.
    pub offered_per_second: f64,
    /// Connections that closed or failed after subscribing, before the run ended.
    pub dropped_connections: usize,
    pub first_drop_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

/// RSS samples and CPU time of one process (the server or the generator).
#[derive(Debug, Default, Serialize)]
pub struct ResourceStats {
    pub rss_before_bytes: Option<u64>,
    pub rss_idle_bytes: Option<u64>,
    pub rss_end_bytes: Option<u64>,
    /// (idle − before) / connections opened.
    pub rss_per_connection_bytes: Option<f64>,
    /// CPU time from the first trigger to the end of the drain.
    pub cpu_seconds: Option<f64>,
    pub cpu_us_per_delivery: Option<f64>,
}

impl Latency {
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Some(Self {
            p50: us(h.value_at_quantile(0.50)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1_000.0,
        })
    }
}

impl Report {
    /// What makes `--fail-on-loss` (and the smoke run) fail; empty when the run was clean.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.connect.failed > 0 {
            let why = self.connect.first_error.as_deref().unwrap_or("deadline");
            out.push(format!("{} connections failed: {why}", self.connect.failed));
        }
        if let Some(t) = self.trigger.as_ref().filter(|t| t.requests_failed > 0 || t.events_sent < self.params.events) {
            let why = t.first_error.as_deref().unwrap_or("deadline");
            out.push(format!("{} of {} events sent: {why}", t.events_sent, self.params.events));
        }
        let d = &self.delivery;
        if d.lost > 0 || d.duplicates > 0 {
            out.push(format!("{} deliveries lost, {} duplicated", d.lost, d.duplicates));
        }
        if d.dropped_connections > 0 {
            let why = d.first_drop_error.as_deref().unwrap_or("");
            out.push(format!("{} connections dropped: {why}", d.dropped_connections));
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let p = &self.params;
        let row = |t: &mut String, k: &str, v: String| {
            let _ = writeln!(t, "  {k:<30} {v}");
        };
        let load = self.load_average.map_or("-".to_string(), |l| format!("{l:.2}"));
        let _ = writeln!(
            t,
            "{} against {} ({} channel(s), load average {load})",
            self.scenario,
            p.ws_url,
            p.channels.len()
        );
        let c = &self.connect;
        row(&mut t, "connections opened", format!("{} of {} ({} failed)", c.opened, p.connections, c.failed));
        row(&mut t, "connect time", format!("{:.2} s ({:.0} conn/s)", c.seconds, c.per_second));
        if let Some(tr) = &self.trigger {
            row(&mut t, "events sent", format!("{} of {} at {}/s", tr.events_sent, p.events, p.rate_per_second));
            row(&mut t, "trigger requests", format!("{} ok, {} failed", tr.requests_ok, tr.requests_failed));
            row(
                &mut t,
                "trigger request time",
                format!("mean {:.2} ms, max {:.2} ms", tr.mean_request_ms, tr.max_request_ms),
            );
            row(&mut t, "trigger lateness (max)", format!("{:.2} ms", tr.max_lateness_ms));
        }
        let d = &self.delivery;
        row(&mut t, "deliveries expected", d.expected.to_string());
        row(&mut t, "deliveries received", format!("{} (lost {}, duplicate {})", d.received, d.lost, d.duplicates));
        row(&mut t, "deliveries/s", format!("{:.0} (offered {:.0})", d.per_second, d.offered_per_second));
        if let Some(l) = &self.latency_us {
            row(&mut t, "latency p50 / p99 / p99.9", format!("{:.0} / {:.0} / {:.0} µs", l.p50, l.p99, l.p99_9));
            row(&mut t, "latency max / mean", format!("{:.0} / {:.0} µs", l.max, l.mean));
        }
        if let Some(s) = &self.server {
            resource_rows(&mut t, "server", s);
        }
        resource_rows(&mut t, "generator", &self.generator);
        t
    }
}

fn resource_rows(t: &mut String, who: &str, s: &ResourceStats) {
    let mib = |b: Option<u64>| b.map_or("-".to_string(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0));
    let _ = writeln!(
        t,
        "  {:<30} {} / {} / {}",
        format!("{who} RSS before/idle/end"),
        mib(s.rss_before_bytes),
        mib(s.rss_idle_bytes),
        mib(s.rss_end_bytes)
    );
    if let Some(per) = s.rss_per_connection_bytes {
        let _ = writeln!(t, "  {:<30} {:.0} B ({:.2} KiB)", format!("{who} RSS per connection"), per, per / 1024.0);
    }
    if let (Some(cpu), per) = (s.cpu_seconds, s.cpu_us_per_delivery) {
        let per = per.map_or("-".to_string(), |p| format!("{p:.2} µs/delivery"));
        let _ = writeln!(t, "  {:<30} {:.2} s ({per})", format!("{who} CPU during delivery"), cpu);
    }
}
