//! Golden frames: every message herald sends, byte for byte, and every message it decodes,
//! as pusher-js and the other clients put them on the wire. The JSON files live in
//! `tests/golden/`.

use herald_protocol::{ClientMessage, ServerMessage, SocketId};

fn golden(path: &str) -> String {
    let full = format!("{}/tests/golden/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}")).trim_end().to_string()
}

#[test]
fn every_server_message_matches_its_golden_frame() {
    let roster = r#"{"presence":{"ids":["10","42"],"hash":{"10":{"name":"Mr. Channels"},"42":null},"count":2}}"#;
    let watch = r#"[{"name":"online","user_ids":["7"]},{"name":"offline","user_ids":["8"]}]"#;
    let cases: Vec<(&str, ServerMessage<'_>)> = vec![
        (
            "connection_established",
            ServerMessage::ConnectionEstablished {
                socket_id: SocketId::new(2282, 7910578),
                activity_timeout_seconds: 120,
            },
        ),
        ("error_4009", ServerMessage::Error { code: Some(4009), message: "Connection is unauthorized" }),
        ("error_null_code", ServerMessage::Error { code: None, message: "Invalid message format" }),
        ("ping", ServerMessage::Ping),
        ("pong", ServerMessage::Pong),
        ("subscription_succeeded", ServerMessage::SubscriptionSucceeded { channel: "my-channel", data_json: "{}" }),
        (
            "subscription_succeeded_presence",
            ServerMessage::SubscriptionSucceeded { channel: "presence-room", data_json: roster },
        ),
        (
            "member_added",
            ServerMessage::MemberAdded {
                channel: "presence-room",
                user_id: "42",
                user_info: Some(r#"{"name":"Ada"}"#),
            },
        ),
        ("member_removed", ServerMessage::MemberRemoved { channel: "presence-room", user_id: "42" }),
        (
            "channel_event",
            ServerMessage::Event {
                event: "my-event",
                channel: "my-channel",
                data: Some(r#"{"message":"hello"}"#),
                user_id: None,
            },
        ),
        (
            "client_event_presence",
            ServerMessage::Event {
                event: "client-typing",
                channel: "presence-room",
                data: Some(r#"{"typing":true}"#),
                user_id: Some("42"),
            },
        ),
        ("signin_success", ServerMessage::SigninSuccess { user_data: r#"{"id":"12345"}"# }),
        ("cache_miss", ServerMessage::CacheMiss { channel: "cache-prices" }),
        ("subscription_count", ServerMessage::SubscriptionCount { channel: "my-channel", count: 3 }),
        ("watchlist_events", ServerMessage::WatchlistEvents { events_json: watch }),
    ];
    for (name, message) in cases {
        assert_eq!(message.to_json(), golden(&format!("server/{name}.json")), "server/{name}.json");
    }
}

#[test]
fn every_client_message_decodes_from_its_golden_frame() {
    let private_auth = "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
    let cases: Vec<(&str, ClientMessage)> = vec![
        ("ping", ClientMessage::Ping),
        ("pong", ClientMessage::Pong),
        (
            "subscribe_public",
            ClientMessage::Subscribe { channel: "my-channel".into(), auth: Some(String::new()), channel_data: None },
        ),
        (
            "subscribe_private",
            ClientMessage::Subscribe {
                channel: "private-orders".into(),
                auth: Some(private_auth.into()),
                channel_data: None,
            },
        ),
        (
            "subscribe_presence",
            ClientMessage::Subscribe {
                channel: "presence-room".into(),
                auth: Some(
                    "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80".into(),
                ),
                channel_data: Some(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#.into()),
            },
        ),
        (
            "subscribe_string_data",
            ClientMessage::Subscribe { channel: "my-channel".into(), auth: None, channel_data: None },
        ),
        ("unsubscribe", ClientMessage::Unsubscribe { channel: "my-channel".into() }),
        (
            "signin",
            ClientMessage::Signin {
                auth: "278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba".into(),
                user_data: r#"{"id":"12345"}"#.into(),
            },
        ),
        (
            "client_event",
            ClientMessage::ClientEvent {
                event: "client-typing".into(),
                channel: "presence-room".into(),
                data: Some(r#"{"typing":true}"#.into()),
            },
        ),
    ];
    for (name, expected) in cases {
        let decoded = ClientMessage::decode(&golden(&format!("client/{name}.json")));
        assert_eq!(decoded, Ok(expected), "client/{name}.json");
    }
}
