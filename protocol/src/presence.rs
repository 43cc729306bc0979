//! Presence `channel_data` and the roster frames built from it (PROTOCOL.md §5.3–5.6).

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Pusher's limit on a user id's length.
pub const DEFAULT_MAX_USER_ID_LENGTH: usize = 128;
/// Pusher's limit on the serialized `user_info` object.
pub const DEFAULT_MAX_USER_INFO_BYTES: usize = 1024;

/// A user's id in its canonical string form: `10` and `"10"` are the same user.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Wraps an id that has already been validated.
    pub fn new(id: &str) -> Self {
        Self(Arc::from(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for UserId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// One member of a presence channel as its `channel_data` declared it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceMember {
    pub user_id: UserId,
    /// `user_info` as raw JSON text, kept byte for byte; `None` when absent or null.
    pub user_info: Option<Arc<str>>,
}

/// Why `channel_data` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceDataError {
    #[error("channel_data must be a JSON object with a user_id")]
    NotAnObject,
    #[error("channel_data must contain a user_id that is a non-empty string or a number")]
    MissingUserId,
    #[error("user_id is longer than {max} characters")]
    UserIdTooLong { max: usize },
    #[error("user_info is {len} bytes, more than the limit of {max}")]
    UserInfoTooLarge { len: usize, max: usize },
}

#[derive(Deserialize)]
struct RawChannelData<'a> {
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow)]
    user_info: Option<&'a RawValue>,
}

/// Limits applied to presence members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceLimits {
    pub max_user_id_length: usize,
    pub max_user_info_bytes: usize,
}

impl Default for PresenceLimits {
    fn default() -> Self {
        Self { max_user_id_length: DEFAULT_MAX_USER_ID_LENGTH, max_user_info_bytes: DEFAULT_MAX_USER_INFO_BYTES }
    }
}

impl PresenceMember {
    /// Parses presence `channel_data` (the signed string, untouched) into a member.
    pub fn parse(channel_data: &str, limits: PresenceLimits) -> Result<Self, PresenceDataError> {
        let raw: RawChannelData<'_> = serde_json::from_str(channel_data).map_err(|_| PresenceDataError::NotAnObject)?;
        let user_id = raw.user_id.ok_or(PresenceDataError::MissingUserId)?;
        let user_id = user_id_text(user_id).ok_or(PresenceDataError::MissingUserId)?;
        if user_id.chars().count() > limits.max_user_id_length {
            return Err(PresenceDataError::UserIdTooLong { max: limits.max_user_id_length });
        }
        let user_info = match raw.user_info {
            Some(info) if info.get() != "null" => {
                let len = info.get().len();
                if len > limits.max_user_info_bytes {
                    return Err(PresenceDataError::UserInfoTooLarge { len, max: limits.max_user_info_bytes });
                }
                Some(Arc::from(info.get()))
            }
            _ => None,
        };
        Ok(Self { user_id: UserId::new(&user_id), user_info })
    }
}

/// The canonical text of a JSON user id: a non-empty string as is, a number as written.
fn user_id_text(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if text.starts_with('"') {
        let s: String = serde_json::from_str(text).ok()?;
        (!s.is_empty()).then_some(s)
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Some(text.to_string())
    } else {
        None
    }
}

/// Builds the `data` string of a presence `subscription_succeeded`:
/// `{"presence":{"ids":[…],"hash":{…},"count":N}}`.
pub fn roster_json<'a>(members: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> String {
    let mut ids = String::from("[");
    let mut hash = String::from("{");
    let mut count = 0usize;
    for (id, info) in members {
        if count > 0 {
            ids.push(',');
            hash.push(',');
        }
        crate::outbound::push_json_str(&mut ids, id);
        crate::outbound::push_json_str(&mut hash, id);
        hash.push(':');
        hash.push_str(info.unwrap_or("null"));
        count += 1;
    }
    ids.push(']');
    hash.push('}');
    format!("{{\"presence\":{{\"ids\":{ids},\"hash\":{hash},\"count\":{count}}}}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<PresenceMember, PresenceDataError> {
        PresenceMember::parse(s, PresenceLimits::default())
    }

    #[test]
    fn numeric_and_string_ids_are_the_same_user() {
        let a = parse(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#).unwrap();
        let b = parse(r#"{"user_id": "10", "user_info": {"name": "Mr. Channels"}}"#).unwrap();
        assert_eq!(a.user_id, b.user_id);
        assert_eq!(a.user_info.as_deref(), Some(r#"{"name":"Mr. Channels"}"#));
    }

    #[test]
    fn bad_channel_data_is_refused() {
        assert_eq!(parse("not json"), Err(PresenceDataError::NotAnObject));
        assert_eq!(parse("[]"), Err(PresenceDataError::NotAnObject));
        assert_eq!(parse("{}"), Err(PresenceDataError::MissingUserId));
        assert_eq!(parse(r#"{"user_id":""}"#), Err(PresenceDataError::MissingUserId));
        assert_eq!(parse(r#"{"user_id":null}"#), Err(PresenceDataError::MissingUserId));
        assert_eq!(parse(r#"{"user_id":{}}"#), Err(PresenceDataError::MissingUserId));
        let long = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129));
        assert_eq!(parse(&long), Err(PresenceDataError::UserIdTooLong { max: 128 }));
        let big = format!(r#"{{"user_id":"1","user_info":"{}"}}"#, "x".repeat(1100));
        assert!(matches!(parse(&big), Err(PresenceDataError::UserInfoTooLarge { .. })));
    }

    #[test]
    fn roster_lists_ids_hash_and_count() {
        let json = roster_json([("10", Some(r#"{"name":"A"}"#)), ("42", None)]);
        assert_eq!(json, r#"{"presence":{"ids":["10","42"],"hash":{"10":{"name":"A"},"42":null},"count":2}}"#);
        assert_eq!(roster_json([]), r#"{"presence":{"ids":[],"hash":{},"count":0}}"#);
    }
}
