//! `/dashboard`: behind the admin token, the apps' state as JSON, and the live feed as
//! Server-Sent Events.

mod common;

use std::time::Duration;

use common::{app, config_with, TestServer, APP_ID};
use http_body_util::BodyExt;

const TOKEN: &str = "0123456789abcdef-dashboard";

async fn dashboard_server() -> TestServer {
    let mut config = config_with(vec![app()]);
    config.dashboard.enabled = true;
    config.dashboard.admin_token = Some(TOKEN.into());
    TestServer::with_config(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_absent_unless_enabled() {
    let server = TestServer::start().await;
    assert_eq!(server.api().raw("GET", &format!("/dashboard?token={TOKEN}"), "").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_needs_the_admin_token() {
    let server = dashboard_server().await;
    let api = server.api();
    assert_eq!(api.raw("GET", "/dashboard", "").await.0, 401);
    assert_eq!(api.raw("GET", "/dashboard?token=wrong", "").await.0, 401);
    assert_eq!(api.raw("GET", "/dashboard/api/apps?token=0123456789abcdef-dashboarX", "").await.0, 401);
    let (status, page) = api.raw("GET", &format!("/dashboard?token={TOKEN}"), "").await;
    assert_eq!(status, 200);
    assert!(page.as_str().is_some_and(|p| p.contains("herald debug console")), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_endpoint_shows_connections_and_occupied_channels() {
    let server = dashboard_server().await;
    let mut client = server.connect().await;
    client.subscribe("news").await;
    let (status, body) = server.api().raw("GET", &format!("/dashboard/api/apps?token={TOKEN}"), "").await;
    assert_eq!(status, 200, "{body}");
    let app = &body["apps"][0];
    assert_eq!(app["id"], APP_ID);
    assert_eq!(app["connections"], 1);
    assert_eq!(app["channels"][0]["name"], "news");
    assert_eq!(app["channels"][0]["subscription_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_subscriptions_and_events_as_they_happen() {
    let server = dashboard_server().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let url = format!("http://{}/dashboard/api/stream?app={APP_ID}&token={TOKEN}", server.addr);
    let response = client.get(url.parse().expect("uri")).await.expect("stream opens");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();

    let mut pusher = server.connect().await;
    pusher.subscribe("news").await;
    server.api().trigger_one("news", "headline", r#"{"n":1}"#).await;

    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !(text.contains(r#""type":"subscribed""#) && text.contains(r#""event":"headline""#)) {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .unwrap_or_else(|_| panic!("the stream did not carry both lines in 5 s: {text}"))
            .expect("stream open")
            .expect("frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(text.lines().filter(|l| !l.is_empty()).all(|l| l.starts_with("data: ") || l.starts_with(':')), "{text}");
}
