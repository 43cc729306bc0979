//! The options of the scenarios beyond the fan-out: ceiling, presence, chat, storm and api.
//! Each `check` refuses numbers that would make a run meaningless or unbounded.

use std::time::Duration;

use anyhow::ensure;
use clap::Args;

use super::TargetArgs;

#[derive(Debug, Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// WebSocket connections, spread round-robin over the channels.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Public channels `{channel_prefix}0` …; every event goes to all of them.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    #[arg(long, default_value = "bench-")]
    pub channel_prefix: String,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Extra bytes of padding in each event's data.
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// Events per second of the first step.
    #[arg(long, default_value_t = 10.0)]
    pub start_rate: f64,
    /// Each step's rate is the previous one's times this.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// How long each step triggers.
    #[arg(long, default_value_t = 10)]
    pub step_seconds: u64,
    #[arg(long, default_value_t = 12)]
    pub max_steps: u32,
    /// A step keeps up only if its p99 latency stays under this.
    #[arg(long, default_value_t = 500.0)]
    pub max_p99_ms: f64,
    /// After a step's last trigger, stop waiting once no delivery arrived for this long.
    #[arg(long, default_value_t = 3)]
    pub drain_seconds: u64,
}

#[derive(Debug, Args)]
pub struct PresenceArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Members joining the channel (the app's presence member limit must allow them).
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    #[arg(long, default_value = "presence-bench")]
    pub channel: String,
    /// Joins in flight at once.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// Stop waiting for member events once none arrived for this long.
    #[arg(long, default_value_t = 5)]
    pub drain_seconds: u64,
    /// Exit with status 1 on a failed join or a missing member event.
    #[arg(long)]
    pub fail_on_loss: bool,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Rooms, each a channel `private-chat-{room}`.
    #[arg(long, default_value_t = 200)]
    pub rooms: usize,
    /// Members per room; each sends and receives.
    #[arg(long, default_value_t = 5)]
    pub members: usize,
    /// Messages each member sends.
    #[arg(long, default_value_t = 20)]
    pub messages: u64,
    /// Messages per second per member (servers limit client events; Pusher: 10/s).
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Handshakes in flight at once while connecting.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// After the last send, stop waiting once no delivery arrived for this long.
    #[arg(long, default_value_t = 5)]
    pub drain_seconds: u64,
    /// Exit with status 1 on a failed connection, a lost or duplicate delivery.
    #[arg(long)]
    pub fail_on_loss: bool,
}

#[derive(Debug, Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Public channels `{channel_prefix}0` …, subscribed round-robin.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    #[arg(long, default_value = "storm-")]
    pub channel_prefix: String,
    /// Handshakes in flight at once, for the first connect and for the reconnect storm.
    #[arg(long, default_value_t = 1000)]
    pub connect_concurrency: usize,
    /// Pause before the drop and after the reconnect before reading the server's RSS.
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    /// Exit with status 1 if any connection failed to come back.
    #[arg(long)]
    pub fail_on_loss: bool,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Keep-alive HTTP/1.1 connections, each sending one request after another.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value = "api-bench")]
    pub channel: String,
    /// Sockets subscribed to the channel, so each trigger fans out (0: the API alone).
    #[arg(long, default_value_t = 0)]
    pub subscribers: usize,
    /// Extra bytes of padding in each event's data.
    #[arg(long, default_value_t = 0)]
    pub payload_bytes: usize,
    /// Stop after this many requests even if time is left.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_requests: u64,
    /// Handshakes in flight at once while connecting subscribers.
    #[arg(long, default_value_t = 100)]
    pub connect_concurrency: usize,
    /// After the last request, stop waiting once no delivery arrived for this long.
    #[arg(long, default_value_t = 3)]
    pub drain_seconds: u64,
    /// Exit with status 1 on any failed request, or a lost delivery.
    #[arg(long)]
    pub fail_on_loss: bool,
}

impl CeilingArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(self.connections > 0 && self.channels > 0, "--connections and --channels must be at least 1");
        ensure!(self.connect_concurrency > 0, "--connect-concurrency must be at least 1");
        ensure!(self.start_rate > 0.0 && self.start_rate.is_finite(), "--start-rate must be a positive number");
        ensure!(self.factor > 1.0 && self.factor.is_finite(), "--factor must be above 1");
        ensure!(self.step_seconds > 0 && self.max_steps > 0, "--step-seconds and --max-steps must be at least 1");
        ensure!(self.max_p99_ms > 0.0, "--max-p99-ms must be positive");
        Ok(())
    }

    pub fn channels(&self) -> Vec<String> {
        channel_names(&self.channel_prefix, self.channels)
    }

    /// The rate of step `index` (from 0).
    pub fn rate(&self, index: u32) -> f64 {
        self.start_rate * self.factor.powi(index as i32)
    }

    /// Events of step `index`: its rate times its length, at least one.
    pub fn events(&self, index: u32) -> u64 {
        (self.rate(index) * self.step_seconds as f64).ceil().max(1.0) as u64
    }

    /// Seconds every step could take (trigger plus the longest drain), for the default deadline.
    pub fn planned_seconds(&self) -> u64 {
        u64::from(self.max_steps) * (self.step_seconds + self.drain_seconds + 1)
    }
}

impl PresenceArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(self.members > 0, "--members must be at least 1");
        ensure!(self.connect_concurrency > 0, "--connect-concurrency must be at least 1");
        ensure!(self.channel.starts_with("presence-"), "--channel must be a presence- channel");
        Ok(())
    }
}

impl ChatArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(self.rooms > 0 && self.members > 1, "--rooms must be at least 1 and --members at least 2");
        ensure!(self.connect_concurrency > 0, "--connect-concurrency must be at least 1");
        ensure!(self.rate > 0.0 && self.rate.is_finite(), "--rate must be a positive number");
        Ok(())
    }

    /// Time between one member's messages.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }
}

impl StormArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(self.connections > 0 && self.channels > 0, "--connections and --channels must be at least 1");
        ensure!(self.connect_concurrency > 0, "--connect-concurrency must be at least 1");
        Ok(())
    }

    pub fn channels(&self) -> Vec<String> {
        channel_names(&self.channel_prefix, self.channels)
    }
}

impl ApiArgs {
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(self.concurrency > 0 && self.seconds > 0, "--concurrency and --seconds must be at least 1");
        ensure!(self.connect_concurrency > 0, "--connect-concurrency must be at least 1");
        Ok(())
    }
}

/// `{prefix}0` … `{prefix}{count - 1}`.
fn channel_names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i}")).collect()
}
