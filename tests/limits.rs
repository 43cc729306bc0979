//! Limits and quotas answered with the code or status a Pusher client understands, while the
//! connection (or the server) keeps serving.

mod common;

use std::time::Duration;

use common::{app, config_with, TestServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_over_the_apps_rate_are_answered_429_with_a_json_error() {
    let mut config = app();
    config.api_requests_per_second = Some(2);
    let server = TestServer::with_app(config).await;
    let api = server.api();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(api.get("/channels", &[]).await);
    }
    let refused: Vec<_> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    assert!(!refused.is_empty(), "{statuses:?}");
    assert!(refused[0].1["error"].as_str().is_some_and(|e| e.contains("per second")), "{:?}", refused[0]);
    assert_eq!(statuses[0].0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_past_the_per_connection_limit_are_refused_and_the_connection_stays() {
    let mut config = app();
    config.max_subscriptions_per_connection = 2;
    let server = TestServer::with_app(config).await;
    let mut client = server.connect().await;
    client.subscribe("a").await;
    client.subscribe("b").await;
    client.send_subscribe("c", None, None).await;
    let error = client.expect_error_code(None).await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("at most 2")), "{error}");
    // Re-subscribing to a joined channel is not a new subscription.
    client.subscribe("a").await;
    client.unsubscribe("b").await;
    client.subscribe("c").await;
    client.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_attempts_over_the_per_ip_rate_are_answered_429_before_the_upgrade() {
    let mut config = config_with(vec![app()]);
    config.server.connection_attempts_per_ip_per_minute = Some(2);
    let server = TestServer::with_config(config).await;
    let _a = server.connect().await;
    let _b = server.connect().await;
    assert_eq!(server.upgrade_status(&server.ws_url(common::APP_KEY)).await, 429);
    // The HTTP API is not a WebSocket attempt and is unaffected.
    assert_eq!(server.api().get("/channels", &[]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let mut config = config_with(vec![app()]);
    config.server.header_read_timeout_seconds = 1;
    let server = TestServer::with_config(config).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    stream.write_all(b"GET /up HTTP/1.1\r\nHost: x\r\n").await.expect("partial request");
    let mut buf = [0u8; 256];
    // The header timeout is 1 s here; give it a generous margin, and expect EOF or an error reply.
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    match read {
        Ok(Ok(n)) => assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"), "got {n} bytes"),
        Ok(Err(_)) => {}
        Err(_) => panic!("the server kept a connection with unfinished headers open for 10 s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_drains_sockets_with_4200_and_turns_readiness_off() {
    let mut config = config_with(vec![app()]);
    config.server.drain_window_seconds = 1;
    let server = TestServer::with_config(config).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut c = server.connect().await;
        c.subscribe("news").await;
        clients.push(c);
    }
    assert_eq!(server.api().raw("GET", "/readyz", "").await.0, 200);
    server.begin_shutdown();
    let (status, body) = server.api().raw("GET", "/readyz", "").await;
    assert_eq!(status, 503, "{body}");
    // New WebSocket connections are refused with 4200 (reconnect elsewhere).
    let mut late = server.open(&server.ws_url(common::APP_KEY), None).await;
    late.expect_refusal(4200).await;
    for mut c in clients {
        c.expect_refusal(4200).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_answering_during_the_drain() {
    let mut config = config_with(vec![app()]);
    config.server.drain_window_seconds = 5;
    let server = TestServer::with_config(config).await;
    let mut client = server.connect().await;
    client.subscribe("news").await;
    server.begin_shutdown();
    server.api().trigger_one("news", "late", "{}").await;
    client.expect_event("late").await;
    let (status, _) = server.api().post("/events", &json!({"name": "x", "channels": ["news"], "data": "{}"})).await;
    assert_eq!(status, 200);
}
