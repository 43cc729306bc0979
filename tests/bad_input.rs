//! Malformed and unexpected input from clients: the offending connection is answered or closed
//! as the contract says, and the server keeps serving everyone else.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// The server still accepts and serves a fresh client.
async fn assert_server_still_serves(server: &TestServer) {
    let mut fresh = server.connect().await;
    fresh.subscribe("still-alive").await;
    fresh.ping_pong().await;
}

async fn expect_invalid_message_format(client: &mut Client) {
    let data = client.expect_error_code(None).await;
    let message = data["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Invalid message format"), "message: {message:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_gets_invalid_message_format_error_and_connection_is_kept() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_text("{not json").await;
    expect_invalid_message_format(&mut client).await;
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_without_event_gets_invalid_message_format_error() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"data": {"channel": "x"}})).await;
    expect_invalid_message_format(&mut client).await;
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_that_is_not_an_object_gets_invalid_message_format_error() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    for text in ["[1,2,3]", "\"pusher:ping\"", "42", "null"] {
        client.send_text(text).await;
        expect_invalid_message_format(&mut client).await;
    }
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_are_ignored() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let ping = json!({"event": "pusher:ping", "data": {}}).to_string();
    client.ws.send(Message::binary(ping.into_bytes())).await.expect("send binary");
    client.ws.send(Message::binary(vec![0xff, 0x00, 0x13])).await.expect("send binary");
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_message_bytes_closes_with_1009() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let padding = "x".repeat(10_001);
    client.send_json(json!({"event": "client-big", "channel": "private-x", "data": padding})).await;
    client.expect_close(1009).await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_just_under_max_message_bytes_is_accepted() {
    let mut config = config_with(vec![app()]);
    config.server.max_message_bytes = 2_000;
    let server = TestServer::with_config(config).await;
    let mut client = server.connect().await;
    let head = json!({"event": "pusher:ping", "data": {"pad": ""}}).to_string();
    let padded = json!({"event": "pusher:ping", "data": {"pad": "p".repeat(2_000 - head.len())}}).to_string();
    assert_eq!(padded.len(), 2_000);
    client.send_text(padded).await;
    assert_eq!(client.next_frame().await, json!({"event": "pusher:pong", "data": "{}"}));
    client.send_text(format!("{}{}", " ".repeat(1_001), " ".repeat(1_000))).await;
    client.expect_close(1009).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pusher_events_are_ignored() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"event": "pusher:made_up", "data": {}})).await;
    client.send_json(json!({"event": "pusher:subscribe_all", "data": "nonsense"})).await;
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_client_events_from_clients_are_ignored() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"event": "my-event", "channel": "news", "data": {}})).await;
    client.send_json(json!({"event": "my-event"})).await;
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

/// The contract leaves the reply open (an error frame or nothing); the connection must survive.
async fn assert_connection_kept_allowing_errors(client: &mut Client) {
    client.send_json(json!({"event": "pusher:ping", "data": {}})).await;
    loop {
        let frame = client.next_frame().await;
        if frame == json!({"event": "pusher:pong", "data": "{}"}) {
            return;
        }
        assert_eq!(frame["event"], "pusher:error", "only an error may precede the pong: {frame}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_without_a_channel_keeps_the_connection() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"event": "pusher:subscribe", "data": {}})).await;
    client.send_json(json!({"event": "pusher:subscribe"})).await;
    client.send_json(json!({"event": "pusher:subscribe", "data": {"channel": 42}})).await;
    assert_connection_kept_allowing_errors(&mut client).await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_without_a_channel_keeps_the_connection() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"event": "client-orphan", "data": {}})).await;
    assert_connection_kept_allowing_errors(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_disconnects_mid_handshake_do_not_disturb_the_server() {
    let server = TestServer::start().await;
    let raw = tokio::net::TcpStream::connect(server.addr).await.expect("tcp connect");
    drop(raw);
    let half = tokio::net::TcpStream::connect(server.addr).await.expect("tcp connect");
    {
        use tokio::io::AsyncWriteExt;
        let mut half = half;
        half.write_all(b"GET /app/key1?protocol=7 HTTP/1.1\r\nHost: x\r\n").await.expect("write half a request");
    }
    assert_server_still_serves(&server).await;
}
