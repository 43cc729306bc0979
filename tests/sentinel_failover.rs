//! Redis Sentinel failovers under a running cluster: master + replica + three sentinels (all
//! real processes), two herald nodes. The master is killed (SIGKILL), or handed over with
//! `SENTINEL FAILOVER` and demoted to a replica while it stays up; the sentinels promote the
//! replica, and both nodes must find the new master by themselves, within [`RECOVERY`]:
//! cross-node delivery and the shared presence roster work again, without restarting herald.

mod common;
#[path = "support/redis.rs"]
mod support;

use std::time::Duration;

use common::{app, config_with, data_of, Client, TestServer};
use herald::config::{AdapterDriver, Config};
use serde_json::{json, Value};
use support::{eventually, RedisSentinel, RedisServer, SentinelTiming};

const MASTER_NAME: &str = "herald-failover";
/// From the failover's start to herald working on the new master, at most.
const RECOVERY: Duration = Duration::from_secs(30);
/// How long one probe event may take to cross from one node to the other.
const HOP: Duration = Duration::from_millis(300);

fn node(sentinels: &[RedisSentinel], prefix: &str) -> Config {
    let mut config = config_with(vec![app()]);
    config.adapter.driver = AdapterDriver::Redis;
    config.adapter.url = sentinels[0].url();
    config.adapter.sentinel_urls = sentinels[1..].iter().map(RedisSentinel::url).collect();
    config.adapter.sentinel_master = Some(MASTER_NAME.into());
    config.adapter.prefix = prefix.to_string();
    config.adapter.heartbeat_interval_ms = 200;
    config.adapter.node_timeout_ms = 1000;
    config.adapter.command_timeout_ms = 500;
    config
}

/// Triggers `event` on `news` through `from` until `to` receives it, or panics at `deadline`.
/// Other frames `to` receives meanwhile (earlier probes) are skipped.
async fn probe_delivery(from: &TestServer, to: &mut Client, event: &str, deadline: tokio::time::Instant) {
    loop {
        from.api().trigger_one("news", event, "{}").await;
        let hop_end = tokio::time::Instant::now() + HOP;
        while let Ok(frame) = tokio::time::timeout_at(hop_end, to.next_frame()).await {
            if frame["event"] == event {
                return;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "event {event} never crossed between the nodes");
    }
}

/// The next `event` frame for a user `user_id`, skipping any other frame, within `timeout`.
async fn member_event(client: &mut Client, event: &str, user_id: &str, timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Shorter than the harness's own frame timeout, which would panic on a quiet socket.
        let slice = (tokio::time::Instant::now() + HOP).min(deadline);
        if let Ok(frame) = tokio::time::timeout_at(slice, client.next_frame()).await {
            if frame["event"] == event && data_of(&frame)["user_id"] == user_id {
                return frame;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no {event} for {user_id} within {timeout:?}");
    }
}

async fn roster_is(server: &TestServer, users: &Value) -> bool {
    let (status, body) = server.api().get("/channels/presence-room/users", &[]).await;
    status == 200 && &body == users
}

/// Master + replica + three sentinels, and two herald nodes on them with clients that have
/// shown cross-node delivery and a shared presence roster.
struct Deployment {
    master: RedisServer,
    replica: RedisServer,
    sentinels: Vec<RedisSentinel>,
    prefix: String,
    a: TestServer,
    b: TestServer,
    on_a: Client,
    on_b: Client,
    ada: Client,
    _bob: Client,
}

impl Deployment {
    async fn start(tag: &str) -> Self {
        let master = RedisServer::start_replicable(Vec::new());
        let replica = RedisServer::start_replica_of(&master);
        let timing = SentinelTiming { quorum: 2, down_after_ms: 1000, failover_timeout_ms: 2000 };
        let sentinels = RedisSentinel::start_group(MASTER_NAME, &master, 3, 1, timing);
        let prefix = format!("{tag}{}", std::process::id());
        let a = TestServer::with_config(node(&sentinels, &prefix)).await;
        let b = TestServer::with_config(node(&sentinels, &prefix)).await;

        let mut on_a = a.connect().await;
        on_a.subscribe("news").await;
        let mut on_b = b.connect().await;
        on_b.subscribe("news").await;
        b.api().trigger_one("news", "before", "{}").await;
        on_a.expect_event("before").await;
        let mut ada = a.connect().await;
        ada.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
        let mut bob = b.connect().await;
        bob.subscribe_presence("presence-room", r#"{"user_id":"bob"}"#).await;
        member_event(&mut ada, "pusher_internal:member_added", "bob", common::FRAME_TIMEOUT).await;
        let both = json!({"users": [{"id": "ada"}, {"id": "bob"}]});
        for server in [&a, &b] {
            assert!(roster_is(server, &both).await, "both nodes list ada and bob before the failover");
        }
        Self { master, replica, sentinels, prefix, a, b, on_a, on_b, ada, _bob: bob }
    }

    /// Waits until every sentinel names the replica as master and the replica agrees.
    async fn await_promotion(&self) {
        eventually("the sentinels to promote the replica", RECOVERY, || async {
            self.sentinels.iter().all(|s| s.master_port(MASTER_NAME) == Some(self.replica.port))
                && self.replica.is_master()
        })
        .await;
    }

    /// Both nodes work on the promoted replica by `deadline`: both listen there, events cross
    /// both ways, and a member who joins now is seen by the other node's socket and by both
    /// nodes' HTTP API, next to the members from before (reconciled onto the new master if
    /// they were lost).
    async fn assert_recovered(mut self, deadline: tokio::time::Instant) {
        let remaining = || deadline.saturating_duration_since(tokio::time::Instant::now());
        // A demoted master still relays pub/sub, so delivery alone would not prove the move.
        let topic = format!("{}:{{{}:news}}", self.prefix, common::APP_ID);
        eventually("both nodes to subscribe on the promoted replica", remaining(), || async {
            self.replica.cli(&["PUBSUB", "NUMSUB", &topic]).lines().nth(1) == Some("2")
        })
        .await;
        probe_delivery(&self.b, &mut self.on_a, "after-b", deadline).await;
        probe_delivery(&self.a, &mut self.on_b, "after-a", deadline).await;

        let mut carol = self.b.connect().await;
        carol.subscribe_presence("presence-room", r#"{"user_id":"carol"}"#).await;
        member_event(&mut self.ada, "pusher_internal:member_added", "carol", remaining()).await;
        let all = json!({"users": [{"id": "ada"}, {"id": "bob"}, {"id": "carol"}]});
        for server in [&self.a, &self.b] {
            eventually("both nodes to list ada, bob and carol", remaining(), || roster_is(server, &all)).await;
        }
        let socks = format!("{}:{{{}:presence-room}}:socks", self.prefix, common::APP_ID);
        assert_eq!(self.replica.cli(&["HLEN", &socks]).trim(), "3", "the roster lives on the promoted replica");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_follow_a_sentinel_failover_to_the_promoted_replica_without_a_restart() {
    let mut deployment = Deployment::start("killed").await;
    deployment.master.kill(); // SIGKILL: no goodbye to anyone.
    let deadline = tokio::time::Instant::now() + RECOVERY;
    deployment.await_promotion().await;
    deployment.assert_recovered(deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_leave_a_demoted_master_after_a_manual_sentinel_failover() {
    let deployment = Deployment::start("manual").await;
    // The old master stays up and becomes a replica: it answers reads, refuses writes.
    let answer = deployment.sentinels[0].server.cli(&["SENTINEL", "FAILOVER", MASTER_NAME]);
    assert_eq!(answer.trim(), "OK", "SENTINEL FAILOVER accepted");
    let deadline = tokio::time::Instant::now() + RECOVERY;
    deployment.await_promotion().await;
    eventually("the old master to become a replica", RECOVERY, || async { !deployment.master.is_master() }).await;
    deployment.assert_recovered(deadline).await;
}
