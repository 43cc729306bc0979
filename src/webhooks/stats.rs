//! The webhook counters the metrics layer reads: plain atomics, written by the emitters, the
//! dispatcher and the endpoint workers, never locked on the hot path. Also the one place that
//! logs dropped webhooks, at most once per second.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::breaker::BreakerState;
use super::payload::now_unix_ms;

/// Counters of the whole webhook engine.
#[derive(Debug, Default)]
pub struct WebhookStats {
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    ingress_depth: AtomicU64,
    last_drop_warning_ms: AtomicU64,
    endpoints: Mutex<Vec<Arc<EndpointStats>>>,
}

/// Counters of one endpoint (one URL).
#[derive(Debug)]
pub struct EndpointStats {
    url: String,
    breaker: AtomicU8,
    pending: AtomicU64,
}

/// One endpoint as the metrics layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSnapshot {
    pub url: String,
    pub breaker: BreakerState,
    /// Requests queued, waiting for a retry or in flight.
    pub pending: u64,
}

impl WebhookStats {
    /// Requests answered 2xx.
    pub fn deliveries(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Attempts that failed (non-2xx, network error, timeout).
    pub fn failures(&self) -> u64 {
        self.failed_attempts.load(Ordering::Relaxed)
    }

    /// Failed requests scheduled for another attempt.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Webhook events given up on: a full queue, an exhausted retry budget, or shutdown.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting for the dispatcher plus requests held by the endpoints.
    pub fn queue_depth(&self) -> u64 {
        let endpoints: u64 = self.endpoints.lock().iter().map(|e| e.pending.load(Ordering::Relaxed)).sum();
        self.ingress_depth.load(Ordering::Relaxed) + endpoints
    }

    /// Every endpoint seen so far.
    pub fn endpoints(&self) -> Vec<EndpointSnapshot> {
        self.endpoints
            .lock()
            .iter()
            .map(|e| EndpointSnapshot {
                url: e.url.clone(),
                breaker: BreakerState::from_u8(e.breaker.load(Ordering::Relaxed)),
                pending: e.pending.load(Ordering::Relaxed),
            })
            .collect()
    }

    pub(super) fn endpoint(&self, url: &str) -> Arc<EndpointStats> {
        let stats = Arc::new(EndpointStats {
            url: url.to_string(),
            breaker: AtomicU8::new(BreakerState::Closed.to_u8()),
            pending: AtomicU64::new(0),
        });
        self.endpoints.lock().push(stats.clone());
        stats
    }

    pub(super) fn delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn attempt_failed(&self) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn retry_scheduled(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn ingress_pushed(&self) {
        self.ingress_depth.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn ingress_popped(&self) {
        self.ingress_depth.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts `events` dropped and warns, at most once per second across the engine.
    pub(super) fn record_drop(&self, events: u64, why: &'static str) {
        let total = self.dropped.fetch_add(events, Ordering::Relaxed) + events;
        let now = now_unix_ms();
        let last = self.last_drop_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self.last_drop_warning_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(reason = why, dropped_total = total, "webhook events dropped");
        }
    }
}

impl EndpointStats {
    pub(super) fn set_breaker(&self, state: BreakerState) {
        self.breaker.store(state.to_u8(), Ordering::Relaxed);
    }

    pub(super) fn add_pending(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn remove_pending(&self) {
        self.pending.fetch_sub(1, Ordering::Relaxed);
    }
}
