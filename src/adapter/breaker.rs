//! The one circuit breaker in front of every operation of a cluster adapter (Redis or NATS).
//!
//! Closed: operations run; [`FAILURES_TO_OPEN`] consecutive connection failures or timeouts in
//! a row open it (the NATS adapter also opens it when its connection reports a disconnect).
//! Open: every operation fails at once with `Unavailable` and publishes are dropped — the hot
//! path reads one atomic and never awaits the backend. Half-open is the liveness task's job,
//! not the callers': while open it sends one probe per cooldown and closes the breaker on
//! success (then resubscribes and reconciles). Nothing here awaits or locks.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Consecutive failures that open the breaker: one slow command is not an outage.
pub(crate) const FAILURES_TO_OPEN: u32 = 3;

#[derive(Debug, Default)]
pub(crate) struct Breaker {
    open: AtomicBool,
    failures: AtomicU32,
}

impl Breaker {
    /// Whether an operation may go to the backend now.
    pub fn allows(&self) -> bool {
        !self.open.load(Ordering::Acquire)
    }

    pub fn is_open(&self) -> bool {
        !self.allows()
    }

    pub fn record_success(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// Counts a connection failure or timeout; true when this one opened the breaker.
    pub fn record_failure(&self) -> bool {
        let n = self.failures.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        n >= FAILURES_TO_OPEN && !self.open.swap(true, Ordering::AcqRel)
    }

    /// Opens it at once (the connection is known to be down); true if it was closed.
    pub fn trip(&self) -> bool {
        !self.open.swap(true, Ordering::AcqRel)
    }

    /// The probe succeeded; true if it was open.
    pub fn close(&self) -> bool {
        self.failures.store(0, Ordering::Relaxed);
        self.open.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_after_consecutive_failures() {
        let b = Breaker::default();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(!b.record_failure());
        }
        b.record_success();
        for _ in 0..FAILURES_TO_OPEN - 1 {
            assert!(!b.record_failure());
        }
        assert!(b.allows());
        assert!(b.record_failure());
        assert!(!b.allows());
        assert!(!b.record_failure(), "opening is reported once");
    }

    #[test]
    fn closing_resets_the_failure_count() {
        let b = Breaker::default();
        for _ in 0..FAILURES_TO_OPEN {
            b.record_failure();
        }
        assert!(b.close());
        assert!(!b.close());
        assert!(!b.record_failure());
        assert!(b.allows());
    }
}
