//! What this node has recorded in the bucket under its own id — its subscriptions, sign-ins
//! and connection counts — and the gates that serialise its writes of one document.
//!
//! The record answers the questions the documents cannot, because they hold per-node counts
//! rather than sockets: is this socket already counted (a repeated join is a `duplicate`), and
//! with which user. Reconciliation replaces it with the core's snapshot and rewrites this
//! node's shares from it. Sync maps with short critical sections; nothing here awaits except
//! [`Gates::enter`], an async mutex by design.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};

use dashmap::DashMap;
use herald_protocol::{SocketId, UserId};
use parking_lot::Mutex;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

use super::doc::Share;
use crate::adapter::{OwnedMembership, OwnedSignIn};

/// Gates: documents hashing to one gate are written by this node one at a time.
const GATES: usize = 256;

type ChannelKey = (String, String);
type UserKey = (String, UserId);

#[derive(Debug, Default)]
pub(crate) struct Local {
    subscriptions: DashMap<ChannelKey, HashMap<SocketId, Option<UserId>>>,
    sign_ins: DashMap<UserKey, HashSet<SocketId>>,
    connections: Mutex<HashMap<String, u64>>,
}

impl Local {
    /// Records a subscription; false when the socket was recorded already.
    pub fn add_subscription(&self, app: &str, channel: &str, socket: SocketId, user: Option<&UserId>) -> bool {
        let mut sockets = self.subscriptions.entry((app.to_owned(), channel.to_owned())).or_default();
        if sockets.contains_key(&socket) {
            return false;
        }
        sockets.insert(socket, user.cloned());
        true
    }

    /// Forgets a subscription; the user it was recorded with, `None` when it was not recorded.
    pub fn remove_subscription(&self, app: &str, channel: &str, socket: SocketId) -> Option<Option<UserId>> {
        let key = (app.to_owned(), channel.to_owned());
        let user = self.subscriptions.get_mut(&key)?.remove(&socket)?;
        self.subscriptions.remove_if(&key, |_, sockets| sockets.is_empty());
        Some(user)
    }

    /// Replaces every subscription with `memberships` (reconciliation).
    pub fn replace_subscriptions(&self, memberships: &[OwnedMembership]) {
        self.subscriptions.clear();
        for m in memberships {
            self.add_subscription(&m.app, &m.channel, m.socket, m.user.as_ref());
        }
    }

    /// This node's share of a channel as recorded (`None`: no socket).
    pub fn share(&self, app: &str, channel: &str) -> Option<Share> {
        let sockets = self.subscriptions.get(&(app.to_owned(), channel.to_owned()))?;
        let mut users = BTreeMap::new();
        for user in sockets.values().flatten() {
            *users.entry(user.as_str().to_owned()).or_insert(0) += 1;
        }
        Some(Share { sockets: sockets.len() as u64, users })
    }

    /// The channels with a recorded subscription.
    pub fn channels(&self) -> Vec<ChannelKey> {
        self.subscriptions.iter().map(|e| e.key().clone()).collect()
    }

    /// Records a signed-in socket; false when it was recorded already.
    pub fn add_sign_in(&self, app: &str, user: &UserId, socket: SocketId) -> bool {
        self.sign_ins.entry((app.to_owned(), user.clone())).or_default().insert(socket)
    }

    /// Forgets a signed-in socket; false when it was not recorded.
    pub fn remove_sign_in(&self, app: &str, user: &UserId, socket: SocketId) -> bool {
        let key = (app.to_owned(), user.clone());
        let removed = self.sign_ins.get_mut(&key).is_some_and(|mut sockets| sockets.remove(&socket));
        self.sign_ins.remove_if(&key, |_, sockets| sockets.is_empty());
        removed
    }

    /// Replaces every sign-in with `sign_ins` (reconciliation).
    pub fn replace_sign_ins(&self, sign_ins: &[OwnedSignIn]) {
        self.sign_ins.clear();
        for s in sign_ins {
            self.add_sign_in(&s.app, &s.user, s.socket);
        }
    }

    /// This node's signed-in sockets of `user`.
    pub fn sign_in_count(&self, app: &str, user: &UserId) -> u64 {
        self.sign_ins.get(&(app.to_owned(), user.clone())).map_or(0, |s| s.len() as u64)
    }

    pub fn signed_in_users(&self) -> Vec<UserKey> {
        self.sign_ins.iter().map(|e| e.key().clone()).collect()
    }

    /// Counts a connection of `app` here before the cluster is asked.
    pub fn reserve_connection(&self, app: &str) {
        *self.connections.lock().entry(app.to_owned()).or_insert(0) += 1;
    }

    pub fn release_connection(&self, app: &str) {
        if let Some(n) = self.connections.lock().get_mut(app) {
            *n = n.saturating_sub(1);
        }
    }

    pub fn connections(&self, app: &str) -> u64 {
        self.connections.lock().get(app).copied().unwrap_or(0)
    }

    /// Every app with a local count, and the count.
    pub fn connection_counts(&self) -> Vec<(String, u64)> {
        self.connections.lock().iter().map(|(a, n)| (a.clone(), *n)).collect()
    }
}

/// A fixed set of async mutexes: writes by this node of one document (a channel's, a user's)
/// pass its gate one at a time, so a join racing a reconciliation of the same channel cannot
/// count a socket twice. Bounded; unrelated documents share a gate only by hash.
#[derive(Debug)]
pub(crate) struct Gates(Box<[AsyncMutex<()>]>);

impl Default for Gates {
    fn default() -> Self {
        Self((0..GATES).map(|_| AsyncMutex::new(())).collect())
    }
}

impl Gates {
    pub async fn enter(&self, a: &str, b: &str) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        (a, b).hash(&mut hasher);
        self.0[hasher.finish() as usize % self.0.len()].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_is_recorded_once_and_its_share_counts_users() {
        let local = Local::default();
        let (u1, u2) = (UserId::new("1"), UserId::new("2"));
        assert!(local.add_subscription("a", "c", SocketId::new(1, 1), Some(&u1)));
        assert!(!local.add_subscription("a", "c", SocketId::new(1, 1), Some(&u1)));
        assert!(local.add_subscription("a", "c", SocketId::new(1, 2), Some(&u1)));
        assert!(local.add_subscription("a", "c", SocketId::new(1, 3), Some(&u2)));
        let share = local.share("a", "c").unwrap();
        assert_eq!(share.sockets, 3);
        assert_eq!(share.users, BTreeMap::from([("1".to_owned(), 2), ("2".to_owned(), 1)]));
        assert_eq!(local.remove_subscription("a", "c", SocketId::new(1, 3)), Some(Some(u2)));
        assert_eq!(local.remove_subscription("a", "c", SocketId::new(1, 3)), None);
        local.remove_subscription("a", "c", SocketId::new(1, 1));
        local.remove_subscription("a", "c", SocketId::new(1, 2));
        assert!(local.share("a", "c").is_none() && local.channels().is_empty());
    }

    #[test]
    fn sign_ins_and_connections_are_counted_per_app() {
        let local = Local::default();
        let u = UserId::new("u");
        assert!(local.add_sign_in("a", &u, SocketId::new(1, 1)));
        assert!(!local.add_sign_in("a", &u, SocketId::new(1, 1)));
        assert_eq!(local.sign_in_count("a", &u), 1);
        assert!(local.remove_sign_in("a", &u, SocketId::new(1, 1)));
        assert!(!local.remove_sign_in("a", &u, SocketId::new(1, 1)));
        assert!(local.signed_in_users().is_empty());
        local.reserve_connection("a");
        local.reserve_connection("a");
        local.release_connection("a");
        assert_eq!(local.connections("a"), 1);
    }
}
