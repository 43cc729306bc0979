//! A presence channel's roster: distinct users, each with the number of its sockets there.

use std::collections::HashMap;
use std::sync::Arc;

use herald_protocol::presence::roster_json;
use herald_protocol::UserId;

#[derive(Debug)]
struct Entry {
    /// The `user_info` of the user's first socket, kept until the user fully leaves.
    user_info: Option<Arc<str>>,
    sockets: u32,
}

/// Distinct users of one presence channel.
#[derive(Debug, Default)]
pub struct Roster {
    users: HashMap<UserId, Entry>,
}

impl Roster {
    /// Number of distinct users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn contains(&self, user_id: &UserId) -> bool {
        self.users.contains_key(user_id)
    }

    /// Counts one more socket for `user_id`; true when it is the user's first.
    pub fn add(&mut self, user_id: &UserId, user_info: Option<Arc<str>>) -> bool {
        let entry = self.users.entry(user_id.clone()).or_insert(Entry { user_info, sockets: 0 });
        entry.sockets += 1;
        entry.sockets == 1
    }

    /// Counts one socket fewer for `user_id`; true when it was the user's last.
    pub fn remove(&mut self, user_id: &UserId) -> bool {
        let Some(entry) = self.users.get_mut(user_id) else { return false };
        entry.sockets -= 1;
        if entry.sockets == 0 {
            self.users.remove(user_id);
            true
        } else {
            false
        }
    }

    /// The `user_info` recorded for `user_id`.
    pub fn user_info(&self, user_id: &UserId) -> Option<&str> {
        self.users.get(user_id).and_then(|e| e.user_info.as_deref())
    }

    /// The `subscription_succeeded` data: ids, hash and count.
    pub fn to_json(&self) -> String {
        roster_json(self.users.iter().map(|(id, e)| (id.as_str(), e.user_info.as_deref())))
    }

    /// The distinct user ids.
    pub fn user_ids(&self) -> impl Iterator<Item = &UserId> {
        self.users.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_is_added_on_the_first_socket_and_removed_with_the_last() {
        let mut r = Roster::default();
        let u = UserId::new("1");
        assert!(r.add(&u, None));
        assert!(!r.add(&u, None));
        assert_eq!(r.len(), 1);
        assert!(!r.remove(&u));
        assert!(r.remove(&u));
        assert!(r.is_empty());
        assert!(!r.remove(&u));
    }

    #[test]
    fn the_first_user_info_is_kept() {
        let mut r = Roster::default();
        let u = UserId::new("1");
        r.add(&u, Some(Arc::from(r#"{"n":1}"#)));
        r.add(&u, Some(Arc::from(r#"{"n":2}"#)));
        assert_eq!(r.user_info(&u), Some(r#"{"n":1}"#));
    }
}
