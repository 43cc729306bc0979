//! The shared time base: nanoseconds since the Unix epoch, read from the monotonic clock.
//!
//! Stamps must mean the same thing in the triggering process and in every receiving process
//! (issue 7 runs several generators), so they are Unix nanoseconds. Within one process they are
//! derived from `Instant`, anchored once at start, so a wall-clock step cannot bend a run.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_instant: Instant,
    base_unix_ns: u64,
}

impl Clock {
    pub fn start() -> Self {
        let base_unix_ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Self { base_instant: Instant::now(), base_unix_ns }
    }

    /// Now, in Unix nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.base_unix_ns + self.base_instant.elapsed().as_nanos() as u64
    }

    /// The `Instant` at which [`Clock::now_ns`] will read `unix_ns`.
    pub fn instant_at(&self, unix_ns: u64) -> Instant {
        self.base_instant + Duration::from_nanos(unix_ns.saturating_sub(self.base_unix_ns))
    }
}
