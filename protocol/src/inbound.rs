//! Frames a client sends, decoded into [`ClientMessage`] (PROTOCOL.md §1.3, §3, §5, §6, §7).
//!
//! The "data is a JSON string inside JSON" quirk is handled here and nowhere else: pusher-js
//! sends `data` as an object for `pusher:*` events, other clients send a string holding the
//! object; both decode to the same message.

use serde::Deserialize;
use serde_json::value::RawValue;

/// Everything a client can say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Ping,
    Pong,
    Subscribe {
        channel: String,
        auth: Option<String>,
        channel_data: Option<String>,
    },
    Unsubscribe {
        channel: String,
    },
    Signin {
        auth: String,
        user_data: String,
    },
    /// A `client-*` event. `data` is the text to relay inside the JSON string: a string the
    /// client sent as is, an object or array as the JSON it was sent as.
    ClientEvent {
        event: String,
        channel: String,
        data: Option<String>,
    },
    /// herald's extension: replay the channel's events after `since` ([`crate::history`]).
    /// `since` is as sent; the session checks it, so a bad one gets a `recovery_failed`.
    Recover {
        channel: String,
        since: String,
    },
    /// Any other event name (unknown `pusher:*`, or an event without the `client-` prefix).
    Unknown {
        event: String,
    },
}

/// Why a frame could not be decoded. Each maps to one `pusher:error` reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("Invalid message format: not a JSON object with an event")]
    InvalidJson,
    #[error("Invalid message format: {event} needs {field}")]
    MissingField { event: &'static str, field: &'static str },
    #[error("Invalid message format: client events need a channel")]
    ClientEventWithoutChannel,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    event: String,
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct SubscribeData {
    channel: Option<String>,
    auth: Option<String>,
    channel_data: Option<String>,
}

#[derive(Deserialize, Default)]
struct RecoverData {
    channel: Option<String>,
    since: Option<String>,
}

#[derive(Deserialize, Default)]
struct SigninData {
    auth: Option<String>,
    user_data: Option<String>,
}

impl ClientMessage {
    /// Decodes one text frame.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        let env: Envelope<'_> = serde_json::from_str(text).map_err(|_| DecodeError::InvalidJson)?;
        match env.event.as_str() {
            "pusher:ping" => Ok(Self::Ping),
            "pusher:pong" => Ok(Self::Pong),
            "pusher:subscribe" => {
                let d: SubscribeData = object_data(env.data).ok_or(DecodeError::InvalidJson)?;
                let channel =
                    d.channel.ok_or(DecodeError::MissingField { event: "pusher:subscribe", field: "channel" })?;
                Ok(Self::Subscribe { channel, auth: d.auth, channel_data: d.channel_data })
            }
            "pusher:unsubscribe" => {
                let d: SubscribeData = object_data(env.data).ok_or(DecodeError::InvalidJson)?;
                let channel =
                    d.channel.ok_or(DecodeError::MissingField { event: "pusher:unsubscribe", field: "channel" })?;
                Ok(Self::Unsubscribe { channel })
            }
            "pusher:signin" => {
                let d: SigninData = object_data(env.data).ok_or(DecodeError::InvalidJson)?;
                let auth = d.auth.ok_or(DecodeError::MissingField { event: "pusher:signin", field: "auth" })?;
                let user_data =
                    d.user_data.ok_or(DecodeError::MissingField { event: "pusher:signin", field: "user_data" })?;
                Ok(Self::Signin { auth, user_data })
            }
            crate::history::RECOVER_EVENT => {
                let d: RecoverData = object_data(env.data).ok_or(DecodeError::InvalidJson)?;
                let top = env.channel.and_then(|c| serde_json::from_str::<String>(c.get()).ok());
                let channel =
                    d.channel.or(top).ok_or(DecodeError::MissingField { event: "herald:recover", field: "channel" })?;
                let since = d.since.ok_or(DecodeError::MissingField { event: "herald:recover", field: "since" })?;
                Ok(Self::Recover { channel, since })
            }
            e if e.starts_with("client-") => {
                let channel = env
                    .channel
                    .and_then(|c| serde_json::from_str::<String>(c.get()).ok())
                    .ok_or(DecodeError::ClientEventWithoutChannel)?;
                let data = env.data.map(relay_text);
                Ok(Self::ClientEvent { event: env.event, channel, data })
            }
            _ => Ok(Self::Unknown { event: env.event }),
        }
    }
}

/// Decodes `data` that must be an object, sent as an object or as a string holding one.
/// Absent or null data decodes to the default (all fields missing).
fn object_data<T: for<'de> Deserialize<'de> + Default>(data: Option<&RawValue>) -> Option<T> {
    let Some(raw) = data else { return Some(T::default()) };
    let text = raw.get();
    if text == "null" {
        return Some(T::default());
    }
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text).ok()?;
        return serde_json::from_str(&inner).ok();
    }
    serde_json::from_str(text).ok()
}

/// The text a relayed event carries inside its `data` string.
fn relay_text(raw: &RawValue) -> String {
    let text = raw.get();
    if text.starts_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return s;
        }
    }
    text.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_data_may_be_an_object_or_a_string() {
        let a = ClientMessage::decode(r#"{"event":"pusher:subscribe","data":{"channel":"a","auth":""}}"#).unwrap();
        let b = ClientMessage::decode(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"a\",\"auth\":\"\"}"}"#)
            .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, ClientMessage::Subscribe { channel: "a".into(), auth: Some(String::new()), channel_data: None });
    }

    #[test]
    fn client_event_data_is_relayed_as_sent() {
        let m = ClientMessage::decode(r#"{"event":"client-x","channel":"private-a","data":{"typing":true}}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::ClientEvent {
                event: "client-x".into(),
                channel: "private-a".into(),
                data: Some(r#"{"typing":true}"#.into())
            }
        );
        let m = ClientMessage::decode(r#"{"event":"client-x","channel":"private-a","data":"hi"}"#).unwrap();
        assert!(matches!(m, ClientMessage::ClientEvent { data: Some(d), .. } if d == "hi"));
    }

    #[test]
    fn malformed_frames_are_errors() {
        assert_eq!(ClientMessage::decode("nope"), Err(DecodeError::InvalidJson));
        assert_eq!(ClientMessage::decode(r#"{"data":{}}"#), Err(DecodeError::InvalidJson));
        assert_eq!(ClientMessage::decode(r#"{"event":5}"#), Err(DecodeError::InvalidJson));
        assert_eq!(ClientMessage::decode(r#"{"event":"pusher:subscribe","data":5}"#), Err(DecodeError::InvalidJson));
        assert!(matches!(
            ClientMessage::decode(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(DecodeError::MissingField { .. })
        ));
        assert_eq!(
            ClientMessage::decode(r#"{"event":"client-x","data":{}}"#),
            Err(DecodeError::ClientEventWithoutChannel)
        );
    }

    #[test]
    fn a_recover_request_names_its_channel_in_data_or_beside_it() {
        let want = ClientMessage::Recover { channel: "orders-1".into(), since: "5-2".into() };
        let in_data = r#"{"event":"herald:recover","data":{"channel":"orders-1","since":"5-2"}}"#;
        let beside = r#"{"event":"herald:recover","channel":"orders-1","data":"{\"since\":\"5-2\"}"}"#;
        assert_eq!(ClientMessage::decode(in_data), Ok(want.clone()));
        assert_eq!(ClientMessage::decode(beside), Ok(want));
        assert!(matches!(
            ClientMessage::decode(r#"{"event":"herald:recover","data":{"channel":"a"}}"#),
            Err(DecodeError::MissingField { field: "since", .. })
        ));
    }

    #[test]
    fn unknown_events_are_named() {
        assert_eq!(
            ClientMessage::decode(r#"{"event":"pusher:whatever","data":{}}"#),
            Ok(ClientMessage::Unknown { event: "pusher:whatever".into() })
        );
    }
}
