//! The channel registry of one app: subscribe, unsubscribe, fan out, and the read queries of
//! the HTTP API.
//!
//! Each channel has its own lock. Membership changes and everything they cause (member
//! events, `subscription_succeeded`, cache replay, counts, webhooks) happen under that lock,
//! so every subscriber and every webhook sees them in the same order as the events published
//! around them. An emptied channel is marked removed before it leaves the map, and a
//! subscriber that finds a removed channel retries, so no subscription can land in a channel
//! the map has forgotten. Lock order: a channel, then the cache map; never the reverse.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use herald_protocol::{ChannelKind, ChannelName, PresenceMember, ServerMessage, SocketId, UserId};
use parking_lot::RwLock;
use tokio::time::Instant;

use super::cache::{CacheSlot, CachedEvent};
use super::state::ChannelState;
use crate::frame::Frame;
use crate::outbox::Outbox;
use crate::webhooks::{AppWebhooks, WebhookEvent};

/// Above this many subscribers, subscription counts go out at most every [`COUNT_INTERVAL`].
pub const COUNT_THROTTLE_ABOVE: usize = 100;
pub const COUNT_INTERVAL: Duration = Duration::from_secs(5);

/// A socket as a channel holds it.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub socket_id: SocketId,
    pub outbox: Arc<Outbox>,
}

/// How one app's channels behave.
#[derive(Debug, Clone)]
pub struct ChannelPolicy {
    pub max_presence_members: usize,
    /// Send `pusher_internal:subscription_count` (and its webhook) on non-presence channels.
    pub subscription_count: bool,
    pub cache_ttl: Duration,
}

#[derive(Debug)]
pub(super) struct Channel {
    pub(super) state: RwLock<ChannelState>,
}

/// What a successful subscribe changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The socket was already subscribed; nothing changed but the reply.
    pub already_subscribed: bool,
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
#[derive(Debug)]
pub struct ChannelRegistry {
    channels: DashMap<ChannelName, Arc<Channel>>,
    caches: DashMap<ChannelName, CacheSlot>,
    policy: ChannelPolicy,
    webhooks: AppWebhooks,
}

impl ChannelRegistry {
    pub fn new(policy: ChannelPolicy, webhooks: AppWebhooks) -> Self {
        Self { channels: DashMap::new(), caches: DashMap::new(), policy, webhooks }
    }

    /// Subscribes `subscriber` to `name` and queues, in order: `member_added` to the other
    /// members (a user's first socket only), `subscription_succeeded`, the cached event or
    /// `pusher:cache_miss` on cache channels, and the new subscription count.
    pub fn subscribe(
        &self,
        name: &ChannelName,
        subscriber: &Subscriber,
        member: Option<&PresenceMember>,
    ) -> Result<Joined, JoinError> {
        loop {
            let channel = self.channels.entry(name.clone()).or_insert_with(|| Arc::new(Channel::new())).clone();
            let mut state = channel.state.write();
            if state.removed {
                continue;
            }
            let already_subscribed = state.contains(subscriber.socket_id);
            if !already_subscribed {
                if let Some(m) = member {
                    if !state.roster.contains(&m.user_id) && state.roster.len() >= self.policy.max_presence_members {
                        return Err(JoinError::PresenceFull { max: self.policy.max_presence_members });
                    }
                }
                self.add(&mut state, name, subscriber, member);
            }
            let succeeded = state.succeeded_frame(name);
            let _ = subscriber.outbox.push(succeeded);
            if name.is_cache() {
                self.replay_cache(name, &subscriber.outbox);
            }
            if !already_subscribed {
                self.count_changed(&channel, &mut state, name);
            }
            return Ok(Joined { already_subscribed, subscription_count: state.len() });
        }
    }

    fn add(
        &self,
        state: &mut ChannelState,
        name: &ChannelName,
        subscriber: &Subscriber,
        member: Option<&PresenceMember>,
    ) {
        if state.is_empty() {
            self.webhooks.emit(WebhookEvent::ChannelOccupied { channel: name.clone() });
        }
        if state.insert(subscriber, member) {
            if let Some(m) = member {
                let user_info = state.roster.user_info(&m.user_id);
                let added =
                    ServerMessage::MemberAdded { channel: name.as_str(), user_id: m.user_id.as_str(), user_info };
                state.broadcast(&Frame::message(&added), Some(subscriber.socket_id));
                self.webhooks.emit(WebhookEvent::MemberAdded { channel: name.clone(), user_id: m.user_id.clone() });
            }
        }
    }

    /// Removes `socket_id` from `name`, queueing `member_removed` to the rest when it was its
    /// user's last socket there. Returns false when it was not subscribed.
    pub fn unsubscribe(&self, name: &ChannelName, socket_id: SocketId) -> bool {
        let Some(channel) = self.channels.get(name).map(|c| c.clone()) else { return false };
        let mut state = channel.state.write();
        let Some(user_id) = state.remove(socket_id) else { return false };
        if let Some(user_id) = user_id {
            let removed = ServerMessage::MemberRemoved { channel: name.as_str(), user_id: user_id.as_str() };
            state.broadcast(&Frame::message(&removed), None);
            self.webhooks.emit(WebhookEvent::MemberRemoved { channel: name.clone(), user_id });
        }
        if state.is_empty() {
            state.removed = true;
            self.webhooks.emit(WebhookEvent::ChannelVacated { channel: name.clone() });
            drop(state);
            self.channels.remove_if(name, |_, c| Arc::ptr_eq(c, &channel));
        } else {
            self.count_changed(&channel, &mut state, name);
        }
        true
    }

    /// Queues `frame` to every subscriber of `name` except `except`; returns how many got it.
    /// `cache_data` (cache channels, HTTP events only) makes it the channel's cached event.
    pub fn publish(
        &self,
        name: &ChannelName,
        frame: &Frame,
        except: Option<SocketId>,
        cache_data: Option<&str>,
    ) -> usize {
        let channel = self.channels.get(name).map(|c| c.clone());
        let state = channel.as_ref().map(|c| c.state.read());
        if let Some(data) = cache_data {
            let expires = Instant::now() + self.policy.cache_ttl;
            let event = CachedEvent { frame: frame.clone(), data: Arc::from(data), expires };
            self.caches.entry(name.clone()).or_default().last = Some(event);
        }
        state.map_or(0, |s| s.broadcast(frame, except))
    }

    fn replay_cache(&self, name: &ChannelName, outbox: &Outbox) {
        let now = Instant::now();
        let mut slot = self.caches.entry(name.clone()).or_default();
        if let Some(event) = slot.current(now) {
            let _ = outbox.push(event.frame.clone());
            return;
        }
        let _ = outbox.push(Frame::message(&ServerMessage::CacheMiss { channel: name.as_str() }));
        if slot.take_miss_webhook(now) {
            self.webhooks.emit(WebhookEvent::CacheMiss { channel: name.clone() });
        }
    }

    /// The cached event's data and its remaining time to live.
    pub fn cached(&self, name: &str) -> Option<(Arc<str>, Duration)> {
        let now = Instant::now();
        let slot = self.caches.get(name)?;
        slot.current(now).map(|e| (e.data.clone(), e.expires.duration_since(now)))
    }

    /// Drops expired cache entries; returns how many are left.
    pub fn sweep_caches(&self) -> usize {
        let now = Instant::now();
        self.caches.retain(|_, slot| !slot.is_stale(now));
        self.caches.len()
    }

    /// Sends the new count now, or once the throttle interval has passed.
    fn count_changed(&self, channel: &Arc<Channel>, state: &mut ChannelState, name: &ChannelName) {
        if !self.policy.subscription_count || name.kind() == ChannelKind::Presence {
            return;
        }
        let now = Instant::now();
        let due = state.len() <= COUNT_THROTTLE_ABOVE || state.count_sent_at.is_none_or(|t| now >= t + COUNT_INTERVAL);
        if due {
            state.count_sent_at = Some(now);
            self.send_count(state, name);
        } else if !state.count_timer_armed {
            state.count_timer_armed = true;
            let at = state.count_sent_at.map_or(now, |t| t + COUNT_INTERVAL);
            let (channel, name, webhooks) = (channel.clone(), name.clone(), self.webhooks.clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let mut state = channel.state.write();
                state.count_timer_armed = false;
                if !state.removed {
                    state.count_sent_at = Some(Instant::now());
                    send_count(&state, &name, &webhooks);
                }
            });
        }
    }

    fn send_count(&self, state: &ChannelState, name: &ChannelName) {
        send_count(state, name, &self.webhooks);
    }

    /// Counts for `name`, or `None` when nobody is subscribed.
    pub fn summary(&self, name: &str) -> Option<ChannelSummary> {
        let channel = self.channels.get(name)?;
        let name = channel.key().clone();
        let state = channel.state.read();
        (!state.is_empty()).then(|| state.summary(name))
    }

    /// Every occupied channel whose name starts with `prefix`, sorted by name.
    pub fn list(&self, prefix: &str) -> Vec<ChannelSummary> {
        let mut out: Vec<ChannelSummary> = self
            .channels
            .iter()
            .filter(|c| c.key().as_str().starts_with(prefix))
            .filter_map(|c| {
                let state = c.state.read();
                (!state.is_empty()).then(|| state.summary(c.key().clone()))
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The distinct users of a presence channel, sorted.
    pub fn users(&self, name: &str) -> Vec<UserId> {
        let Some(channel) = self.channels.get(name).map(|c| c.clone()) else { return Vec::new() };
        let state = channel.state.read();
        let mut ids: Vec<UserId> = state.roster.user_ids().cloned().collect();
        ids.sort();
        ids
    }

    /// Distinct users summed over presence channels.
    pub fn presence_member_count(&self) -> usize {
        self.channels
            .iter()
            .filter(|c| c.key().kind() == ChannelKind::Presence)
            .map(|c| c.state.read().roster.len())
            .sum()
    }

    /// Number of channels with at least one subscriber.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }
}

fn send_count(state: &ChannelState, name: &ChannelName, webhooks: &AppWebhooks) {
    let count = state.len() as u64;
    let message = ServerMessage::SubscriptionCount { channel: name.as_str(), count };
    state.broadcast(&Frame::message(&message), None);
    webhooks.emit(WebhookEvent::SubscriptionCount { channel: name.clone(), subscription_count: count });
}

impl Channel {
    fn new() -> Self {
        Self { state: RwLock::new(ChannelState::default()) }
    }
}
