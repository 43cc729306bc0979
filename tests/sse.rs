//! Server-Sent Events on `GET /app/{key}/events` (docs/sse.md), through a real HTTP client:
//! the stream's first messages, events from the HTTP API, private and presence channels with
//! the subscription signature, refusals with their status and JSON, keep-alive comments,
//! leaving on disconnect, quotas, origins, shutdown and slow consumers.

mod common;
#[path = "support/sse.rs"]
mod sse;

use std::time::{Duration, Instant};

use common::*;
use herald::config::AppConfig;
use herald_protocol::signature::{auth_token, channel_string_to_sign};
use serde_json::{json, Value};
use sse::{eventually, open, refused, Block};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn url(server: &TestServer, query: &str) -> String {
    format!("http://{}/app/{APP_KEY}/events?{query}", server.addr)
}

/// What the app's auth endpoint would answer for `socket_id` on `channel`.
fn token(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    auth_token(APP_KEY, APP_SECRET, &channel_string_to_sign(socket_id, channel, channel_data))
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Asserts a JSON refusal with `status` whose error mentions `needle`.
fn assert_refusal(refusal: &sse::Refusal, status: u16, needle: &str) {
    assert_eq!(refusal.status, status, "{:?}", refusal.body);
    assert_eq!(refusal.headers["content-type"], "application/json");
    let error = refusal.body["error"].as_str().unwrap_or_else(|| panic!("no error string: {}", refusal.body));
    assert!(error.contains(needle), "error {error:?} should mention {needle:?}");
}

async fn occupied(server: &TestServer, channel: &str) -> (bool, u64) {
    let (status, body) = server.api().get(&format!("/channels/{channel}"), &[("info", "subscription_count")]).await;
    assert_eq!(status, 200, "{body}");
    (body["occupied"] == true, body["subscription_count"].as_u64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_opens_with_a_retry_hint_then_connection_established_then_its_subscriptions() {
    let server = TestServer::start().await;
    let mut stream = open(&url(&server, "channels=a,b&channel=c"), &[]).await;
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert_eq!(stream.next_block().await, Block::Retry(1000));
    let socket_id = stream.expect_established().await;
    assert!(is_socket_id(&socket_id), "{socket_id}");
    for channel in ["a", "b", "c"] {
        stream.expect_subscribed(channel).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_triggered_through_the_api_arrives_as_one_data_message() {
    let server = TestServer::start().await;
    let mut stream = open(&url(&server, "channels=news"), &[]).await;
    stream.expect_established().await;
    stream.expect_subscribed("news").await;
    server.api().trigger_one("news", "headline", r#"{"title":"line\nbreak"}"#).await;
    assert_eq!(stream.next_frame().await, event_frame("news", "headline", r#"{"title":"line\nbreak"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_channel_without_a_valid_token_is_refused_with_json() {
    let server = TestServer::start().await;
    let channel = "private-orders";
    let no_socket = refused(&url(&server, &format!("channel={channel}&auth=x:y")), &[]).await;
    assert_refusal(&no_socket, 400, "socket_id");
    let no_auth = refused(&url(&server, &format!("channel={channel}&socket_id=12.34")), &[]).await;
    assert_refusal(&no_auth, 401, "auth[private-orders]");
    let other_socket = token("12.35", channel, None);
    let q = format!("channel={channel}&socket_id=12.34&auth={}", enc(&other_socket));
    assert_refusal(&refused(&url(&server, &q), &[]).await, 401, "Invalid signature");
    let q = format!("channel={channel}&socket_id=12.34&auth={}", enc("wrong-key:abc"));
    assert_refusal(&refused(&url(&server, &q), &[]).await, 401, "Invalid key");
    let q = format!("channel={channel}&socket_id=1.02&auth={}", enc(&token("1.02", channel, None)));
    assert_refusal(&refused(&url(&server, &q), &[]).await, 400, "socket_id");
    assert_eq!(occupied(&server, channel).await, (false, 0), "a refused stream joins nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_channel_with_a_good_token_streams_its_events() {
    let server = TestServer::start().await;
    let (socket_id, channel) = ("1234.5678", "private-Orders");
    // Bracketed per-channel form, as a client with several private channels sends it.
    let q = format!(
        "channels=news,{channel}&socket_id={socket_id}&auth[{channel}]={}",
        enc(&token(socket_id, channel, None))
    );
    let mut stream = open(&url(&server, &q), &[]).await;
    assert_eq!(stream.expect_established().await, socket_id);
    stream.expect_subscribed("news").await;
    stream.expect_subscribed(channel).await;
    server.api().trigger_one(channel, "shipped", "42").await;
    assert_eq!(stream.next_frame().await, event_frame(channel, "shipped", "42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_socket_id_cannot_be_taken_twice() {
    let server = TestServer::start().await;
    let q = "channel=news&socket_id=77.1";
    let mut first = open(&url(&server, q), &[]).await;
    first.expect_established().await;
    assert_refusal(&refused(&url(&server, q), &[]).await, 409, "in use");
    drop(first);
    eventually("the socket id to be free again", Duration::from_secs(5), || async {
        sse::get(&url(&server, q), &[]).await.status() == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_comments_arrive_on_the_activity_timeout() {
    let server = TestServer::with_app(AppConfig { activity_timeout_seconds: 1, ..app() }).await;
    let mut stream = open(&url(&server, "channel=news"), &[]).await;
    stream.expect_established().await;
    stream.expect_subscribed("news").await;
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(stream.next_block().await, Block::Comment("keep-alive".into()));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(800) && waited < Duration::from_secs(3), "after {waited:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_leaves_its_channels() {
    let server = TestServer::start().await;
    let mut stream = open(&url(&server, "channel=news"), &[]).await;
    stream.expect_established().await;
    stream.expect_subscribed("news").await;
    assert_eq!(occupied(&server, "news").await, (true, 1));
    assert_eq!(server.api().get("/connections", &[]).await.1["connections"], 1);
    drop(stream);
    eventually("news to be vacated", Duration::from_secs(5), || async { !occupied(&server, "news").await.0 }).await;
    assert_eq!(server.api().get("/connections", &[]).await.1["connections"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_channels_join_the_roster_with_channel_data_and_leave_on_disconnect() {
    let server = TestServer::start().await;
    let mut ada = server.connect().await;
    ada.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
    let (socket_id, data) = ("5.6", r#"{"user_id":"bob","user_info":{"via":"sse"}}"#);
    let auth = token(socket_id, "presence-room", Some(data));
    let base = format!("channel=presence-room&socket_id={socket_id}&auth={}", enc(&auth));
    assert_refusal(&refused(&url(&server, &base), &[]).await, 401, "channel_data");
    let mut bob = open(&url(&server, &format!("{base}&channel_data={}", enc(data))), &[]).await;
    bob.expect_established().await;
    let roster: Value =
        serde_json::from_str(bob.expect_subscribed("presence-room").await["data"].as_str().unwrap()).unwrap();
    assert_eq!(roster["presence"]["count"], 2, "{roster}");
    let added = ada.expect_event("pusher_internal:member_added").await;
    assert_eq!(data_of(&added), json!({"user_id": "bob", "user_info": {"via": "sse"}}));
    drop(bob);
    let removed = ada.expect_event("pusher_internal:member_removed").await;
    assert_eq!(data_of(&removed), json!({"user_id": "bob"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_disabled_apps_are_refused_with_json() {
    let disabled = AppConfig { enabled: false, ..AppConfig::new("off", "off-key", "off-secret") };
    let server = TestServer::with_config(config_with(vec![app(), disabled])).await;
    let unknown = refused(&format!("http://{}/app/nope/events?channel=a", server.addr), &[]).await;
    assert_refusal(&unknown, 404, "Unknown app key");
    let off = refused(&format!("http://{}/app/off-key/events?channel=a", server.addr), &[]).await;
    assert_refusal(&off, 403, "disabled");
    assert_refusal(&refused(&url(&server, ""), &[]).await, 400, "No channels");
    let to_user = refused(&url(&server, &format!("channel={}", enc("#server-to-user-1"))), &[]).await;
    assert_refusal(&to_user, 403, "signed-in user");
    // The WebSocket route beside it is unchanged.
    let mut ws = server.connect().await;
    ws.subscribe("news").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_are_checked_and_an_allowed_one_gets_cors_headers() {
    let server = TestServer::with_app(AppConfig { allowed_origins: vec!["dash.example.com".into()], ..app() }).await;
    let evil = refused(&url(&server, "channel=news"), &[("origin", "https://evil.example")]).await;
    assert_refusal(&evil, 403, "Origin");
    assert!(evil.headers.get("access-control-allow-origin").is_none());
    let origin = "https://dash.example.com";
    let stream = open(&url(&server, "channel=news"), &[("origin", origin)]).await;
    assert_eq!(stream.headers["access-control-allow-origin"], origin);
    // Refusals for an allowed page are readable by it too.
    let bad = refused(&url(&server, ""), &[("origin", origin)]).await;
    assert_eq!(bad.headers["access-control-allow-origin"], origin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_count_against_the_connection_quota() {
    let server = TestServer::with_app(AppConfig { max_connections: Some(1), ..app() }).await;
    let mut stream = open(&url(&server, "channel=news"), &[]).await;
    stream.expect_established().await;
    assert_refusal(&refused(&url(&server, "channel=news"), &[]).await, 429, "quota");
    let mut ws = server.open(&server.ws_url(APP_KEY), None).await;
    ws.expect_refusal(4004).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_requires_authorized_connections_needs_a_private_channel() {
    let server = TestServer::with_app(AppConfig { authorized_connections_timeout_seconds: Some(5), ..app() }).await;
    assert_refusal(&refused(&url(&server, "channel=news"), &[]).await, 403, "authorized");
    let q = format!("channels=news,private-a&socket_id=3.4&auth={}", enc(&token("3.4", "private-a", None)));
    let mut stream = open(&url(&server, &q), &[]).await;
    stream.expect_established().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_event_id_changes_nothing_on_channels_without_history() {
    let server = TestServer::start().await;
    let mut stream = open(&url(&server, "channel=news"), &[("last-event-id", "news=1-1")]).await;
    stream.expect_established().await;
    stream.expect_subscribed("news").await;
    server.api().trigger_one("news", "live", "1").await;
    assert_eq!(stream.next_frame().await, event_frame("news", "live", "1"));
    let too_long = refused(&url(&server, &format!("channel=news&lastEventId={}", "9".repeat(5000))), &[]).await;
    assert_refusal(&too_long, 400, "Last-Event-ID");
}

/// The next message with its `id:` (`None` when it has none), skipping comments.
async fn next_message(stream: &mut sse::EventStream) -> (Value, Option<String>) {
    loop {
        if let Block::Message { data, other_fields } = stream.next_block().await {
            let id = other_fields.iter().find_map(|f| f.strip_prefix("id: ").map(str::to_string));
            return (data, id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reopened_with_its_last_event_id_gets_what_it_missed_then_live_events() {
    let mut app = app();
    app.history =
        vec![herald::config::HistoryRule { channels: "orders-*".into(), max_events: 100, max_age_seconds: 60 }];
    let server = TestServer::with_app(app).await;
    let api = server.api();
    let mut stream = open(&url(&server, "channels=orders-1,news"), &[]).await;
    stream.expect_established().await;
    stream.expect_subscribed("orders-1").await;
    let (anchor, anchor_id) = next_message(&mut stream).await;
    assert_eq!(anchor["event"], "herald:recovered", "a history channel is anchored: {anchor}");
    assert!(anchor_id.is_some_and(|id| id.starts_with("orders-1=")), "the anchor carries an id");
    stream.expect_subscribed("news").await;
    api.trigger_one("orders-1", "e", "0").await;
    let (first, id) = next_message(&mut stream).await;
    assert_eq!(first["data"], "0");
    let id = id.expect("an event on a history channel carries an id");
    assert_eq!(id, format!("orders-1={}", first["position"].as_str().expect("position")));
    drop(stream);

    api.trigger_one("orders-1", "e", "1").await;
    api.trigger_one("news", "e", "not kept").await;
    api.trigger_one("orders-1", "e", "2").await;
    let mut back = open(&url(&server, "channels=orders-1,news"), &[("last-event-id", &id)]).await;
    back.expect_established().await;
    back.expect_subscribed("orders-1").await;
    let mut missed = Vec::new();
    for _ in 0..2 {
        let (frame, id) = next_message(&mut back).await;
        assert!(id.is_some(), "a replayed event carries an id: {frame}");
        missed.push(frame["data"].clone());
    }
    assert_eq!(missed, [json!("1"), json!("2")]);
    let (done, _) = next_message(&mut back).await;
    assert_eq!(done["event"], "herald:recovered");
    back.expect_subscribed("news").await;
    api.trigger_one("orders-1", "e", "3").await;
    assert_eq!(next_message(&mut back).await.0["data"], "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_shutdown_ends_the_stream_with_4200() {
    let mut config = config_with(vec![app()]);
    config.server.drain_window_seconds = 0;
    let server = TestServer::with_config(config).await;
    let mut stream = open(&url(&server, "channel=news"), &[]).await;
    stream.expect_established().await;
    stream.expect_subscribed("news").await;
    server.begin_shutdown();
    let frames = stream.until_end().await;
    assert_eq!(frames.last().map(|f| (&f["event"], &f["data"]["code"])), Some((&json!("pusher:error"), &json!(4200))));
}

/// A stream whose client never reads: its outbox fills, and the server drops the
/// connection and leaves the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_leaves() {
    let mut config = config_with(vec![app()]);
    config.server.max_outbox_bytes = 64 * 1024;
    let server = TestServer::with_config(config).await;
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .expect("tcp socket");
    // Ethernet's segment size and a small receive buffer: little of the flow is absorbed here.
    socket.set_tcp_mss(1_460).expect("TCP_MAXSEG");
    socket.set_recv_buffer_size(4_096).expect("SO_RCVBUF");
    socket.connect(&server.addr.into()).expect("tcp connect");
    socket.set_nonblocking(true).expect("non-blocking");
    let mut socket = tokio::net::TcpStream::from_std(socket.into()).expect("tokio stream");
    let request = format!("GET /app/{APP_KEY}/events?channel=firehose HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("send the request");
    eventually("the stream to join firehose", Duration::from_secs(5), || async {
        occupied(&server, "firehose").await.0
    })
    .await;
    let payload = "x".repeat(4_000);
    let batch: Vec<Value> =
        (0..10).map(|_| json!({"name": "tick", "channel": "firehose", "data": payload.as_str()})).collect();
    // Bounded: at most 100 batches of 40 KB (4 MB), far past what the outbox, the body's
    // channel, hyper's buffer and the kernel's buffers can hold.
    let mut cut_off = false;
    for round in 0..100 {
        let (status, body) = server.api().post("/batch_events", &json!({ "batch": batch })).await;
        assert_eq!(status, 200, "{body}");
        if round % 5 == 4 && !occupied(&server, "firehose").await.0 {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "the non-reading stream still holds firehose after 4 MB of events");
    // What the kernel had taken is still readable; then the connection ends (EOF or reset).
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let read = tokio::time::timeout_at(deadline, socket.read(&mut buf)).await;
        match read.expect("the server did not drop the connection within 10 s") {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}
