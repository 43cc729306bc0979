//! Pusher's leave delay (PROTOCOL.md §12): `channel_vacated` and `member_removed` wait
//! `leave_delay_ms`; when the matching `channel_occupied` (same channel) or `member_added`
//! (same channel and user) comes within that time, both vanish, so a quick leave-and-rejoin
//! (a page reload) is invisible to the receiver.
//!
//! Pure: the caller passes the time and asks what is due. Bounded: at most `capacity` leaves
//! wait; when full, a new leave is not delayed but released at once (sent, never lost).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use herald_protocol::{ChannelName, UserId};
use tokio::time::Instant;

use super::WebhookEvent;

/// What a leave waits for: the join that would undo it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum LeaveKey {
    Vacated(ChannelName),
    Removed(ChannelName, UserId),
}

/// How an event takes part in the leave delay.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// `channel_occupied` / `member_added`: cancels a pending leave with this key.
    Join(LeaveKey),
    /// `channel_vacated` / `member_removed`: waits under this key.
    Leave(LeaveKey),
    /// Everything else: never delayed.
    Other,
}

pub(super) fn role(event: &WebhookEvent) -> Role {
    match event {
        WebhookEvent::ChannelOccupied { channel } => Role::Join(LeaveKey::Vacated(channel.clone())),
        WebhookEvent::ChannelVacated { channel } => Role::Leave(LeaveKey::Vacated(channel.clone())),
        WebhookEvent::MemberAdded { channel, user_id } => {
            Role::Join(LeaveKey::Removed(channel.clone(), user_id.clone()))
        }
        WebhookEvent::MemberRemoved { channel, user_id } => {
            Role::Leave(LeaveKey::Removed(channel.clone(), user_id.clone()))
        }
        _ => Role::Other,
    }
}

/// Leaves waiting out their delay, keyed by `K`, carrying `T`.
#[derive(Debug)]
pub(super) struct LeaveDelay<K, T> {
    delay: Duration,
    capacity: usize,
    next_seq: u64,
    pending: HashMap<K, (u64, T)>,
    /// Deadlines in insertion order (the delay is constant, so also in time order), with the
    /// key they were set for; entries whose leave was cancelled are skipped when reached.
    deadlines: VecDeque<(Instant, u64, K)>,
}

impl<K: Clone + Eq + Hash, T> LeaveDelay<K, T> {
    pub(super) fn new(delay: Duration, capacity: usize) -> Self {
        Self { delay, capacity: capacity.max(1), next_seq: 0, pending: HashMap::new(), deadlines: VecDeque::new() }
    }

    /// Holds a leave until `now + delay`. Returns it when it must go at once instead: no
    /// delay configured, or `capacity` deadlines already waiting. A second leave for a key
    /// that is already waiting is the same news and is dropped (`None`).
    pub(super) fn hold(&mut self, key: K, item: T, now: Instant) -> Option<T> {
        if self.delay.is_zero() || self.deadlines.len() >= self.capacity {
            return Some(item);
        }
        if self.pending.contains_key(&key) {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.deadlines.push_back((now + self.delay, seq, key.clone()));
        self.pending.insert(key, (seq, item));
        None
    }

    /// A join for `key` arrived: true when it cancelled a waiting leave (drop both).
    pub(super) fn cancel(&mut self, key: &K) -> bool {
        self.pending.remove(key).is_some()
    }

    /// When the earliest waiting leave is due.
    pub(super) fn next_due(&mut self) -> Option<Instant> {
        self.skip_cancelled();
        self.deadlines.front().map(|(at, _, _)| *at)
    }

    /// The leaves due at `now`, oldest first.
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<T> {
        let mut due = Vec::new();
        while let Some(at) = self.next_due() {
            if at > now {
                break;
            }
            due.extend(self.pop_front());
        }
        due
    }

    /// Every waiting leave, oldest first (shutdown: send them now).
    pub(super) fn take_all(&mut self) -> Vec<T> {
        let mut all = Vec::new();
        while self.next_due().is_some() {
            all.extend(self.pop_front());
        }
        all
    }

    /// Leaves waiting now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    fn pop_front(&mut self) -> Option<T> {
        let (_, seq, key) = self.deadlines.pop_front()?;
        match self.pending.remove(&key) {
            Some((pending_seq, item)) if pending_seq == seq => Some(item),
            Some(other) => {
                self.pending.insert(key, other);
                None
            }
            None => None,
        }
    }

    fn skip_cancelled(&mut self) {
        while let Some((_, seq, key)) = self.deadlines.front() {
            if self.pending.get(key).is_some_and(|(s, _)| s == seq) {
                break;
            }
            self.deadlines.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(3);

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name, 200).expect("valid")
    }

    #[test]
    fn joins_and_leaves_pair_by_channel_and_user() {
        let occupied = WebhookEvent::ChannelOccupied { channel: channel("a") };
        let vacated = WebhookEvent::ChannelVacated { channel: channel("a") };
        let added = WebhookEvent::MemberAdded { channel: channel("presence-a"), user_id: UserId::new("1") };
        let removed = WebhookEvent::MemberRemoved { channel: channel("presence-a"), user_id: UserId::new("1") };
        let Role::Join(join) = role(&occupied) else { panic!("occupied is a join") };
        assert_eq!(role(&vacated), Role::Leave(join));
        let Role::Join(join) = role(&added) else { panic!("member_added is a join") };
        assert_eq!(role(&removed), Role::Leave(join));
        assert_eq!(role(&WebhookEvent::CacheMiss { channel: channel("cache-a") }), Role::Other);
    }

    #[test]
    fn a_leave_is_released_exactly_when_its_delay_ends() {
        let start = Instant::now();
        let mut leaves = LeaveDelay::new(DELAY, 10);
        assert_eq!(leaves.hold("a", 1, start), None);
        assert_eq!(leaves.hold("b", 2, start + Duration::from_secs(1)), None);
        assert_eq!(leaves.next_due(), Some(start + DELAY));
        assert!(leaves.take_due(start + DELAY - Duration::from_millis(1)).is_empty());
        assert_eq!(leaves.take_due(start + DELAY), vec![1]);
        assert_eq!(leaves.next_due(), Some(start + Duration::from_secs(4)));
        assert_eq!(leaves.take_due(start + Duration::from_secs(10)), vec![2]);
        assert_eq!(leaves.next_due(), None);
    }

    #[test]
    fn a_rejoin_within_the_delay_cancels_the_leave() {
        let start = Instant::now();
        let mut leaves = LeaveDelay::new(DELAY, 10);
        leaves.hold("a", 1, start);
        leaves.hold("b", 2, start);
        assert!(leaves.cancel(&"a"));
        assert!(!leaves.cancel(&"a"), "nothing left to cancel");
        assert!(!leaves.cancel(&"c"));
        assert_eq!(leaves.take_due(start + DELAY), vec![2]);
        assert_eq!(leaves.len(), 0);
    }

    #[test]
    fn a_leave_after_a_cancelled_one_keeps_its_own_deadline() {
        let start = Instant::now();
        let mut leaves = LeaveDelay::new(DELAY, 10);
        leaves.hold("a", 1, start);
        leaves.cancel(&"a");
        leaves.hold("a", 2, start + Duration::from_secs(2));
        assert!(leaves.take_due(start + DELAY).is_empty(), "the cancelled deadline must not release the new leave");
        assert_eq!(leaves.take_due(start + Duration::from_secs(5)), vec![2]);
    }

    #[test]
    fn when_full_a_leave_goes_at_once_instead_of_waiting() {
        let start = Instant::now();
        let mut leaves = LeaveDelay::new(DELAY, 2);
        assert_eq!(leaves.hold("a", 1, start), None);
        assert_eq!(leaves.hold("b", 2, start), None);
        assert_eq!(leaves.hold("c", 3, start), Some(3));
        assert_eq!(leaves.take_all(), vec![1, 2]);
    }

    #[test]
    fn zero_delay_and_duplicate_leaves() {
        let start = Instant::now();
        let mut none = LeaveDelay::new(Duration::ZERO, 2);
        assert_eq!(none.hold("a", 1, start), Some(1));
        let mut leaves = LeaveDelay::new(DELAY, 5);
        assert_eq!(leaves.hold("a", 1, start), None);
        assert_eq!(leaves.hold("a", 2, start), None, "the same leave twice is sent once");
        assert_eq!(leaves.take_all(), vec![1]);
    }
}
