//! pusher-js's HTTP fallback transports (`xhr_streaming`, `xhr_polling`) driven through the raw
//! protocol with a real HTTP client: open, handshake, subscribe, events from the HTTP API,
//! client events, ping/pong, refusals, expiry, the streaming byte limit, CORS and the drain.

mod common;
#[path = "support/xhr.rs"]
mod xhr;

use common::{app, config_with, data_of, TestServer, APP_KEY, APP_SECRET};
use herald_protocol::signature::{auth_token, channel_string_to_sign};
use serde_json::{json, Value};
use xhr::{Line, LineStream, XhrClient};

fn client(server: &TestServer, session: &str) -> XhrClient {
    XhrClient::new(server.addr, APP_KEY, session)
}

/// Opens a streaming session; returns the stream and the socket id.
async fn open_stream(server: &TestServer, session: &str) -> (XhrClient, LineStream, String) {
    let client = client(server, session);
    let mut stream = client.stream().await;
    assert_eq!(stream.next_line().await, Some(Line::Open), "the first line opens the session");
    let established = stream.expect_event("pusher:connection_established").await;
    let socket_id = data_of(&established)["socket_id"].as_str().expect("socket_id").to_string();
    (client, stream, socket_id)
}

fn subscribe(channel: &str, auth: Option<String>, channel_data: Option<&str>) -> Value {
    let mut data = json!({"channel": channel, "auth": auth.unwrap_or_default()});
    if let Some(channel_data) = channel_data {
        data["channel_data"] = json!(channel_data);
    }
    json!({"event": "pusher:subscribe", "data": data})
}

fn auth(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    auth_token(APP_KEY, APP_SECRET, &channel_string_to_sign(socket_id, channel, channel_data))
}

#[tokio::test]
async fn streaming_session_opens_and_receives_an_event_triggered_through_the_api() {
    let server = TestServer::start().await;
    let (client, mut stream, socket_id) = open_stream(&server, "1/stream01").await;
    assert!(common::is_socket_id(&socket_id), "{socket_id}");
    assert_eq!(client.send(&[subscribe("news", None, None)]).await, 204);
    let ok = stream.expect_event("pusher_internal:subscription_succeeded").await;
    assert_eq!(ok["channel"], "news");
    server.api().trigger_one("news", "headline", r#"{"n":1}"#).await;
    let event = stream.expect_event("headline").await;
    assert_eq!(event, common::event_frame("news", "headline", r#"{"n":1}"#));
}

#[tokio::test]
async fn polling_session_gets_open_and_handshake_then_events_on_later_polls() {
    let server = TestServer::start().await;
    let client = client(&server, "2/poll0001");
    let (status, lines) = client.poll().await;
    assert_eq!(status, 200);
    assert_eq!(lines.first(), Some(&Line::Open), "{lines:?}");
    let Some(Line::Messages(messages)) = lines.get(1) else { panic!("no handshake in {lines:?}") };
    assert_eq!(messages[0]["event"], "pusher:connection_established");
    assert_eq!(client.send(&[subscribe("ticks", None, None)]).await, 204);
    let (_, lines) = client.poll().await;
    let Some(Line::Messages(messages)) = lines.first() else { panic!("no messages in {lines:?}") };
    assert_eq!(messages[0]["event"], "pusher_internal:subscription_succeeded");
    server.api().trigger_one("ticks", "tick", "1").await;
    let (_, lines) = client.poll().await;
    assert_eq!(lines, vec![Line::Messages(vec![common::event_frame("ticks", "tick", "1")])]);
}

#[tokio::test]
async fn client_events_on_a_private_channel_cross_between_http_and_websocket() {
    let server = TestServer::start().await;
    let (client, mut stream, socket_id) = open_stream(&server, "3/private1").await;
    let channel = "private-room";
    assert_eq!(client.send(&[subscribe(channel, Some(auth(&socket_id, channel, None)), None)]).await, 204);
    stream.expect_event("pusher_internal:subscription_succeeded").await;
    let mut ws = server.connect().await;
    ws.subscribe_private(channel).await;

    let hello = json!({"event": "client-hello", "channel": channel, "data": {"from": "http"}});
    assert_eq!(client.send(&[hello]).await, 204);
    let got = ws.expect_event("client-hello").await;
    assert_eq!(data_of(&got), json!({"from": "http"}));

    ws.send_client_event(channel, "client-reply", json!({"from": "ws"})).await;
    let got = stream.expect_event("client-reply").await;
    assert_eq!(data_of(&got), json!({"from": "ws"}));
}

#[tokio::test]
async fn a_private_subscription_with_a_wrong_signature_is_refused_with_4009() {
    let server = TestServer::start().await;
    let (client, mut stream, socket_id) = open_stream(&server, "3/private2").await;
    let wrong = auth(&socket_id, "private-other", None);
    assert_eq!(client.send(&[subscribe("private-room", Some(wrong), None)]).await, 204);
    let error = stream.expect_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4009, "{error}");
}

#[tokio::test]
async fn client_pusher_ping_is_answered_with_pusher_pong() {
    let server = TestServer::start().await;
    let (client, mut stream, _) = open_stream(&server, "4/pingpong").await;
    assert_eq!(client.send(&[json!({"event": "pusher:ping", "data": {}})]).await, 204);
    assert_eq!(stream.next_message().await, json!({"event": "pusher:pong", "data": "{}"}));
    // pusher-js's own transport ping is an empty send: only activity, answered 204.
    assert_eq!(client.send_raw("[]").await, 204);
}

#[tokio::test]
async fn a_quiet_session_is_pinged_kept_by_its_pong_and_closed_with_4201_without_one() {
    let mut quick = app();
    quick.activity_timeout_seconds = 1;
    let mut config = config_with(vec![quick]);
    config.server.pong_timeout_seconds = 1;
    let server = TestServer::with_config(config).await;
    let (client, mut stream, _) = open_stream(&server, "5/keepaliv").await;
    assert_eq!(stream.expect_event("pusher:ping").await["data"], "{}");
    assert_eq!(client.send(&[json!({"event": "pusher:pong", "data": {}})]).await, 204);
    // Answered: the next thing is another ping, not a close.
    stream.expect_event("pusher:ping").await;
    let error = stream.expect_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4201, "{error}");
    assert_eq!(stream.expect_close().await.0, 4201);
    assert_eq!(stream.next_line().await, None, "the response ends after the close");
}

#[tokio::test]
async fn a_sent_message_over_the_size_limit_closes_the_session_with_1009() {
    let server = TestServer::start().await;
    let (client, mut stream, _) = open_stream(&server, "4/toolarge").await;
    let huge = serde_json::to_string(&["x".repeat(server.config.server.max_message_bytes * 7)]).unwrap();
    assert_eq!(client.send_raw(huge).await, 413, "a body past one escaped message is refused unread");
    let data = "x".repeat(server.config.server.max_message_bytes);
    let big = json!({"event": "client-big", "channel": "private-x", "data": data});
    assert_eq!(client.send(&[big]).await, 204);
    assert_eq!(stream.expect_close().await.0, 1009);
}

#[tokio::test]
async fn a_send_to_an_unknown_session_is_404() {
    let server = TestServer::start().await;
    assert_eq!(client(&server, "6/nobodyyy").send(&[json!({"event": "pusher:ping", "data": {}})]).await, 404);
}

#[tokio::test]
async fn an_unknown_app_key_is_refused_with_4001_as_on_a_websocket() {
    let server = TestServer::start().await;
    let (status, lines) = XhrClient::new(server.addr, "no-such-key", "7/unknown1").poll().await;
    assert_eq!(status, 200);
    assert_eq!(lines[0], Line::Open);
    let Line::Messages(messages) = &lines[1] else { panic!("no error message in {lines:?}") };
    assert_eq!(messages[0]["event"], "pusher:error");
    assert_eq!(messages[0]["data"]["code"], 4001);
    assert!(matches!(lines[2], Line::Close(4001, _)), "{lines:?}");
}

#[tokio::test]
async fn a_session_without_requests_expires_and_leaves_its_presence_channel() {
    let mut quick = app();
    quick.activity_timeout_seconds = 1;
    let server = TestServer::with_app(quick).await;
    expires_and_leaves(&server).await;
}

#[tokio::test]
async fn a_vanished_page_ends_its_session_after_the_detached_limit_not_the_activity_timeout() {
    // The activity timeout stays at its 120 s default: only the detached limit can end it.
    let mut config = config_with(vec![app()]);
    config.server.http_session_detached_seconds = 1;
    let server = TestServer::with_config(config).await;
    expires_and_leaves(&server).await;
}

/// A presence member over HTTP whose client stops polling is removed when its session ends.
async fn expires_and_leaves(server: &TestServer) {
    let mut watcher = server.connect().await;
    let channel = "presence-lobby";
    watcher.subscribe_presence(channel, r#"{"user_id":"watcher"}"#).await;

    let client = client(server, "8/expire01");
    let (_, lines) = client.poll().await;
    let Some(Line::Messages(messages)) = lines.get(1) else { panic!("no handshake in {lines:?}") };
    let socket_id = data_of(&messages[0])["socket_id"].as_str().expect("socket_id").to_string();
    let member = r#"{"user_id":"http-user"}"#;
    let join = subscribe(channel, Some(auth(&socket_id, channel, Some(member))), Some(member));
    assert_eq!(client.send(&[join]).await, 204);
    let added = watcher.expect_event("pusher_internal:member_added").await;
    assert_eq!(data_of(&added)["user_id"], "http-user");

    // No poll for longer than the activity timeout: the session ends and leaves the channel.
    // The watcher answers its own keepalive pings meanwhile (each wait is bounded).
    let removed = loop {
        let frame = watcher.next_frame().await;
        match frame["event"].as_str() {
            Some("pusher:ping") => watcher.send_json(json!({"event": "pusher:pong", "data": {}})).await,
            Some("pusher_internal:member_removed") => break frame,
            _ => panic!("expected member_removed, got {frame}"),
        }
    };
    assert_eq!(data_of(&removed)["user_id"], "http-user");
    assert_eq!(client.send(&[json!({"event": "pusher:ping", "data": {}})]).await, 404);
}

#[tokio::test]
async fn a_streaming_response_past_pusher_js_limit_hands_over_to_the_next_without_loss() {
    let server = TestServer::start().await;
    let (client, mut first, _) = open_stream(&server, "9/limit001").await;
    assert_eq!(client.send(&[subscribe("bulk", None, None)]).await, 204);
    first.expect_event("pusher_internal:subscription_succeeded").await;
    let payload = "x".repeat(8_000);
    let api = server.api();
    for n in 0..40 {
        api.trigger_one("bulk", &format!("e{n}"), &payload).await;
    }
    let mut seen = Vec::new();
    // The server stops writing once the response is past 256 KiB; read up to there.
    while first.read <= 256 * 1024 {
        seen.push(first.expect_event(&format!("e{}", seen.len())).await);
    }
    assert!(seen.len() < 40, "the first response stopped before the last event");
    let mut second = client.stream().await;
    while seen.len() < 40 {
        let message = second.next_message().await;
        assert_eq!(message["event"], format!("e{}", seen.len()), "events continue in order, none lost or repeated");
        seen.push(message);
    }
}

#[tokio::test]
async fn cors_reflects_an_allowed_origin_and_hides_the_session_from_others() {
    let mut strict = app();
    strict.allowed_origins = vec!["allowed.test".into()];
    let server = TestServer::with_app(strict).await;
    let client = client(&server, "10/corsabcd");
    let preflight = [("origin", "http://allowed.test"), ("access-control-request-method", "POST")];
    let response = client.request("OPTIONS", "xhr_streaming", None, &preflight, "").await;
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["access-control-allow-origin"], "http://allowed.test");
    assert_eq!(response.headers()["access-control-allow-credentials"], "true");
    assert!(response.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));

    let evil = [("origin", "http://evil.test"), ("access-control-request-method", "POST")];
    let response = client.request("OPTIONS", "xhr_streaming", None, &evil, "").await;
    assert!(response.headers().get("access-control-allow-origin").is_none());
    let response = client.request("POST", "xhr", Some(xhr::QUERY), &evil[..1], "").await;
    assert!(response.headers().get("access-control-allow-origin").is_none());
    let mut refused = LineStream::new(response.into_body());
    assert_eq!(refused.next_line().await, Some(Line::Open));
    assert_eq!(refused.expect_event("pusher:error").await["data"]["code"], 4009);
}

#[tokio::test]
async fn an_http_session_counts_against_the_connection_quota() {
    let mut one = app();
    one.max_connections = Some(1);
    let server = TestServer::with_app(one).await;
    let _held = open_stream(&server, "11/quota001").await;
    let (_, lines) = client(&server, "11/quota002").poll().await;
    assert!(matches!(lines.get(2), Some(Line::Close(4004, _))), "{lines:?}");
    let mut ws = server.open(&server.ws_url(APP_KEY), None).await;
    ws.expect_refusal(4004).await;
}

#[tokio::test]
async fn the_drain_closes_streaming_and_polling_sessions_with_4200() {
    let mut config = config_with(vec![app()]);
    // The listener stays open while sessions remain, for at most this window.
    config.server.drain_window_seconds = 2;
    let server = TestServer::with_config(config).await;
    let (_client, mut stream, _) = open_stream(&server, "12/drain001").await;
    let polling = client(&server, "12/drain002");
    assert_eq!(polling.poll().await.0, 200, "a polling session, between two polls");
    server.begin_shutdown();
    // New sessions are refused during the drain (the two sessions keep the listener open).
    let (_, lines) = client(&server, "12/drain003").poll().await;
    assert!(matches!(lines.last(), Some(Line::Close(4200, _))), "{lines:?}");
    // The polling session's close waits for its next poll.
    let (_, lines) = polling.poll().await;
    assert!(matches!(lines.last(), Some(Line::Close(4200, _))), "{lines:?}");
    assert_eq!(stream.expect_event("pusher:error").await["data"]["code"], 4200);
    assert_eq!(stream.expect_close().await.0, 4200);
}
