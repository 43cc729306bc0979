//! One channel's recent events on a single node: a ring bounded by `max_events`, aged by
//! `max_age_seconds` on every access. Positions are `<node epoch>-<counter>`, consecutive, so
//! whether the events after a position are all still here is a comparison.

use std::collections::VecDeque;
use std::time::Duration;

use herald_protocol::history::stamp;
use tokio::time::Instant;

use super::{node_epoch, Gap, Position, Replay};
use crate::config::HistoryRule;
use crate::frame::Frame;

/// The kept events of one channel.
#[derive(Debug)]
pub struct ChannelLog {
    epoch: u64,
    /// The counter of the next event; the first is 1.
    next: u64,
    events: VecDeque<Entry>,
    max_events: usize,
    max_age: Duration,
    last_append: Instant,
}

#[derive(Debug)]
struct Entry {
    position: Position,
    at: Instant,
    frame: Frame,
}

impl ChannelLog {
    pub fn new(rule: &HistoryRule, now: Instant) -> Self {
        Self::with_epoch(node_epoch(), rule, now)
    }

    fn with_epoch(epoch: u64, rule: &HistoryRule, now: Instant) -> Self {
        Self {
            epoch,
            next: 1,
            events: VecDeque::new(),
            max_events: rule.max_events,
            max_age: rule.max_age(),
            last_append: now,
        }
    }

    /// Records the event `json` (encoded without a position) and returns its position and
    /// its frame, stamped with it.
    pub fn append(&mut self, json: &str, now: Instant) -> (Position, Frame) {
        let position = Position::new(self.epoch, self.next);
        self.next += 1;
        let frame = Frame::text(&stamp(json, position));
        if self.events.len() == self.max_events {
            self.events.pop_front();
        }
        self.events.push_back(Entry { position, at: now, frame: frame.clone() });
        self.last_append = now;
        (position, frame)
    }

    /// The events after `since`, or why they are not all here.
    pub fn since(&mut self, since: Position, now: Instant) -> Result<Replay, Gap> {
        self.expire(now);
        let latest = self.latest();
        if since.major != self.epoch || since.minor >= self.next {
            return Err(Gap::Unknown);
        }
        let first_kept = self.events.front().map_or(self.next, |e| e.position.minor);
        if since.minor + 1 < first_kept {
            return Err(Gap::NotKept);
        }
        let events = self.events.iter().filter(|e| e.position > since).map(|e| (e.position, e.frame.clone())).collect();
        Ok(Replay { events, latest })
    }

    /// Every kept event, oldest first.
    pub fn all(&mut self, now: Instant) -> Replay {
        self.expire(now);
        let events = self.events.iter().map(|e| (e.position, e.frame.clone())).collect();
        Replay { events, latest: self.latest() }
    }

    /// The newest position given out, kept or not; `<epoch>-0`, "before the first event",
    /// when there is none yet (a valid `since`: everything from the start).
    pub fn latest(&self) -> Position {
        Position::new(self.epoch, self.next - 1)
    }

    /// Whether nothing was appended for `max_age`: the log can be forgotten.
    pub fn is_stale(&self, now: Instant) -> bool {
        now.duration_since(self.last_append) >= self.max_age
    }

    fn expire(&mut self, now: Instant) {
        while self.events.front().is_some_and(|e| now.duration_since(e.at) >= self.max_age) {
            self.events.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(max_events: usize, max_age_seconds: u64) -> HistoryRule {
        HistoryRule { channels: "*".into(), max_events, max_age_seconds }
    }

    fn positions(replay: &Replay) -> Vec<u64> {
        replay.events.iter().map(|(p, _)| p.minor).collect()
    }

    #[test]
    fn replays_what_came_after_a_position_in_order() {
        let now = Instant::now();
        let mut log = ChannelLog::with_epoch(7, &rule(10, 60), now);
        for i in 0..5 {
            log.append(&format!(r#"{{"event":"e","channel":"c","data":"{i}"}}"#), now);
        }
        let replay = log.since(Position::new(7, 2), now).unwrap();
        assert_eq!(positions(&replay), [3, 4, 5]);
        assert_eq!(replay.latest, Position::new(7, 5));
        assert!(std::str::from_utf8(replay.events[0].1.payload())
            .unwrap()
            .ends_with(r#""data":"2","position":"7-3"}"#));
        assert!(log.since(Position::new(7, 5), now).unwrap().events.is_empty());
    }

    #[test]
    fn a_position_older_than_what_is_kept_is_a_gap() {
        let now = Instant::now();
        let mut log = ChannelLog::with_epoch(7, &rule(3, 60), now);
        for _ in 0..5 {
            log.append(r#"{"event":"e"}"#, now);
        }
        assert_eq!(log.since(Position::new(7, 1), now).unwrap_err(), Gap::NotKept);
        assert_eq!(positions(&log.since(Position::new(7, 2), now).unwrap()), [3, 4, 5]);
    }

    #[test]
    fn positions_of_another_epoch_or_from_the_future_are_unknown() {
        let now = Instant::now();
        let mut log = ChannelLog::with_epoch(7, &rule(3, 60), now);
        log.append(r#"{"event":"e"}"#, now);
        assert_eq!(log.since(Position::new(6, 1), now).unwrap_err(), Gap::Unknown);
        assert_eq!(log.since(Position::new(7, 2), now).unwrap_err(), Gap::Unknown);
        assert!(log.since(Position::new(7, 0), now).is_ok(), "from before the first event");
    }

    #[test]
    fn events_older_than_the_age_limit_are_not_replayed() {
        let start = Instant::now();
        let mut log = ChannelLog::with_epoch(7, &rule(10, 60), start);
        log.append(r#"{"event":"old"}"#, start);
        let later = start + Duration::from_secs(61);
        log.append(r#"{"event":"new"}"#, later);
        assert_eq!(log.since(Position::new(7, 0), later).unwrap_err(), Gap::NotKept);
        assert_eq!(positions(&log.since(Position::new(7, 1), later).unwrap()), [2]);
        assert!(!log.is_stale(later));
        assert!(log.is_stale(later + Duration::from_secs(60)));
        assert!(log.since(Position::new(7, 2), later + Duration::from_secs(120)).unwrap().events.is_empty());
    }
}
