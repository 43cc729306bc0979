//! Webhooks: the events an app asked to hear about, timed as Pusher times them and delivered
//! reliably without ever making the caller wait (PROTOCOL.md §12).
//!
//! The path of one event, and what "full" means at each step:
//! 1. [`AppWebhooks::emit`] (socket tasks, short locks) does a `try_send` into one ingress
//!    queue shared by all apps, `queue_capacity` events deep. Full: the event is dropped,
//!    counted ([`WebhookStats::dropped`]) and logged at warn at most once per second.
//! 2. The dispatcher task ([`dispatch`]) holds `channel_vacated` / `member_removed` for
//!    `leave_delay_ms` ([`leave`]; a rejoin within it cancels both; at most `queue_capacity`
//!    leaves wait, beyond that they go at once), collects batches for batching apps
//!    ([`batch`]), signs the bodies ([`payload`]) and offers one request per target to the
//!    target's endpoint.
//! 3. Each endpoint (URL) has a worker with its own bounded queue, circuit breaker and
//!    retries ([`endpoint`], [`breaker`], [`retry`]): exponential backoff with jitter for
//!    `retry_for_seconds` after the webhook was created. Full: dropped and counted.
//!
//! `time_ms` is fixed when a request is built and never rewritten by retries: with the default
//! 300 s budget a body is never older than pusher-http-python's `validate_webhook` accepts.
//!
//! Shutdown: when the token is cancelled, waiting leaves and batches go out at once and
//! delivery goes on for at most `shutdown_flush_seconds`; then what is left is counted as
//! dropped. All tasks run on the server's `TaskTracker`.
//!
//! This module must not: await in `emit`, hold a lock across an await, or see a socket.

mod batch;
mod breaker;
mod client;
mod dispatch;
mod endpoint;
mod leave;
mod payload;
mod retry;
mod route;
mod stats;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use herald_protocol::{ChannelName, SocketId, UserId};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AppConfig, WebhooksConfig};

/// One webhook event (PROTOCOL.md §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    ChannelOccupied { channel: ChannelName },
    ChannelVacated { channel: ChannelName },
    MemberAdded { channel: ChannelName, user_id: UserId },
    MemberRemoved { channel: ChannelName, user_id: UserId },
    ClientEvent { channel: ChannelName, event: String, data: String, socket_id: SocketId, user_id: Option<UserId> },
    CacheMiss { channel: ChannelName },
    SubscriptionCount { channel: ChannelName, subscription_count: u64 },
}

impl WebhookEvent {
    /// The event's `name` on the wire, also the `event_types` entry that selects it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ChannelOccupied { .. } => "channel_occupied",
            Self::ChannelVacated { .. } => "channel_vacated",
            Self::MemberAdded { .. } => "member_added",
            Self::MemberRemoved { .. } => "member_removed",
            Self::ClientEvent { .. } => "client_event",
            Self::CacheMiss { .. } => "cache_miss",
            Self::SubscriptionCount { .. } => "subscription_count",
        }
    }
}

pub use breaker::BreakerState;
pub use stats::{EndpointSnapshot, WebhookStats};

use dispatch::{Dispatcher, Emitted};
use endpoint::EndpointSettings;
use retry::RetryPolicy;
use route::AppRoute;

/// The server's webhook dispatcher. The dispatcher task starts with the first app that has
/// targets, and stops once every [`AppWebhooks`] is dropped or shutdown's flush ends.
#[derive(Debug)]
pub struct Webhooks {
    config: WebhooksConfig,
    settings: EndpointSettings,
    /// The ingress of the running dispatcher. Weak, so the queue closes (and the dispatcher
    /// flushes and ends) when the last app handle is dropped.
    ingress: Mutex<Option<mpsc::WeakSender<Emitted>>>,
}

impl Webhooks {
    /// Prepares delivery; tasks run on `tracker` and finish (after flushing within
    /// `shutdown_flush_seconds`) once `shutdown` is cancelled.
    pub fn start(config: &WebhooksConfig, shutdown: CancellationToken, tracker: &TaskTracker) -> Self {
        let settings = EndpointSettings {
            policy: RetryPolicy::from_config(config),
            breaker_threshold: config.breaker_failure_threshold,
            breaker_cooldown: Duration::from_secs(config.breaker_cooldown_seconds),
            capacity: config.queue_capacity.max(1),
            flush: Duration::from_secs(config.shutdown_flush_seconds),
            client: client::HttpClient::new(Duration::from_millis(config.request_timeout_ms)),
            stats: Arc::new(WebhookStats::default()),
            shutdown,
            tracker: tracker.clone(),
        };
        Self { config: config.clone(), settings, ingress: Mutex::new(None) }
    }

    /// The handle an app emits through; [`AppWebhooks::disabled`] when it has no usable target.
    pub fn for_app(&self, app: &AppConfig) -> AppWebhooks {
        let Some(route) = AppRoute::new(app) else {
            return AppWebhooks::disabled();
        };
        let sink = AppSink { route: Arc::new(route), ingress: self.ingress(), stats: self.settings.stats.clone() };
        AppWebhooks(Some(Arc::new(sink)))
    }

    /// The engine's counters, for the metrics layer.
    pub fn stats(&self) -> Arc<WebhookStats> {
        self.settings.stats.clone()
    }

    /// Webhook events dropped so far (full queues, exhausted retries, shutdown).
    pub fn dropped(&self) -> u64 {
        self.settings.stats.dropped()
    }

    /// The running dispatcher's ingress, starting a dispatcher when none runs.
    fn ingress(&self) -> mpsc::Sender<Emitted> {
        let mut slot = self.ingress.lock();
        if let Some(sender) = slot.as_ref().and_then(mpsc::WeakSender::upgrade) {
            return sender;
        }
        let (sender, receiver) = mpsc::channel(self.config.queue_capacity.max(1));
        let dispatcher = Dispatcher::new(
            Duration::from_millis(self.config.leave_delay_ms),
            Duration::from_millis(self.config.batch_window_ms),
            self.config.queue_capacity.max(1),
            self.settings.clone(),
        );
        let shutdown = self.settings.shutdown.clone();
        self.settings.tracker.spawn(dispatcher.run(receiver, shutdown, self.settings.flush));
        *slot = Some(sender.downgrade());
        sender
    }
}

/// One app's way into the dispatcher. Cheap to clone; emitting never blocks or awaits.
#[derive(Debug, Clone, Default)]
pub struct AppWebhooks(Option<Arc<AppSink>>);

#[derive(Debug)]
struct AppSink {
    route: Arc<AppRoute>,
    ingress: mpsc::Sender<Emitted>,
    stats: Arc<WebhookStats>,
}

impl AppWebhooks {
    /// A handle that sends nothing (apps without targets, tests).
    pub fn disabled() -> Self {
        Self(None)
    }

    /// Whether any target wants events named `name`; lets callers skip building them.
    pub fn wants(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|sink| sink.route.wants.contains(name))
    }

    /// Queues `event` for every target that wants it. Never waits: when the queue is full
    /// the event is dropped and counted.
    pub fn emit(&self, event: WebhookEvent) {
        let Some(sink) = &self.0 else { return };
        if !sink.route.wants.contains(event.name()) {
            return;
        }
        self.push(sink, event, None);
    }

    /// Queues a leave (`channel_vacated`, `member_removed`) that the cluster decided: when
    /// its delay is over, `check` says whether it still stands (a join on another node may
    /// have taken it back; then neither is sent).
    pub fn emit_held(&self, event: WebhookEvent, check: LeaveCheck) {
        let Some(sink) = &self.0 else { return };
        if !sink.route.wants.contains(event.name()) {
            // Nobody hears about it, but the cluster's record of it must still be settled.
            tokio::spawn(check.run());
            return;
        }
        self.push(sink, event, Some(check));
    }

    fn push(&self, sink: &AppSink, event: WebhookEvent, check: Option<LeaveCheck>) {
        sink.stats.ingress_pushed();
        if sink.ingress.try_send(Emitted { app: sink.route.clone(), event, check }).is_err() {
            sink.stats.ingress_popped();
            sink.stats.record_drop(1, "webhook queue full");
        }
    }

    /// Webhook events dropped so far, across the engine (0 for a disabled handle).
    pub fn dropped(&self) -> u64 {
        self.0.as_ref().map_or(0, |sink| sink.stats.dropped())
    }
}

/// Asked when a leave held in a cluster falls due: true when it is still to be sent, false
/// when a join somewhere took it back. Made by the cluster layer.
pub struct LeaveCheck(Box<dyn FnOnce() -> BoxFuture<'static, bool> + Send>);

impl LeaveCheck {
    pub fn new(check: impl FnOnce() -> BoxFuture<'static, bool> + Send + 'static) -> Self {
        Self(Box::new(check))
    }

    fn run(self) -> BoxFuture<'static, bool> {
        (self.0)()
    }
}

impl std::fmt::Debug for LeaveCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaveCheck")
    }
}

/// Sleeps until `at`, or forever when `None` (a disabled `select!` branch's future).
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
