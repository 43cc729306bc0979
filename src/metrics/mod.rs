//! Prometheus metrics: the families herald exports, each app's pre-resolved handles, and the
//! `/metrics` endpoint on its own port.
//!
//! Labels are bounded: `app_id` on every family, plus `kind` on rejections (a fixed set).
//! Hot paths touch only pre-resolved handles (an atomic add each); values that are cheaper
//! to compute than to track (connections, channels, presence members, webhook queue) are
//! read from the apps when Prometheus scrapes.

mod serve;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub use serve::serve;

use crate::webhooks::{BreakerState, WebhookStats};

/// Why something was refused, for `<prefix>_rate_limited_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    ClientEventRate,
    ConnectionQuota,
    ConnectionRate,
    ApiRate,
    SubscriptionLimit,
    MessageTooLarge,
    PayloadTooLarge,
}

impl Rejection {
    const ALL: [Rejection; 7] = [
        Self::ClientEventRate,
        Self::ConnectionQuota,
        Self::ConnectionRate,
        Self::ApiRate,
        Self::SubscriptionLimit,
        Self::MessageTooLarge,
        Self::PayloadTooLarge,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::ClientEventRate => "client_event_rate",
            Self::ConnectionQuota => "connection_quota",
            Self::ConnectionRate => "connection_rate",
            Self::ApiRate => "api_rate",
            Self::SubscriptionLimit => "subscription_limit",
            Self::MessageTooLarge => "message_too_large",
            Self::PayloadTooLarge => "payload_too_large",
        }
    }
}

/// Every family herald exports, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    connected: IntGaugeVec,
    new_connections: IntCounterVec,
    disconnections: IntCounterVec,
    received_bytes: IntCounterVec,
    transmitted_bytes: IntCounterVec,
    messages_received: IntCounterVec,
    messages_sent: IntCounterVec,
    http_calls: IntCounterVec,
    fanout_latency: HistogramVec,
    outbox_overflows: IntCounterVec,
    rejections: IntCounterVec,
    webhook_deliveries: IntCounter,
    webhook_failures: IntCounter,
    webhook_retries: IntCounter,
    webhook_dropped: IntCounter,
    webhook_queue_depth: IntGauge,
    webhook_breakers_open: IntGauge,
    presence_members: IntGaugeVec,
    channels: IntGaugeVec,
    history_recoveries: IntCounterVec,
    history_unrecorded: IntCounterVec,
}

/// One app's handles into [`Metrics`], resolved once.
#[derive(Debug, Clone)]
pub struct AppMetrics {
    pub connected: IntGauge,
    pub new_connections: IntCounter,
    pub disconnections: IntCounter,
    pub received_bytes: IntCounter,
    pub transmitted_bytes: IntCounter,
    pub messages_received: IntCounter,
    pub messages_sent: IntCounter,
    pub http_calls: IntCounter,
    pub fanout_latency: Histogram,
    pub outbox_overflows: IntCounter,
    rejections: Vec<IntCounter>,
    pub presence_members: IntGauge,
    pub channels: IntGauge,
    /// History recoveries answered with `herald:recovered`.
    pub recoveries_done: IntCounter,
    /// History recoveries answered with `herald:recovery_failed`.
    pub recoveries_failed: IntCounter,
    /// Events on history channels the cluster could not record (delivered without a position).
    pub history_unrecorded: IntCounter,
}

impl AppMetrics {
    /// Counts one refusal of `kind`.
    pub fn reject(&self, kind: Rejection) {
        if let Some(counter) = Rejection::ALL.iter().position(|k| *k == kind).and_then(|i| self.rejections.get(i)) {
            counter.inc();
        }
    }

    /// Handles registered nowhere, for code that runs without a server (unit tests).
    pub fn detached() -> Self {
        Metrics::new("herald").for_app("detached")
    }
}

impl Metrics {
    /// Creates and registers every family under `prefix` (e.g. `herald_connected`).
    pub fn new(prefix: &str) -> Self {
        let registry = Registry::new();
        let app = &["app_id"];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(format!("{prefix}_{name}"), help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGaugeVec::new(Opts::new(format!("{prefix}_{name}"), help), app).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let plain_counter = |name: &str, help: &str| {
            let c = IntCounter::new(format!("{prefix}_{name}"), help).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let plain_gauge = |name: &str, help: &str| {
            let g = IntGauge::new(format!("{prefix}_{name}"), help).expect("valid metric");
            registry.register(Box::new(g.clone())).expect("unique metric");
            g
        };
        let buckets = vec![0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1];
        let fanout_latency = HistogramVec::new(
            HistogramOpts::new(
                format!("{prefix}_fanout_latency_seconds"),
                "Time to encode an HTTP-triggered event and queue it to every subscriber of a channel",
            )
            .buckets(buckets),
            app,
        )
        .expect("valid metric");
        registry.register(Box::new(fanout_latency.clone())).expect("unique metric");
        #[cfg(target_os = "linux")]
        let _ = registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()));
        Self {
            connected: gauge("connected", "Connections open now (WebSockets and HTTP-transport sessions)"),
            new_connections: counter(
                "new_connections_total",
                "Connections accepted (WebSockets and HTTP-transport sessions)",
                app,
            ),
            disconnections: counter(
                "new_disconnections_total",
                "Connections closed (WebSockets and HTTP-transport sessions)",
                app,
            ),
            received_bytes: counter("socket_received_bytes", "Bytes of WebSocket payload received", app),
            transmitted_bytes: counter("socket_transmitted_bytes", "Bytes written to WebSockets", app),
            messages_received: counter("ws_messages_received_total", "WebSocket messages received", app),
            messages_sent: counter("ws_messages_sent_total", "WebSocket messages sent", app),
            http_calls: counter("http_calls_received_total", "HTTP API requests received", app),
            fanout_latency,
            outbox_overflows: counter(
                "outbox_overflows_total",
                "Sockets closed with 4100 because their outbound queue was full",
                app,
            ),
            rejections: counter("rate_limited_total", "Requests refused by a limit or quota", &["app_id", "kind"]),
            webhook_deliveries: plain_counter("webhook_deliveries_total", "Webhook requests answered 2xx"),
            webhook_failures: plain_counter("webhook_failures_total", "Webhook attempts that failed"),
            webhook_retries: plain_counter("webhook_retries_total", "Failed webhook requests scheduled again"),
            webhook_dropped: plain_counter(
                "webhook_dropped_total",
                "Webhook events given up on (queue full, retries exhausted, shutdown)",
            ),
            webhook_queue_depth: plain_gauge("webhook_queue_depth", "Webhook requests waiting to be sent"),
            webhook_breakers_open: plain_gauge(
                "webhook_breakers_open",
                "Webhook endpoints whose circuit breaker is open",
            ),
            presence_members: gauge("presence_members", "Distinct users across presence channels"),
            channels: gauge("channels", "Occupied channels"),
            history_recoveries: counter(
                "history_recoveries_total",
                "Recovery requests on history channels, by outcome (recovered, failed)",
                &["app_id", "outcome"],
            ),
            history_unrecorded: counter(
                "history_unrecorded_total",
                "Events on history channels delivered without a position because the cluster could not record them",
                app,
            ),
            registry,
        }
    }

    /// Copies the webhook engine's counters into the exported families.
    pub fn sync_webhooks(&self, stats: &WebhookStats) {
        let advance = |counter: &IntCounter, total: u64| counter.inc_by(total.saturating_sub(counter.get()));
        advance(&self.webhook_deliveries, stats.deliveries());
        advance(&self.webhook_failures, stats.failures());
        advance(&self.webhook_retries, stats.retries());
        advance(&self.webhook_dropped, stats.dropped());
        self.webhook_queue_depth.set(stats.queue_depth() as i64);
        let open = stats.endpoints().iter().filter(|e| e.breaker != BreakerState::Closed).count();
        self.webhook_breakers_open.set(open as i64);
    }

    /// Resolves `app_id`'s handles.
    pub fn for_app(&self, app_id: &str) -> AppMetrics {
        let l = &[app_id];
        AppMetrics {
            connected: self.connected.with_label_values(l),
            new_connections: self.new_connections.with_label_values(l),
            disconnections: self.disconnections.with_label_values(l),
            received_bytes: self.received_bytes.with_label_values(l),
            transmitted_bytes: self.transmitted_bytes.with_label_values(l),
            messages_received: self.messages_received.with_label_values(l),
            messages_sent: self.messages_sent.with_label_values(l),
            http_calls: self.http_calls.with_label_values(l),
            fanout_latency: self.fanout_latency.with_label_values(l),
            outbox_overflows: self.outbox_overflows.with_label_values(l),
            rejections: Rejection::ALL
                .iter()
                .map(|k| self.rejections.with_label_values(&[app_id, k.label()]))
                .collect(),
            presence_members: self.presence_members.with_label_values(l),
            channels: self.channels.with_label_values(l),
            recoveries_done: self.history_recoveries.with_label_values(&[app_id, "recovered"]),
            recoveries_failed: self.history_recoveries.with_label_values(&[app_id, "failed"]),
            history_unrecorded: self.history_unrecorded.with_label_values(l),
        }
    }
}
