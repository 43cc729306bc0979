//! The channel registry of one app: subscribe, unsubscribe, fan out, and the read queries of
//! the HTTP API.
//!
//! Each channel has its own lock. Membership changes and the frames they cause (member
//! events, `subscription_succeeded`) happen under that lock, so every subscriber sees them in
//! the same order as the events published around them. An emptied channel is marked removed
//! before it leaves the map, and a subscriber that finds a removed channel retries, so no
//! subscription can land in a channel the map has forgotten.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use herald_protocol::{ChannelKind, ChannelName, PresenceMember, ServerMessage, SocketId, UserId};
use parking_lot::RwLock;

use super::presence::Roster;
use crate::frame::Frame;
use crate::outbox::Outbox;

/// A socket as a channel holds it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub socket_id: SocketId,
    pub outbox: Arc<Outbox>,
}

#[derive(Debug)]
struct Channel {
    state: RwLock<ChannelState>,
}

#[derive(Debug, Default)]
struct ChannelState {
    removed: bool,
    subscribers: HashMap<SocketId, Member>,
    roster: Roster,
}

#[derive(Debug)]
struct Member {
    outbox: Arc<Outbox>,
    user_id: Option<UserId>,
}

/// What a successful subscribe changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The channel went from empty to occupied.
    pub occupied: bool,
    /// The socket was already subscribed; nothing changed but the reply.
    pub already_subscribed: bool,
    /// This socket was its user's first in the presence channel.
    pub member_added: bool,
    pub subscription_count: usize,
}

/// What an unsubscribe changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Left {
    /// The socket was not subscribed at all.
    pub not_subscribed: bool,
    /// The channel is now empty.
    pub vacated: bool,
    /// The user whose last socket this was, on a presence channel.
    pub member_removed: Option<UserId>,
    pub subscription_count: usize,
}

/// Why a subscribe was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("Presence channel is full: it already has {max} members")]
    PresenceFull { max: usize },
}

/// Counts for one occupied channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSummary {
    pub name: ChannelName,
    pub subscription_count: usize,
    /// Distinct users, for presence channels.
    pub user_count: Option<usize>,
}

/// Every channel of one app.
#[derive(Debug, Default)]
pub struct ChannelRegistry {
    channels: DashMap<ChannelName, Arc<Channel>>,
}

impl ChannelRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes `subscriber` to `name` and queues, in order: `member_added` to the other
    /// members (a user's first socket only), then `subscription_succeeded` to the subscriber.
    pub fn subscribe(
        &self,
        name: &ChannelName,
        subscriber: &Subscriber,
        member: Option<&PresenceMember>,
        max_presence_members: usize,
    ) -> Result<Joined, JoinError> {
        loop {
            let channel = self.channels.entry(name.clone()).or_insert_with(|| Arc::new(Channel::new())).clone();
            let mut state = channel.state.write();
            if state.removed {
                continue;
            }
            return state.join(name, subscriber, member, max_presence_members);
        }
    }

    /// Removes `socket_id` from `name`, queueing `member_removed` to the rest when it was its
    /// user's last socket there.
    pub fn unsubscribe(&self, name: &ChannelName, socket_id: SocketId) -> Left {
        let Some(channel) = self.channels.get(name).map(|c| c.clone()) else {
            return Left { not_subscribed: true, ..Left::default() };
        };
        let left = {
            let mut state = channel.state.write();
            let left = state.leave(name, socket_id);
            if left.vacated {
                state.removed = true;
            }
            left
        };
        if left.vacated {
            self.channels.remove_if(name, |_, c| Arc::ptr_eq(c, &channel));
        }
        left
    }

    /// Queues `frame` to every subscriber of `name` except `except`; returns how many got it.
    pub fn publish(&self, name: &str, frame: &Frame, except: Option<SocketId>) -> usize {
        let Some(channel) = self.channels.get(name).map(|c| c.clone()) else { return 0 };
        let state = channel.state.read();
        state.broadcast(frame, except)
    }

    /// Counts for `name`, or `None` when nobody is subscribed.
    pub fn summary(&self, name: &str) -> Option<ChannelSummary> {
        let channel = self.channels.get(name)?;
        let name = channel.key().clone();
        let state = channel.state.read();
        (!state.subscribers.is_empty()).then(|| state.summary(name))
    }

    /// Every occupied channel whose name starts with `prefix`.
    pub fn list(&self, prefix: &str) -> Vec<ChannelSummary> {
        let mut out: Vec<ChannelSummary> = self
            .channels
            .iter()
            .filter(|c| c.key().as_str().starts_with(prefix))
            .filter_map(|c| {
                let state = c.state.read();
                (!state.subscribers.is_empty()).then(|| state.summary(c.key().clone()))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The distinct users of a presence channel.
    pub fn users(&self, name: &str) -> Vec<UserId> {
        let Some(channel) = self.channels.get(name).map(|c| c.clone()) else { return Vec::new() };
        let state = channel.state.read();
        let mut ids: Vec<UserId> = state.roster.user_ids().cloned().collect();
        ids.sort();
        ids
    }

    /// Number of channels with at least one subscriber.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

impl Channel {
    fn new() -> Self {
        Self { state: RwLock::new(ChannelState::default()) }
    }
}

impl ChannelState {
    fn join(
        &mut self,
        name: &ChannelName,
        subscriber: &Subscriber,
        member: Option<&PresenceMember>,
        max_presence_members: usize,
    ) -> Result<Joined, JoinError> {
        let already_subscribed = self.subscribers.contains_key(&subscriber.socket_id);
        let occupied = self.subscribers.is_empty();
        let mut member_added = false;
        if !already_subscribed {
            if let Some(m) = member {
                if !self.roster.contains(&m.user_id) && self.roster.len() >= max_presence_members {
                    return Err(JoinError::PresenceFull { max: max_presence_members });
                }
                member_added = self.roster.add(&m.user_id, m.user_info.clone());
            }
            let entry = Member { outbox: subscriber.outbox.clone(), user_id: member.map(|m| m.user_id.clone()) };
            self.subscribers.insert(subscriber.socket_id, entry);
        }
        if member_added {
            if let Some(m) = member {
                let user_info = self.roster.user_info(&m.user_id);
                let added =
                    ServerMessage::MemberAdded { channel: name.as_str(), user_id: m.user_id.as_str(), user_info };
                self.broadcast(&Frame::message(&added), Some(subscriber.socket_id));
            }
        }
        let roster_json;
        let data_json = if name.kind() == ChannelKind::Presence {
            roster_json = self.roster.to_json();
            roster_json.as_str()
        } else {
            "{}"
        };
        let succeeded = ServerMessage::SubscriptionSucceeded { channel: name.as_str(), data_json };
        // A refused push means the subscriber's outbox is closing; its task cleans up.
        let _ = subscriber.outbox.push(Frame::message(&succeeded));
        Ok(Joined { occupied, already_subscribed, member_added, subscription_count: self.subscribers.len() })
    }

    fn leave(&mut self, name: &ChannelName, socket_id: SocketId) -> Left {
        let Some(member) = self.subscribers.remove(&socket_id) else {
            return Left { not_subscribed: true, subscription_count: self.subscribers.len(), ..Left::default() };
        };
        let mut member_removed = None;
        if let Some(user_id) = member.user_id {
            if self.roster.remove(&user_id) {
                let removed = ServerMessage::MemberRemoved { channel: name.as_str(), user_id: user_id.as_str() };
                self.broadcast(&Frame::message(&removed), None);
                member_removed = Some(user_id);
            }
        }
        Left {
            not_subscribed: false,
            vacated: self.subscribers.is_empty(),
            member_removed,
            subscription_count: self.subscribers.len(),
        }
    }

    fn broadcast(&self, frame: &Frame, except: Option<SocketId>) -> usize {
        let mut delivered = 0;
        for (socket_id, member) in &self.subscribers {
            if Some(*socket_id) == except {
                continue;
            }
            if member.outbox.push(frame.clone()).is_ok() {
                delivered += 1;
            }
        }
        delivered
    }

    fn summary(&self, name: ChannelName) -> ChannelSummary {
        let user_count = (name.kind() == ChannelKind::Presence).then(|| self.roster.len());
        ChannelSummary { name, subscription_count: self.subscribers.len(), user_count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Next;
    use herald_protocol::presence::PresenceLimits;

    fn socket(n: u32) -> Subscriber {
        Subscriber { socket_id: SocketId::new(1, n), outbox: Arc::new(Outbox::new(1 << 20)) }
    }

    fn drained(s: &Subscriber) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Next::Write(frames)) = s.outbox.take(100) {
            out.extend(frames.iter().map(|f| String::from_utf8_lossy(&f.bytes()[2..]).into_owned()));
        }
        out
    }

    fn member(id: &str) -> PresenceMember {
        PresenceMember::parse(&format!(r#"{{"user_id":"{id}"}}"#), PresenceLimits::default()).unwrap()
    }

    #[test]
    fn publish_reaches_everyone_but_the_excluded_socket() {
        let reg = ChannelRegistry::new();
        let name = ChannelName::parse("news", 164).unwrap();
        let (a, b) = (socket(1), socket(2));
        assert!(reg.subscribe(&name, &a, None, 100).unwrap().occupied);
        assert!(!reg.subscribe(&name, &b, None, 100).unwrap().occupied);
        drained(&a);
        drained(&b);
        assert_eq!(reg.publish("news", &Frame::text("{}"), Some(a.socket_id)), 1);
        assert!(drained(&a).is_empty());
        assert_eq!(drained(&b), vec!["{}"]);
    }

    #[test]
    fn the_last_unsubscribe_vacates_and_forgets_the_channel() {
        let reg = ChannelRegistry::new();
        let name = ChannelName::parse("news", 164).unwrap();
        let a = socket(1);
        reg.subscribe(&name, &a, None, 100).unwrap();
        let left = reg.unsubscribe(&name, a.socket_id);
        assert!(left.vacated);
        assert!(reg.is_empty());
        assert!(reg.unsubscribe(&name, a.socket_id).not_subscribed);
    }

    #[test]
    fn member_events_follow_a_users_first_and_last_socket() {
        let reg = ChannelRegistry::new();
        let name = ChannelName::parse("presence-room", 164).unwrap();
        let (a, b1, b2) = (socket(1), socket(2), socket(3));
        reg.subscribe(&name, &a, Some(&member("a")), 100).unwrap();
        drained(&a);
        assert!(reg.subscribe(&name, &b1, Some(&member("b")), 100).unwrap().member_added);
        assert!(!reg.subscribe(&name, &b2, Some(&member("b")), 100).unwrap().member_added);
        let seen = drained(&a);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].contains("member_added"));
        assert!(reg.unsubscribe(&name, b1.socket_id).member_removed.is_none());
        assert_eq!(reg.unsubscribe(&name, b2.socket_id).member_removed, Some(UserId::new("b")));
        assert!(drained(&a)[0].contains("member_removed"));
    }

    #[test]
    fn a_full_presence_channel_refuses_new_users_but_not_known_ones() {
        let reg = ChannelRegistry::new();
        let name = ChannelName::parse("presence-room", 164).unwrap();
        reg.subscribe(&name, &socket(1), Some(&member("a")), 1).unwrap();
        assert_eq!(reg.subscribe(&name, &socket(2), Some(&member("b")), 1), Err(JoinError::PresenceFull { max: 1 }));
        assert!(reg.subscribe(&name, &socket(3), Some(&member("a")), 1).is_ok());
    }
}
