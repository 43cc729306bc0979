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

impl UserRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `socket_id` is signed in as `user` and watches `watchlist`. Tells the
    /// socket the current status of everyone it watches, and the user's watchers that the
    /// user came online when this is its first socket.
    pub fn sign_in(&self, user: &UserId, socket_id: SocketId, outbox: &Arc<Outbox>, watchlist: &[UserId]) {
        let first = {
            let mut sockets = self.sockets.entry(user.clone()).or_default();
            let first = sockets.is_empty();
            sockets.insert(socket_id, outbox.clone());
            first
        };
        for watched in watchlist {
            self.watchers.entry(watched.clone()).or_default().insert(socket_id, outbox.clone());
        }
        if !watchlist.is_empty() {
            let (online, offline): (Vec<&UserId>, Vec<&UserId>) = watchlist.iter().partition(|w| self.is_online(w));
            let _ = outbox.push(watchlist_frame(&[("online", &online), ("offline", &offline)]));
        }
        if first {
            self.tell_watchers(user, "online");
        }
    }

    /// Forgets `socket_id`; tells the user's watchers it went offline when this was its last socket.
    pub fn sign_out(&self, user: &UserId, socket_id: SocketId, watchlist: &[UserId]) {
        for watched in watchlist {
            self.watchers.remove_if_mut(watched, |_, w| {
                w.remove(&socket_id);
                w.is_empty()
            });
        }
        let mut last = false;
        self.sockets.remove_if_mut(user, |_, sockets| {
            sockets.remove(&socket_id);
            last = sockets.is_empty();
            last
        });
        if last {
            self.tell_watchers(user, "offline");
        }
    }

    /// Whether `user` has at least one signed-in socket.
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

    fn tell_watchers(&self, user: &UserId, status: &str) {
        let outboxes: Vec<Arc<Outbox>> = match self.watchers.get(user) {
            Some(w) => w.values().cloned().collect(),
            None => return,
        };
        let frame = watchlist_frame(&[(status, &[user])]);
        for outbox in outboxes {
            let _ = outbox.push(frame.clone());
        }
    }
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
    fn watchers_hear_first_online_and_last_offline() {
        let reg = UserRegistry::new();
        let (watcher, a1, a2) = (outbox(), outbox(), outbox());
        let (w, a) = (UserId::new("w"), UserId::new("a"));
        reg.sign_in(&w, SocketId::new(1, 1), &watcher, std::slice::from_ref(&a));
        assert!(texts(&watcher)[0].contains(r#"\"name\":\"offline\",\"user_ids\":[\"a\"]"#));
        reg.sign_in(&a, SocketId::new(1, 2), &a1, &[]);
        reg.sign_in(&a, SocketId::new(1, 3), &a2, &[]);
        let seen = texts(&watcher);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].contains("online"));
        reg.sign_out(&a, SocketId::new(1, 2), &[]);
        assert!(texts(&watcher).is_empty());
        reg.sign_out(&a, SocketId::new(1, 3), &[]);
        assert!(texts(&watcher)[0].contains("offline"));
        assert!(!reg.is_online(&a));
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
