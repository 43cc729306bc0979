//! The NATS adapter (docs/nats.md): N herald nodes share cluster state through one NATS
//! JetStream KV bucket and fan out to each other over core NATS subjects.
//!
//! This module owns the adapter's handle and the one path every NATS operation takes
//! ([`NatsAdapter::run`]: circuit breaker + timeout). Like the Redis adapter it holds no
//! socket and never decides what a local socket sees: transitions come back as values, remote
//! traffic through the [`RemoteSink`]. Its tasks (publisher, subscriber, heartbeat, reaper,
//! probe, recovery) run on the caller's `TaskTracker` and end when the `CancellationToken`
//! fires — without cleaning the bucket up: a node that stops without leaving is reaped like a
//! crashed one.
//!
//! Submodules: [`names`] (keys and subjects) and [`doc`] (the channel document and its
//! transitions) are pure; [`store`] (reads, compare-and-set, scans), [`local`] (what this
//! node recorded), [`channels`] and [`users`] (the operations), [`publisher`], [`subscriber`],
//! [`liveness`] (heartbeat, probe, reaper, recovery) and [`reconcile`].

mod channels;
mod doc;
mod history;
mod liveness;
mod local;
mod names;
mod publisher;
mod reconcile;
mod store;
mod subscriber;
mod users;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::local::{Gates, Local};
use self::names::Names;
use self::subscriber::Interest;
use super::breaker::Breaker;
use super::stats::{bump, AdapterStats, Counters};
use super::{AdapterError, ExtraSink, NodeId, RemoteExtra, RemoteSink, SignInSnapshotFn, SnapshotFn};
use crate::adapter::queue::Outgoing;
use crate::config::AdapterConfig;

/// Messages a subscription may hold for the subscriber task; beyond it the client drops them
/// (counted in `receive_dropped`, one per slow-consumer report).
const SUBSCRIPTION_CAPACITY: usize = 8_192;

/// Intervals derived from the configuration.
#[derive(Debug, Clone, Copy)]
struct Timing {
    command: Duration,
    heartbeat: Duration,
    node_timeout: Duration,
    /// How often an open breaker checks whether NATS is back.
    probe: Duration,
}

/// The NATS cluster adapter of one node (see the module docs).
pub struct NatsAdapter {
    node: NodeId,
    names: Names,
    client: async_nats::Client,
    js: jetstream::Context,
    kv: kv::Store,
    breaker: Arc<Breaker>,
    counters: Arc<Counters>,
    timing: Timing,
    sink: Arc<dyn RemoteSink>,
    extra: RwLock<Option<ExtraSink>>,
    snapshot: RwLock<Option<SnapshotFn>>,
    sign_in_snapshot: RwLock<Option<SignInSnapshotFn>>,
    outgoing: mpsc::Sender<Outgoing>,
    interest: Interest,
    local: Local,
    gates: Gates,
    /// Wakes the recovery task (reopen the bucket, beat, reconcile).
    recover: Notify,
    /// Wakes the probe when the connection is back.
    reconnected: Arc<Notify>,
    /// The revision of this node's last heartbeat (0: none yet).
    heartbeat_revision: AtomicU64,
    /// The reaper's view of the other nodes: heartbeat key → (revision, when first seen).
    seen: Mutex<HashMap<String, (u64, tokio::time::Instant)>>,
    /// How long a vacancy or removal is recorded as held (0: not recorded; no leave delay).
    leave_hold_ms: AtomicU64,
}

impl fmt::Debug for NatsAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsAdapter").field("node", &self.node).field("breaker_open", &self.breaker.is_open()).finish()
    }
}

impl NatsAdapter {
    /// Connects to the servers in `config.url` (comma-separated), opens (or creates) the bucket,
    /// registers the node (first heartbeat) and starts its tasks on `tracker`. Fails if NATS
    /// cannot be reached, or has no JetStream, within a few command timeouts.
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
        let (breaker, counters, reconnected) =
            (Arc::new(Breaker::default()), Arc::new(Counters::default()), Arc::default());
        let options = connect_options(node, command, &breaker, &counters, &reconnected);
        let urls: Vec<&str> = config.url.split(',').map(str::trim).collect();
        let client = tokio::time::timeout(5 * command, options.connect(urls.as_slice()))
            .await
            .map_err(|_| AdapterError::Timeout)?
            .map_err(|e| AdapterError::Nats(e.to_string()))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(command);
        let names = Names::new(&config.prefix, node);
        let kv = tokio::time::timeout(5 * command, store::open_bucket(&js, &names.bucket()))
            .await
            .map_err(|_| AdapterError::Timeout)?
            .map_err(|e| AdapterError::Nats(format!("no JetStream KV bucket {}: {e}", names.bucket())))?;
        let (stream, subjects) = (names.history_stream(), names.history_subjects());
        tokio::time::timeout(5 * command, history::open_history(&js, &stream, subjects))
            .await
            .map_err(|_| AdapterError::Timeout)?
            .map_err(|e| AdapterError::Nats(format!("no JetStream history stream {stream}: {e}")))?;
        let (outgoing, outgoing_rx) = mpsc::channel(config.publish_queue_capacity.max(1));
        let adapter = Arc::new(Self {
            node,
            names,
            client,
            js,
            kv,
            breaker,
            counters,
            timing,
            sink,
            extra: RwLock::new(None),
            snapshot: RwLock::new(None),
            sign_in_snapshot: RwLock::new(None),
            outgoing,
            interest: Interest::default(),
            local: Local::default(),
            gates: Gates::default(),
            recover: Notify::new(),
            reconnected,
            heartbeat_revision: AtomicU64::new(0),
            seen: Mutex::new(HashMap::new()),
            leave_hold_ms: AtomicU64::new(0),
        });
        adapter.heartbeat().await?;
        tracker.spawn(adapter.clone().publisher(outgoing_rx, shutdown.clone()));
        tracker.spawn(adapter.clone().subscriber(shutdown.clone()));
        tracker.spawn(adapter.clone().heartbeat_task(shutdown.clone()));
        tracker.spawn(adapter.clone().reaper(shutdown.clone()));
        tracker.spawn(adapter.clone().probe(shutdown.clone()));
        tracker.spawn(adapter.clone().recovery(shutdown));
        tracing::info!(node = %node, bucket = %adapter.names.bucket(), "nats adapter connected");
        Ok(adapter)
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// False while the circuit breaker is open (NATS considered down).
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

    /// Runs one NATS operation through the breaker and the command timeout. Cancel-safe:
    /// dropping it drops the request (a late answer is discarded by the client).
    async fn run<T, E: fmt::Display>(&self, op: impl Future<Output = Result<T, E>>) -> Result<T, AdapterError> {
        self.run_for(self.timing.command, op).await
    }

    /// [`Self::run`] with its own timeout (scans).
    async fn run_for<T, E: fmt::Display>(
        &self,
        timeout: Duration,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, AdapterError> {
        if !self.breaker.allows() {
            return Err(AdapterError::Unavailable);
        }
        self.run_unguarded(timeout, op).await
    }

    /// Without the breaker check: for the probe and the recovery path.
    async fn run_unguarded<T, E: fmt::Display>(
        &self,
        timeout: Duration,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, AdapterError> {
        match tokio::time::timeout(timeout, op).await {
            Ok(Ok(value)) => {
                self.breaker.record_success();
                Ok(value)
            }
            Ok(Err(e)) => {
                bump(&self.counters.commands_failed, 1);
                if self.breaker.record_failure() {
                    tracing::warn!(error = %e, "nats unavailable: circuit breaker open");
                }
                Err(AdapterError::Nats(e.to_string()))
            }
            Err(_) => {
                bump(&self.counters.commands_failed, 1);
                if self.breaker.record_failure() {
                    tracing::warn!("nats requests time out: circuit breaker open");
                }
                Err(AdapterError::Timeout)
            }
        }
    }
}

/// The client's options: no echo of our own messages, bounded subscriptions, reconnection
/// forever (backoff ≤ 1 s), and connection events wired to the breaker.
fn connect_options(
    node: NodeId,
    command: Duration,
    breaker: &Arc<Breaker>,
    counters: &Arc<Counters>,
    reconnected: &Arc<Notify>,
) -> async_nats::ConnectOptions {
    let (breaker, counters, reconnected) = (breaker.clone(), counters.clone(), reconnected.clone());
    async_nats::ConnectOptions::new()
        .name(format!("herald-{node}"))
        .no_echo()
        .connection_timeout(2 * command)
        .request_timeout(Some(command))
        .subscription_capacity(SUBSCRIPTION_CAPACITY)
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1_000)))
        .event_callback(move |event| {
            let (breaker, counters, reconnected) = (breaker.clone(), counters.clone(), reconnected.clone());
            async move {
                match event {
                    async_nats::Event::Disconnected => {
                        if breaker.trip() {
                            tracing::warn!("nats connection lost: circuit breaker open");
                        }
                    }
                    async_nats::Event::Connected => reconnected.notify_one(),
                    async_nats::Event::SlowConsumer(_) => bump(&counters.receive_dropped, 1),
                    other => tracing::debug!(event = %other, "nats client event"),
                }
            }
        })
}
