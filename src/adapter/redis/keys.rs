//! Key and topic names (docs/cluster.md, "Keys") and the per-node record formats. Pure: no I/O.
//!
//! Every key of one channel carries the hash tag `{A:C}` so one script touches them all on one
//! Redis Cluster shard; everything else is keyed so that it spreads over the shards.

use herald_protocol::{SocketId, UserId};

use crate::adapter::NodeId;

/// The names of one cluster (one prefix), seen from one node.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    /// This node's id as 32 hex digits.
    node: String,
}

/// The keys of one channel, in the order the scripts take them.
pub(crate) struct ChannelKeys {
    pub socks: String,
    pub users: String,
    pub info: String,
    /// Leaves whose webhook waits out the leave delay: `c` (vacated), `u:<user>` (removed).
    pub leaves: String,
}

impl Keys {
    pub fn new(prefix: &str, node: NodeId) -> Self {
        Self { prefix: prefix.to_owned(), node: node_hex(node) }
    }

    /// This node's id as it appears in keys and socket fields.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn channel(&self, app: &str, channel: &str) -> ChannelKeys {
        let base = format!("{}:{{{app}:{channel}}}", self.prefix);
        ChannelKeys {
            socks: format!("{base}:socks"),
            users: format!("{base}:users"),
            info: format!("{base}:info"),
            leaves: format!("{base}:leaves"),
        }
    }

    /// A history channel's stream, in the channel's hash slot.
    pub fn history(&self, app: &str, channel: &str) -> String {
        format!("{}:{{{app}:{channel}}}:history", self.prefix)
    }

    pub fn channel_index(&self, app: &str) -> String {
        format!("{}:{app}:channels", self.prefix)
    }

    pub fn conns(&self, app: &str) -> String {
        format!("{}:{app}:conns", self.prefix)
    }

    pub fn cache(&self, app: &str, channel: &str) -> String {
        format!("{}:{app}:cache:{channel}", self.prefix)
    }

    /// The set of `node:socket` fields of the sockets signed in as `user`, cluster-wide.
    pub fn signed_in(&self, app: &str, user: &UserId) -> String {
        format!("{}:{app}:signin:{user}", self.prefix)
    }

    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    pub fn heartbeat(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// Node `node`'s subscriptions, as [`sub_record`]s.
    pub fn node_subs(&self, node: &str) -> String {
        format!("{}:node:{node}:subs", self.prefix)
    }

    /// Node `node`'s signed-in sockets, as [`sign_in_record`]s.
    pub fn node_sign_ins(&self, node: &str) -> String {
        format!("{}:node:{node}:signins", self.prefix)
    }

    /// The apps in whose `conns` hash node `node` has a field.
    pub fn node_apps(&self, node: &str) -> String {
        format!("{}:node:{node}:apps", self.prefix)
    }

    pub fn reap_claim(&self, node: &str) -> String {
        format!("{}:reap:{node}", self.prefix)
    }

    pub fn channel_topic(&self, app: &str, channel: &str) -> String {
        format!("{}:{{{app}:{channel}}}", self.prefix)
    }

    pub fn user_topic(&self, app: &str, user: &UserId) -> String {
        format!("{}:{app}:user:{user}", self.prefix)
    }

    pub fn watch_topic(&self, app: &str, watched: &UserId) -> String {
        format!("{}:{app}:watch:{watched}", self.prefix)
    }
}

/// A node id as 32 lowercase hex digits.
pub(crate) fn node_hex(node: NodeId) -> String {
    node.0.iter().map(|b| format!("{b:02x}")).collect()
}

/// The field naming one socket of one node: `node:socket`.
pub(crate) fn socket_field(node: &str, socket: SocketId) -> String {
    format!("{node}:{socket}")
}

/// `A\nC\nsocket\nuser` (user empty off presence): one entry of `P:node:N:subs`.
pub(crate) fn sub_record(app: &str, channel: &str, socket: SocketId, user: Option<&UserId>) -> String {
    let user = user.map(UserId::as_str).unwrap_or("");
    format!("{app}\n{channel}\n{socket}\n{user}")
}

/// One parsed entry of `P:node:N:subs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubRecord {
    pub app: String,
    pub channel: String,
    pub socket: SocketId,
    pub user: Option<UserId>,
}

pub(crate) fn parse_sub_record(record: &str) -> Option<SubRecord> {
    let mut parts = record.splitn(4, '\n');
    let (app, channel, socket, user) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let socket = socket.parse().ok()?;
    let user = (!user.is_empty()).then(|| UserId::new(user));
    Some(SubRecord { app: app.to_owned(), channel: channel.to_owned(), socket, user })
}

/// `A\nsocket\nuser`: one entry of `P:node:N:signins`.
pub(crate) fn sign_in_record(app: &str, user: &UserId, socket: SocketId) -> String {
    format!("{app}\n{socket}\n{user}")
}

pub(crate) fn parse_sign_in_record(record: &str) -> Option<(String, SocketId, UserId)> {
    let mut parts = record.splitn(3, '\n');
    let (app, socket, user) = (parts.next()?, parts.next()?, parts.next()?);
    Some((app.to_owned(), socket.parse().ok()?, UserId::new(user)))
}

/// Escapes the glob characters of `prefix` for `SSCAN … MATCH prefix*`.
pub(crate) fn glob_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('*');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_keys_and_topic_share_one_hash_tag() {
        let keys = Keys::new("herald", NodeId([0xab; 16]));
        let k = keys.channel("app1", "presence-room");
        assert_eq!(k.socks, "herald:{app1:presence-room}:socks");
        assert_eq!(k.users, "herald:{app1:presence-room}:users");
        assert_eq!(keys.channel_topic("app1", "presence-room"), "herald:{app1:presence-room}");
        assert_eq!(keys.node(), "ab".repeat(16));
    }

    #[test]
    fn sub_records_round_trip_with_and_without_user() {
        let socket = SocketId::new(12, 34);
        let user = UserId::new("u:1\nx");
        let parsed = parse_sub_record(&sub_record("a", "c", socket, Some(&user))).unwrap();
        assert_eq!(parsed, SubRecord { app: "a".into(), channel: "c".into(), socket, user: Some(user) });
        assert_eq!(parse_sub_record(&sub_record("a", "c", socket, None)).unwrap().user, None);
        assert!(parse_sub_record("a\nc").is_none());
    }

    #[test]
    fn sign_in_records_round_trip() {
        let user = UserId::new("7");
        let record = sign_in_record("a", &user, SocketId::new(1, 2));
        assert_eq!(parse_sign_in_record(&record), Some(("a".into(), SocketId::new(1, 2), user)));
    }

    #[test]
    fn glob_prefix_escapes_pattern_characters() {
        assert_eq!(glob_prefix("presence-"), "presence-*");
        assert_eq!(glob_prefix("a*[b]"), "a\\*\\[b\\]*");
    }
}
