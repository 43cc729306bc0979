//! Recovery on a history channel, as the channel's lock sees it: which subscribers have had
//! which positions live, and the live events held back while a subscriber is replayed to.
//!
//! A recovery is two short critical sections around a read of the history (which may be a
//! Redis round trip): [`ChannelRegistry::begin_recovery`] starts holding the subscriber's live
//! history events back and says which it already had; [`ChannelRegistry::finish_recovery`]
//! queues the replay, `herald:recovered` (or `herald:recovery_failed`) and then what was held
//! back, skipping what the replay already carried. So the subscriber gets every event once,
//! in position order, replay first.

use std::collections::HashMap;

use herald_protocol::history::{recovered_data, recovery_failed_data, RECOVERED_EVENT, RECOVERY_FAILED_EVENT};
use herald_protocol::{ChannelName, ServerMessage, SocketId};

use super::registry::ChannelRegistry;
use crate::frame::Frame;
use crate::history::{Gap, Position, Replay, Since};

/// Live events held back for one subscriber at most; more closes it as a slow consumer.
const MAX_HELD: usize = 10_000;

/// A history channel's recovery bookkeeping on this node.
#[derive(Debug, Default)]
pub(super) struct Tracking {
    /// Subscribers that joined and have had no history event live yet.
    fresh: Vec<SocketId>,
    /// The first position each subscriber had live: it has had every later one.
    first_live: HashMap<SocketId, Position>,
    /// Subscribers being replayed to, with the live events held back meanwhile.
    held: HashMap<SocketId, Vec<(Position, Frame)>>,
    /// Recovered subscribers and the newest position their replay carried: an event at or
    /// below it that arrives live afterwards (another node's, recorded before the replay was
    /// read and delivered here after it) is not sent twice.
    floor: HashMap<SocketId, Position>,
}

impl Tracking {
    pub fn joined(&mut self, socket: SocketId, recovering: bool) {
        if recovering {
            self.held.insert(socket, Vec::new());
        } else {
            self.fresh.push(socket);
        }
    }

    pub fn left(&mut self, socket: SocketId) {
        self.fresh.retain(|s| *s != socket);
        self.first_live.remove(&socket);
        self.held.remove(&socket);
        self.floor.remove(&socket);
    }

    /// True when `socket` must not get the event at `position` now: it is held back (kept)
    /// for a recovery in progress, or its replay carried it already. Past [`MAX_HELD`] held
    /// events it goes out live, out of order, rather than growing without bound; a recovery
    /// takes one read of the history.
    pub fn withhold(&mut self, socket: SocketId, position: Position, frame: &Frame) -> bool {
        if self.floor.get(&socket).is_some_and(|floor| position <= *floor) {
            return true;
        }
        match self.held.get_mut(&socket) {
            Some(held) if held.len() < MAX_HELD => {
                held.push((position, frame.clone()));
                true
            }
            _ => false,
        }
    }

    /// Before a positioned event goes out: the fresh subscribers' first live position.
    pub fn note_live(&mut self, position: Position) {
        for socket in self.fresh.drain(..) {
            self.first_live.insert(socket, position);
        }
    }

    /// Whether any subscriber may need [`withhold`](Self::withhold).
    pub fn withholds_any(&self) -> bool {
        !self.held.is_empty() || !self.floor.is_empty()
    }
}

/// What `begin_recovery` found: the position from which the subscriber already has every
/// event live (`None`: it has had none).
#[derive(Debug, Clone, Copy)]
pub struct RecoveryStart {
    pub had_from: Option<Position>,
}

impl ChannelRegistry {
    /// Starts holding back `socket`'s live history events on `name`. `None` when it is not
    /// subscribed there.
    pub fn begin_recovery(&self, name: &ChannelName, socket: SocketId) -> Option<RecoveryStart> {
        let channel = self.channels.get(name).map(|c| c.clone())?;
        let state = channel.state.read();
        if !state.contains(socket) {
            return None;
        }
        let mut tracking = state.tracking()?.lock();
        if tracking.held.contains_key(&socket) {
            // Joined as recovering: it has had nothing live.
            return Some(RecoveryStart { had_from: None });
        }
        let had_from = tracking.first_live.remove(&socket);
        tracking.fresh.retain(|s| *s != socket);
        tracking.held.insert(socket, Vec::new());
        Some(RecoveryStart { had_from })
    }

    /// Ends a recovery: queues the replay (what `read` found after `since`, minus what the
    /// subscriber had live), the outcome event, and the held-back live events.
    pub fn finish_recovery(
        &self,
        name: &ChannelName,
        socket: SocketId,
        since: Since,
        start: RecoveryStart,
        read: Result<Replay, Gap>,
    ) {
        let Some(channel) = self.channels.get(name).map(|c| c.clone()) else { return };
        let state = channel.state.read();
        let Some(outbox) = state.outbox_of(socket) else { return };
        let Some(tracking) = state.tracking() else { return };
        let mut tracking = tracking.lock();
        let held = tracking.held.remove(&socket).unwrap_or_default();
        let mut sent_up_to = None;
        let outcome = match (&read, since) {
            (Ok(replay), Since::Position(from)) => {
                let mut replayed = 0;
                let missed = replay.events.iter().filter(|(p, _)| *p > from && start.had_from.is_none_or(|h| *p < h));
                for (position, frame) in missed {
                    let _ = outbox.push(frame.clone());
                    sent_up_to = Some(*position);
                    replayed += 1;
                }
                sent_up_to = sent_up_to.max(Some(from));
                tracking.first_live.insert(socket, from.next());
                recovered(name, from, replayed, replay.latest)
            }
            (Ok(replay), Since::Latest) => {
                sent_up_to = Some(replay.latest);
                tracking.first_live.insert(socket, replay.latest.next());
                recovered(name, replay.latest, 0, replay.latest)
            }
            (Err(gap), _) => {
                tracking.fresh.push(socket);
                let since = match since {
                    Since::Position(p) => Some(p.to_string()),
                    Since::Latest => None,
                };
                let data = recovery_failed_data(since.as_deref(), &gap.to_string());
                event(name, RECOVERY_FAILED_EVENT, &data)
            }
        };
        let _ = outbox.push(outcome);
        for (position, frame) in held {
            if sent_up_to.is_none_or(|s| position > s) {
                let _ = outbox.push(frame);
            }
        }
        // Only what the history held when it was read: below that, nothing is missing.
        if let Some(floor) = sent_up_to {
            tracking.floor.insert(socket, floor);
        }
    }
}

fn recovered(name: &ChannelName, since: Position, replayed: usize, latest: Position) -> Frame {
    event(name, RECOVERED_EVENT, &recovered_data(since, replayed, Some(latest)))
}

fn event(name: &ChannelName, event: &str, data: &str) -> Frame {
    Frame::message(&ServerMessage::Event { event, channel: name.as_str(), data: Some(data), user_id: None })
}
