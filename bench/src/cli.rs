//! The command line: which server to load, and the shape of each run.
//!
//! Everything about the target is a flag so the same binary loads herald, sockudo and soketi.
//! This module only declares options and checks them (the fan-out's become a [`FanoutPlan`];
//! the other scenarios' are in [`scenarios`]); it does no I/O.

mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use scenarios::{ApiArgs, CeilingArgs, ChatArgs, PresenceArgs, StormArgs};

/// The run's deadline when `--timeout-seconds` is not given.
const DEFAULT_TIMEOUT_SECONDS: u64 = 120;

/// Load generator for Pusher Channels protocol servers (herald, sockudo, soketi).
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Subscribe N sockets, trigger events at a fixed rate, measure delivery and latency.
    Fanout(FanoutArgs),
    /// A tiny fan-out that exits non-zero on any failed connection, failed trigger or lost delivery.
    Smoke(SmokeArgs),
    /// Raise the event rate step by step until delivery falls behind; report the highest sustained rate.
    Ceiling(CeilingArgs),
    /// M members join one presence channel, then leave in order; count member_added/removed.
    Presence(PresenceArgs),
    /// Rooms of members on private channels exchanging client events; delivery and latency.
    Chat(ChatArgs),
    /// Drop every subscribed connection at once, reconnect and resubscribe them all.
    Storm(StormArgs),
    /// Signed POST /events as fast as K keep-alive connections allow; requests/s and latency.
    Api(ApiArgs),
}

/// The server under test and run-wide limits, shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// WebSocket base URL (loopback only); a path is a deployment prefix (`/ws` → `/ws/app/{key}`).
    #[arg(long, default_value = "ws://127.0.0.1:6001")]
    pub ws_url: String,
    /// HTTP API base URL (loopback only); a path is a deployment prefix.
    #[arg(long, default_value = "http://127.0.0.1:6001")]
    pub http_url: String,
    #[arg(long, default_value = "app1")]
    pub app_id: String,
    #[arg(long, default_value = "key1")]
    pub key: String,
    #[arg(long, default_value = "secret1")]
    pub secret: String,
    /// The server's process id: its RSS and CPU time are read from /proc/<pid>/.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Hard limit on the whole run; every phase stops at this deadline [default: 120, ceiling:
    /// 120 plus its steps].
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Tokio worker threads (default: the CPUs this process may run on, so `taskset` decides).
    #[arg(long)]
    pub worker_threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// WebSocket connections to open, spread round-robin over the channels.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Number of channels: `{channel_prefix}{offset}` … `{channel_prefix}{offset + channels - 1}`.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// First channel index, so several generator processes can split a channel range.
    #[arg(long, default_value_t = 0)]
    pub channel_offset: usize,
    #[arg(long, default_value = "bench-")]
    pub channel_prefix: String,
    /// Events to trigger; each goes to every channel of this process. 0: only connect, settle
    /// and measure (idle connections).
    #[arg(long, default_value_t = 200)]
    pub events: u64,
    /// Events per second (intended send times are evenly spaced).
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Extra bytes of padding in each event's data.
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Pause after the last subscription before reading the idle RSS.
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    /// After the last trigger, stop waiting once no delivery arrived for this long.
    #[arg(long, default_value_t = 5)]
    pub drain_seconds: u64,
    /// Only subscribe and receive; another process triggers (same --events, --channels, --channel-offset).
    #[arg(long)]
    pub listen_only: bool,
    /// Before triggering, wait until the server reports this many subscriptions over this
    /// process's channels (HTTP `info=subscription_count`), counting other generator processes.
    #[arg(long)]
    pub expect_subscribers: Option<u64>,
    /// Trigger through `POST /apps/{id}/batch_events`, one event per channel, 10 per request.
    #[arg(long)]
    pub batch: bool,
    /// Exit with status 1 on any failed connection, failed trigger, lost or duplicate delivery.
    #[arg(long)]
    pub fail_on_loss: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SmokeArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, default_value_t = 20)]
    pub connections: usize,
    #[arg(long, default_value_t = 2)]
    pub channels: usize,
    #[arg(long, default_value_t = 20)]
    pub events: u64,
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
}

/// One fan-out run, validated.
#[derive(Debug, Clone)]
pub struct FanoutPlan {
    pub connections: usize,
    pub channels: Vec<String>,
    pub events: u64,
    pub rate: f64,
    pub payload_bytes: usize,
    pub connect_concurrency: usize,
    pub settle: Duration,
    pub drain: Duration,
    pub listen_only: bool,
    pub expect_subscribers: Option<u64>,
    pub batch: bool,
    pub fail_on_loss: bool,
}

impl TargetArgs {
    /// `--timeout-seconds`, or 120 s plus what the scenario's plan needs beyond that.
    pub fn timeout(&self, planned_seconds: u64) -> Duration {
        Duration::from_secs(self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS + planned_seconds))
    }
}

impl FanoutArgs {
    pub fn plan(&self) -> anyhow::Result<FanoutPlan> {
        anyhow::ensure!(self.connections > 0, "--connections must be at least 1");
        anyhow::ensure!(self.channels > 0, "--channels must be at least 1");
        anyhow::ensure!(self.rate > 0.0 && self.rate.is_finite(), "--rate must be a positive number");
        anyhow::ensure!(self.connect_concurrency > 0, "--connect-concurrency must be at least 1");
        let channels = (self.channel_offset..self.channel_offset + self.channels)
            .map(|i| format!("{}{i}", self.channel_prefix))
            .collect();
        Ok(FanoutPlan {
            connections: self.connections,
            channels,
            events: self.events,
            rate: self.rate,
            payload_bytes: self.payload_bytes,
            connect_concurrency: self.connect_concurrency,
            settle: Duration::from_millis(self.settle_ms),
            drain: Duration::from_secs(self.drain_seconds),
            listen_only: self.listen_only,
            expect_subscribers: self.expect_subscribers,
            batch: self.batch,
            fail_on_loss: self.fail_on_loss,
        })
    }
}

impl SmokeArgs {
    /// The smoke run is a fan-out with small numbers that fails on any loss.
    pub fn into_fanout(self) -> FanoutArgs {
        FanoutArgs {
            target: self.target,
            connections: self.connections,
            channels: self.channels,
            channel_offset: 0,
            channel_prefix: "smoke-".into(),
            events: self.events,
            rate: self.rate,
            payload_bytes: 0,
            connect_concurrency: 20,
            settle_ms: 100,
            drain_seconds: 3,
            listen_only: false,
            expect_subscribers: None,
            batch: false,
            fail_on_loss: true,
        }
    }
}
