//! The WebSocket handshake, refusals, and keepalive (contract: "WebSocket").

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_frame_is_connection_established_with_socket_id_and_default_activity_timeout() {
    let server = TestServer::start().await;
    let mut client = server.open(&server.ws_url(APP_KEY), None).await;
    let frame = client.next_frame().await;
    assert_eq!(frame["event"], "pusher:connection_established", "{frame}");
    let data_text = frame["data"].as_str().unwrap_or_else(|| panic!("data must be a JSON string: {frame}"));
    let data: serde_json::Value = serde_json::from_str(data_text).expect("data string holds JSON");
    let socket_id = data["socket_id"].as_str().unwrap_or_else(|| panic!("socket_id must be a string: {data}"));
    assert!(is_socket_id(socket_id), "socket_id {socket_id:?} must match ^\\d+\\.\\d+$");
    assert_eq!(data["activity_timeout"], json!(120), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_timeout_in_handshake_is_the_apps_configured_value() {
    let mut app = app();
    app.activity_timeout_seconds = 30;
    let server = TestServer::with_app(app).await;
    let mut client = server.open(&server.ws_url(APP_KEY), None).await;
    let data = client.await_established().await;
    assert_eq!(data["activity_timeout"], json!(30), "{data}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_gets_a_distinct_socket_id() {
    let server = TestServer::start().await;
    let a = server.connect().await;
    let b = server.connect().await;
    assert_ne!(a.socket_id, b.socket_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_key_is_refused_with_4001() {
    let server = TestServer::start().await;
    let mut client = server.open(&server.ws_url("no-such-key"), None).await;
    client.expect_refusal(4001).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_app_is_refused_with_4003() {
    let mut app = app();
    app.enabled = false;
    let server = TestServer::with_app(app).await;
    let mut client = server.open(&server.ws_url(APP_KEY), None).await;
    client.expect_refusal(4003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_over_max_connections_is_refused_with_4004() {
    let mut app = app();
    app.max_connections = Some(2);
    let server = TestServer::with_app(app).await;
    let _first = server.connect().await;
    let _second = server.connect().await;
    let mut third = server.open(&server.ws_url(APP_KEY), None).await;
    third.expect_refusal(4004).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_that_is_not_an_integer_is_refused_with_4007() {
    let server = TestServer::start().await;
    let mut client = server.open(&server.ws_url_with_query(APP_KEY, "protocol=abc&client=js"), None).await;
    client.expect_refusal(4007).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_below_4_is_refused_with_4007() {
    let server = TestServer::start().await;
    let mut client = server.open(&server.ws_url_with_query(APP_KEY, "protocol=3&client=js"), None).await;
    client.expect_refusal(4007).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_above_7_is_accepted() {
    let server = TestServer::start().await;
    let mut client = server.open(&server.ws_url_with_query(APP_KEY, "protocol=8"), None).await;
    client.await_established().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_protocol_is_accepted_when_not_strict() {
    let server = TestServer::start().await;
    let mut client = server.open(&server.ws_url_with_query(APP_KEY, "client=js&version=8.6.0"), None).await;
    client.await_established().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_protocol_is_refused_with_4008_in_strict_mode() {
    let mut config = config_with(vec![app()]);
    config.server.strict_protocol_version = true;
    let server = TestServer::with_config(config).await;
    let mut client = server.open(&server.ws_url_with_query(APP_KEY, "client=js&version=8.6.0"), None).await;
    client.expect_refusal(4008).await;
    let mut with_protocol = server.open(&server.ws_url(APP_KEY), None).await;
    with_protocol.await_established().await;
}

async fn app_allowing(origins: &[&str]) -> TestServer {
    let mut app = app();
    app.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
    TestServer::with_app(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_not_in_allowed_origins_is_refused_with_4009() {
    let server = app_allowing(&["example.com"]).await;
    let mut client = server.open(&server.ws_url(APP_KEY), Some("https://evil.test")).await;
    client.expect_refusal(4009).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_whose_host_is_allowed_is_accepted() {
    let server = app_allowing(&["example.com"]).await;
    let mut client = server.open(&server.ws_url(APP_KEY), Some("https://example.com")).await;
    client.await_established().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_matching_a_wildcard_entry_is_accepted() {
    let server = app_allowing(&["*.example.com"]).await;
    let mut allowed = server.open(&server.ws_url(APP_KEY), Some("https://app.example.com:8443")).await;
    allowed.await_established().await;
    let mut refused = server.open(&server.ws_url(APP_KEY), Some("https://example.org")).await;
    refused.expect_refusal(4009).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_origin_is_refused_when_origins_are_restricted() {
    let server = app_allowing(&["example.com"]).await;
    let mut client = server.open(&server.ws_url(APP_KEY), None).await;
    client.expect_refusal(4009).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_origin_is_accepted_by_default() {
    let server = TestServer::start().await;
    let mut client = server.open(&server.ws_url(APP_KEY), Some("https://anything.test")).await;
    client.await_established().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_on_an_unknown_path_is_http_404() {
    let server = TestServer::start().await;
    let status = server.upgrade_status(&format!("ws://{}/nope/{APP_KEY}?protocol=7", server.addr)).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_prefix_moves_the_websocket_endpoint() {
    let mut config = config_with(vec![app()]);
    config.server.path_prefix = "/ws".into();
    let server = TestServer::with_config(config).await;
    let mut client = server.open(&server.ws_url(APP_KEY), None).await;
    client.await_established().await;
    let status = server.upgrade_status(&format!("ws://{}/app/{APP_KEY}?protocol=7", server.addr)).await;
    assert_eq!(status, 404, "without the prefix the path is unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_ping_is_answered_with_pusher_pong() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_ping_control_frame_is_answered_with_pong() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.ws.send(Message::Ping(b"hello".as_slice().into())).await.expect("send ping");
    match client.next_incoming().await {
        Incoming::Pong(payload) => assert_eq!(payload.as_ref(), b"hello"),
        other => panic!("expected a Pong control frame, got {other:?}"),
    }
}

/// Pings after 1 s of silence and closes 1 s after an unanswered ping.
async fn fast_keepalive_server() -> TestServer {
    let mut app = app();
    app.activity_timeout_seconds = 1;
    let mut config = config_with(vec![app]);
    config.server.pong_timeout_seconds = 1;
    TestServer::with_config(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_receives_pusher_ping_after_activity_timeout() {
    let server = fast_keepalive_server().await;
    let mut client = server.connect().await;
    let frame = client.next_frame().await;
    assert_eq!(frame, json!({"event": "pusher:ping", "data": "{}"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_that_does_not_answer_the_server_ping_is_closed_with_4201() {
    let server = fast_keepalive_server().await;
    let mut client = server.connect().await;
    client.expect_event("pusher:ping").await;
    // A pusher:error 4201 frame before the close is allowed (PROTOCOL.md §2.1), not required.
    match client.next_incoming().await {
        Incoming::Frame(frame) => {
            assert_eq!(frame["event"], "pusher:error", "{frame}");
            assert_eq!(frame["data"]["code"], json!(4201), "{frame}");
            client.expect_close(4201).await;
        }
        Incoming::Close(code) => assert_eq!(code, Some(4201)),
        other => panic!("expected close 4201, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_the_server_ping_keeps_the_connection_open() {
    let server = fast_keepalive_server().await;
    let mut client = server.connect().await;
    client.expect_event("pusher:ping").await;
    client.send_json(json!({"event": "pusher:pong", "data": {}})).await;
    // Still open: after another idle period the server pings again instead of closing.
    let frame = client.next_frame().await;
    assert_eq!(frame, json!({"event": "pusher:ping", "data": "{}"}));
    client.ping_pong().await;
}
