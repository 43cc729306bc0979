//! The Redis adapter (docs/cluster.md): N herald nodes share cluster state and fan out to each
//! other through one Redis (standalone, Sentinel or Cluster).
//!
//! This module owns the adapter's handle and the one path every Redis command takes
//! ([`RedisAdapter::run`]: circuit breaker + timeout). It holds no socket and never decides
//! what a local socket sees: transitions come back as values, remote traffic through the
//! [`RemoteSink`]. Its tasks (publisher, receiver, subscriber, heartbeat/reaper, probe,
//! recovery) run on the caller's `TaskTracker` and end when the `CancellationToken` fires —
//! without cleaning Redis up: a node that stops without leaving is reaped like a crashed one.
//!
//! Submodules: [`keys`] and [`wire`] (pure formats), [`scripts`] (Lua transitions), [`link`]
//! (connections), [`breaker`], [`stats`], [`channels`] and [`users`] (the async operations),
//! [`publisher`], [`subscriber`], [`liveness`] (heartbeat, probe, reaper), [`reconcile`].

mod channels;
mod history;
mod keys;
mod link;
mod liveness;
mod publisher;
mod reconcile;
mod scripts;
mod subscriber;
mod users;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use redis::{RedisError, RedisResult};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::keys::Keys;
use self::link::{Link, PushForward};
use self::scripts::Scripts;
use self::subscriber::Interest;
use super::{AdapterError, NodeId, RemoteSink};
use crate::adapter::breaker::Breaker;
use crate::adapter::queue::Outgoing;
use crate::adapter::stats::{bump, Counters};
use crate::config::AdapterConfig;

pub use crate::adapter::stats::{AdapterStats, PUBLISH_LATENCY_BUCKETS};
pub use crate::adapter::{ExtraSink, OwnedMembership, OwnedSignIn, RemoteExtra, SignInSnapshotFn, SnapshotFn};

/// Pushes from the pub/sub connection waiting for the receiver task; beyond it they are
/// dropped and counted (`receive_dropped`).
const RECEIVE_QUEUE_CAPACITY: usize = 16_384;

/// Intervals derived from the configuration.
#[derive(Debug, Clone, Copy)]
struct Timing {
    command: Duration,
    heartbeat: Duration,
    node_timeout: Duration,
    /// How often an open breaker sends its one probe.
    probe: Duration,
}

/// The Redis cluster adapter of one node (see the module docs).
pub struct RedisAdapter {
    node: NodeId,
    keys: Keys,
    link: Link,
    scripts: Scripts,
    breaker: Breaker,
    counters: Arc<Counters>,
    timing: Timing,
    sink: Arc<dyn RemoteSink>,
    extra: RwLock<Option<ExtraSink>>,
    snapshot: RwLock<Option<SnapshotFn>>,
    sign_in_snapshot: RwLock<Option<SignInSnapshotFn>>,
    outgoing: mpsc::Sender<Outgoing>,
    interest: Interest,
    /// Set by a disconnection push that could not be queued: resubscribe everything.
    disconnected: Arc<AtomicBool>,
    /// Wakes the recovery task (resubscribe, reconcile).
    recover: Notify,
    /// Open connections on this node per app (the cluster-wide quota's share of this node).
    local_conns: Mutex<HashMap<String, u64>>,
    /// The reaper waits until then after an outage, so peers can beat again first.
    reap_after: Mutex<tokio::time::Instant>,
    /// How long a vacancy or removal is recorded as held (0: not recorded; no leave delay).
    leave_hold_ms: AtomicU64,
}

impl fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdapter").field("node", &self.node).field("breaker_open", &self.breaker.is_open()).finish()
    }
}

impl RedisAdapter {
    /// Connects (standalone, Sentinel when `sentinel_master` is set, Cluster when `cluster`),
    /// registers the node (first heartbeat) and starts its tasks on `tracker`. Fails if Redis
    /// cannot be reached within a few command timeouts.
    pub async fn connect(
        config: &AdapterConfig,
        node: NodeId,
        sink: Arc<dyn RemoteSink>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Arc<Self>, AdapterError> {
        let command = Duration::from_millis(config.command_timeout_ms.max(1));
        let heartbeat = Duration::from_millis(config.heartbeat_interval_ms.max(1));
        let timing = Timing {
            command,
            heartbeat,
            node_timeout: Duration::from_millis(config.node_timeout_ms).max(2 * heartbeat),
            probe: heartbeat.min(Duration::from_secs(1)),
        };
        let counters = Arc::new(Counters::default());
        let (push_tx, push_rx) = mpsc::channel(RECEIVE_QUEUE_CAPACITY);
        let disconnected = Arc::new(AtomicBool::new(false));
        let push = PushForward { tx: push_tx, counters: counters.clone(), disconnected: disconnected.clone() };
        let link = tokio::time::timeout(5 * command, Link::open(config, push))
            .await
            .map_err(|_| AdapterError::Timeout)?
            .map_err(|e| AdapterError::Redis(e.to_string()))?;
        let (outgoing, outgoing_rx) = mpsc::channel(config.publish_queue_capacity.max(1));
        let adapter = Arc::new(Self {
            node,
            keys: Keys::new(&config.prefix, node),
            link,
            scripts: Scripts::default(),
            breaker: Breaker::default(),
            counters,
            timing,
            sink,
            extra: RwLock::new(None),
            snapshot: RwLock::new(None),
            sign_in_snapshot: RwLock::new(None),
            outgoing,
            interest: Interest::default(),
            disconnected,
            recover: Notify::new(),
            local_conns: Mutex::new(HashMap::new()),
            reap_after: Mutex::new(tokio::time::Instant::now()),
            leave_hold_ms: AtomicU64::new(0),
        });
        adapter.heartbeat().await?;
        tracker.spawn(adapter.clone().publisher(outgoing_rx, shutdown.clone()));
        tracker.spawn(adapter.clone().receiver(push_rx, shutdown.clone()));
        tracker.spawn(adapter.clone().subscriber(shutdown.clone()));
        tracker.spawn(adapter.clone().heartbeat_task(shutdown.clone()));
        tracker.spawn(adapter.clone().reaper(shutdown.clone()));
        tracker.spawn(adapter.clone().probe(shutdown.clone()));
        tracker.spawn(adapter.clone().recovery(shutdown));
        tracing::info!(node = %node, cluster = config.cluster, "redis adapter connected");
        Ok(adapter)
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// False while the circuit breaker is open (Redis considered down).
    pub fn is_available(&self) -> bool {
        self.breaker.allows()
    }

    /// What this node holds, for reconciliation after an outage. Must include memberships
    /// whose `join` is still in flight (register locally before calling `join`).
    pub fn set_snapshot(&self, source: SnapshotFn) {
        *self.snapshot.write() = Some(source);
    }

    /// The signed-in sockets this node holds, for reconciliation after an outage.
    pub fn set_sign_in_snapshot(&self, source: SignInSnapshotFn) {
        *self.sign_in_snapshot.write() = Some(source);
    }

    /// Where [`RemoteExtra`] reports go (until `Remote` has variants for them).
    pub fn set_extra_sink(&self, sink: ExtraSink) {
        *self.extra.write() = Some(sink);
    }

    pub fn stats(&self) -> AdapterStats {
        self.counters.snapshot(self.breaker.is_open())
    }

    fn report_extra(&self, extra: RemoteExtra) {
        let hook = self.extra.read().clone();
        if let Some(hook) = hook {
            hook(extra);
        }
    }

    /// Runs one Redis operation through the breaker and the command timeout. Cancel-safe:
    /// dropping it drops the request (the multiplexed connection discards the late answer).
    async fn run<T>(&self, op: impl Future<Output = RedisResult<T>>) -> Result<T, AdapterError> {
        if !self.breaker.allows() {
            return Err(AdapterError::Unavailable);
        }
        self.run_unguarded(op).await
    }

    /// [`Self::run`] without the breaker check: for the probe and the recovery path.
    async fn run_unguarded<T>(&self, op: impl Future<Output = RedisResult<T>>) -> Result<T, AdapterError> {
        match tokio::time::timeout(self.timing.command, op).await {
            Ok(Ok(value)) => {
                self.breaker.record_success();
                Ok(value)
            }
            Ok(Err(e)) => {
                bump(&self.counters.commands_failed, 1);
                if is_outage(&e) && self.breaker.record_failure() {
                    tracing::warn!(error = %e, "redis unavailable: circuit breaker open");
                }
                Err(AdapterError::Redis(e.to_string()))
            }
            Err(_) => {
                bump(&self.counters.commands_failed, 1);
                if self.breaker.record_failure() {
                    tracing::warn!("redis commands time out: circuit breaker open");
                }
                Err(AdapterError::Timeout)
            }
        }
    }
}

/// Errors that say Redis (or this shard) cannot serve now, as opposed to a bad command.
fn is_outage(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.code(), Some("READONLY" | "CLUSTERDOWN" | "MASTERDOWN" | "LOADING" | "TRYAGAIN"))
}
