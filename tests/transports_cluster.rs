//! The other transports in a cluster: an SSE stream and an HTTP fallback session on node B
//! get events triggered on node A, and their presence members are cluster-wide, through a
//! real Redis. They share the WebSocket's session, so this checks the wiring, not a copy.

mod common;
#[path = "support/redis.rs"]
mod redis_support;
#[path = "support/sse.rs"]
mod sse;
#[path = "support/xhr.rs"]
mod xhr;

use std::time::Duration;

use common::{app, config_with, data_of, TestServer, APP_ID, APP_KEY, APP_SECRET};
use herald::config::{AdapterDriver, Config};
use herald_protocol::signature::{auth_token, channel_string_to_sign};
use redis_support::{eventually, RedisServer};
use serde_json::json;
use xhr::{Line, XhrClient};

const WAIT: Duration = Duration::from_secs(10);

fn node(redis: &RedisServer, prefix: &str) -> Config {
    let mut config = config_with(vec![app()]);
    config.adapter.driver = AdapterDriver::Redis;
    config.adapter.url = redis.url();
    config.adapter.prefix = prefix.to_string();
    config
}

/// Waits until some node listens to `channel`'s topic (its subscription reached Redis).
async fn listened(redis: &RedisServer, prefix: &str, channel: &str) {
    let topic = format!("{prefix}:{{{APP_ID}:{channel}}}");
    eventually(&format!("a node listening to {topic}"), WAIT, || {
        let out = redis.cli(&["PUBSUB", "NUMSUB", &topic]);
        let n: u64 = out.lines().nth(1).and_then(|n| n.trim().parse().ok()).unwrap_or(0);
        async move { n >= 1 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_on_one_node_gets_events_triggered_on_another() {
    let redis = RedisServer::start();
    let prefix = format!("tsse{}", std::process::id());
    let (a, b) =
        (TestServer::with_config(node(&redis, &prefix)).await, TestServer::with_config(node(&redis, &prefix)).await);
    let url = format!("http://{}/app/{APP_KEY}/events?channels=news", b.addr);
    let mut stream = sse::open(&url, &[]).await;
    stream.expect_established().await;
    stream.expect_subscribed("news").await;
    listened(&redis, &prefix, "news").await;
    let (status, seen_from_a) = a.api().get("/channels/news", &[("info", "subscription_count")]).await;
    assert_eq!((status, seen_from_a["subscription_count"].as_u64()), (200, Some(1)), "{seen_from_a}");
    a.api().trigger_one("news", "headline", "from a").await;
    assert_eq!(stream.next_frame().await, json!({"event": "headline", "channel": "news", "data": "from a"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_fallback_session_is_a_cluster_wide_presence_member_and_gets_other_nodes_events() {
    let redis = RedisServer::start();
    let prefix = format!("txhr{}", std::process::id());
    let (a, b) =
        (TestServer::with_config(node(&redis, &prefix)).await, TestServer::with_config(node(&redis, &prefix)).await);
    let client = XhrClient::new(b.addr, APP_KEY, "7/cluster1");
    let mut lines = client.stream().await;
    assert_eq!(lines.next_line().await, Some(Line::Open));
    let established = lines.expect_event("pusher:connection_established").await;
    let socket_id = data_of(&established)["socket_id"].as_str().expect("socket_id").to_string();
    let (channel, member) = ("presence-room", r#"{"user_id":"over-http"}"#);
    let signature = auth_token(APP_KEY, APP_SECRET, &channel_string_to_sign(&socket_id, channel, Some(member)));
    let join =
        json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": signature, "channel_data": member}});
    assert_eq!(client.send(&[join]).await, 204);
    lines.expect_event("pusher_internal:subscription_succeeded").await;
    listened(&redis, &prefix, channel).await;

    let (status, users) = a.api().get(&format!("/channels/{channel}/users"), &[]).await;
    assert_eq!((status, users), (200, json!({"users": [{"id": "over-http"}]})));
    a.api().trigger_one(channel, "note", "from a").await;
    let note = lines.expect_event("note").await;
    assert_eq!(note["data"], "from a");
}
