//! Signed-in users of one app: which sockets each user holds, who watches whom, and the
//! three things that key on a user: server-to-user events, `terminate_connections` and
//! watchlist online/offline events (PROTOCOL.md §7).
//!
//! Like the channel registry, this holds outbox handles and encoded frames, never sockets.
//! No two map locks are ever held at once: a transition is decided under the user's entry
//! lock, and the watchers are told after it is released.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;
use herald_protocol::{ErrorCode, ServerMessage, SocketId, UserId};

use crate::frame::Frame;
use crate::outbox::Outbox;

/// Every signed-in user of an app, and every watcher.
#[derive(Debug, Default)]
pub struct UserRegistry {
    sockets: DashMap<UserId, HashMap<SocketId, Arc<Outbox>>>,
    watchers: DashMap<UserId, HashMap<SocketId, Arc<Outbox>>>,
}

/// The close sent by `terminate_connections`.
pub const TERMINATED_MESSAGE: &str = "You got disconnected by the app";

/// What a sign-in changed on this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignedIn {
    /// The user had no signed-in socket on this node before.
    pub first_here: bool,
    /// Watched ids that had no watcher on this node before.
    pub newly_watched: Vec<UserId>,
}

/// What a sign-out changed on this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignedOut {
    /// The user has no signed-in socket on this node any more.
    pub last_here: bool,
    /// Watched ids that have no watcher on this node any more.
    pub unwatched: Vec<UserId>,
}

impl UserRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `socket_id` is signed in as `user` and watches `watchlist`. Tells nobody:
    /// whether the user came online is the caller's decision (cluster-wide in a cluster).
    pub fn sign_in(&self, user: &UserId, socket_id: SocketId, outbox: &Arc<Outbox>, watchlist: &[UserId]) -> SignedIn {
        let first_here = {
            let mut sockets = self.sockets.entry(user.clone()).or_default();
            let first = sockets.is_empty();
            sockets.insert(socket_id, outbox.clone());
            first
        };
        let mut newly_watched = Vec::new();
        for watched in watchlist {
            let mut watchers = self.watchers.entry(watched.clone()).or_default();
            if watchers.is_empty() {
                newly_watched.push(watched.clone());
            }
            watchers.insert(socket_id, outbox.clone());
        }
        SignedIn { first_here, newly_watched }
    }

    /// Forgets `socket_id`'s sign-in and watchlist.
    pub fn sign_out(&self, user: &UserId, socket_id: SocketId, watchlist: &[UserId]) -> SignedOut {
        let mut unwatched = Vec::new();
        for watched in watchlist {
            self.watchers.remove_if_mut(watched, |_, w| {
                w.remove(&socket_id);
                if w.is_empty() {
                    unwatched.push(watched.clone());
                }
                w.is_empty()
            });
        }
        let mut last_here = false;
        self.sockets.remove_if_mut(user, |_, sockets| {
            sockets.remove(&socket_id);
            last_here = sockets.is_empty();
            last_here
        });
        SignedOut { last_here, unwatched }
    }

    /// Whether `user` has at least one signed-in socket on this node.
    pub fn is_online(&self, user: &UserId) -> bool {
        self.sockets.get(user).is_some_and(|s| !s.is_empty())
    }

    /// Queues `frame` to every socket signed in as `user`; returns how many got it.
    pub fn send(&self, user: &str, frame: &Frame) -> usize {
        let Some(sockets) = self.sockets.get(user) else { return 0 };
        sockets.values().filter(|outbox| outbox.push(frame.clone()).is_ok()).count()
    }

    /// Closes every socket signed in as `user` with 4009; returns how many.
    pub fn terminate(&self, user: &str) -> usize {
        let Some(sockets) = self.sockets.get(user) else { return 0 };
        for outbox in sockets.values() {
            outbox.close(ErrorCode::Unauthorized.code(), TERMINATED_MESSAGE);
        }
        sockets.len()
    }

    /// Queues `frame` to every local socket watching `watched`.
    pub fn notify_watchers(&self, watched: &str, frame: &Frame) {
        let outboxes: Vec<Arc<Outbox>> = match self.watchers.get(watched) {
            Some(w) => w.values().cloned().collect(),
            None => return,
        };
        for outbox in outboxes {
            let _ = outbox.push(frame.clone());
        }
    }

    /// Every local sign-in, as `(user, socket)` pairs.
    pub fn sign_ins(&self) -> Vec<(UserId, SocketId)> {
        self.sockets.iter().flat_map(|e| e.value().keys().map(|s| (e.key().clone(), *s)).collect::<Vec<_>>()).collect()
    }
}

/// `watchlist_events` saying `user` went online or offline.
pub fn status_change_frame(user: &UserId, online: bool) -> Frame {
    watchlist_frame(&[(if online { "online" } else { "offline" }, &[user])])
}

/// `watchlist_events` with the current status of a watchlist.
pub fn status_frame(online: &[&UserId], offline: &[&UserId]) -> Frame {
    watchlist_frame(&[("online", online), ("offline", offline)])
}

/// `pusher_internal:watchlist_events` with one entry per non-empty group.
fn watchlist_frame(groups: &[(&str, &[&UserId])]) -> Frame {
    let events: Vec<serde_json::Value> = groups
        .iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(name, ids)| {
            let ids: Vec<&str> = ids.iter().map(|id| id.as_str()).collect();
            serde_json::json!({ "name": name, "user_ids": ids })
        })
        .collect();
    let events_json = serde_json::Value::Array(events).to_string();
    Frame::message(&ServerMessage::WatchlistEvents { events_json: &events_json })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Next;

    fn outbox() -> Arc<Outbox> {
        Arc::new(Outbox::new(1 << 20))
    }

    fn texts(o: &Outbox) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(Next::Write(frames)) = o.take(100) {
            out.extend(frames.iter().map(|f| String::from_utf8_lossy(&f.bytes()[2..]).into_owned()));
        }
        out
    }

    #[test]
    fn sign_ins_report_a_users_first_and_last_socket_and_new_watches() {
        let reg = UserRegistry::new();
        let (watcher, a1, a2) = (outbox(), outbox(), outbox());
        let (w, a) = (UserId::new("w"), UserId::new("a"));
        let signed = reg.sign_in(&w, SocketId::new(1, 1), &watcher, std::slice::from_ref(&a));
        assert_eq!(signed.newly_watched, vec![a.clone()]);
        assert!(reg.sign_in(&a, SocketId::new(1, 2), &a1, &[]).first_here);
        assert!(!reg.sign_in(&a, SocketId::new(1, 3), &a2, &[]).first_here);
        assert!(!reg.sign_out(&a, SocketId::new(1, 2), &[]).last_here);
        assert!(reg.sign_out(&a, SocketId::new(1, 3), &[]).last_here);
        assert!(!reg.is_online(&a));
        reg.notify_watchers("a", &status_change_frame(&a, false));
        assert!(texts(&watcher)[0].contains("offline"));
        assert_eq!(reg.sign_out(&w, SocketId::new(1, 1), std::slice::from_ref(&a)).unwatched, vec![a]);
    }

    #[test]
    fn terminate_closes_every_socket_of_the_user() {
        let reg = UserRegistry::new();
        let (a1, a2) = (outbox(), outbox());
        let a = UserId::new("a");
        reg.sign_in(&a, SocketId::new(1, 1), &a1, &[]);
        reg.sign_in(&a, SocketId::new(1, 2), &a2, &[]);
        assert_eq!(reg.terminate("a"), 2);
        assert!(a1.is_closing() && a2.is_closing());
        assert_eq!(reg.terminate("nobody"), 0);
    }
}
