//! An app's channel and user operations as the connection and the HTTP API see them, on one
//! node or in a cluster: here the cluster adapter's decisions meet the local registries.
//!
//! Each operation asks the cluster first (when there is one and it answers), then applies
//! the decision locally. When the cluster is unavailable the node decides alone (docs/cluster.md:
//! the adapter reconciles once Redis is back).

use std::sync::Arc;

use herald_protocol::user::SignedInUser;
use herald_protocol::{ChannelName, PresenceMember, SocketId, UserId};

use super::App;
use crate::channels::{ChannelSummary, JoinError, Joined, Subscriber};
use crate::frame::Frame;
use crate::outbox::Outbox;
use crate::users::{status_change_frame, status_frame};

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

    /// Records a sign-in: answers the socket's watchlist with the current status of each
    /// watched user, and tells the user's watchers it came online when this is its first
    /// signed-in socket.
    pub async fn sign_in(&self, user: &SignedInUser, socket_id: SocketId, outbox: &Arc<Outbox>) {
        let signed = self.users.sign_in(&user.id, socket_id, outbox, &user.watchlist);
        if !user.watchlist.is_empty() {
            let (online, offline): (Vec<&UserId>, Vec<&UserId>) =
                user.watchlist.iter().partition(|w| self.users.is_online(w));
            let _ = outbox.push(status_frame(&online, &offline));
        }
        if signed.first_here {
            self.users.notify_watchers(user.id.as_str(), &status_change_frame(&user.id, true));
        }
    }

    /// Forgets a sign-in; tells the user's watchers it went offline when that was its last
    /// signed-in socket.
    pub async fn sign_out(&self, user: &SignedInUser, socket_id: SocketId) {
        let signed = self.users.sign_out(&user.id, socket_id, &user.watchlist);
        if signed.last_here {
            self.users.notify_watchers(user.id.as_str(), &status_change_frame(&user.id, false));
        }
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
