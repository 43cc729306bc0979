//! The adapter's counters, read by the metrics endpoint through [`AdapterStats`]. Lock-free.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the publish latency histogram buckets; one more bucket is +Inf.
pub const PUBLISH_LATENCY_BUCKETS: [f64; 8] = [0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0];

/// A copy of the adapter's counters (all since start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdapterStats {
    /// Messages handed to the backend (Redis or NATS) by the publisher.
    pub published: u64,
    /// Messages dropped: queue full, breaker open, or the PUBLISH failed.
    pub publish_dropped: u64,
    /// Messages received from other nodes and handed to the sink.
    pub received: u64,
    /// Messages received but dropped: the receive queue was full, or undecodable.
    pub receive_dropped: u64,
    /// Backend operations that failed or timed out.
    pub commands_failed: u64,
    /// Subscriptions of dead nodes this node removed.
    pub reaped: u64,
    /// Reconciliations run after an outage.
    pub reconciliations: u64,
    pub breaker_open: bool,
    /// Publish round trip (one pipeline of queued messages): sum and count.
    pub publish_latency_seconds_sum: f64,
    pub publish_latency_count: u64,
    /// Cumulative counts per [`PUBLISH_LATENCY_BUCKETS`] bound, then +Inf.
    pub publish_latency_buckets: [u64; 9],
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub publish_dropped: AtomicU64,
    pub received: AtomicU64,
    pub receive_dropped: AtomicU64,
    pub commands_failed: AtomicU64,
    pub reaped: AtomicU64,
    pub reconciliations: AtomicU64,
    latency_micros_sum: AtomicU64,
    latency_count: AtomicU64,
    latency_buckets: [AtomicU64; 9],
}

pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub fn observe_publish(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = PUBLISH_LATENCY_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(PUBLISH_LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_micros_sum.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self, breaker_open: bool) -> AdapterStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut buckets = [0u64; 9];
        let mut total = 0;
        for (out, c) in buckets.iter_mut().zip(&self.latency_buckets) {
            total += get(c);
            *out = total;
        }
        AdapterStats {
            published: get(&self.published),
            publish_dropped: get(&self.publish_dropped),
            received: get(&self.received),
            receive_dropped: get(&self.receive_dropped),
            commands_failed: get(&self.commands_failed),
            reaped: get(&self.reaped),
            reconciliations: get(&self.reconciliations),
            breaker_open,
            publish_latency_seconds_sum: get(&self.latency_micros_sum) as f64 / 1e6,
            publish_latency_count: get(&self.latency_count),
            publish_latency_buckets: buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative() {
        let c = Counters::default();
        c.observe_publish(Duration::from_micros(300));
        c.observe_publish(Duration::from_millis(3));
        c.observe_publish(Duration::from_secs(5));
        let s = c.snapshot(false);
        assert_eq!(s.publish_latency_count, 3);
        assert_eq!(s.publish_latency_buckets[0], 1);
        assert_eq!(s.publish_latency_buckets[3], 2);
        assert_eq!(s.publish_latency_buckets[8], 3);
    }
}
