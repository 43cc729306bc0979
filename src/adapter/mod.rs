//! The cluster boundary: what a node needs from the others. `Local` (no other node: every
//! decision is the channel registry's), `Redis` (docs/cluster.md) or `Nats` (docs/nats.md);
//! the core holds either adapter as a [`Cluster`].
//!
//! The core calls this layer with plain values and encoded frames; what arrives from other
//! nodes comes back through a [`RemoteSink`]. Nothing here holds a socket. Shared by both
//! adapters: the message format ([`wire`]), the circuit breaker, the counters.

pub(crate) mod breaker;
mod cluster;
pub mod nats;
pub(crate) mod queue;
pub mod redis;
pub(crate) mod stats;
pub(crate) mod wire;

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{SocketId, UserId};

/// A node's identity in the cluster: random per process.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub [u8; 16]);

impl NodeId {
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The id as 32 lowercase hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// One subscription as the cluster records it.
#[derive(Debug, Clone, Copy)]
pub struct Membership<'a> {
    pub app: &'a str,
    pub channel: &'a str,
    pub socket: SocketId,
    /// The presence user, on presence channels.
    pub user: Option<&'a UserId>,
    /// That user's `user_info` JSON, when given.
    pub user_info: Option<&'a str>,
}

/// What a join changed, cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JoinOutcome {
    /// The socket was already recorded (a re-subscribe, or a reconcile after an outage).
    pub duplicate: bool,
    /// The channel went from no subscriber anywhere to one.
    pub occupied: bool,
    /// This was the user's first socket in the channel anywhere.
    pub member_added: bool,
    /// `occupied`, undoing a vacancy whose webhook was still held by the leave delay (on any
    /// node): neither `channel_vacated` nor this `channel_occupied` is sent.
    pub occupancy_resumed: bool,
    /// `member_added`, undoing a removal still held by the leave delay: neither
    /// `member_removed` nor this `member_added` webhook is sent (the client events are).
    pub membership_resumed: bool,
    pub subscription_count: u64,
    pub user_count: u64,
}

/// What a leave changed, cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaveOutcome {
    /// The socket was not recorded.
    pub not_found: bool,
    /// The channel has no subscriber anywhere now.
    pub vacated: bool,
    /// That was the user's last socket in the channel anywhere.
    pub member_removed: bool,
    pub subscription_count: u64,
    pub user_count: u64,
}

/// Counts of one channel, cluster-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelCounts {
    pub subscription_count: u64,
    pub user_count: u64,
}

/// What another node sent, or what the reaper found, for this node to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Deliver `frame` to local subscribers of the channel, except `except`.
    Channel { app: String, channel: String, except: Option<SocketId>, frame: Bytes },
    /// Deliver `frame` to local sockets signed in as the user.
    User { app: String, user: UserId, frame: Bytes },
    /// Close local sockets signed in as the user (`terminate_connections`).
    Terminate { app: String, user: UserId },
    /// This node removed a dead node's subscription; act on the transition (member_removed
    /// broadcast and publish, vacated, webhooks) as if the socket had left here.
    Reaped { app: String, channel: String, user: Option<UserId>, outcome: LeaveOutcome },
}

/// Where the adapter hands what arrives. Called from the adapter's own tasks; must not block.
pub trait RemoteSink: Send + Sync + 'static {
    fn receive(&self, message: Remote);
}

/// An owned [`Membership`]: one local subscription, as the snapshot reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMembership {
    pub app: String,
    pub channel: String,
    pub socket: SocketId,
    pub user: Option<UserId>,
    pub user_info: Option<String>,
}

impl OwnedMembership {
    pub fn as_membership(&self) -> Membership<'_> {
        Membership {
            app: &self.app,
            channel: &self.channel,
            socket: self.socket,
            user: self.user.as_ref(),
            user_info: self.user_info.as_deref(),
        }
    }
}

/// One local socket signed in as a user, as the sign-in snapshot reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSignIn {
    pub app: String,
    pub user: UserId,
    pub socket: SocketId,
}

/// What the adapter has to report that [`Remote`] has no variant for yet (proposed additions
/// to `Remote`, same shapes); delivered to the hook set by `set_extra_sink`. Called from the
/// adapter's tasks; must not block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteExtra {
    /// Deliver `frame` to local sockets watching `watched` (watchlist online/offline).
    Watch { app: String, watched: UserId, frame: Bytes },
    /// Reconciliation re-joined a local subscription that the backend had lost and that made a
    /// transition (`occupied`, `member_added`): act on it as on a fresh join here.
    Rejoined { app: String, channel: String, user: Option<UserId>, outcome: JoinOutcome },
    /// The reaper or reconciliation changed whether `user` is signed in anywhere (first
    /// socket back: `online`; last socket gone: not): emit the watchlist events.
    Presence { app: String, user: UserId, online: bool },
    /// The backend answers again and this node's state is reconciled: write down what could
    /// not be recorded meanwhile (history gaps).
    Reconnected,
}

pub type SnapshotFn = Arc<dyn Fn() -> Vec<OwnedMembership> + Send + Sync>;
pub type SignInSnapshotFn = Arc<dyn Fn() -> Vec<OwnedSignIn> + Send + Sync>;
pub type ExtraSink = Arc<dyn Fn(RemoteExtra) + Send + Sync>;

/// A cluster operation that could not be done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdapterError {
    /// The circuit breaker is open: the backend is considered down; the caller acts locally.
    #[error("the cluster adapter is unavailable")]
    Unavailable,
    #[error("redis: {0}")]
    Redis(String),
    #[error("nats: {0}")]
    Nats(String),
    /// A decided-once update lost its compare-and-set race too many times in a row.
    #[error("nats: too many concurrent updates of {0}")]
    Contended(String),
    #[error("cluster operation timed out")]
    Timeout,
}

pub use cluster::Cluster;
