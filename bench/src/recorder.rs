//! Where receivers put what they measured: a latency histogram split into shards (so the
//! receiving threads rarely meet on a lock) and a live delivery counter the run watches.
//!
//! Per delivery the hot path is one uncontended mutex and one relaxed atomic add; nothing is
//! allocated. Latencies are kept in nanoseconds from 1 ns to 60 s at 3 significant digits.
//! [`drain`] is how a run waits for deliveries to arrive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

const SHARDS: usize = 16;
const MAX_LATENCY_NS: u64 = 60_000_000_000;

#[derive(Debug)]
pub struct Recorder {
    shards: Vec<Mutex<Histogram<u64>>>,
    delivered: AtomicU64,
}

impl Recorder {
    pub fn new() -> anyhow::Result<Self> {
        let shards = (0..SHARDS)
            .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(Self { shards, delivered: AtomicU64::new(0) })
    }

    /// Records one delivery seen by connection `conn` with the given latency.
    pub fn record(&self, conn: usize, latency_ns: u64) {
        if let Ok(mut h) = self.shards[conn % SHARDS].lock() {
            h.saturating_record(latency_ns.max(1));
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Deliveries recorded so far (receivers record unique deliveries only).
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// All shards merged.
    pub fn merged(&self) -> anyhow::Result<Histogram<u64>> {
        self.merge(false)
    }

    /// All shards merged, leaving them empty (one histogram per step of a run).
    pub fn take(&self) -> anyhow::Result<Histogram<u64>> {
        self.merge(true)
    }

    fn merge(&self, reset: bool) -> anyhow::Result<Histogram<u64>> {
        let mut total = Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)?;
        for shard in &self.shards {
            let mut shard = shard.lock().map_err(|_| anyhow::anyhow!("a receiver panicked"))?;
            total.add(&*shard)?;
            if reset {
                shard.reset();
            }
        }
        Ok(total)
    }
}

/// How often [`drain`] looks at the delivery counter.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Waits until `recorder` counts `target` deliveries, or none arrived for `quiet`, or the
/// deadline; with `wait_for_first`, the quiet limit only starts after the first delivery.
/// Returns when the count last moved.
pub async fn drain(
    recorder: &Recorder,
    target: u64,
    quiet: Duration,
    wait_for_first: bool,
    deadline: Instant,
) -> Instant {
    let mut last_count = recorder.delivered();
    let mut last_progress = Instant::now();
    while recorder.delivered() < target && Instant::now() < deadline {
        tokio::time::sleep_until((Instant::now() + DRAIN_POLL).min(deadline)).await;
        let count = recorder.delivered();
        if count != last_count || (wait_for_first && count == 0) {
            last_count = count;
            last_progress = Instant::now();
        } else if last_progress.elapsed() >= quiet {
            break;
        }
    }
    last_progress
}

/// Which sequence numbers one connection has seen, to tell losses from duplicates. The bits
/// grow with the highest sequence number seen, so a generous `len` costs nothing up front.
#[derive(Debug)]
pub struct SeenSet {
    bits: Vec<u64>,
    len: u64,
}

impl SeenSet {
    pub fn new(len: u64) -> Self {
        Self { bits: Vec::new(), len }
    }

    /// Marks `seq`; `Some(true)` if new, `Some(false)` if seen before, `None` if out of range.
    pub fn insert(&mut self, seq: u64) -> Option<bool> {
        if seq >= self.len {
            return None;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        Some(fresh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_set_tells_new_from_duplicate_and_out_of_range() {
        let mut seen = SeenSet::new(70);
        assert_eq!(seen.insert(69), Some(true));
        assert_eq!(seen.insert(69), Some(false));
        assert_eq!(seen.insert(0), Some(true));
        assert_eq!(seen.insert(70), None);
    }

    #[test]
    fn shards_merge_into_one_histogram() {
        let recorder = Recorder::new().expect("histogram");
        recorder.record(0, 1_000);
        recorder.record(1, 3_000);
        let merged = recorder.merged().expect("merge");
        assert_eq!(merged.len(), 2);
        assert_eq!(recorder.delivered(), 2);
        assert_eq!(recorder.take().expect("take").len(), 2);
        assert!(recorder.merged().expect("merge").is_empty());
    }
}
