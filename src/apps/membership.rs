//! An app's channel and user operations as the connection and the HTTP API see them, on one
//! node or in a cluster: here the cluster adapter's decisions meet the local registries.
//!
//! Each operation asks the cluster first (when there is one and it answers), then applies
//! the decision locally. When the cluster is unavailable the node decides alone (docs/cluster.md:
//! the adapter reconciles once Redis is back).

use herald_protocol::{ChannelName, PresenceMember, SocketId, UserId};

use super::App;
use crate::channels::{ChannelSummary, JoinError, Joined, Subscriber};
use crate::frame::Frame;

impl App {
    /// Subscribes `subscriber`; see [`ChannelRegistry::subscribe`](crate::channels::ChannelRegistry::subscribe).
    pub async fn join(
        &self,
        name: &ChannelName,
        subscriber: &Subscriber,
        member: Option<&PresenceMember>,
    ) -> Result<Joined, JoinError> {
        self.channels.subscribe(name, subscriber, member, None)
    }

    /// Unsubscribes `socket_id` from `name`; nothing when it was not subscribed.
    pub async fn leave(&self, name: &ChannelName, socket_id: SocketId, _user: Option<&UserId>) {
        self.channels.unsubscribe(name, socket_id, None);
    }

    /// Publishes an event everywhere; `cache_data` for HTTP events on cache channels.
    pub fn publish(&self, name: &ChannelName, frame: &Frame, except: Option<SocketId>, cache_data: Option<&str>) {
        self.channels.publish(name, frame, except, cache_data);
    }

    /// Counts of one channel, cluster-wide; `None` when unoccupied.
    pub async fn channel_summary(&self, name: &str) -> Option<ChannelSummary> {
        self.channels.summary(name)
    }

    /// Occupied channels with `prefix`, cluster-wide, sorted by name.
    pub async fn channel_list(&self, prefix: &str) -> Vec<ChannelSummary> {
        self.channels.list(prefix)
    }

    /// Distinct users of a presence channel, cluster-wide, sorted.
    pub async fn channel_users(&self, name: &str) -> Vec<UserId> {
        self.channels.users(name)
    }

    /// Sends a server-to-user event to every socket signed in as `user`, cluster-wide.
    pub fn send_to_user(&self, user: &str, frame: &Frame) {
        self.users.send(user, frame);
    }

    /// Closes every socket signed in as `user`, cluster-wide.
    pub fn terminate_user(&self, user: &str) {
        self.users.terminate(user);
    }
}
