//! Client events (`client-*`): relaying, `user_id`, and every rejection (contract: "Client events").

mod common;

use common::*;
use herald::config::AppConfig;
use serde_json::json;

/// Two clients on `channel` (private or presence as the name says); presence users are "1" and "2".
async fn pair_on(server: &TestServer, channel: &str) -> (Client, Client) {
    let mut sender = server.connect().await;
    let mut receiver = server.connect().await;
    if channel.starts_with("presence-") {
        receiver.subscribe_presence(channel, r#"{"user_id":"2"}"#).await;
        sender.subscribe_presence(channel, r#"{"user_id":"1","user_info":{"name":"Alice"}}"#).await;
        receiver.expect_event("pusher_internal:member_added").await;
    } else {
        sender.subscribe_private(channel).await;
        receiver.subscribe_private(channel).await;
    }
    (sender, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_reaches_other_subscribers_but_not_the_sender() {
    let server = TestServer::start().await;
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender.send_client_event("private-chat", "client-typing", json!({"typing": true})).await;
    let frame = receiver.next_frame().await;
    assert_eq!(frame, json!({"event": "client-typing", "channel": "private-chat", "data": "{\"typing\":true}"}));
    sender.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_reaches_every_other_subscriber() {
    let server = TestServer::start().await;
    let (mut sender, mut first) = pair_on(&server, "private-chat").await;
    let mut second = server.connect().await;
    second.subscribe_private("private-chat").await;
    sender.send_client_event("private-chat", "client-hello", json!({})).await;
    for receiver in [&mut first, &mut second] {
        assert_eq!(
            receiver.next_frame().await,
            json!({"event": "client-hello", "channel": "private-chat", "data": "{}"})
        );
    }
    sender.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_string_data_is_relayed_unchanged() {
    let server = TestServer::start().await;
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender.send_client_event("private-chat", "client-note", json!("plain text, not JSON")).await;
    let frame = receiver.next_frame().await;
    assert_eq!(frame, json!({"event": "client-note", "channel": "private-chat", "data": "plain text, not JSON"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_on_private_channel_carries_no_user_id() {
    let server = TestServer::start().await;
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender.send_client_event("private-chat", "client-typing", json!({})).await;
    let frame = receiver.next_frame().await;
    assert!(frame.get("user_id").is_none(), "{frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_on_presence_channel_carries_the_senders_user_id() {
    let server = TestServer::start().await;
    let (mut sender, mut receiver) = pair_on(&server, "presence-room").await;
    sender.send_client_event("presence-room", "client-typing", json!({"typing": true, "user_id": "forged"})).await;
    let frame = receiver.next_frame().await;
    assert_eq!(frame["event"], "client-typing", "{frame}");
    assert_eq!(frame["channel"], "presence-room", "{frame}");
    assert_eq!(frame["user_id"], "1", "user_id comes from the sender's channel_data: {frame}");
    assert_eq!(data_of(&frame), json!({"typing": true, "user_id": "forged"}), "data is relayed as sent");
    sender.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_presence_user_id_is_sent_as_a_string_on_client_events() {
    let server = TestServer::start().await;
    let mut sender = server.connect().await;
    let mut receiver = server.connect().await;
    receiver.subscribe_presence("presence-room", r#"{"user_id":"2"}"#).await;
    sender.subscribe_presence("presence-room", r#"{"user_id":10}"#).await;
    receiver.expect_event("pusher_internal:member_added").await;
    sender.send_client_event("presence-room", "client-typing", json!({})).await;
    let frame = receiver.next_frame().await;
    assert_eq!(frame["user_id"], "10", "{frame}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_on_a_channel_the_sender_has_not_joined_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let (_, mut receiver) = pair_on(&server, "private-chat").await;
    let mut outsider = server.connect().await;
    outsider.send_client_event("private-chat", "client-typing", json!({})).await;
    outsider.expect_error_code(Some(4009)).await;
    outsider.ping_pong().await;
    receiver.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_on_a_public_channel_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let mut sender = server.connect().await;
    let mut receiver = server.connect().await;
    sender.subscribe("lobby").await;
    receiver.subscribe("lobby").await;
    sender.send_client_event("lobby", "client-typing", json!({})).await;
    sender.expect_error_code(Some(4009)).await;
    sender.ping_pong().await;
    receiver.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_on_an_encrypted_channel_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let (mut sender, mut receiver) = pair_on(&server, "private-encrypted-chat").await;
    sender.send_client_event("private-encrypted-chat", "client-typing", json!({})).await;
    sender.expect_error_code(Some(4009)).await;
    sender.ping_pong().await;
    receiver.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_after_unsubscribing_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender.unsubscribe("private-chat").await;
    sender.send_client_event("private-chat", "client-typing", json!({})).await;
    sender.expect_error_code(Some(4009)).await;
    receiver.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_are_rejected_with_4301_when_the_app_disables_them() {
    let mut app = app();
    app.client_events = false;
    let server = TestServer::with_app(app).await;
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender.send_client_event("private-chat", "client-typing", json!({})).await;
    sender.expect_error_code(Some(4301)).await;
    sender.ping_pong().await;
    receiver.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_over_the_rate_limit_are_rejected_with_4301_and_the_connection_kept() {
    let mut app: AppConfig = app();
    app.client_events_per_second = 2;
    let server = TestServer::with_app(app).await;
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    const SENT: usize = 20;
    for i in 0..SENT {
        sender.send_client_event("private-chat", "client-burst", json!({"i": i})).await;
    }
    sender.send_json(json!({"event": "pusher:ping", "data": {}})).await;
    let mut rejected = 0;
    loop {
        let frame = sender.next_frame().await;
        if frame["event"] == "pusher:pong" {
            break;
        }
        assert_eq!(frame["event"], "pusher:error", "only rejections may reach the sender: {frame}");
        assert_eq!(frame["data"]["code"], json!(4301), "{frame}");
        rejected += 1;
    }
    assert!(rejected > 0, "{SENT} client events at once must exceed 2 per second");
    assert!(rejected < SENT, "some client events must be accepted within the limit");

    // The receiver got exactly the accepted ones, then the sentinel.
    server.api().trigger_one("private-chat", "sentinel", "{}").await;
    let mut delivered = 0;
    loop {
        let frame = receiver.next_frame().await;
        if frame["event"] == "sentinel" {
            break;
        }
        assert_eq!(frame["event"], "client-burst", "{frame}");
        delivered += 1;
    }
    assert_eq!(delivered + rejected, SENT, "every client event is either delivered or rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_data_over_the_payload_limit_is_rejected_with_null_code() {
    let mut app = app();
    app.max_event_payload_bytes = 100;
    let server = TestServer::with_app(app).await;
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender.send_client_event("private-chat", "client-big", json!("x".repeat(200))).await;
    sender.expect_error_code(None).await;
    sender.ping_pong().await;
    receiver.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_without_the_client_prefix_from_clients_are_ignored() {
    let server = TestServer::start().await;
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender.send_client_event("private-chat", "typing", json!({})).await;
    sender.ping_pong().await;
    receiver.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_publish_pusher_internal_events() {
    let server = TestServer::start().await;
    let (mut sender, mut receiver) = pair_on(&server, "presence-room").await;
    sender.send_client_event("presence-room", "pusher_internal:member_removed", json!({"user_id": "2"})).await;
    sender.ping_pong().await;
    receiver.ping_pong().await;
}
