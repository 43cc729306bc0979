//! Channel names and the kinds they imply (PROTOCOL.md §4).

use std::fmt;
use std::sync::Arc;

/// Pusher's documented maximum channel-name length.
pub const DEFAULT_MAX_CHANNEL_NAME_LENGTH: usize = 164;

/// The prefix of a user's personal channel, followed by the user id.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// What a channel's name says about it. Prefixes are matched longest first, dash included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Public,
    Private,
    PrivateEncrypted,
    Presence,
    /// `#server-to-user-{id}`: reachable only by sockets signed in as that user.
    ServerToUser,
}

impl ChannelKind {
    /// Whether a subscribe needs an `auth` signature.
    pub fn needs_auth(self) -> bool {
        matches!(self, Self::Private | Self::PrivateEncrypted | Self::Presence)
    }

    /// Whether clients may send `client-` events on it.
    pub fn allows_client_events(self) -> bool {
        matches!(self, Self::Private | Self::Presence)
    }
}

/// A validated channel name. Cheap to clone: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    #[error("channel name is empty")]
    Empty,
    #[error("channel name is {len} characters long, more than the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("channel name {0:?} contains characters outside A-Z a-z 0-9 _ - = @ , . ;")]
    InvalidCharacters(String),
}

impl ChannelName {
    /// Validates `name` against Pusher's character set and `max_len`. A `#server-to-user-`
    /// name is accepted when its user-id part is valid; no other `#` name is.
    pub fn parse(name: &str, max_len: usize) -> Result<Self, ChannelNameError> {
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        let len = name.chars().count();
        if len > max_len {
            return Err(ChannelNameError::TooLong { len, max: max_len });
        }
        let body = name.strip_prefix(SERVER_TO_USER_PREFIX).unwrap_or(name);
        if body.is_empty() || !body.bytes().all(is_channel_byte) {
            return Err(ChannelNameError::InvalidCharacters(truncate(name)));
        }
        Ok(Self(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The channel's kind, from its prefix.
    pub fn kind(&self) -> ChannelKind {
        kind_of(&self.0)
    }

    /// Whether this is a cache channel (`cache-`, `private-cache-`, `private-encrypted-cache-`,
    /// `presence-cache-`).
    pub fn is_cache(&self) -> bool {
        ["cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-"]
            .iter()
            .any(|p| self.0.starts_with(p))
    }

    /// For `#server-to-user-{id}`, the user id.
    pub fn server_to_user_id(&self) -> Option<&str> {
        self.0.strip_prefix(SERVER_TO_USER_PREFIX)
    }
}

fn kind_of(name: &str) -> ChannelKind {
    if name.starts_with("private-encrypted-") {
        ChannelKind::PrivateEncrypted
    } else if name.starts_with("private-") {
        ChannelKind::Private
    } else if name.starts_with("presence-") {
        ChannelKind::Presence
    } else if name.starts_with(SERVER_TO_USER_PREFIX) {
        ChannelKind::ServerToUser
    } else {
        ChannelKind::Public
    }
}

/// Whether `b` may appear in a channel name (also the rule for user ids).
pub fn is_channel_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ChannelName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> ChannelKind {
        ChannelName::parse(name, 164).unwrap().kind()
    }

    #[test]
    fn kinds_follow_the_longest_prefix_with_its_dash() {
        assert_eq!(kind("my-channel"), ChannelKind::Public);
        assert_eq!(kind("cache-x"), ChannelKind::Public);
        assert_eq!(kind("private-x"), ChannelKind::Private);
        assert_eq!(kind("private-cache-x"), ChannelKind::Private);
        assert_eq!(kind("private-encrypted-x"), ChannelKind::PrivateEncrypted);
        assert_eq!(kind("private-encrypted-cache-x"), ChannelKind::PrivateEncrypted);
        assert_eq!(kind("presence-x"), ChannelKind::Presence);
        assert_eq!(kind("presence-cache-x"), ChannelKind::Presence);
        assert_eq!(kind("privatex"), ChannelKind::Public);
        assert_eq!(kind("#server-to-user-42"), ChannelKind::ServerToUser);
    }

    #[test]
    fn cache_channels_are_recognised_by_prefix() {
        for name in ["cache-a", "private-cache-a", "private-encrypted-cache-a", "presence-cache-a"] {
            assert!(ChannelName::parse(name, 164).unwrap().is_cache(), "{name}");
        }
        assert!(!ChannelName::parse("cachex", 164).unwrap().is_cache());
    }

    #[test]
    fn names_outside_the_character_set_are_refused() {
        for bad in ["a b", "a#b", "#foo", "é", "a/b", "#server-to-user-", "a:b"] {
            assert!(ChannelName::parse(bad, 164).is_err(), "{bad:?}");
        }
        assert!(ChannelName::parse("A-z_0=9@,.;", 164).is_ok());
    }

    #[test]
    fn names_over_the_limit_are_refused() {
        let long = "a".repeat(165);
        assert_eq!(ChannelName::parse(&long, 164), Err(ChannelNameError::TooLong { len: 165, max: 164 }));
        assert!(ChannelName::parse(&long[..164], 164).is_ok());
        assert_eq!(ChannelName::parse("", 164), Err(ChannelNameError::Empty));
    }
}
