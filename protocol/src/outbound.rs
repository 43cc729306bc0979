//! Frames the server sends, encoded from [`ServerMessage`] (PROTOCOL.md §1–10).
//!
//! Encoding rules (mirroring Pusher): `data` is a JSON *string* for
//! `connection_established`, `pusher_internal:*`, `pusher:pong` and channel events; an
//! *object* for `pusher:error` and `pusher:signin_success`; absent for `pusher:cache_miss`.

use crate::socket_id::SocketId;

/// Everything the server can say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage<'a> {
    ConnectionEstablished {
        socket_id: SocketId,
        activity_timeout_seconds: u64,
    },
    Error {
        code: Option<u16>,
        message: &'a str,
    },
    Ping,
    Pong,
    /// `data_json` is `{}` for ordinary channels, the roster JSON for presence channels.
    SubscriptionSucceeded {
        channel: &'a str,
        data_json: &'a str,
    },
    MemberAdded {
        channel: &'a str,
        user_id: &'a str,
        user_info: Option<&'a str>,
    },
    MemberRemoved {
        channel: &'a str,
        user_id: &'a str,
    },
    /// A channel event; `data` is the text carried in the `data` string.
    Event {
        event: &'a str,
        channel: &'a str,
        data: Option<&'a str>,
        user_id: Option<&'a str>,
    },
    SigninSuccess {
        user_data: &'a str,
    },
    CacheMiss {
        channel: &'a str,
    },
    SubscriptionCount {
        channel: &'a str,
        count: u64,
    },
    /// `events_json` is the JSON array of `{"name":…,"user_ids":[…]}` objects.
    WatchlistEvents {
        events_json: &'a str,
    },
}

impl ServerMessage<'_> {
    /// The frame's JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(96);
        match self {
            Self::ConnectionEstablished { socket_id, activity_timeout_seconds } => {
                let data = format!(r#"{{"socket_id":"{socket_id}","activity_timeout":{activity_timeout_seconds}}}"#);
                envelope(&mut out, "pusher:connection_established", None);
                string_data(&mut out, &data);
            }
            Self::Error { code, message } => {
                envelope(&mut out, "pusher:error", None);
                out.push_str(",\"data\":{\"code\":");
                match code {
                    Some(c) => out.push_str(&c.to_string()),
                    None => out.push_str("null"),
                }
                out.push_str(",\"message\":");
                push_json_str(&mut out, message);
                out.push('}');
            }
            Self::Ping => {
                envelope(&mut out, "pusher:ping", None);
                string_data(&mut out, "{}");
            }
            Self::Pong => {
                envelope(&mut out, "pusher:pong", None);
                string_data(&mut out, "{}");
            }
            Self::SubscriptionSucceeded { channel, data_json } => {
                envelope(&mut out, "pusher_internal:subscription_succeeded", Some(channel));
                string_data(&mut out, data_json);
            }
            Self::MemberAdded { channel, user_id, user_info } => {
                let mut data = String::from("{\"user_id\":");
                push_json_str(&mut data, user_id);
                if let Some(info) = user_info {
                    data.push_str(",\"user_info\":");
                    data.push_str(info);
                }
                data.push('}');
                envelope(&mut out, "pusher_internal:member_added", Some(channel));
                string_data(&mut out, &data);
            }
            Self::MemberRemoved { channel, user_id } => {
                let mut data = String::from("{\"user_id\":");
                push_json_str(&mut data, user_id);
                data.push('}');
                envelope(&mut out, "pusher_internal:member_removed", Some(channel));
                string_data(&mut out, &data);
            }
            Self::Event { event, channel, data, user_id } => {
                envelope(&mut out, event, Some(channel));
                if let Some(data) = data {
                    string_data(&mut out, data);
                }
                if let Some(user_id) = user_id {
                    out.push_str(",\"user_id\":");
                    push_json_str(&mut out, user_id);
                }
            }
            Self::SigninSuccess { user_data } => {
                envelope(&mut out, "pusher:signin_success", None);
                out.push_str(",\"data\":{\"user_data\":");
                push_json_str(&mut out, user_data);
                out.push('}');
            }
            Self::CacheMiss { channel } => envelope(&mut out, "pusher:cache_miss", Some(channel)),
            Self::SubscriptionCount { channel, count } => {
                envelope(&mut out, "pusher_internal:subscription_count", Some(channel));
                string_data(&mut out, &format!("{{\"subscription_count\":{count}}}"));
            }
            Self::WatchlistEvents { events_json } => {
                envelope(&mut out, "pusher_internal:watchlist_events", None);
                string_data(&mut out, &format!("{{\"events\":{events_json}}}"));
            }
        }
        out.push('}');
        out
    }
}

/// Opens `{"event":…[,"channel":…]` (the caller closes the object).
fn envelope(out: &mut String, event: &str, channel: Option<&str>) {
    out.push_str("{\"event\":");
    push_json_str(out, event);
    if let Some(channel) = channel {
        out.push_str(",\"channel\":");
        push_json_str(out, channel);
    }
}

/// Appends `,"data":"<text as a JSON string>"`.
fn string_data(out: &mut String, text: &str) {
    out.push_str(",\"data\":");
    push_json_str(out, text);
}

/// Appends `s` as a JSON string literal.
pub fn push_json_str(out: &mut String, s: &str) {
    // Serializing a &str into a String cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_established_double_encodes_data() {
        let m = ServerMessage::ConnectionEstablished {
            socket_id: SocketId::new(2282, 7910578),
            activity_timeout_seconds: 120,
        };
        assert_eq!(
            m.to_json(),
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"2282.7910578\",\"activity_timeout\":120}"}"#
        );
    }

    #[test]
    fn error_data_is_an_object() {
        let m = ServerMessage::Error { code: Some(4009), message: "Connection is unauthorized" };
        assert_eq!(
            m.to_json(),
            r#"{"event":"pusher:error","data":{"code":4009,"message":"Connection is unauthorized"}}"#
        );
        let m = ServerMessage::Error { code: None, message: "x" };
        assert_eq!(m.to_json(), r#"{"event":"pusher:error","data":{"code":null,"message":"x"}}"#);
    }

    #[test]
    fn presence_client_events_carry_user_id() {
        let m = ServerMessage::Event {
            event: "client-typing",
            channel: "presence-room",
            data: Some(r#"{"typing":true}"#),
            user_id: Some("42"),
        };
        assert_eq!(
            m.to_json(),
            r#"{"event":"client-typing","channel":"presence-room","data":"{\"typing\":true}","user_id":"42"}"#
        );
    }
}
