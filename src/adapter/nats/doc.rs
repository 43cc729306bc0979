//! The channel document: one channel's cluster-wide state as one KV value, and the pure
//! transitions on it. They play the part of the Redis adapter's Lua scripts: each runs on a
//! freshly read document and is written back with compare-and-set on its revision
//! (`store.rs`), so every transition (occupied, vacated, member added or removed, a held leave
//! taken back) is decided by exactly one write.
//!
//! The document holds one *share* per node: how many sockets the node has in the channel and,
//! on presence channels, how many per user. Its size grows with nodes and presence members
//! (at most `max_presence_members`), never with the subscribers of a public channel. A dead
//! node is removed by dropping its share; a node back from an outage rewrites its share.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::adapter::{ChannelCounts, JoinOutcome, LeaveOutcome};

/// One channel, cluster-wide (JSON in the bucket; docs/nats.md, "The channel document").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ChannelDoc {
    /// Node id (hex) → that node's subscriptions to the channel.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, Share>,
    /// User id → `user_info` JSON: the first socket's, kept until the user leaves.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub info: BTreeMap<String, String>,
    /// Leaves whose webhook waits out the leave delay: `c` (vacated), `u:<user>` (removed),
    /// each with the Unix time (ms) at which the record lapses.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, u64>,
}

/// One node's part of a channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Share {
    pub sockets: u64,
    /// Presence user → that user's sockets on the node.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub users: BTreeMap<String, u64>,
}

/// The clock and the leave hold every transition is applied with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    pub ms: u64,
    /// How long a vacancy or removal is recorded as held (0: not recorded).
    pub hold_ms: u64,
}

/// What replacing (or dropping) one node's share changed: reconciliation and reaping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rewrite {
    pub occupied: bool,
    pub occupancy_resumed: bool,
    pub vacated: bool,
    /// Users present now and not before, each with whether it took back a held removal.
    pub added: Vec<(String, bool)>,
    pub removed: Vec<String>,
    /// Sockets the node's share lost.
    pub sockets_removed: u64,
    pub counts: ChannelCounts,
}

#[cfg(test)]
impl Rewrite {
    pub fn changed(&self) -> bool {
        self.occupied || self.vacated || !self.added.is_empty() || !self.removed.is_empty() || self.sockets_removed > 0
    }
}

const VACANCY: &str = "c";

fn removal(user: &str) -> String {
    format!("u:{user}")
}

impl ChannelDoc {
    pub fn counts(&self) -> ChannelCounts {
        ChannelCounts {
            subscription_count: self.nodes.values().map(|s| s.sockets).sum(),
            user_count: self.users().len() as u64,
        }
    }

    fn users(&self) -> BTreeSet<&str> {
        self.nodes.values().flat_map(|s| s.users.keys().map(String::as_str)).collect()
    }

    fn has_user(&self, user: &str) -> bool {
        self.nodes.values().any(|s| s.users.get(user).is_some_and(|n| *n > 0))
    }

    /// Every user with its `user_info`, sorted by id.
    pub fn roster(&self) -> Vec<(String, Option<String>)> {
        self.users().into_iter().map(|u| (u.to_owned(), self.info.get(u).cloned())).collect()
    }

    /// Nothing to keep: no share and no held leave (the key can be deleted).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.held.is_empty()
    }

    /// Counts one more socket of `node` (of `user`, on presence channels).
    pub fn join(&mut self, node: &str, user: Option<&str>, user_info: Option<&str>, now: Now) -> JoinOutcome {
        self.drop_lapsed(now);
        let occupied = self.counts().subscription_count == 0;
        let member_added = user.is_some_and(|u| !self.has_user(u));
        let share = self.nodes.entry(node.to_owned()).or_default();
        share.sockets += 1;
        if let Some(user) = user {
            *share.users.entry(user.to_owned()).or_default() += 1;
        }
        let mut membership_resumed = false;
        if let (true, Some(user)) = (member_added, user) {
            if let Some(info) = user_info {
                self.info.insert(user.to_owned(), info.to_owned());
            }
            membership_resumed = self.take_held(&removal(user), now);
        }
        let occupancy_resumed = occupied && self.take_held(VACANCY, now);
        let counts = self.counts();
        JoinOutcome {
            duplicate: false,
            occupied,
            member_added,
            occupancy_resumed,
            membership_resumed,
            subscription_count: counts.subscription_count,
            user_count: counts.user_count,
        }
    }

    /// Counts one socket of `node` (of `user`) less; `not_found` when the node has none.
    pub fn leave(&mut self, node: &str, user: Option<&str>, now: Now) -> LeaveOutcome {
        self.drop_lapsed(now);
        let Some(share) = self.nodes.get_mut(node).filter(|s| s.sockets > 0) else {
            let counts = self.counts();
            return LeaveOutcome {
                not_found: true,
                subscription_count: counts.subscription_count,
                user_count: counts.user_count,
                ..LeaveOutcome::default()
            };
        };
        share.sockets -= 1;
        if let Some(user) = user {
            if let Some(n) = share.users.get_mut(user) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    share.users.remove(user);
                }
            }
        }
        if share.sockets == 0 {
            self.nodes.remove(node);
        }
        let member_removed = user.is_some_and(|u| !self.has_user(u));
        if let (true, Some(user)) = (member_removed, user) {
            self.info.remove(user);
            self.hold(removal(user), now);
        }
        let counts = self.counts();
        let vacated = counts.subscription_count == 0;
        if vacated {
            self.hold(VACANCY.to_owned(), now);
        }
        LeaveOutcome {
            not_found: false,
            vacated,
            member_removed,
            subscription_count: counts.subscription_count,
            user_count: counts.user_count,
        }
    }

    /// Replaces `node`'s share (`None` or no socket: drops it), with the transitions that makes.
    /// `user_info` gives the info of users the new share adds.
    pub fn rewrite(
        &mut self,
        node: &str,
        share: Option<Share>,
        user_info: &BTreeMap<String, String>,
        now: Now,
    ) -> Rewrite {
        self.drop_lapsed(now);
        let before_users: BTreeSet<String> = self.users().into_iter().map(str::to_owned).collect();
        let before_subs = self.counts().subscription_count;
        let old = self.nodes.remove(node).unwrap_or_default();
        let new_sockets = share.as_ref().map_or(0, |s| s.sockets);
        if let Some(share) = share.filter(|s| s.sockets > 0) {
            self.nodes.insert(node.to_owned(), share);
        }
        let after_users: BTreeSet<String> = self.users().into_iter().map(str::to_owned).collect();
        let counts = self.counts();
        let mut rewrite =
            Rewrite { sockets_removed: old.sockets.saturating_sub(new_sockets), counts, ..Rewrite::default() };
        for user in before_users.difference(&after_users) {
            self.info.remove(user);
            self.hold(removal(user), now);
            rewrite.removed.push(user.clone());
        }
        for user in after_users.difference(&before_users) {
            if let Some(info) = user_info.get(user) {
                self.info.entry(user.clone()).or_insert_with(|| info.clone());
            }
            rewrite.added.push((user.clone(), self.take_held(&removal(user), now)));
        }
        if before_subs == 0 && counts.subscription_count > 0 {
            rewrite.occupied = true;
            rewrite.occupancy_resumed = self.take_held(VACANCY, now);
        } else if before_subs > 0 && counts.subscription_count == 0 {
            rewrite.vacated = true;
            self.hold(VACANCY.to_owned(), now);
        }
        rewrite
    }

    /// At the end of the leave delay: takes the held vacancy (`user` `None`) or removal; true
    /// when it was still held (the leave stands), false when a join took it back.
    pub fn confirm(&mut self, user: Option<&str>, now: Now) -> bool {
        self.drop_lapsed(now);
        let field = user.map_or_else(|| VACANCY.to_owned(), removal);
        self.held.remove(&field).is_some()
    }

    fn take_held(&mut self, field: &str, now: Now) -> bool {
        self.held.remove(field).is_some_and(|lapses| lapses > now.ms)
    }

    fn hold(&mut self, field: String, now: Now) {
        if now.hold_ms > 0 {
            self.held.insert(field, now.ms + now.hold_ms);
        }
    }

    fn drop_lapsed(&mut self, now: Now) {
        self.held.retain(|_, lapses| *lapses > now.ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Now = Now { ms: 1_000, hold_ms: 0 };
    const HOLD: Now = Now { ms: 1_000, hold_ms: 500 };

    #[test]
    fn transitions_are_decided_by_the_cluster_wide_totals() {
        let mut doc = ChannelDoc::default();
        let first = doc.join("a", Some("u1"), Some("{\"n\":1}"), NOW);
        assert!(first.occupied && first.member_added && !first.occupancy_resumed);
        let second = doc.join("b", Some("u1"), Some("{\"n\":2}"), NOW);
        assert!(!second.occupied && !second.member_added);
        assert_eq!((second.subscription_count, second.user_count), (2, 1));
        assert_eq!(doc.roster(), vec![("u1".to_owned(), Some("{\"n\":1}".to_owned()))], "the first socket's info");
        let left = doc.leave("a", Some("u1"), NOW);
        assert!(!left.member_removed && !left.vacated);
        let last = doc.leave("b", Some("u1"), NOW);
        assert!(last.member_removed && last.vacated);
        assert!(doc.is_empty(), "{doc:?}");
        assert!(doc.leave("b", Some("u1"), NOW).not_found);
    }

    #[test]
    fn a_held_leave_is_taken_back_by_a_join_or_confirmed_once() {
        let mut doc = ChannelDoc::default();
        doc.join("a", Some("u1"), None, HOLD);
        doc.leave("a", Some("u1"), HOLD);
        assert!(!doc.is_empty(), "the leave is held");
        let back = doc.join("b", Some("u1"), None, HOLD);
        assert!(back.occupied && back.occupancy_resumed && back.member_added && back.membership_resumed);
        doc.leave("b", Some("u1"), HOLD);
        assert!(doc.confirm(None, HOLD));
        assert!(!doc.confirm(None, HOLD), "confirmed once");
        assert!(doc.confirm(Some("u1"), HOLD));
        assert!(doc.is_empty());
    }

    #[test]
    fn a_lapsed_hold_is_neither_taken_back_nor_confirmed() {
        let mut doc = ChannelDoc::default();
        doc.join("a", None, None, HOLD);
        doc.leave("a", None, HOLD);
        let later = Now { ms: 2_000, hold_ms: 500 };
        assert!(!doc.join("a", None, None, later).occupancy_resumed);
        doc.leave("a", None, HOLD);
        assert!(!doc.confirm(None, later));
        assert!(doc.is_empty());
    }

    #[test]
    fn dropping_a_share_reports_every_transition_it_makes() {
        let mut doc = ChannelDoc::default();
        doc.join("dead", Some("u1"), None, NOW);
        doc.join("dead", Some("u2"), None, NOW);
        doc.join("live", Some("u2"), None, NOW);
        let reaped = doc.rewrite("dead", None, &BTreeMap::new(), NOW);
        assert_eq!(reaped.removed, vec!["u1".to_owned()]);
        assert_eq!((reaped.sockets_removed, reaped.vacated), (2, false));
        assert_eq!(reaped.counts, ChannelCounts { subscription_count: 1, user_count: 1 });
        let last = doc.rewrite("live", None, &BTreeMap::new(), NOW);
        assert!(last.vacated && last.removed == vec!["u2".to_owned()]);
        assert!(!doc.rewrite("gone", None, &BTreeMap::new(), NOW).changed());
    }

    #[test]
    fn rewriting_a_share_adds_what_was_lost() {
        let mut doc = ChannelDoc::default();
        let share = Share { sockets: 2, users: BTreeMap::from([("u1".to_owned(), 2)]) };
        let info = BTreeMap::from([("u1".to_owned(), "{}".to_owned())]);
        let back = doc.rewrite("a", Some(share.clone()), &info, NOW);
        assert!(back.occupied && back.added == vec![("u1".to_owned(), false)]);
        assert_eq!(doc.roster(), vec![("u1".to_owned(), Some("{}".to_owned()))]);
        assert!(!doc.rewrite("a", Some(share), &info, NOW).changed(), "idempotent");
    }

    #[test]
    fn the_document_round_trips_as_json() {
        let mut doc = ChannelDoc::default();
        doc.join("a", Some("u1"), Some("{\"x\":1}"), HOLD);
        doc.join("b", None, None, HOLD);
        let json = serde_json::to_vec(&doc).unwrap();
        assert_eq!(serde_json::from_slice::<ChannelDoc>(&json).unwrap(), doc);
        let text = String::from_utf8(json).unwrap();
        assert!(text.contains(r#""b":{"sockets":1}"#), "{text}");
    }
}
