//! The cluster boundary: what a node needs from the others. `Local` (no other node: every
//! decision is the channel registry's) or `Redis` (docs/cluster.md).
//!
//! The core calls this layer with plain values and encoded frames; what arrives from other
//! nodes comes back through a [`RemoteSink`]. Nothing here holds a socket.

pub mod redis;

use std::fmt;

use bytes::Bytes;
use herald_protocol::{SocketId, UserId};

/// A node's identity in the cluster: random per process.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub [u8; 16]);

impl NodeId {
    pub fn random() -> Self {
        Self(rand::random())
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

/// A Redis operation that could not be done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdapterError {
    /// The circuit breaker is open: Redis is considered down; the caller acts locally.
    #[error("the cluster adapter is unavailable")]
    Unavailable,
    #[error("redis: {0}")]
    Redis(String),
    #[error("redis command timed out")]
    Timeout,
}
