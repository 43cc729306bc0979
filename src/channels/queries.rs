//! The registry's read side: counts, lists and users for the HTTP API, cache lookups, and the
//! snapshot of local subscriptions the cluster adapter reconciles from.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{ChannelKind, ChannelName, SocketId, UserId};
use tokio::time::Instant;

use super::registry::{ChannelRegistry, ChannelSummary};

impl ChannelRegistry {
    /// The cached event's data and its remaining time to live, on this node.
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

    /// Counts for `name` on this node, or `None` when nobody here is subscribed.
    pub fn summary(&self, name: &str) -> Option<ChannelSummary> {
        let channel = self.channels.get(name)?;
        let name = channel.key().clone();
        let state = channel.state.read();
        (!state.is_empty()).then(|| state.summary(name))
    }

    /// Every locally occupied channel whose name starts with `prefix`, sorted by name.
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

    /// The distinct users of a presence channel on this node, sorted.
    pub fn users(&self, name: &str) -> Vec<UserId> {
        let Some(channel) = self.channels.get(name).map(|c| c.clone()) else { return Vec::new() };
        let state = channel.state.read();
        let mut ids: Vec<UserId> = state.roster.user_ids().cloned().collect();
        ids.sort();
        ids
    }

    /// Every local subscription: channel, socket, presence user and its `user_info`.
    #[allow(clippy::type_complexity)]
    pub fn memberships(&self) -> Vec<(ChannelName, SocketId, Option<UserId>, Option<String>)> {
        let mut out = Vec::new();
        for channel in self.channels.iter() {
            let state = channel.state.read();
            for (socket, user, info) in state.members() {
                out.push((channel.key().clone(), socket, user.cloned(), info.map(str::to_string)));
            }
        }
        out
    }

    /// Distinct users summed over presence channels.
    pub fn presence_member_count(&self) -> usize {
        self.channels
            .iter()
            .filter(|c| c.key().kind() == ChannelKind::Presence)
            .map(|c| c.state.read().roster.len())
            .sum()
    }
}
