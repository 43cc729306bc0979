//! The Redis adapter against real `redis-server` processes: two or three adapters (nodes) on
//! one Redis, checked through the adapter API, their sinks, and Redis itself.

#[path = "support/redis.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald::adapter::redis::{OwnedMembership, RedisAdapter, RemoteExtra};
use herald::adapter::{AdapterError, JoinOutcome, LeaveOutcome, Membership, NodeId, Remote};
use herald::config::{AdapterConfig, AdapterDriver};
use herald_protocol::{SocketId, UserId};
use parking_lot::Mutex;
use support::{eventually, next_within, recording_extra, recording_sink, RedisCluster, RedisServer};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const APP: &str = "app";
const WAIT: Duration = Duration::from_secs(5);
/// How long to wait for a message that must not come, after one sent later did come.
const QUIET: Duration = Duration::from_millis(100);

fn config(url: &str) -> AdapterConfig {
    AdapterConfig {
        driver: AdapterDriver::Redis,
        url: url.to_owned(),
        prefix: "t".into(),
        heartbeat_interval_ms: 200,
        node_timeout_ms: 600,
        command_timeout_ms: 300,
        publish_queue_capacity: 1024,
        ..AdapterConfig::default()
    }
}

/// One adapter with its sink, extra reports, and shutdown handles.
struct Node {
    adapter: Arc<RedisAdapter>,
    rx: UnboundedReceiver<Remote>,
    extra: UnboundedReceiver<RemoteExtra>,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Node {
    async fn start(config: &AdapterConfig) -> Self {
        let (sink, rx) = recording_sink();
        let (hook, extra) = recording_extra();
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        let adapter = RedisAdapter::connect(config, NodeId::random(), sink, token.clone(), &tracker)
            .await
            .expect("adapter connects");
        adapter.set_extra_sink(hook);
        Self { adapter, rx, extra, token, tracker }
    }

    /// Stops every task without leaving anything: to the others, this node crashed.
    async fn crash(&self) {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(WAIT, self.tracker.wait()).await.expect("tasks end on cancel");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn user(id: &str) -> UserId {
    UserId::new(id)
}

fn member<'a>(channel: &'a str, socket: SocketId, user: Option<&'a UserId>) -> Membership<'a> {
    Membership { app: APP, channel, socket, user, user_info: user.map(|_| r#"{"name":"x"}"#) }
}

/// Subscribers of `topic` on a standalone server (`PUBSUB NUMSUB`).
fn numsub(server: &RedisServer, topic: &str) -> u64 {
    server.cli(&["PUBSUB", "NUMSUB", topic]).lines().nth(1).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

/// Sharded subscribers of `topic` across a cluster (`PUBSUB SHARDNUMSUB` on every master).
fn shard_numsub(cluster: &RedisCluster, topic: &str) -> u64 {
    cluster
        .nodes
        .iter()
        .map(|n| {
            n.cli(&["PUBSUB", "SHARDNUMSUB", topic]).lines().nth(1).and_then(|c| c.trim().parse().ok()).unwrap_or(0)
        })
        .sum()
}

async fn next(rx: &mut UnboundedReceiver<Remote>) -> Remote {
    next_within(rx, WAIT).await.expect("a remote message within 5 s")
}

/// Joins, leaves and queries on one channel from two nodes: each transition reported once.
async fn check_presence_transitions(a: &RedisAdapter, b: &RedisAdapter) {
    let ch = "presence-room";
    let (u1, u2) = (user("1"), user("2"));
    let (a1, b1, b2) = (SocketId::new(1, 1), SocketId::new(2, 1), SocketId::new(2, 2));
    let first = a.join(member(ch, a1, Some(&u1))).await.unwrap();
    assert_eq!(
        first,
        JoinOutcome { occupied: true, member_added: true, subscription_count: 1, user_count: 1, ..Default::default() }
    );
    let same_user = b.join(member(ch, b1, Some(&u1))).await.unwrap();
    assert!(!same_user.occupied && !same_user.member_added && !same_user.duplicate);
    assert!(b.join(member(ch, b2, Some(&u2))).await.unwrap().member_added);
    assert!(a.join(member(ch, a1, Some(&u1))).await.unwrap().duplicate, "re-join is idempotent");

    for node in [a, b] {
        let counts = node.counts(APP, ch).await.unwrap();
        assert_eq!((counts.subscription_count, counts.user_count), (3, 2));
        let mut roster = node.roster(APP, ch).await.unwrap();
        roster.sort();
        assert_eq!(
            roster,
            vec![(u1.clone(), Some(r#"{"name":"x"}"#.into())), (u2.clone(), Some(r#"{"name":"x"}"#.into()))]
        );
        let mut users = node.users(APP, ch).await.unwrap();
        users.sort();
        assert_eq!(users, vec![u1.clone(), u2.clone()]);
        let listed = node.channels(APP, "presence-").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, ch);
        assert!(node.channels(APP, "private-").await.unwrap().is_empty());
    }

    let left = a.leave(member(ch, a1, Some(&u1))).await.unwrap();
    assert!(!left.member_removed && !left.vacated, "u1 is still on node b");
    assert!(b.leave(member(ch, b1, Some(&u1))).await.unwrap().member_removed);
    let last = b.leave(member(ch, b2, Some(&u2))).await.unwrap();
    assert_eq!(
        last,
        LeaveOutcome { vacated: true, member_removed: true, subscription_count: 0, user_count: 0, not_found: false }
    );
    assert!(a.leave(member(ch, a1, Some(&u1))).await.unwrap().not_found);
    assert!(a.channels(APP, "").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_and_leave_transitions_happen_once_across_nodes() {
    let redis = RedisServer::start();
    let (a, b) = (Node::start(&config(&redis.url())).await, Node::start(&config(&redis.url())).await);
    check_presence_transitions(&a.adapter, &b.adapter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_traffic_reaches_only_interested_nodes_and_never_echoes() {
    let redis = RedisServer::start();
    let cfg = config(&redis.url());
    let (a, mut b, mut c) = (Node::start(&cfg).await, Node::start(&cfg).await, Node::start(&cfg).await);
    b.adapter.watch_channel(APP, "ch", true);
    c.adapter.watch_channel(APP, "other", true);
    let (ch_topic, other_topic) = ("t:{app:ch}", "t:{app:other}");
    support::wait_until("both subscriptions", WAIT, || {
        numsub(&redis, ch_topic) == 1 && numsub(&redis, other_topic) == 1
    });

    let except = SocketId::new(9, 9);
    b.adapter.publish(APP, "ch", None, Bytes::from_static(b"own"));
    a.adapter.publish(APP, "ch", Some(except), Bytes::from_static(b"hello"));
    a.adapter.publish(APP, "other", None, Bytes::from_static(b"marker"));
    let got = next(&mut b.rx).await;
    let expected = Remote::Channel {
        app: APP.into(),
        channel: "ch".into(),
        except: Some(except),
        frame: Bytes::from_static(b"hello"),
    };
    assert_eq!(got, expected, "b gets a's message, never its own");
    match next(&mut c.rx).await {
        Remote::Channel { channel, .. } => assert_eq!(channel, "other", "c does not watch ch"),
        other => panic!("unexpected {other:?}"),
    }

    b.adapter.watch_channel(APP, "ch", false);
    support::wait_until("b unsubscribed", WAIT, || numsub(&redis, ch_topic) == 0);
    b.adapter.watch_channel(APP, "other", true);
    support::wait_until("b on other", WAIT, || numsub(&redis, other_topic) == 2);
    a.adapter.publish(APP, "ch", None, Bytes::from_static(b"unwatched"));
    a.adapter.publish(APP, "other", None, Bytes::from_static(b"marker2"));
    match next(&mut b.rx).await {
        Remote::Channel { channel, frame, .. } => {
            assert_eq!((channel.as_str(), &frame[..]), ("other", &b"marker2"[..]))
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(next_within(&mut b.rx, QUIET).await.is_none());
    eventually("a counts its four publishes", WAIT, || async { a.adapter.stats().published == 4 }).await;
    assert!(a.adapter.stats().publish_latency_count >= 1);
    assert!(b.adapter.stats().received >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_terminate_and_watch_topics_reach_the_nodes_that_hold_them() {
    let redis = RedisServer::start();
    let cfg = config(&redis.url());
    let (a, mut b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    let (u1, u2) = (user("1"), user("2"));
    b.adapter.watch_user(APP, &u1, true);
    b.adapter.watch_watchers(APP, &u2, true);
    support::wait_until("user and watch topics", WAIT, || {
        numsub(&redis, "t:app:user:1") == 1 && numsub(&redis, "t:app:watch:2") == 1
    });
    a.adapter.publish_user(APP, &u1, Bytes::from_static(b"to-user"));
    a.adapter.terminate_user(APP, &u1);
    a.adapter.publish_watch(APP, &u2, Bytes::from_static(b"online"));
    assert_eq!(
        next(&mut b.rx).await,
        Remote::User { app: APP.into(), user: u1.clone(), frame: Bytes::from_static(b"to-user") }
    );
    assert_eq!(next(&mut b.rx).await, Remote::Terminate { app: APP.into(), user: u1 });
    let watch = next_within(&mut b.extra, WAIT).await.expect("watch frame");
    assert_eq!(watch, RemoteExtra::Watch { app: APP.into(), watched: u2, frame: Bytes::from_static(b"online") });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_report_first_and_last_socket_cluster_wide() {
    let redis = RedisServer::start();
    let cfg = config(&redis.url());
    let (a, b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    let (u1, u2) = (user("1"), user("2"));
    assert!(a.adapter.sign_in(APP, &u1, SocketId::new(1, 1)).await.unwrap());
    assert!(!b.adapter.sign_in(APP, &u1, SocketId::new(2, 1)).await.unwrap());
    assert_eq!(b.adapter.online(APP, &[u1.clone(), u2.clone()]).await.unwrap(), vec![true, false]);
    assert!(!a.adapter.sign_out(APP, &u1, SocketId::new(1, 1)).await.unwrap());
    assert!(b.adapter.sign_out(APP, &u1, SocketId::new(2, 1)).await.unwrap());
    assert_eq!(a.adapter.online(APP, &[u1]).await.unwrap(), vec![false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_quota_counts_every_node() {
    let redis = RedisServer::start();
    let cfg = config(&redis.url());
    let (a, b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    assert!(a.adapter.acquire_connection(APP, Some(2)).await.unwrap());
    assert!(b.adapter.acquire_connection(APP, Some(2)).await.unwrap());
    assert!(!a.adapter.acquire_connection(APP, Some(2)).await.unwrap(), "third connection is over the quota");
    assert_eq!(b.adapter.connection_count(APP).await.unwrap(), 2);
    b.adapter.release_connection(APP);
    eventually("the release to reach redis", WAIT, || async { a.adapter.connection_count(APP).await.unwrap() == 1 })
        .await;
    assert!(a.adapter.acquire_connection(APP, Some(2)).await.unwrap());
    assert!(a.adapter.acquire_connection(APP, None).await.unwrap(), "no quota, no limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_channel_event_is_shared_with_its_ttl() {
    let redis = RedisServer::start();
    let cfg = config(&redis.url());
    let (a, b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    assert_eq!(b.adapter.cache_get(APP, "cache-x").await.unwrap(), None);
    a.adapter
        .cache_set(APP, "cache-x", Bytes::from_static(b"frame"), "{\"d\":1}", Duration::from_secs(30))
        .await
        .unwrap();
    let (frame, data, ttl) = b.adapter.cache_get(APP, "cache-x").await.unwrap().expect("cached");
    assert_eq!((&frame[..], data.as_str()), (&b"frame"[..], "{\"d\":1}"));
    assert!(ttl > Duration::from_secs(25) && ttl <= Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_publish_queue_drops_and_counts() {
    let redis = RedisServer::start();
    let mut cfg = config(&redis.url());
    cfg.publish_queue_capacity = 1;
    let a = Node::start(&cfg).await;
    for _ in 0..2_000 {
        a.adapter.publish(APP, "ch", None, Bytes::from_static(b"x"));
    }
    let dropped = a.adapter.stats().publish_dropped;
    assert!(dropped > 0, "a queue of one cannot hold 2000 messages");
    eventually("every message published or dropped", WAIT, || async {
        let s = a.adapter.stats();
        s.published + s.publish_dropped == 2_000
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_nodes_subscriptions_are_reaped_by_a_survivor() {
    let redis = RedisServer::start();
    let cfg = config(&redis.url());
    let (a, mut b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    let (u1, u2) = (user("1"), user("2"));
    let ch = "presence-room";
    a.adapter.join(member(ch, SocketId::new(1, 1), Some(&u1))).await.unwrap();
    a.adapter.join(member(ch, SocketId::new(1, 2), Some(&u2))).await.unwrap();
    b.adapter.join(member(ch, SocketId::new(2, 1), Some(&u2))).await.unwrap();
    a.adapter.join(member("solo", SocketId::new(1, 1), None)).await.unwrap();
    assert!(a.adapter.sign_in(APP, &u1, SocketId::new(1, 1)).await.unwrap());
    assert!(a.adapter.acquire_connection(APP, None).await.unwrap());

    let crashed = Instant::now();
    a.crash().await;
    let mut reaped = Vec::new();
    while reaped.len() < 3 {
        match next(&mut b.rx).await {
            Remote::Reaped { channel, user, outcome, .. } => {
                reaped.push((channel, user, outcome.member_removed, outcome.vacated))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(crashed.elapsed() < Duration::from_secs(3), "reaped within node timeout + a sweep");
    reaped.sort();
    assert_eq!(
        reaped,
        vec![
            (ch.to_owned(), Some(u1.clone()), true, false),
            (ch.to_owned(), Some(u2.clone()), false, false),
            ("solo".to_owned(), None, false, true),
        ]
    );
    let presence = next_within(&mut b.extra, WAIT).await.expect("sign-out of the dead node's socket");
    assert_eq!(presence, RemoteExtra::Presence { app: APP.into(), user: u1.clone(), online: false });
    let counts = b.adapter.counts(APP, ch).await.unwrap();
    assert_eq!((counts.subscription_count, counts.user_count), (1, 1));
    assert_eq!(b.adapter.online(APP, &[u1]).await.unwrap(), vec![false]);
    eventually("the dead node's connection count removed", WAIT, || async {
        b.adapter.connection_count(APP).await.unwrap() == 0
    })
    .await;
    eventually("the dead node's keys removed", WAIT, || async { redis.cli(&["SCARD", "t:nodes"]).trim() == "1" }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_opens_the_breaker_and_recovery_resubscribes_and_reconciles() {
    let mut redis = RedisServer::start();
    let cfg = config(&redis.url());
    let (mut a, mut b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    let (u1, u2) = (user("1"), user("2"));
    let ch = "presence-room";
    let held_by_a = Arc::new(Mutex::new(Vec::<OwnedMembership>::new()));
    let source = held_by_a.clone();
    a.adapter.set_snapshot(Arc::new(move || source.lock().clone()));
    b.adapter.set_snapshot(Arc::new(Vec::new));
    let m = OwnedMembership {
        app: APP.into(),
        channel: ch.into(),
        socket: SocketId::new(1, 1),
        user: Some(u1.clone()),
        user_info: None,
    };
    held_by_a.lock().push(m.clone());
    a.adapter.join(m.as_membership()).await.unwrap();
    b.adapter.join(member(ch, SocketId::new(2, 1), Some(&u2))).await.unwrap();
    b.adapter.watch_channel(APP, ch, true);
    support::wait_until("b subscribed", WAIT, || numsub(&redis, "t:{app:presence-room}") == 1);

    redis.kill();
    eventually("both breakers open", WAIT, || async {
        let _ = a.adapter.counts(APP, ch).await;
        !a.adapter.is_available() && !b.adapter.is_available()
    })
    .await;
    let started = Instant::now();
    assert!(matches!(a.adapter.counts(APP, ch).await, Err(AdapterError::Unavailable)));
    assert!(started.elapsed() < Duration::from_millis(50), "an open breaker answers at once");
    let dropped = a.adapter.stats().publish_dropped;
    a.adapter.publish(APP, ch, None, Bytes::from_static(b"lost"));
    assert_eq!(a.adapter.stats().publish_dropped, dropped + 1);
    assert!(a.adapter.stats().breaker_open);

    redis.restart();
    eventually("both breakers closed", WAIT, || async { a.adapter.is_available() && b.adapter.is_available() }).await;
    eventually("a's membership reconciled into the empty redis", WAIT, || async {
        matches!(a.adapter.counts(APP, ch).await, Ok(c) if c.subscription_count == 1)
    })
    .await;
    let rejoined = next_within(&mut a.extra, WAIT).await.expect("a reports its re-join");
    assert!(matches!(rejoined, RemoteExtra::Rejoined { outcome, .. } if outcome.occupied && outcome.member_added));
    eventually("b resubscribed", WAIT, || async { numsub(&redis, "t:{app:presence-room}") == 1 }).await;
    a.adapter.publish(APP, ch, None, Bytes::from_static(b"after"));
    match next(&mut b.rx).await {
        Remote::Channel { frame, .. } => assert_eq!(&frame[..], b"after"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_removes_what_the_node_no_longer_holds() {
    let redis = RedisServer::start();
    let cfg = config(&redis.url());
    let (mut a, mut b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    a.adapter.set_snapshot(Arc::new(Vec::new));
    a.adapter.join(member("gone", SocketId::new(1, 1), None)).await.unwrap();
    b.adapter.join(member("kept", SocketId::new(2, 1), None)).await.unwrap();
    // The heartbeat key vanishing (a restart, a failover, a reaping after a stall) triggers
    // a's reconciliation. It also makes a look dead to b until a's next beat, so b's reaper may
    // get there first: either way "gone" is removed, and reported once, by one of them.
    redis.cli(&["DEL", &format!("t:node:{}", hex(a.adapter.node()))]);
    let removal = tokio::select! {
        got = next(&mut a.rx) => got,
        got = next(&mut b.rx) => got,
    };
    match removal {
        Remote::Reaped { channel, outcome, .. } => assert_eq!((channel.as_str(), outcome.vacated), ("gone", true)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(b.adapter.counts(APP, "gone").await.unwrap().subscription_count, 0);
    assert_eq!(b.adapter.counts(APP, "kept").await.unwrap().subscription_count, 1);
    for rx in [&mut a.rx, &mut b.rx] {
        assert!(next_within(rx, QUIET).await.is_none(), "the removal is reported once");
    }
}

fn hex(node: NodeId) -> String {
    node.0.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_shards_state_and_sharded_pubsub() {
    let cluster = RedisCluster::start();
    let mut cfg = config(&cluster.url());
    cfg.cluster = true;
    cfg.cluster_urls = cluster.urls();
    let (a, mut b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    check_presence_transitions(&a.adapter, &b.adapter).await;

    let channels = ["c1", "c2", "c3", "c4"];
    for ch in channels {
        b.adapter.watch_channel(APP, ch, true);
    }
    support::wait_until("sharded subscriptions", WAIT, || {
        channels.iter().all(|ch| shard_numsub(&cluster, &format!("t:{{app:{ch}}}")) == 1)
    });
    for ch in channels {
        a.adapter.publish(APP, ch, None, Bytes::from(ch));
    }
    let mut got = Vec::new();
    for _ in channels {
        match next(&mut b.rx).await {
            Remote::Channel { channel, frame, .. } => {
                assert_eq!(channel.as_bytes(), &frame[..]);
                got.push(channel);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    got.sort();
    assert_eq!(got, channels);
    assert!(a.adapter.acquire_connection(APP, Some(1)).await.unwrap());
    assert!(!b.adapter.acquire_connection(APP, Some(1)).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_names_the_master_the_adapter_uses() {
    let master = RedisServer::start();
    let sentinel = support::RedisSentinel::start("herald-master", &master);
    let mut cfg = config(&sentinel.url());
    cfg.sentinel_master = Some("herald-master".into());
    let (a, b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    check_presence_transitions(&a.adapter, &b.adapter).await;
    assert!(a.adapter.join(member("x", SocketId::new(1, 1), None)).await.unwrap().occupied);
    assert_eq!(master.cli(&["HLEN", "t:{app:x}:socks"]).trim(), "1", "state is on the master");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_when_redis_is_unreachable() {
    let port = support::free_port();
    let (sink, _rx) = recording_sink();
    let tracker = TaskTracker::new();
    let started = Instant::now();
    let result = RedisAdapter::connect(
        &config(&format!("redis://127.0.0.1:{port}")),
        NodeId::random(),
        sink,
        CancellationToken::new(),
        &tracker,
    )
    .await;
    assert!(result.is_err(), "nothing listens on {port}");
    assert!(started.elapsed() < WAIT);
    assert!(tracker.is_empty(), "no task started");
}
