//! What a webhook request looks like on the wire (PROTOCOL.md §12): the JSON body
//! `{"time_ms":…,"events":[…]}` with its fields in Pusher's order, and the signature
//! `X-Pusher-Signature` carries. Pure: no clock, no I/O; the caller passes `time_ms`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

use super::WebhookEvent;

/// `Content-Type` of every request. Exactly this: pusher-http-node compares the whole string,
/// so `application/json; charset=utf-8` would fail its validation.
pub(super) const CONTENT_TYPE: &str = "application/json";

/// One event as the receiver sees it; absent fields are left out, present ones keep this order.
#[derive(Serialize)]
struct WireEvent<'a> {
    name: &'static str,
    channel: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_count: Option<u64>,
}

#[derive(Serialize)]
struct WireBody<'a> {
    time_ms: u64,
    events: Vec<WireEvent<'a>>,
}

impl<'a> WireEvent<'a> {
    fn new(event: &'a WebhookEvent) -> Self {
        let mut wire = Self {
            name: event.name(),
            channel: "",
            event: None,
            data: None,
            socket_id: None,
            user_id: None,
            subscription_count: None,
        };
        match event {
            WebhookEvent::ChannelOccupied { channel }
            | WebhookEvent::ChannelVacated { channel }
            | WebhookEvent::CacheMiss { channel } => wire.channel = channel.as_str(),
            WebhookEvent::MemberAdded { channel, user_id } | WebhookEvent::MemberRemoved { channel, user_id } => {
                wire.channel = channel.as_str();
                wire.user_id = Some(user_id.as_str());
            }
            WebhookEvent::ClientEvent { channel, event, data, socket_id, user_id } => {
                wire.channel = channel.as_str();
                wire.event = Some(event);
                wire.data = Some(data);
                wire.socket_id = Some(socket_id.to_string());
                wire.user_id = user_id.as_ref().map(|u| u.as_str());
            }
            WebhookEvent::SubscriptionCount { channel, subscription_count } => {
                wire.channel = channel.as_str();
                wire.subscription_count = Some(*subscription_count);
            }
        }
        wire
    }
}

/// The request body for `events`, created at `time_ms`.
pub(super) fn encode_body(time_ms: u64, events: &[WebhookEvent]) -> Bytes {
    let body = WireBody { time_ms, events: events.iter().map(WireEvent::new).collect() };
    // Serialising plain strings and integers into a Vec cannot fail.
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// `X-Pusher-Signature`: lowercase hex HMAC-SHA256 of the raw body under the app secret.
pub(super) fn signature(secret: &str, body: &[u8]) -> String {
    herald_protocol::signature::sign(secret, body)
}

/// Unix time in milliseconds, the `time_ms` of a webhook created now.
pub(super) fn now_unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use herald_protocol::{ChannelName, SocketId, UserId};

    use super::*;

    const SECRET: &str = "7ad3773142a6692b25b8";

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name, 200).expect("valid channel name")
    }

    #[test]
    fn channel_occupied_body_and_signature_match_vector_v8() {
        let body = encode_body(1327078148132, &[WebhookEvent::ChannelOccupied { channel: channel("my-channel") }]);
        assert_eq!(
            body.as_ref(),
            br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"my-channel"}]}"#
        );
        assert_eq!(signature(SECRET, &body), "c19001ae3963ccb13bf618e5b16ba9848e7e74df0993aa0689168e341c6833cf");
    }

    #[test]
    fn batched_member_and_client_event_body_matches_vector_v8() {
        let events = [
            WebhookEvent::MemberAdded { channel: channel("presence-room"), user_id: UserId::new("42") },
            WebhookEvent::ClientEvent {
                channel: channel("private-chat"),
                event: "client-typing".into(),
                data: r#"{"typing":true}"#.into(),
                socket_id: SocketId::new(123, 456),
                user_id: None,
            },
        ];
        let body = encode_body(1700000000123, &events);
        let expected = r#"{"time_ms":1700000000123,"events":[{"name":"member_added","channel":"presence-room","user_id":"42"},{"name":"client_event","channel":"private-chat","event":"client-typing","data":"{\"typing\":true}","socket_id":"123.456"}]}"#;
        assert_eq!(std::str::from_utf8(&body).expect("utf-8"), expected);
        assert_eq!(signature(SECRET, &body), "6bd542a5daf386732017e370a2d702fc0008f3344be69138b8da7c172bcff921");
    }

    #[test]
    fn every_event_kind_carries_pusher_fields_in_order() {
        let cases = [
            (WebhookEvent::ChannelVacated { channel: channel("c") }, r#"{"name":"channel_vacated","channel":"c"}"#),
            (
                WebhookEvent::MemberRemoved { channel: channel("presence-c"), user_id: UserId::new("u") },
                r#"{"name":"member_removed","channel":"presence-c","user_id":"u"}"#,
            ),
            (WebhookEvent::CacheMiss { channel: channel("cache-c") }, r#"{"name":"cache_miss","channel":"cache-c"}"#),
            (
                WebhookEvent::SubscriptionCount { channel: channel("c"), subscription_count: 7 },
                r#"{"name":"subscription_count","channel":"c","subscription_count":7}"#,
            ),
            (
                WebhookEvent::ClientEvent {
                    channel: channel("presence-c"),
                    event: "client-x".into(),
                    data: "\"hi\"".into(),
                    socket_id: SocketId::new(1, 2),
                    user_id: Some(UserId::new("9")),
                },
                r#"{"name":"client_event","channel":"presence-c","event":"client-x","data":"\"hi\"","socket_id":"1.2","user_id":"9"}"#,
            ),
        ];
        for (event, wire) in cases {
            let body = encode_body(5, std::slice::from_ref(&event));
            assert_eq!(std::str::from_utf8(&body).expect("utf-8"), format!(r#"{{"time_ms":5,"events":[{wire}]}}"#));
        }
    }
}
