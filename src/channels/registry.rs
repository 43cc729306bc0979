//! The channel registry of one app on this node: subscribe, unsubscribe, fan out, and the
//! read queries of the HTTP API.
//!
//! Each channel has its own lock. Membership changes and everything they cause (member
//! events, `subscription_succeeded`, cache replay, counts, webhooks) happen under that lock,
//! so every local subscriber and every webhook sees them in the same order as the events
//! published around them. An emptied channel is marked removed before it leaves the map, and
//! a subscriber that finds a removed channel retries, so no subscription can land in a channel
//! the map has forgotten. Lock order: a channel, then the cache map; never the reverse.
//!
//! On a single node the registry decides every transition itself. In a cluster the adapter
//! decides them (docs/cluster.md) and hands the decision in ([`ClusterJoin`], a
//! [`LeaveOutcome`]); the registry then applies it the same way, and forwards what other
//! nodes must see through its [`RemotePublish`].

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use herald_protocol::{ChannelName, PresenceMember, ServerMessage, SocketId, UserId};
use std::sync::atomic::AtomicUsize;

use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use super::cache::CacheSlot;
use super::counts;
use super::state::ChannelState;
use crate::adapter::{JoinOutcome, LeaveOutcome};
use crate::frame::Frame;
use crate::history::{ChannelLog, HistoryRules};
use crate::outbox::Outbox;
use crate::webhooks::{AppWebhooks, LeaveCheck, WebhookEvent};

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
    /// Channels that keep their recent events.
    pub history: HistoryRules,
}

/// Where frames for the other nodes go: the cluster adapter, absent on a single node.
pub trait RemotePublish: Send + Sync + std::fmt::Debug {
    fn publish(&self, channel: &ChannelName, frame: &Frame, except: Option<SocketId>);

    /// For a vacancy (`user` `None`) or a member's removal that the cluster decided and holds
    /// for the leave delay: the check that settles it when the delay is over. `None` when the
    /// cluster holds no leaves (no leave delay).
    fn leave_check(&self, channel: &ChannelName, user: Option<&UserId>) -> Option<LeaveCheck>;
}

/// A join as the cluster decided it, before the registry is touched.
#[derive(Debug, Clone, Default)]
pub struct ClusterJoin {
    pub outcome: JoinOutcome,
    /// The cluster-wide roster JSON for a presence `subscription_succeeded`.
    pub roster_json: Option<String>,
    /// For cache channels: the cluster's cached event (`None`: nothing cached).
    pub cached: Option<Frame>,
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
    /// This node had no subscriber of the channel before.
    pub locally_occupied: bool,
    pub subscription_count: usize,
}

/// What an unsubscribe changed on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// This node has no subscriber of the channel any more.
    pub locally_vacated: bool,
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

/// Every channel of one app on this node.
#[derive(Debug)]
pub struct ChannelRegistry {
    pub(super) channels: DashMap<ChannelName, Arc<Channel>>,
    pub(super) caches: DashMap<ChannelName, CacheSlot>,
    /// History channels' events, on a single node (in a cluster they live in Redis).
    pub(super) logs: DashMap<ChannelName, Arc<Mutex<ChannelLog>>>,
    pub(super) logs_created: AtomicUsize,
    pub(super) policy: ChannelPolicy,
    webhooks: AppWebhooks,
    pub(super) remote: Option<Arc<dyn RemotePublish>>,
}

impl ChannelRegistry {
    pub fn new(policy: ChannelPolicy, webhooks: AppWebhooks, remote: Option<Arc<dyn RemotePublish>>) -> Self {
        let (logs, logs_created) = (DashMap::new(), AtomicUsize::new(0));
        Self { channels: DashMap::new(), caches: DashMap::new(), logs, logs_created, policy, webhooks, remote }
    }

    pub fn policy(&self) -> &ChannelPolicy {
        &self.policy
    }

    /// Subscribes `subscriber` to `name` and queues, in order: `member_added` to the other
    /// members (a user's first socket only), `subscription_succeeded`, the cached event or
    /// `pusher:cache_miss` on cache channels, and the new subscription count.
    pub fn subscribe(
        &self,
        name: &ChannelName,
        subscriber: &Subscriber,
        member: Option<&PresenceMember>,
        cluster: Option<&ClusterJoin>,
    ) -> Result<Joined, JoinError> {
        self.subscribe_recovering(name, subscriber, member, cluster, false)
    }

    /// [`subscribe`](Self::subscribe); with `recovering` on a history channel, the socket's live
    /// history events are held back until [`finish_recovery`](Self::finish_recovery).
    pub fn subscribe_recovering(
        &self,
        name: &ChannelName,
        subscriber: &Subscriber,
        member: Option<&PresenceMember>,
        cluster: Option<&ClusterJoin>,
        recovering: bool,
    ) -> Result<Joined, JoinError> {
        let keeps_history = self.policy.history.for_channel(name.as_str()).is_some();
        loop {
            let channel = self.channels.entry(name.clone()).or_insert_with(|| Arc::new(Channel::new())).clone();
            let mut state = channel.state.write();
            if state.removed {
                continue;
            }
            let already_subscribed = state.contains(subscriber.socket_id);
            let locally_occupied = state.is_empty();
            if keeps_history {
                state.track_history();
            }
            if !already_subscribed {
                if cluster.is_none() {
                    self.check_room(&state, member)?;
                }
                self.add(&mut state, name, subscriber, member, cluster.map(|c| c.outcome), recovering);
            }
            let succeeded = match cluster.and_then(|c| c.roster_json.as_deref()) {
                Some(roster) => {
                    Frame::message(&ServerMessage::SubscriptionSucceeded { channel: name.as_str(), data_json: roster })
                }
                None => state.succeeded_frame(name),
            };
            let _ = subscriber.outbox.push(succeeded);
            if name.is_cache() {
                self.replay_cache(name, &subscriber.outbox, cluster);
            }
            let count = cluster.map_or(state.len(), |c| c.outcome.subscription_count as usize);
            if !already_subscribed {
                counts::changed(self, &channel, &mut state, name, count);
            }
            return Ok(Joined { already_subscribed, locally_occupied, subscription_count: count });
        }
    }

    fn check_room(&self, state: &ChannelState, member: Option<&PresenceMember>) -> Result<(), JoinError> {
        let max = self.policy.max_presence_members;
        match member {
            Some(m) if !state.roster.contains(&m.user_id) && state.roster.len() >= max => {
                Err(JoinError::PresenceFull { max })
            }
            _ => Ok(()),
        }
    }

    fn add(
        &self,
        state: &mut ChannelState,
        name: &ChannelName,
        subscriber: &Subscriber,
        member: Option<&PresenceMember>,
        cluster: Option<JoinOutcome>,
        recovering: bool,
    ) {
        let occupied = cluster.map_or(state.is_empty(), |o| o.occupied && !o.occupancy_resumed);
        if occupied {
            self.webhooks.emit(WebhookEvent::ChannelOccupied { channel: name.clone() });
        }
        let first_here = state.insert(subscriber, member, recovering);
        let Some(m) = member else { return };
        if cluster.map_or(first_here, |o| o.member_added) {
            let user_info = state.roster.user_info(&m.user_id).or(m.user_info.as_deref());
            let added = ServerMessage::MemberAdded { channel: name.as_str(), user_id: m.user_id.as_str(), user_info };
            let frame = Frame::message(&added);
            state.broadcast(&frame, Some(subscriber.socket_id));
            self.forward(name, &frame, Some(subscriber.socket_id));
            if !cluster.is_some_and(|o| o.membership_resumed) {
                self.webhooks.emit(WebhookEvent::MemberAdded { channel: name.clone(), user_id: m.user_id.clone() });
            }
        }
    }

    /// Removes `socket_id` from `name`, queueing `member_removed` to the rest when it was its
    /// user's last socket there (here, or in the cluster when `cluster` is given). `None`
    /// when it was not subscribed.
    pub fn unsubscribe(&self, name: &ChannelName, socket_id: SocketId, cluster: Option<&LeaveOutcome>) -> Option<Left> {
        let channel = self.channels.get(name).map(|c| c.clone())?;
        let mut state = channel.state.write();
        let removed = state.remove(socket_id)?;
        let member_removed = match cluster {
            None => removed.user.filter(|_| removed.last_here),
            Some(outcome) => removed.user.filter(|_| outcome.member_removed),
        };
        self.leave_effects(Some(&mut state), name, member_removed, cluster);
        let locally_vacated = state.is_empty();
        if locally_vacated {
            state.removed = true;
            drop(state);
            self.channels.remove_if(name, |_, c| Arc::ptr_eq(c, &channel));
        } else {
            let count = cluster.map_or(state.len(), |o| o.subscription_count as usize);
            counts::changed(self, &channel, &mut state, name, count);
        }
        Some(Left { locally_vacated })
    }

    /// Member removal, vacancy and their webhooks for a leave, local or reaped.
    fn leave_effects(
        &self,
        state: Option<&mut ChannelState>,
        name: &ChannelName,
        member_removed: Option<UserId>,
        cluster: Option<&LeaveOutcome>,
    ) {
        if let Some(user_id) = member_removed {
            let frame =
                Frame::message(&ServerMessage::MemberRemoved { channel: name.as_str(), user_id: user_id.as_str() });
            if let Some(state) = &state {
                state.broadcast(&frame, None);
            }
            self.forward(name, &frame, None);
            let check = self.leave_check(cluster, name, Some(&user_id));
            self.emit_leave(WebhookEvent::MemberRemoved { channel: name.clone(), user_id }, check);
        }
        let vacated = match cluster {
            None => state.is_some_and(|s| s.is_empty()),
            Some(outcome) => outcome.vacated,
        };
        if vacated {
            let check = self.leave_check(cluster, name, None);
            self.emit_leave(WebhookEvent::ChannelVacated { channel: name.clone() }, check);
        }
    }

    /// The cluster's check for a leave it decided (`cluster` given) and holds.
    fn leave_check(
        &self,
        cluster: Option<&LeaveOutcome>,
        name: &ChannelName,
        user: Option<&UserId>,
    ) -> Option<LeaveCheck> {
        cluster.and(self.remote.as_ref()).and_then(|remote| remote.leave_check(name, user))
    }

    fn emit_leave(&self, event: WebhookEvent, check: Option<LeaveCheck>) {
        match check {
            Some(check) => self.webhooks.emit_held(event, check),
            None => self.webhooks.emit(event),
        }
    }

    /// Applies a leave that happened on a dead node, found by this node's reaper.
    pub fn apply_reaped(&self, name: &ChannelName, user: Option<UserId>, outcome: &LeaveOutcome) {
        let member_removed = user.filter(|_| outcome.member_removed);
        let channel = self.channels.get(name).map(|c| c.clone());
        let mut state = channel.as_ref().map(|c| c.state.write());
        self.leave_effects(state.as_deref_mut(), name, member_removed, Some(outcome));
        if !outcome.vacated {
            counts::announce(self, state.as_deref(), name, outcome.subscription_count as usize);
        }
    }

    pub(super) fn webhooks(&self) -> &AppWebhooks {
        &self.webhooks
    }

    pub(super) fn remote_handle(&self) -> Option<Arc<dyn RemotePublish>> {
        self.remote.clone()
    }

    fn replay_cache(&self, name: &ChannelName, outbox: &Outbox, cluster: Option<&ClusterJoin>) {
        let now = Instant::now();
        let mut slot = self.caches.entry(name.clone()).or_default();
        let cached = match cluster {
            Some(c) => c.cached.clone(),
            None => slot.current(now).map(|e| e.frame.clone()),
        };
        if let Some(frame) = cached {
            let _ = outbox.push(frame);
            return;
        }
        let _ = outbox.push(Frame::message(&ServerMessage::CacheMiss { channel: name.as_str() }));
        if slot.take_miss_webhook(now) {
            self.webhooks.emit(WebhookEvent::CacheMiss { channel: name.clone() });
        }
    }

    /// Applies a join that the cluster re-made for a local socket after an outage: the
    /// transitions it reports (occupied, member_added) are announced as for a fresh join.
    pub fn apply_rejoined(&self, name: &ChannelName, user: Option<UserId>, outcome: &JoinOutcome) {
        if outcome.occupied && !outcome.occupancy_resumed {
            self.webhooks.emit(WebhookEvent::ChannelOccupied { channel: name.clone() });
        }
        let Some(user_id) = user.filter(|_| outcome.member_added) else { return };
        let channel = self.channels.get(name).map(|c| c.clone());
        let state = channel.as_ref().map(|c| c.state.read());
        let user_info = state.as_ref().and_then(|s| s.roster.user_info(&user_id));
        let added = ServerMessage::MemberAdded { channel: name.as_str(), user_id: user_id.as_str(), user_info };
        let frame = Frame::message(&added);
        if let Some(state) = &state {
            state.broadcast(&frame, None);
        }
        self.forward(name, &frame, None);
        if !outcome.membership_resumed {
            self.webhooks.emit(WebhookEvent::MemberAdded { channel: name.clone(), user_id });
        }
    }

    /// Number of channels with at least one local subscriber.
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
