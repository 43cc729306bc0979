//! `/metrics` on its own port: every family herald promises, with values that follow what
//! the clients did, labelled by app id only.

mod common;

use common::{TestServer, APP_ID};
use http_body_util::BodyExt;
use serde_json::json;

async fn scrape(server: &TestServer) -> String {
    let addr = server.metrics_addr.expect("metrics are enabled by default");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let response = client.get(format!("http://{addr}/metrics").parse().expect("uri")).await.expect("scrape");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.expect("body").to_bytes();
    String::from_utf8(body.to_vec()).expect("text format is UTF-8")
}

/// The value of `name{app_id="app1"…}`, or panics naming the missing series.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_connections_messages_and_api_calls() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("news").await;
    b.subscribe("news").await;
    server.api().trigger_one("news", "headline", r#"{"n":1}"#).await;
    a.expect_event("headline").await;
    b.expect_event("headline").await;
    let (status, _) = server.api().post("/events", &json!({"name": "x", "channels": ["news"]})).await;
    assert_eq!(status, 400);

    let text = scrape(&server).await;
    let app = format!("{{app_id=\"{APP_ID}\"}}");
    assert_eq!(value(&text, &format!("herald_connected{app}")), 2.0);
    assert_eq!(value(&text, &format!("herald_new_connections_total{app}")), 2.0);
    assert_eq!(value(&text, &format!("herald_channels{app}")), 1.0);
    assert_eq!(value(&text, &format!("herald_http_calls_received_total{app}")), 2.0);
    assert!(value(&text, &format!("herald_ws_messages_received_total{app}")) >= 2.0);
    assert!(value(&text, &format!("herald_ws_messages_sent_total{app}")) >= 6.0, "established, succeeded, event ×2");
    assert!(value(&text, &format!("herald_socket_transmitted_bytes{app}")) > 0.0);
    assert_eq!(value(&text, &format!("herald_fanout_latency_seconds_count{app}")), 1.0);
    for family in [
        "herald_new_disconnections_total",
        "herald_socket_received_bytes",
        "herald_outbox_overflows_total",
        "herald_presence_members",
        "herald_webhook_deliveries_total",
        "herald_webhook_failures_total",
        "herald_webhook_retries_total",
        "herald_webhook_queue_depth",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family} missing");
    }
    for line in text.lines().filter(|l| l.starts_with("herald_") && l.contains('{')) {
        let labels = &line[line.find('{').unwrap_or(0)..];
        assert!(
            !labels.contains("channel") && !labels.contains("socket") && !labels.contains("user"),
            "unbounded label in {line}"
        );
    }

    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_rate_limit_rejections_are_counted_by_kind() {
    let mut app = common::app();
    app.client_events_per_second = 1;
    let server = TestServer::with_app(app).await;
    let mut a = server.connect().await;
    a.subscribe_private("private-chat").await;
    a.send_client_event("private-chat", "client-x", json!({})).await;
    a.send_client_event("private-chat", "client-x", json!({})).await;
    a.expect_error_code(Some(4301)).await;
    let text = scrape(&server).await;
    let series = format!("herald_rate_limited_total{{app_id=\"{APP_ID}\",kind=\"client_event_rate\"}}");
    assert_eq!(value(&text, &series), 1.0);
    a.close().await;
}

#[tokio::test]
async fn history_recoveries_are_counted_by_outcome() {
    let mut app = common::app();
    app.history =
        vec![herald::config::HistoryRule { channels: "orders-*".into(), max_events: 10, max_age_seconds: 60 }];
    let server = TestServer::with_app(app).await;
    let mut client = server.connect().await;
    client.send_json(json!({"event": "herald:recover", "data": {"channel": "orders-1", "since": "latest"}})).await;
    client.subscribe("orders-1").await;
    client.expect_event("herald:recovered").await;
    client.send_json(json!({"event": "herald:recover", "data": {"channel": "news", "since": "1-1"}})).await;
    client.expect_event("herald:recovery_failed").await;
    let text = scrape(&server).await;
    assert_eq!(value(&text, r#"herald_history_recoveries_total{app_id="app1",outcome="recovered"}"#), 1.0);
    assert_eq!(value(&text, r#"herald_history_recoveries_total{app_id="app1",outcome="failed"}"#), 1.0);
}
