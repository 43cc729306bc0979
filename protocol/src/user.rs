//! Signed-in users: the `user_data` of `pusher:signin` (PROTOCOL.md §7).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::channel::is_channel_byte;
use crate::presence::UserId;

/// Pusher's limit on watchlist length; ids past it are dropped with a 4302 error.
pub const MAX_WATCHLIST_LENGTH: usize = 100;

/// The user a connection signed in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInUser {
    pub id: UserId,
    /// `user_info` as raw JSON, when present.
    pub user_info: Option<Arc<str>>,
    /// Watched user ids, at most [`MAX_WATCHLIST_LENGTH`].
    pub watchlist: Vec<UserId>,
    /// Whether the watchlist given was longer than the limit.
    pub watchlist_truncated: bool,
}

/// Why `user_data` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    #[error("user_data must be a JSON object")]
    NotAnObject,
    #[error("user_data must contain an id that is a non-empty string")]
    MissingId,
    #[error("user id is longer than {max} characters or has characters outside A-Z a-z 0-9 _ - = @ , . ;")]
    InvalidId { max: usize },
    #[error("watchlist must be an array of user id strings")]
    InvalidWatchlist,
}

#[derive(Deserialize)]
struct RawUserData<'a> {
    id: Option<serde_json::Value>,
    #[serde(borrow)]
    user_info: Option<&'a RawValue>,
    watchlist: Option<Vec<serde_json::Value>>,
}

impl SignedInUser {
    /// Parses `user_data` as it was signed.
    pub fn parse(user_data: &str, max_id_length: usize) -> Result<Self, UserDataError> {
        let raw: RawUserData<'_> = serde_json::from_str(user_data).map_err(|_| UserDataError::NotAnObject)?;
        let id = match raw.id {
            Some(serde_json::Value::String(s)) if !s.is_empty() => s,
            _ => return Err(UserDataError::MissingId),
        };
        if id.chars().count() > max_id_length || !id.bytes().all(is_channel_byte) {
            return Err(UserDataError::InvalidId { max: max_id_length });
        }
        let mut watchlist = Vec::new();
        let mut watchlist_truncated = false;
        for (i, item) in raw.watchlist.unwrap_or_default().into_iter().enumerate() {
            let serde_json::Value::String(w) = item else {
                return Err(UserDataError::InvalidWatchlist);
            };
            if i >= MAX_WATCHLIST_LENGTH {
                watchlist_truncated = true;
                break;
            }
            watchlist.push(UserId::new(&w));
        }
        let user_info = raw.user_info.filter(|v| v.get() != "null").map(|v| Arc::from(v.get()));
        Ok(Self { id: UserId::new(&id), user_info, watchlist, watchlist_truncated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_with_info_and_watchlist_parses() {
        let u = SignedInUser::parse(r#"{"id":"42","user_info":{"name":"Ada"},"watchlist":["7","8"]}"#, 128).unwrap();
        assert_eq!(u.id.as_str(), "42");
        assert_eq!(u.user_info.as_deref(), Some(r#"{"name":"Ada"}"#));
        assert_eq!(u.watchlist.len(), 2);
        assert!(!u.watchlist_truncated);
    }

    #[test]
    fn user_data_without_string_id_is_refused() {
        assert_eq!(SignedInUser::parse(r#"{"id":42}"#, 128), Err(UserDataError::MissingId));
        assert_eq!(SignedInUser::parse(r#"{"id":""}"#, 128), Err(UserDataError::MissingId));
        assert_eq!(SignedInUser::parse("[]", 128), Err(UserDataError::NotAnObject));
        assert!(SignedInUser::parse(r#"{"id":"a b"}"#, 128).is_err());
    }

    #[test]
    fn long_watchlists_keep_the_first_hundred() {
        let ids: Vec<String> = (0..150).map(|i| format!("\"{i}\"")).collect();
        let data = format!(r#"{{"id":"1","watchlist":[{}]}}"#, ids.join(","));
        let u = SignedInUser::parse(&data, 128).unwrap();
        assert_eq!(u.watchlist.len(), 100);
        assert!(u.watchlist_truncated);
    }
}
