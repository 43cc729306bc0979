//! Subscribing and unsubscribing: public, private, encrypted, names (contract: "Subscribe",
//! "Subscribe failures", "Unsubscribe").

mod common;

use common::*;
use serde_json::json;

/// Proves `client` is not subscribed to `channel`: an event triggered there is not delivered,
/// the sentinel triggered on `sentinel_channel` (which `client` has joined) arrives next.
async fn assert_not_receiving(client: &mut Client, api: &Api, channel: &str, sentinel_channel: &str) {
    api.trigger_one(channel, "should-not-arrive", "{}").await;
    api.trigger_one(sentinel_channel, "sentinel", "{}").await;
    assert_eq!(client.next_frame().await, event_frame(sentinel_channel, "sentinel", "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_subscribe_succeeds_with_empty_object_data_string() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_subscribe("my-channel", Some(""), None).await;
    let frame = client.next_frame().await;
    assert_eq!(
        frame,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "my-channel", "data": "{}"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_subscribe_without_auth_field_succeeds() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_subscribe("my-channel", None, None).await;
    client.expect_subscribed("my-channel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_client_receives_events_triggered_on_the_channel() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe("my-channel").await;
    server.api().trigger_one("my-channel", "my-event", r#"{"message":"hello"}"#).await;
    assert_eq!(client.next_frame().await, event_frame("my-channel", "my-event", r#"{"message":"hello"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_with_valid_signature_succeeds() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let auth = client.auth_for("private-orders", None);
    client.send_subscribe("private-orders", Some(&auth), None).await;
    let frame = client.next_frame().await;
    assert_eq!(
        frame,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "private-orders", "data": "{}"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_with_bad_signature_is_rejected_with_4009_and_connection_kept() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut client = server.connect().await;
    client.subscribe("sentinel").await;
    client.send_subscribe("private-orders", Some(&format!("{APP_KEY}:{}", "0".repeat(64))), None).await;
    client.expect_error_code(Some(4009)).await;
    assert_not_receiving(&mut client, &api, "private-orders", "sentinel").await;
    client.subscribe_private("private-orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_signed_for_another_socket_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let other = server.connect().await;
    let auth = other.auth_for("private-orders", None);
    client.send_subscribe("private-orders", Some(&auth), None).await;
    client.expect_error_code(Some(4009)).await;
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_with_wrong_key_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    // Right signature, wrong key part.
    let auth = client.auth_for("private-orders", None).replacen(APP_KEY, "otherkey", 1);
    client.send_subscribe("private-orders", Some(&auth), None).await;
    client.expect_error_code(Some(4009)).await;
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_signed_with_another_secret_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.secret = "not-the-secret".into();
    let auth = client.auth_for("private-orders", None);
    client.send_subscribe("private-orders", Some(&auth), None).await;
    client.expect_error_code(Some(4009)).await;
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_with_malformed_auth_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    for auth in ["no-colon-here", ":", &format!("{APP_KEY}:"), ""] {
        client.send_subscribe("private-orders", Some(auth), None).await;
        let data = client.expect_error().await;
        assert_eq!(data["code"], json!(4009), "auth {auth:?}: {data}");
    }
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_without_auth_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_subscribe("private-orders", None, None).await;
    client.expect_error_code(Some(4009)).await;
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_signed_over_channel_data_is_accepted_when_channel_data_is_sent() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let channel_data = r#"{"user_id":"7"}"#;
    let auth = client.auth_for("private-orders", Some(channel_data));
    client.send_subscribe("private-orders", Some(&auth), Some(channel_data)).await;
    client.expect_subscribed("private-orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_subscribe_with_plain_signature_is_accepted_when_channel_data_is_sent() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let auth = client.auth_for("private-orders", None);
    client.send_subscribe("private-orders", Some(&auth), Some(r#"{"user_id":"7"}"#)).await;
    client.expect_subscribed("private-orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_subscribe_uses_the_private_signature() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe_private("private-encrypted-orders").await;
    let bad = format!("{APP_KEY}:{}", "1".repeat(64));
    client.send_subscribe("private-encrypted-other", Some(&bad), None).await;
    client.expect_error_code(Some(4009)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_channel_relays_event_data_untouched() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe_private("private-encrypted-orders").await;
    let ciphertext = r#"{"nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX","ciphertext":"c2VjcmV0IGJ5dGVz"}"#;
    server.api().trigger_one("private-encrypted-orders", "secret-event", ciphertext).await;
    assert_eq!(client.next_frame().await, event_frame("private-encrypted-orders", "secret-event", ciphertext));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_channel_names_are_rejected_with_4009_and_connection_kept() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    for name in ["has space", "emoji-\u{1F600}", "#server-internal", "slash/name", "star*", ""] {
        client.send_subscribe(name, Some(""), None).await;
        let data = client.expect_error().await;
        assert_eq!(data["code"], json!(4009), "channel {name:?}: {data}");
    }
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_allowed_channel_name_character_is_accepted() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe("AZaz09_-=@,.;").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_name_of_164_characters_is_accepted_and_165_rejected() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let longest = "a".repeat(164);
    client.subscribe(&longest).await;
    client.send_subscribe(&"a".repeat(165), Some(""), None).await;
    client.expect_error_code(Some(4009)).await;
    let private_too_long = format!("private-{}", "b".repeat(157));
    let auth = client.auth_for(&private_too_long, None);
    client.send_subscribe(&private_too_long, Some(&auth), None).await;
    client.expect_error_code(Some(4009)).await;
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_name_length_limit_follows_configuration() {
    let mut config = config_with(vec![app()]);
    config.server.max_channel_name_length = 10;
    let server = TestServer::with_config(config).await;
    let mut client = server.connect().await;
    client.subscribe("abcdefghij").await;
    client.send_subscribe("abcdefghijk", Some(""), None).await;
    client.expect_error_code(Some(4009)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribed_client_no_longer_receives_events() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut client = server.connect().await;
    client.subscribe("news").await;
    client.subscribe("sentinel").await;
    client.unsubscribe("news").await;
    // Unsubscribe has no reply; the pong proves the server has processed it.
    client.ping_pong().await;
    assert_not_receiving(&mut client, &api, "news", "sentinel").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_from_an_unknown_channel_is_ignored_without_reply() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.unsubscribe("never-joined").await;
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_after_unsubscribe_receives_events_again() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe("news").await;
    client.unsubscribe("news").await;
    client.subscribe("news").await;
    server.api().trigger_one("news", "headline", "{}").await;
    assert_eq!(client.next_frame().await, event_frame("news", "headline", "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribing_twice_replies_succeeded_again_and_delivers_each_event_once() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut client = server.connect().await;
    client.subscribe("news").await;
    client.subscribe("news").await;
    api.trigger_one("news", "first", "{}").await;
    api.trigger_one("news", "second", "{}").await;
    assert_eq!(client.next_frame().await, event_frame("news", "first", "{}"));
    assert_eq!(client.next_frame().await, event_frame("news", "second", "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_data_as_json_string_is_accepted() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client
        .send_json(json!({"event": "pusher:subscribe", "data": json!({"channel": "news", "auth": ""}).to_string()}))
        .await;
    client.expect_subscribed("news").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_to_user_channel_is_refused_with_4009_when_not_signed_in() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_subscribe("#server-to-user-42", Some(""), None).await;
    client.expect_error_code(Some(4009)).await;
    client.ping_pong().await;
}

fn subscription_count_frame(channel: &str, count: u64) -> serde_json::Value {
    json!({
        "event": "pusher_internal:subscription_count",
        "channel": channel,
        "data": json!({"subscription_count": count}).to_string(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_is_broadcast_to_every_subscriber_when_the_app_enables_it() {
    let mut app = app();
    app.subscription_count = true;
    let server = TestServer::with_app(app).await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    first.subscribe("news").await;
    assert_eq!(first.next_frame().await, subscription_count_frame("news", 1));
    second.subscribe("news").await;
    assert_eq!(second.next_frame().await, subscription_count_frame("news", 2));
    assert_eq!(first.next_frame().await, subscription_count_frame("news", 2));
    second.unsubscribe("news").await;
    assert_eq!(first.next_frame().await, subscription_count_frame("news", 1));
    second.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_is_not_sent_when_the_app_leaves_it_off() {
    let server = TestServer::start().await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    first.subscribe("news").await;
    second.subscribe("news").await;
    first.ping_pong().await;
    second.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_count_is_not_sent_on_presence_channels() {
    let mut app = app();
    app.subscription_count = true;
    let server = TestServer::with_app(app).await;
    let mut client = server.connect().await;
    client.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    client.ping_pong().await;
}
