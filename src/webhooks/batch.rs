//! Batching for apps with `webhook_batching`: events for one target collect for
//! `batch_window_ms` from the first one, then go out in one request. A batch that reaches
//! `max_events` goes at once. Pure: the caller passes the time and asks what is due.
//!
//! Bounded: one open batch per key (app × target) and at most `max_events` in each.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
struct Batch<K, T> {
    key: K,
    due: Instant,
    items: Vec<T>,
}

/// Open batches, keyed by `K` (compared with `==`; there are few, so a list is enough).
#[derive(Debug)]
pub(super) struct Batches<K, T> {
    window: Duration,
    max_events: usize,
    open: Vec<Batch<K, T>>,
}

impl<K: PartialEq, T> Batches<K, T> {
    pub(super) fn new(window: Duration, max_events: usize) -> Self {
        Self { window, max_events: max_events.max(1), open: Vec::new() }
    }

    /// Adds `item` to `key`'s batch, opening one due at `now + window` if needed. Returns the
    /// batch when it is full (or the window is zero) and must go now.
    pub(super) fn add(&mut self, key: K, item: T, now: Instant) -> Option<(K, Vec<T>)> {
        let index = match self.open.iter().position(|b| b.key == key) {
            Some(index) => index,
            None => {
                self.open.push(Batch { key, due: now + self.window, items: Vec::new() });
                self.open.len() - 1
            }
        };
        self.open[index].items.push(item);
        if self.open[index].items.len() >= self.max_events || self.window.is_zero() {
            let batch = self.open.swap_remove(index);
            return Some((batch.key, batch.items));
        }
        None
    }

    /// When the earliest open batch is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.open.iter().map(|b| b.due).min()
    }

    /// The batches due at `now`.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<(K, Vec<T>)> {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].due <= now {
                let batch = self.open.remove(i);
                due.push((batch.key, batch.items));
            } else {
                i += 1;
            }
        }
        due
    }

    /// Every open batch (shutdown: send them now).
    pub(super) fn take_all(&mut self) -> Vec<(K, Vec<T>)> {
        self.open.drain(..).map(|b| (b.key, b.items)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(50);

    #[test]
    fn events_within_the_window_go_together_per_target() {
        let start = Instant::now();
        let mut batches = Batches::new(WINDOW, 100);
        assert!(batches.add("t1", 1, start).is_none());
        assert!(batches.add("t2", 10, start + Duration::from_millis(10)).is_none());
        assert!(batches.add("t1", 2, start + Duration::from_millis(49)).is_none());
        assert_eq!(batches.next_due(), Some(start + WINDOW));
        assert!(batches.take_due(start + WINDOW - Duration::from_millis(1)).is_empty());
        assert_eq!(batches.take_due(start + WINDOW), vec![("t1", vec![1, 2])]);
        assert_eq!(batches.next_due(), Some(start + Duration::from_millis(60)));
        assert_eq!(batches.take_due(start + Duration::from_millis(60)), vec![("t2", vec![10])]);
        assert_eq!(batches.next_due(), None);
    }

    #[test]
    fn a_batch_opened_after_a_send_gets_a_fresh_window() {
        let start = Instant::now();
        let mut batches = Batches::new(WINDOW, 100);
        batches.add("t", 1, start);
        batches.take_due(start + WINDOW);
        batches.add("t", 2, start + Duration::from_millis(70));
        assert_eq!(batches.next_due(), Some(start + Duration::from_millis(120)));
    }

    #[test]
    fn a_full_batch_goes_at_once() {
        let start = Instant::now();
        let mut batches = Batches::new(WINDOW, 3);
        assert!(batches.add("t", 1, start).is_none());
        assert!(batches.add("t", 2, start).is_none());
        assert_eq!(batches.add("t", 3, start), Some(("t", vec![1, 2, 3])));
        assert_eq!(batches.next_due(), None);
    }

    #[test]
    fn take_all_empties_every_open_batch() {
        let start = Instant::now();
        let mut batches = Batches::new(WINDOW, 10);
        batches.add("a", 1, start);
        batches.add("b", 2, start);
        assert_eq!(batches.take_all().len(), 2);
        assert_eq!(batches.next_due(), None);
    }
}
