//! [`Cluster`]: the adapter the core holds, Redis or NATS, behind one set of methods.
//!
//! An enum rather than a trait object: the hot-path calls (`publish`, `is_available`) cost one
//! branch, the async ones need no boxing, and both adapters keep their concrete types for
//! their own tests. Every method delegates; the meaning of each is documented on
//! `RedisAdapter` (docs/cluster.md) and holds for `NatsAdapter` too (docs/nats.md).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::{SocketId, UserId};

use super::nats::NatsAdapter;
use super::redis::RedisAdapter;
use super::stats::AdapterStats;
use super::{
    AdapterError, ChannelCounts, ExtraSink, JoinOutcome, LeaveOutcome, Membership, NodeId, SignInSnapshotFn, SnapshotFn,
};
use crate::config::HistoryRule;
use crate::history::{Gap, Position, Replay, Since};

/// This node's cluster adapter.
#[derive(Debug, Clone)]
pub enum Cluster {
    Redis(Arc<RedisAdapter>),
    Nats(Arc<NatsAdapter>),
}

/// `delegate!(self, a => expr)`: `expr` with `a` bound to whichever adapter this is.
macro_rules! delegate {
    ($self:ident, $a:ident => $call:expr) => {
        match $self {
            Cluster::Redis($a) => $call,
            Cluster::Nats($a) => $call,
        }
    };
}

impl Cluster {
    pub fn node(&self) -> NodeId {
        delegate!(self, a => a.node())
    }

    /// False while the circuit breaker is open (the backend is considered down).
    pub fn is_available(&self) -> bool {
        delegate!(self, a => a.is_available())
    }

    pub fn set_snapshot(&self, source: SnapshotFn) {
        delegate!(self, a => a.set_snapshot(source))
    }

    pub fn set_sign_in_snapshot(&self, source: SignInSnapshotFn) {
        delegate!(self, a => a.set_sign_in_snapshot(source))
    }

    pub fn set_extra_sink(&self, sink: ExtraSink) {
        delegate!(self, a => a.set_extra_sink(sink))
    }

    pub fn stats(&self) -> AdapterStats {
        delegate!(self, a => a.stats())
    }

    pub async fn join(&self, m: Membership<'_>) -> Result<JoinOutcome, AdapterError> {
        delegate!(self, a => a.join(m).await)
    }

    pub async fn leave(&self, m: Membership<'_>) -> Result<LeaveOutcome, AdapterError> {
        delegate!(self, a => a.leave(m).await)
    }

    pub fn set_leave_delay(&self, delay: Duration) {
        delegate!(self, a => a.set_leave_delay(delay))
    }

    pub fn holds_leaves(&self) -> bool {
        delegate!(self, a => a.holds_leaves())
    }

    pub async fn confirm_leave(&self, app: &str, channel: &str, user: Option<&UserId>) -> Result<bool, AdapterError> {
        delegate!(self, a => a.confirm_leave(app, channel, user).await)
    }

    pub async fn roster(&self, app: &str, channel: &str) -> Result<Vec<(UserId, Option<String>)>, AdapterError> {
        delegate!(self, a => a.roster(app, channel).await)
    }

    pub async fn counts(&self, app: &str, channel: &str) -> Result<ChannelCounts, AdapterError> {
        delegate!(self, a => a.counts(app, channel).await)
    }

    pub async fn users(&self, app: &str, channel: &str) -> Result<Vec<UserId>, AdapterError> {
        delegate!(self, a => a.users(app, channel).await)
    }

    pub async fn channels(&self, app: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, AdapterError> {
        delegate!(self, a => a.channels(app, prefix).await)
    }

    pub async fn cache_set(
        &self,
        app: &str,
        channel: &str,
        frame: Bytes,
        data: &str,
        ttl: Duration,
    ) -> Result<(), AdapterError> {
        delegate!(self, a => a.cache_set(app, channel, frame, data, ttl).await)
    }

    pub async fn cache_get(&self, app: &str, channel: &str) -> Result<Option<(Bytes, String, Duration)>, AdapterError> {
        delegate!(self, a => a.cache_get(app, channel).await)
    }

    pub async fn sign_in(&self, app: &str, user: &UserId, socket: SocketId) -> Result<bool, AdapterError> {
        delegate!(self, a => a.sign_in(app, user, socket).await)
    }

    pub async fn sign_out(&self, app: &str, user: &UserId, socket: SocketId) -> Result<bool, AdapterError> {
        delegate!(self, a => a.sign_out(app, user, socket).await)
    }

    pub async fn online(&self, app: &str, users: &[UserId]) -> Result<Vec<bool>, AdapterError> {
        delegate!(self, a => a.online(app, users).await)
    }

    pub async fn acquire_connection(&self, app: &str, max: Option<u64>) -> Result<bool, AdapterError> {
        delegate!(self, a => a.acquire_connection(app, max).await)
    }

    pub fn release_connection(&self, app: &str) {
        delegate!(self, a => a.release_connection(app))
    }

    pub async fn connection_count(&self, app: &str) -> Result<u64, AdapterError> {
        delegate!(self, a => a.connection_count(app).await)
    }

    pub fn publish(&self, app: &str, channel: &str, except: Option<SocketId>, frame: Bytes) {
        delegate!(self, a => a.publish(app, channel, except, frame))
    }

    pub fn publish_user(&self, app: &str, user: &UserId, frame: Bytes) {
        delegate!(self, a => a.publish_user(app, user, frame))
    }

    pub fn terminate_user(&self, app: &str, user: &UserId) {
        delegate!(self, a => a.terminate_user(app, user))
    }

    pub fn publish_watch(&self, app: &str, watched: &UserId, frame: Bytes) {
        delegate!(self, a => a.publish_watch(app, watched, frame))
    }

    pub fn watch_channel(&self, app: &str, channel: &str, on: bool) {
        delegate!(self, a => a.watch_channel(app, channel, on))
    }

    pub fn watch_user(&self, app: &str, user: &UserId, on: bool) {
        delegate!(self, a => a.watch_user(app, user, on))
    }

    pub fn watch_watchers(&self, app: &str, watched: &UserId, on: bool) {
        delegate!(self, a => a.watch_watchers(app, watched, on))
    }
}

/// Channel history (docs/history.md): Redis streams, or a JetStream stream with NATS.
impl Cluster {
    pub async fn history_append(
        &self,
        app: &str,
        channel: &str,
        json: &str,
        rule: &HistoryRule,
    ) -> Result<Position, AdapterError> {
        match self {
            Cluster::Redis(a) => a.history_append(app, channel, json, rule).await,
            Cluster::Nats(a) => a.history_append(app, channel, json, rule).await,
        }
    }

    pub async fn history_mark_gap(&self, app: &str, channel: &str, rule: &HistoryRule) -> Result<(), AdapterError> {
        match self {
            Cluster::Redis(a) => a.history_mark_gap(app, channel, rule).await,
            Cluster::Nats(a) => a.history_mark_gap(app, channel, rule).await,
        }
    }

    pub async fn history_read(
        &self,
        app: &str,
        channel: &str,
        rule: &HistoryRule,
        since: Since,
    ) -> Result<Replay, Gap> {
        match self {
            Cluster::Redis(a) => a.history_read(app, channel, rule, since).await,
            Cluster::Nats(a) => a.history_read(app, channel, rule, since).await,
        }
    }

    pub async fn history_kept(&self, app: &str, channel: &str, rule: &HistoryRule) -> Result<Option<Replay>, Gap> {
        match self {
            Cluster::Redis(a) => a.history_kept(app, channel, rule).await,
            Cluster::Nats(a) => a.history_kept(app, channel, rule).await,
        }
    }
}
