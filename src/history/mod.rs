//! Channel history (herald's extension, protocol/README.md "History and recovery"): which
//! channels keep their recent events, the ring of one channel's events on a single node, and
//! what a replay returns. Pure bookkeeping: no sockets, no tasks, no locks of its own.
//!
//! On a single node each history channel has a [`ChannelLog`] in the channel registry. With
//! the Redis adapter the events live in a Redis stream instead, so any node can replay them
//! (src/adapter/redis/history.rs); the rules and the replay shape are the same.

mod log;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use herald_protocol::history::Position;
pub use log::ChannelLog;

use crate::config::HistoryRule;
use crate::frame::Frame;

/// One app's history rules; the first that matches a channel applies.
#[derive(Debug, Clone, Default)]
pub struct HistoryRules(Vec<HistoryRule>);

impl HistoryRules {
    pub fn new(rules: Vec<HistoryRule>) -> Self {
        Self(rules)
    }

    /// The rule that covers `channel`, if any.
    pub fn for_channel(&self, channel: &str) -> Option<&HistoryRule> {
        self.0.iter().find(|r| r.matches(channel))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The events after a position, oldest first, each stamped with its position.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    pub events: Vec<(Position, Frame)>,
    /// The channel's newest position: the one to resume from when nothing was missed.
    pub latest: Position,
}

/// Where a recovery starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// After this position.
    Position(Position),
    /// From now: nothing is replayed; the reply names the channel's newest position, the
    /// anchor for the next recovery (`"since":"latest"`).
    Latest,
}

impl Since {
    /// `"latest"` or a position; `None` when it is neither.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "latest" => Some(Self::Latest),
            _ => text.parse().ok().map(Self::Position),
        }
    }
}

/// Why the events after a position cannot all be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gap {
    #[error("the channel does not keep history")]
    NoHistory,
    #[error("events after this position are no longer kept")]
    NotKept,
    #[error("this position is not in the channel's history")]
    Unknown,
    #[error("the history store is unavailable")]
    Unavailable,
    #[error("events after this position were delivered while the history store was unreachable and not recorded")]
    Unrecorded,
}

/// The major of every position a single node gives out: the time it started, in
/// milliseconds. A restarted node's positions never match its predecessor's.
pub fn node_epoch() -> u64 {
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(|| unix_ms(SystemTime::now()))
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis() as u64
}

impl HistoryRule {
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_seconds)
    }
}
