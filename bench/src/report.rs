//! The result of a run: one serializable struct per scenario, printed as a table or written
//! as JSON ([`Summary`]), and the fan-out's own [`Report`].
//!
//! Figures are computed by the scenarios; this module only lays them out and lists what counts
//! as a failure for `--fail-on-loss` and the smoke run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::usage::Usage;

/// What every scenario's result can do: print itself, say what failed, be written as JSON
/// (an object whose `scenario` field names the subcommand).
pub trait Summary: Serialize {
    /// The human table.
    fn table(&self) -> String;
    /// What makes `--fail-on-loss` (and the smoke run) fail; empty when the run was clean.
    fn failures(&self) -> Vec<String>;

    fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

/// A table being written: a title line, then `key  value` rows.
#[derive(Debug)]
pub struct Table(String);

impl Table {
    pub fn new(title: impl std::fmt::Display) -> Self {
        Self(format!("{title}\n"))
    }

    pub fn row(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "  {key:<30} {value}");
    }

    pub fn latency(&mut self, latency: Option<&Latency>) {
        if let Some(l) = latency {
            self.row("latency p50 / p99 / p99.9", format!("{:.0} / {:.0} / {:.0} µs", l.p50, l.p99, l.p99_9));
            self.row("latency max / mean", format!("{:.0} / {:.0} µs", l.max, l.mean));
        }
    }

    /// CPU, CPU per unit of work and RSS of one process over a phase.
    pub fn usage(&mut self, who: &str, usage: Option<&Usage>, per: Option<(u64, &str)>) {
        let Some(u) = usage else { return };
        self.cpu(who, u, per);
        let peak = u.rss_peak_bytes.map(|p| format!(", peak {}", mib(Some(p)))).unwrap_or_default();
        self.row(
            &format!("{who} RSS start/end"),
            format!("{} / {}{peak}", mib(u.rss_start_bytes), mib(u.rss_end_bytes)),
        );
    }

    /// CPU and CPU per unit of work of one process over a phase.
    pub fn cpu(&mut self, who: &str, u: &Usage, per: Option<(u64, &str)>) {
        let cpu = u.cpu_seconds.map_or("-".to_string(), |c| format!("{c:.2} s"));
        let per = per.and_then(|(units, name)| u.cpu_us_per(units).map(|p| format!(" ({p:.2} µs/{name})")));
        self.row(&format!("{who} CPU"), format!("{cpu}{}", per.unwrap_or_default()));
    }

    pub fn finish(self) -> String {
        self.0
    }
}

/// Bytes as MiB with one decimal, `-` when unknown.
pub fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("-".to_string(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
}

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
    /// Triggered through `batch_events` (one event per channel, 10 per request).
    pub batch: bool,
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
    /// CPU time from before connecting to the idle sample (connect, subscribe, settle).
    pub cpu_connect_seconds: Option<f64>,
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

impl Summary for Report {
    fn failures(&self) -> Vec<String> {
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

    fn table(&self) -> String {
        let p = &self.params;
        let load = self.load_average.map_or("-".to_string(), |l| format!("{l:.2}"));
        let via = if p.batch { ", batch_events" } else { "" };
        let mut t = Table::new(format!(
            "{} against {} ({} channel(s){via}, load average {load})",
            self.scenario,
            p.ws_url,
            p.channels.len()
        ));
        let c = &self.connect;
        t.row("connections opened", format!("{} of {} ({} failed)", c.opened, p.connections, c.failed));
        t.row("connect time", format!("{:.2} s ({:.0} conn/s)", c.seconds, c.per_second));
        if let Some(tr) = &self.trigger {
            t.row("events sent", format!("{} of {} at {}/s", tr.events_sent, p.events, p.rate_per_second));
            t.row("trigger requests", format!("{} ok, {} failed", tr.requests_ok, tr.requests_failed));
            t.row(
                "trigger request time",
                format!("mean {:.2} ms, max {:.2} ms", tr.mean_request_ms, tr.max_request_ms),
            );
            t.row("trigger lateness (max)", format!("{:.2} ms", tr.max_lateness_ms));
        }
        let d = &self.delivery;
        if p.events > 0 {
            t.row("deliveries expected", d.expected);
            t.row("deliveries received", format!("{} (lost {}, duplicate {})", d.received, d.lost, d.duplicates));
            t.row("deliveries/s", format!("{:.0} (offered {:.0})", d.per_second, d.offered_per_second));
            t.latency(self.latency_us.as_ref());
        }
        if let Some(s) = &self.server {
            resource_rows(&mut t, "server", s, p.events > 0);
        }
        resource_rows(&mut t, "generator", &self.generator, p.events > 0);
        t.finish()
    }
}

fn resource_rows(t: &mut Table, who: &str, s: &ResourceStats, delivery: bool) {
    let rss = format!("{} / {} / {}", mib(s.rss_before_bytes), mib(s.rss_idle_bytes), mib(s.rss_end_bytes));
    t.row(&format!("{who} RSS before/idle/end"), rss);
    if let Some(per) = s.rss_per_connection_bytes {
        t.row(&format!("{who} RSS per connection"), format!("{per:.0} B ({:.2} KiB)", per / 1024.0));
    }
    if let Some(cpu) = s.cpu_connect_seconds {
        t.row(&format!("{who} CPU while connecting"), format!("{cpu:.2} s"));
    }
    if let Some(cpu) = s.cpu_seconds.filter(|_| delivery) {
        let per = s.cpu_us_per_delivery.map_or("-".to_string(), |p| format!("{p:.2} µs/delivery"));
        t.row(&format!("{who} CPU during delivery"), format!("{cpu:.2} s ({per})"));
    }
}
