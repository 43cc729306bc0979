//! The KV bucket, its keys and the pub/sub subjects (docs/nats.md, "Names"). Pure: no I/O.
//!
//! App ids, channel names and user ids may hold characters that a NATS subject token or a KV
//! key cannot (`.`, `*`, `>`, `@`, spaces, …), so each is one token escaped by [`escape`]:
//! letters, digits, `-` and `_` stay, every other byte becomes `=XX` (hex). Keys stay readable
//! (`chan.app1.presence-room`) and prefix order is kept per character class.

use crate::adapter::NodeId;

/// The names of one cluster (one prefix), seen from one node.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: String,
    /// This node's id as 32 hex digits.
    node: String,
}

/// What a key of the bucket holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// `chan.A.C`: one channel's document.
    Channel { app: String, channel: String },
    /// `user.A.U`: the sockets signed in as user U, per node.
    SignIn { app: String, user: String },
    /// `conns.A`: the app's open connections, per node.
    Conns { app: String },
    /// `node.N`: node N's heartbeat.
    Node { node: String },
    /// `cache.A.C`: a cache channel's last event.
    Cache { app: String, channel: String },
}

impl Names {
    pub fn new(prefix: &str, node: NodeId) -> Self {
        Self { prefix: prefix.to_owned(), node: node.hex() }
    }

    /// This node's id as it appears in keys and documents.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The one KV bucket of the cluster.
    pub fn bucket(&self) -> String {
        format!("{}_cluster", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream of every history channel's events (docs/history.md).
    pub fn history_stream(&self) -> String {
        format!("{}_history", self.prefix)
    }

    pub fn history_subjects(&self) -> String {
        format!("{}.hist.>", self.prefix)
    }

    pub fn key(&self, key: &Key) -> String {
        match key {
            Key::Channel { app, channel } => format!("chan.{}.{}", escape(app), escape(channel)),
            Key::SignIn { app, user } => format!("user.{}.{}", escape(app), escape(user)),
            Key::Conns { app } => format!("conns.{}", escape(app)),
            Key::Node { node } => format!("node.{node}"),
            Key::Cache { app, channel } => format!("cache.{}.{}", escape(app), escape(channel)),
        }
    }

    pub fn channel(&self, app: &str, channel: &str) -> String {
        self.key(&Key::Channel { app: app.to_owned(), channel: channel.to_owned() })
    }

    pub fn sign_in(&self, app: &str, user: &str) -> String {
        self.key(&Key::SignIn { app: app.to_owned(), user: user.to_owned() })
    }

    pub fn conns(&self, app: &str) -> String {
        self.key(&Key::Conns { app: app.to_owned() })
    }

    pub fn heartbeat(&self, node: &str) -> String {
        self.key(&Key::Node { node: node.to_owned() })
    }

    pub fn cache(&self, app: &str, channel: &str) -> String {
        self.key(&Key::Cache { app: app.to_owned(), channel: channel.to_owned() })
    }

    /// KV key filter of every channel document of `app`.
    pub fn app_channels(&self, app: &str) -> String {
        format!("chan.{}.*", escape(app))
    }

    pub fn channel_subject(&self, app: &str, channel: &str) -> String {
        format!("{}.chan.{}.{}", self.prefix, escape(app), escape(channel))
    }

    pub fn user_subject(&self, app: &str, user: &str) -> String {
        format!("{}.user.{}.{}", self.prefix, escape(app), escape(user))
    }

    pub fn watch_subject(&self, app: &str, watched: &str) -> String {
        format!("{}.watch.{}.{}", self.prefix, escape(app), escape(watched))
    }
}

/// KV key filters of each kind of key.
pub(crate) const ALL_CHANNELS: &str = "chan.>";
pub(crate) const ALL_SIGN_INS: &str = "user.>";
pub(crate) const ALL_CONNS: &str = "conns.*";
pub(crate) const ALL_NODES: &str = "node.*";

/// Parses a key of the bucket; `None` for a key this version does not write.
pub(crate) fn parse_key(key: &str) -> Option<Key> {
    let mut parts = key.split('.');
    let kind = parts.next()?;
    let (a, b) = (parts.next(), parts.next());
    if parts.next().is_some() {
        return None;
    }
    Some(match (kind, a, b) {
        ("chan", Some(app), Some(channel)) => Key::Channel { app: unescape(app)?, channel: unescape(channel)? },
        ("user", Some(app), Some(user)) => Key::SignIn { app: unescape(app)?, user: unescape(user)? },
        ("conns", Some(app), None) => Key::Conns { app: unescape(app)? },
        ("node", Some(node), None) => Key::Node { node: node.to_owned() },
        ("cache", Some(app), Some(channel)) => Key::Cache { app: unescape(app)?, channel: unescape(channel)? },
        _ => return None,
    })
}

/// One token for a subject or a key: `[A-Za-z0-9_-]` kept, other bytes `=XX`; empty is `=`.
pub(crate) fn escape(text: &str) -> String {
    if text.is_empty() {
        return "=".to_owned();
    }
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// The inverse of [`escape`]; `None` for a token [`escape`] cannot have made.
pub(crate) fn unescape(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_safe_characters_and_escape_the_rest() {
        assert_eq!(escape("presence-room_1"), "presence-room_1");
        assert_eq!(escape("a.b*c>d e@"), "a=2Eb=2Ac=3Ed=20e=40");
        assert_eq!(escape(""), "=");
        for text in ["", "#server-to-user-7", "private-encrypted-x;y,z", "ünïcode.=", "==3D"] {
            assert_eq!(unescape(&escape(text)).as_deref(), Some(text), "{text}");
        }
        assert_eq!(unescape("bad=Z1"), None);
        assert_eq!(unescape("cut=4"), None);
    }

    #[test]
    fn keys_and_subjects_are_one_token_per_name() {
        let names = Names::new("herald", NodeId([0xab; 16]));
        assert_eq!(names.bucket(), "herald_cluster");
        assert_eq!(names.channel("app1", "presence-room"), "chan.app1.presence-room");
        assert_eq!(names.sign_in("app1", "u.1"), "user.app1.u=2E1");
        assert_eq!(names.heartbeat(names.node()), format!("node.{}", "ab".repeat(16)));
        assert_eq!(names.channel_subject("app1", "a.b"), "herald.chan.app1.a=2Eb");
        assert_eq!(names.user_subject("app1", "7"), "herald.user.app1.7");
        assert_eq!(names.watch_subject("app1", "7"), "herald.watch.app1.7");
        assert_eq!(names.app_channels("app.1"), "chan.app=2E1.*");
    }

    #[test]
    fn keys_parse_back() {
        let names = Names::new("h", NodeId([1; 16]));
        let keys = [
            Key::Channel { app: "a.b".into(), channel: "presence-x@y".into() },
            Key::SignIn { app: "a".into(), user: "u 1".into() },
            Key::Conns { app: "a".into() },
            Key::Node { node: "01".repeat(16) },
            Key::Cache { app: "a".into(), channel: "cache-x".into() },
        ];
        for key in keys {
            assert_eq!(parse_key(&names.key(&key)), Some(key));
        }
        assert_eq!(parse_key("chan.a"), None);
        assert_eq!(parse_key("other.a.b"), None);
        assert_eq!(parse_key("chan.a.b.c"), None);
    }
}
