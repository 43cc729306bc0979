//! One channel's state, always used under its lock: subscribers, presence roster, and the
//! bookkeeping of the subscription-count throttle.

use std::collections::HashMap;
use std::sync::Arc;

use herald_protocol::{ChannelKind, ChannelName, PresenceMember, ServerMessage, SocketId, UserId};
use tokio::time::Instant;

use parking_lot::Mutex;

use super::presence::Roster;
use super::recovery::Tracking;
use super::registry::{ChannelSummary, Subscriber};
use crate::frame::Frame;
use crate::history::Position;
use crate::outbox::Outbox;

#[derive(Debug, Default)]
pub(super) struct ChannelState {
    /// Set when the channel emptied and is leaving the map; joiners must retry.
    pub removed: bool,
    subscribers: HashMap<SocketId, Member>,
    pub roster: Roster,
    pub count_sent_at: Option<Instant>,
    pub count_timer_armed: bool,
    /// The latest count (cluster-wide in a cluster), for the throttled trailing update.
    pub count_value: usize,
    /// On history channels: who had which positions live, and recoveries in progress.
    tracking: Option<Box<Mutex<Tracking>>>,
}

/// A subscriber that was removed.
#[derive(Debug)]
pub(super) struct Removed {
    /// Its presence user.
    pub user: Option<UserId>,
    /// That user has no other socket in the channel on this node.
    pub last_here: bool,
}

#[derive(Debug)]
struct Member {
    outbox: Arc<Outbox>,
    user_id: Option<UserId>,
}

impl ChannelState {
    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    pub fn contains(&self, socket_id: SocketId) -> bool {
        self.subscribers.contains_key(&socket_id)
    }

    /// Adds the subscriber; true when it is its user's first socket in a presence channel.
    /// `recovering`: on a history channel, hold its live history events back until its
    /// recovery finishes.
    pub fn insert(&mut self, subscriber: &Subscriber, member: Option<&PresenceMember>, recovering: bool) -> bool {
        let first = member.is_some_and(|m| self.roster.add(&m.user_id, m.user_info.clone()));
        let entry = Member { outbox: subscriber.outbox.clone(), user_id: member.map(|m| m.user_id.clone()) };
        self.subscribers.insert(subscriber.socket_id, entry);
        if let Some(tracking) = &self.tracking {
            tracking.lock().joined(subscriber.socket_id, recovering);
        }
        first
    }

    /// Starts the recovery bookkeeping: the channel keeps history.
    pub fn track_history(&mut self) {
        if self.tracking.is_none() {
            self.tracking = Some(Box::default());
        }
    }

    pub fn tracking(&self) -> Option<&Mutex<Tracking>> {
        self.tracking.as_deref()
    }

    pub fn outbox_of(&self, socket_id: SocketId) -> Option<&Arc<Outbox>> {
        self.subscribers.get(&socket_id).map(|m| &m.outbox)
    }

    /// Removes the subscriber; `None` when it was not subscribed.
    pub fn remove(&mut self, socket_id: SocketId) -> Option<Removed> {
        let member = self.subscribers.remove(&socket_id)?;
        if let Some(tracking) = &self.tracking {
            tracking.lock().left(socket_id);
        }
        let last_here = member.user_id.as_ref().is_some_and(|user_id| self.roster.remove(user_id));
        Some(Removed { user: member.user_id, last_here })
    }

    /// `subscription_succeeded` for this channel: `{}` or, on presence, the roster.
    pub fn succeeded_frame(&self, name: &ChannelName) -> Frame {
        let roster;
        let data_json = if name.kind() == ChannelKind::Presence {
            roster = self.roster.to_json();
            roster.as_str()
        } else {
            "{}"
        };
        Frame::message(&ServerMessage::SubscriptionSucceeded { channel: name.as_str(), data_json })
    }

    /// Queues `frame` to every subscriber but `except`; returns how many took it.
    pub fn broadcast(&self, frame: &Frame, except: Option<SocketId>) -> usize {
        let mut delivered = 0;
        for (socket_id, member) in &self.subscribers {
            if Some(*socket_id) != except && member.outbox.push(frame.clone()).is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// [`broadcast`](Self::broadcast) for a history event at `position`: subscribers being
    /// recovered get it after their replay instead of now.
    pub fn broadcast_at(&self, frame: &Frame, position: Position, except: Option<SocketId>) -> usize {
        let Some(tracking) = &self.tracking else { return self.broadcast(frame, except) };
        let mut tracking = tracking.lock();
        tracking.note_live(position);
        if !tracking.withholds_any() {
            return self.broadcast(frame, except);
        }
        let mut delivered = 0;
        for (socket_id, member) in &self.subscribers {
            if Some(*socket_id) == except || tracking.withhold(*socket_id, position, frame) {
                continue;
            }
            if member.outbox.push(frame.clone()).is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    /// Every subscriber with its presence user and that user's info.
    pub fn members(&self) -> impl Iterator<Item = (SocketId, Option<&UserId>, Option<&str>)> {
        self.subscribers.iter().map(|(socket, m)| {
            let info = m.user_id.as_ref().and_then(|u| self.roster.user_info(u));
            (*socket, m.user_id.as_ref(), info)
        })
    }

    pub fn summary(&self, name: ChannelName) -> ChannelSummary {
        let user_count = (name.kind() == ChannelKind::Presence).then(|| self.roster.len());
        ChannelSummary { name, subscription_count: self.subscribers.len(), user_count }
    }
}
