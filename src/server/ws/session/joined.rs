//! The channels one session joined (see [`JoinedChannels`]).

use herald_protocol::{ChannelName, UserId};

/// The channels a socket joined, with the user id it holds in each presence channel: a short
/// list searched in order, grown one entry at a time. Most sockets join one or a few channels,
/// and a hash map's smallest table (four slots and their control bytes) is several entries
/// big (docs/architecture.md, "Memory per connection"). Bounded by
/// `max_subscriptions_per_connection`.
#[derive(Debug, Default)]
pub(super) struct JoinedChannels(Vec<(ChannelName, Option<UserId>)>);

impl JoinedChannels {
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub(super) fn get(&self, name: &str) -> Option<(&ChannelName, &Option<UserId>)> {
        self.0.iter().find(|(n, _)| n.as_str() == name).map(|(n, u)| (n, u))
    }

    /// Records `name` (replacing the user of an entry already there).
    pub(super) fn insert(&mut self, name: ChannelName, user: Option<UserId>) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = user,
            None => {
                self.0.reserve_exact(1);
                self.0.push((name, user));
            }
        }
    }

    pub(super) fn remove(&mut self, name: &str) -> Option<(ChannelName, Option<UserId>)> {
        let index = self.0.iter().position(|(n, _)| n.as_str() == name)?;
        Some(self.0.swap_remove(index))
    }
}

impl IntoIterator for JoinedChannels {
    type Item = (ChannelName, Option<UserId>);
    type IntoIter = std::vec::IntoIter<(ChannelName, Option<UserId>)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
