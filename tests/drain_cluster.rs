//! A graceful drain in a cluster: one node of two closes its sockets with 4200; every client
//! reconnects to the other node and keeps receiving events, and the cluster's counts follow.

mod common;
#[path = "support/redis.rs"]
mod support;

use std::time::Duration;

use common::{app, config_with, TestServer};
use herald::config::{AdapterDriver, Config};
use serde_json::json;
use support::RedisServer;

fn node(redis: &RedisServer, prefix: &str, drain_window_seconds: u64) -> Config {
    let mut config = config_with(vec![app()]);
    config.adapter.driver = AdapterDriver::Redis;
    config.adapter.url = redis.url();
    config.adapter.prefix = prefix.to_string();
    config.server.drain_window_seconds = drain_window_seconds;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_one_node_moves_every_client_to_the_other_without_losing_events() {
    let redis = RedisServer::start();
    let prefix = format!("drain{}", std::process::id());
    let a = TestServer::with_config(node(&redis, &prefix, 1)).await;
    let b = TestServer::with_config(node(&redis, &prefix, 10)).await;

    let mut on_b = b.connect().await;
    on_b.subscribe("news").await;
    let mut on_a = Vec::new();
    for _ in 0..10 {
        let mut client = a.connect().await;
        client.subscribe("news").await;
        on_a.push(client);
    }
    // Cross-node delivery before the drain: triggered on B, received on A.
    b.api().trigger_one("news", "before", "{}").await;
    for client in on_a.iter_mut() {
        client.expect_event("before").await;
    }
    on_b.expect_event("before").await;

    a.begin_shutdown();
    let mut moved = Vec::new();
    for mut client in on_a {
        client.expect_refusal(4200).await;
        // What pusher-js does on 4200: reconnect at once (behind a load balancer: to B).
        let mut again = b.connect().await;
        again.subscribe("news").await;
        moved.push(again);
    }
    b.api().trigger_one("news", "after", r#"{"n":1}"#).await;
    for client in moved.iter_mut() {
        client.expect_event("after").await;
    }
    on_b.expect_event("after").await;

    // The cluster forgot A's sockets as they closed: B reports only the live ones.
    let api = b.api();
    support::eventually("B reports the 11 live subscriptions", Duration::from_secs(10), || async {
        let (status, body) = api.get("/channels/news", &[("info", "subscription_count")]).await;
        status == 200 && body["subscription_count"] == json!(11)
    })
    .await;
}
