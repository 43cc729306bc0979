//! The cluster through faults: a node killed with SIGKILL and Redis stopped during traffic.
//! Real redis-server processes; the dying node is a real herald process.

mod common;
#[path = "support/redis.rs"]
mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{app, config_with, Client, TestServer, APP_KEY};
use herald::config::{AdapterDriver, Config};
use serde_json::json;
use support::{eventually, free_port, RedisServer};

fn node(redis_url: &str, prefix: &str) -> Config {
    let mut config = config_with(vec![app()]);
    config.adapter.driver = AdapterDriver::Redis;
    config.adapter.url = redis_url.to_string();
    config.adapter.prefix = prefix.to_string();
    config.adapter.heartbeat_interval_ms = 200;
    config.adapter.node_timeout_ms = 1000;
    config
}

/// herald as a process, so it can die for real.
struct Process {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Process {
    fn start(redis_url: &str, prefix: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("herald-fault-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("herald.toml");
        let toml = format!(
            "[server]\nhost = \"127.0.0.1\"\nport = {port}\n\n[metrics]\nenabled = false\n\n[adapter]\ndriver = \"redis\"\n\
             url = \"{redis_url}\"\nprefix = \"{prefix}\"\nheartbeat_interval_ms = 200\nnode_timeout_ms = 1000\n\n\
             [[apps]]\nid = \"{}\"\nkey = \"{APP_KEY}\"\nsecret = \"{}\"\n",
            common::APP_ID,
            common::APP_SECRET
        );
        std::fs::write(&config, toml).expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start herald");
        Self { child, port, _dir: dir }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/app/{APP_KEY}?protocol=7&client=js&version=8.6.0", self.port)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect_to(via: &TestServer, url: &str) -> Client {
    let started = tokio::time::Instant::now();
    loop {
        // The process may still be starting: retry the TCP connect for a bounded time.
        if tokio::net::TcpStream::connect(url.trim_start_matches("ws://").split('/').next().unwrap_or("")).await.is_ok()
        {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "herald at {url} did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = via.open(url, None).await;
    client.await_established().await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_presence_members_are_removed_by_the_survivors() {
    let redis = RedisServer::start();
    let prefix = format!("death{}", std::process::id());
    let survivor = TestServer::with_config(node(&redis.url(), &prefix)).await;
    let mut doomed = Process::start(&redis.url(), &prefix);

    let mut ada = survivor.connect().await;
    ada.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
    let mut bob = connect_to(&survivor, &doomed.url()).await;
    bob.subscribe_presence("presence-room", r#"{"user_id":"bob"}"#).await;
    let added = ada.expect_event("pusher_internal:member_added").await;
    assert_eq!(common::data_of(&added)["user_id"], "bob");

    let _ = doomed.child.kill(); // SIGKILL: no goodbye to Redis.
    let _ = doomed.child.wait();
    let removed = tokio::time::timeout(Duration::from_secs(30), ada.expect_event("pusher_internal:member_removed"))
        .await
        .expect("member_removed within 30 s of the node's death");
    assert_eq!(common::data_of(&removed)["user_id"], "bob");
    let (status, users) = survivor.api().get("/channels/presence-room/users", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(users, json!({"users": [{"id": "ada"}]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_local_delivery_and_the_cluster_recovers_when_redis_returns() {
    let mut redis = RedisServer::start();
    let prefix = format!("outage{}", std::process::id());
    let a = TestServer::with_config(node(&redis.url(), &prefix)).await;
    let b = TestServer::with_config(node(&redis.url(), &prefix)).await;
    let mut on_a = a.connect().await;
    let mut on_b = b.connect().await;
    on_a.subscribe("news").await;
    on_b.subscribe("news").await;
    a.api().trigger_one("news", "before", "{}").await;
    on_b.expect_event("before").await;
    on_a.expect_event("before").await;

    redis.kill();
    let api_a = a.api();
    eventually("node A reports not ready", Duration::from_secs(10), || async {
        api_a.raw("GET", "/readyz", "").await.0 == 503
    })
    .await;
    // Local delivery carries on while Redis is down.
    a.api().trigger_one("news", "during", "{}").await;
    on_a.expect_event("during").await;

    redis.restart();
    eventually("node A is ready again", Duration::from_secs(15), || async {
        api_a.raw("GET", "/readyz", "").await.0 == 200
    })
    .await;
    // Cross-node delivery resumes once B has resubscribed: probe until one arrives.
    let started = tokio::time::Instant::now();
    loop {
        a.api().trigger_one("news", "after", "{}").await;
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(300), on_b.next_frame()).await {
            if frame["event"] == "after" {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(15), "cross-node delivery did not come back");
    }
    // Reconciliation restored the cluster's view of both subscriptions.
    let api_b = b.api();
    eventually("the cluster counts both subscribers again", Duration::from_secs(15), || async {
        let (status, body) = api_b.get("/channels/news", &[("info", "subscription_count")]).await;
        status == 200 && body["subscription_count"] == json!(2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_a_redis_cluster_of_three_masters_deliver_and_share_presence() {
    let redis = support::RedisCluster::start();
    let prefix = format!("rc{}", std::process::id());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut config = node(&redis.url(), &prefix);
        config.adapter.cluster = true;
        config.adapter.cluster_urls = redis.urls();
        nodes.push(TestServer::with_config(config).await);
    }
    let (a, b) = (&nodes[0], &nodes[1]);
    // Several channels, so their keys and sharded topics land on different masters.
    for channel in ["news", "sport", "weather"] {
        let mut on_a = a.connect().await;
        let mut on_b = b.connect().await;
        on_a.subscribe(channel).await;
        on_b.subscribe(channel).await;
        b.api().trigger_one(channel, "update", "{}").await;
        on_a.expect_event("update").await;
        on_b.expect_event("update").await;
    }
    let mut ada = a.connect().await;
    ada.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
    let mut bob = b.connect().await;
    let joined = bob.subscribe_presence("presence-room", r#"{"user_id":"bob"}"#).await;
    assert_eq!(joined["count"], 2, "{joined}");
    assert_eq!(common::data_of(&ada.expect_event("pusher_internal:member_added").await)["user_id"], "bob");
    for server in [a, b] {
        let (status, users) = server.api().get("/channels/presence-room/users", &[]).await;
        assert_eq!(status, 200);
        assert_eq!(users, json!({"users": [{"id": "ada"}, {"id": "bob"}]}));
    }
}
