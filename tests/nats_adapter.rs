//! The NATS adapter against a real `nats-server -js`: two or three adapters (nodes) on one
//! server, checked through the adapter API, their sinks, and the server's monitoring endpoint.
//! Mirrors tests/redis_adapter.rs. Skipped when nats-server is not installed, unless
//! HERALD_REQUIRE_NATS is set.

#[path = "support/nats.rs"]
mod nats_support;
#[path = "support/redis.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use herald::adapter::nats::NatsAdapter;
use herald::adapter::{
    AdapterError, JoinOutcome, LeaveOutcome, Membership, NodeId, OwnedMembership, Remote, RemoteExtra,
};
use herald::config::{AdapterConfig, AdapterDriver};
use herald_protocol::{SocketId, UserId};
use nats_support::NatsServer;
use parking_lot::Mutex;
use support::{eventually, next_within, recording_extra, recording_sink};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const APP: &str = "app";
const WAIT: Duration = Duration::from_secs(5);
/// How long to wait for a message that must not come, after one sent later did come.
const QUIET: Duration = Duration::from_millis(100);

fn config(url: &str) -> AdapterConfig {
    AdapterConfig {
        driver: AdapterDriver::Nats,
        url: url.to_owned(),
        prefix: "t".into(),
        heartbeat_interval_ms: 200,
        node_timeout_ms: 600,
        command_timeout_ms: 500,
        publish_queue_capacity: 1024,
        ..AdapterConfig::default()
    }
}

/// One adapter with its sink, extra reports, and shutdown handles.
struct Node {
    adapter: Arc<NatsAdapter>,
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
        let adapter = NatsAdapter::connect(config, NodeId::random(), sink, token.clone(), &tracker)
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

async fn next(rx: &mut UnboundedReceiver<Remote>) -> Remote {
    next_within(rx, WAIT).await.expect("a remote message within 5 s")
}

/// Joins, leaves and queries on one channel from two nodes: each transition reported once.
async fn check_presence_transitions(a: &NatsAdapter, b: &NatsAdapter) {
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
        assert_eq!(node.users(APP, ch).await.unwrap(), vec![u1.clone(), u2.clone()]);
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
    let Some(nats) = NatsServer::start() else { return };
    let (a, b) = (Node::start(&config(&nats.url())).await, Node::start(&config(&nats.url())).await);
    check_presence_transitions(&a.adapter, &b.adapter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_and_leaves_on_three_nodes_decide_each_transition_once() {
    let Some(nats) = NatsServer::start() else { return };
    let cfg = config(&nats.url());
    let nodes = [Node::start(&cfg).await, Node::start(&cfg).await, Node::start(&cfg).await];
    let (ch, ada) = ("presence-busy", user("ada"));
    // 3 nodes × 10 sockets of one user, all at once: the compare-and-set races decide.
    let joins = nodes.iter().enumerate().flat_map(|(n, node)| {
        let ada = ada.clone();
        (0..10u32).map(move |s| {
            let (adapter, ada) = (node.adapter.clone(), ada.clone());
            tokio::spawn(async move { adapter.join(member(ch, SocketId::new(n as u32 + 1, s), Some(&ada))).await })
        })
    });
    let joined: Vec<JoinOutcome> = futures_util::future::join_all(joins.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("join"))
        .collect();
    assert_eq!(joined.iter().filter(|o| o.occupied).count(), 1, "occupied once");
    assert_eq!(joined.iter().filter(|o| o.member_added).count(), 1, "member_added once");
    assert_eq!(nodes[0].adapter.counts(APP, ch).await.unwrap().subscription_count, 30);

    let leaves = nodes.iter().enumerate().flat_map(|(n, node)| {
        let ada = ada.clone();
        (0..10u32).map(move |s| {
            let (adapter, ada) = (node.adapter.clone(), ada.clone());
            tokio::spawn(async move { adapter.leave(member(ch, SocketId::new(n as u32 + 1, s), Some(&ada))).await })
        })
    });
    let left: Vec<LeaveOutcome> = futures_util::future::join_all(leaves.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("leave"))
        .collect();
    assert_eq!(left.iter().filter(|o| o.vacated).count(), 1, "vacated once");
    assert_eq!(left.iter().filter(|o| o.member_removed).count(), 1, "member_removed once");
    assert!(left.iter().all(|o| !o.not_found));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_traffic_reaches_only_interested_nodes_and_never_echoes() {
    let Some(nats) = NatsServer::start() else { return };
    let cfg = config(&nats.url());
    let (a, mut b, mut c) = (Node::start(&cfg).await, Node::start(&cfg).await, Node::start(&cfg).await);
    b.adapter.watch_channel(APP, "ch", true);
    c.adapter.watch_channel(APP, "other", true);
    let (ch_subject, other_subject) = ("t.chan.app.ch", "t.chan.app.other");
    nats_support::wait_until("both subscriptions", WAIT, || {
        nats.subscriptions(ch_subject) == 1 && nats.subscriptions(other_subject) == 1
    });

    let except = SocketId::new(9, 9);
    b.adapter.publish(APP, "ch", None, Bytes::from_static(b"own"));
    a.adapter.publish(APP, "ch", Some(except), Bytes::from_static(b"hello"));
    a.adapter.publish(APP, "other", None, Bytes::from_static(b"marker"));
    let expected = Remote::Channel {
        app: APP.into(),
        channel: "ch".into(),
        except: Some(except),
        frame: Bytes::from_static(b"hello"),
    };
    assert_eq!(next(&mut b.rx).await, expected, "b gets a's message, never its own");
    match next(&mut c.rx).await {
        Remote::Channel { channel, .. } => assert_eq!(channel, "other", "c does not watch ch"),
        other => panic!("unexpected {other:?}"),
    }

    b.adapter.watch_channel(APP, "ch", false);
    nats_support::wait_until("b unsubscribed", WAIT, || nats.subscriptions(ch_subject) == 0);
    b.adapter.watch_channel(APP, "other", true);
    nats_support::wait_until("b on other", WAIT, || nats.subscriptions(other_subject) == 2);
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
async fn user_terminate_and_watch_subjects_reach_the_nodes_that_hold_them() {
    let Some(nats) = NatsServer::start() else { return };
    let cfg = config(&nats.url());
    let (a, mut b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    let (u1, u2) = (user("1"), user("2"));
    b.adapter.watch_user(APP, &u1, true);
    b.adapter.watch_watchers(APP, &u2, true);
    nats_support::wait_until("user and watch subjects", WAIT, || {
        nats.subscriptions("t.user.app.1") == 1 && nats.subscriptions("t.watch.app.2") == 1
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
    let Some(nats) = NatsServer::start() else { return };
    let cfg = config(&nats.url());
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
    let Some(nats) = NatsServer::start() else { return };
    let cfg = config(&nats.url());
    let (a, b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    assert!(a.adapter.acquire_connection(APP, Some(2)).await.unwrap());
    assert!(b.adapter.acquire_connection(APP, Some(2)).await.unwrap());
    assert!(!a.adapter.acquire_connection(APP, Some(2)).await.unwrap(), "third connection is over the quota");
    assert_eq!(b.adapter.connection_count(APP).await.unwrap(), 2);
    b.adapter.release_connection(APP);
    eventually("the release to reach nats", WAIT, || async { a.adapter.connection_count(APP).await.unwrap() == 1 })
        .await;
    assert!(a.adapter.acquire_connection(APP, Some(2)).await.unwrap());
    assert!(a.adapter.acquire_connection(APP, None).await.unwrap(), "no quota, no limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_channel_event_is_shared_with_its_ttl() {
    let Some(nats) = NatsServer::start() else { return };
    let cfg = config(&nats.url());
    let (a, b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    assert_eq!(b.adapter.cache_get(APP, "cache-x").await.unwrap(), None);
    a.adapter
        .cache_set(APP, "cache-x", Bytes::from_static(b"frame"), "{\"d\":1}", Duration::from_secs(30))
        .await
        .unwrap();
    let (frame, data, ttl) = b.adapter.cache_get(APP, "cache-x").await.unwrap().expect("cached");
    assert_eq!((&frame[..], data.as_str()), (&b"frame"[..], "{\"d\":1}"));
    assert!(ttl > Duration::from_secs(25) && ttl <= Duration::from_secs(30));
    a.adapter.cache_set(APP, "cache-y", Bytes::from_static(b"f"), "{}", Duration::from_millis(1)).await.unwrap();
    eventually("the short-lived event to expire", WAIT, || async {
        b.adapter.cache_get(APP, "cache-y").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_publish_queue_drops_and_counts() {
    let Some(nats) = NatsServer::start() else { return };
    let mut cfg = config(&nats.url());
    cfg.publish_queue_capacity = 1;
    let a = Node::start(&cfg).await;
    for _ in 0..2_000 {
        a.adapter.publish(APP, "ch", None, Bytes::from_static(b"x"));
    }
    assert!(a.adapter.stats().publish_dropped > 0, "a queue of one cannot hold 2000 messages");
    eventually("every message published or dropped", WAIT, || async {
        let s = a.adapter.stats();
        s.published + s.publish_dropped == 2_000
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_nodes_subscriptions_are_reaped_by_a_survivor() {
    let Some(nats) = NatsServer::start() else { return };
    let cfg = config(&nats.url());
    let (a, mut b, mut c) = (Node::start(&cfg).await, Node::start(&cfg).await, Node::start(&cfg).await);
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
    // Two survivors: exactly one of them reaps (its claim on the heartbeat's revision won).
    let (reaper, reaps) = tokio::select! {
        first = next(&mut b.rx) => (&mut b, first),
        first = next(&mut c.rx) => (&mut c, first),
    };
    let mut reaped = vec![reaps];
    while reaped.len() < 2 {
        reaped.push(next(&mut reaper.rx).await);
    }
    assert!(crashed.elapsed() < Duration::from_secs(4), "reaped within node timeout + a sweep");
    let mut seen: Vec<(String, Option<UserId>, bool, bool)> = reaped
        .into_iter()
        .map(|r| match r {
            Remote::Reaped { channel, user, outcome, .. } => (channel, user, outcome.member_removed, outcome.vacated),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    seen.sort();
    assert_eq!(seen, vec![(ch.to_owned(), Some(u1.clone()), true, false), ("solo".to_owned(), None, false, true)]);
    let presence = next_within(&mut reaper.extra, WAIT).await.expect("sign-out of the dead node's socket");
    assert_eq!(presence, RemoteExtra::Presence { app: APP.into(), user: u1.clone(), online: false });
    let counts = b.adapter.counts(APP, ch).await.unwrap();
    assert_eq!((counts.subscription_count, counts.user_count), (1, 1));
    assert_eq!(b.adapter.online(APP, &[u1]).await.unwrap(), vec![false]);
    eventually("the dead node's connection count removed", WAIT, || async {
        b.adapter.connection_count(APP).await.unwrap() == 0
    })
    .await;
    assert!(next_within(&mut b.rx, QUIET).await.is_none() && next_within(&mut c.rx, QUIET).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_opens_the_breaker_and_recovery_rebuilds_a_lost_store() {
    let Some(mut nats) = NatsServer::start() else { return };
    let cfg = config(&nats.url());
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
    nats_support::wait_until("b subscribed", WAIT, || nats.subscriptions("t.chan.app.presence-room") == 1);

    nats.kill_and_forget();
    eventually("both breakers open", WAIT, || async { !a.adapter.is_available() && !b.adapter.is_available() }).await;
    let started = Instant::now();
    assert!(matches!(a.adapter.counts(APP, ch).await, Err(AdapterError::Unavailable)));
    assert!(started.elapsed() < Duration::from_millis(50), "an open breaker answers at once");
    let dropped = a.adapter.stats().publish_dropped;
    a.adapter.publish(APP, ch, None, Bytes::from_static(b"lost"));
    assert_eq!(a.adapter.stats().publish_dropped, dropped + 1);
    assert!(a.adapter.stats().breaker_open);

    nats.restart();
    eventually("both breakers closed", Duration::from_secs(10), || async {
        a.adapter.is_available() && b.adapter.is_available()
    })
    .await;
    eventually("a's membership reconciled into the empty store", WAIT, || async {
        matches!(a.adapter.counts(APP, ch).await, Ok(c) if c.subscription_count == 1)
    })
    .await;
    let rejoined = next_within(&mut a.extra, WAIT).await.expect("a reports its re-join");
    assert!(matches!(rejoined, RemoteExtra::Rejoined { outcome, .. } if outcome.occupied && outcome.member_added));
    nats_support::wait_until("b subscribed again", WAIT, || nats.subscriptions("t.chan.app.presence-room") == 1);
    a.adapter.publish(APP, ch, None, Bytes::from_static(b"after"));
    match next(&mut b.rx).await {
        Remote::Channel { frame, .. } => assert_eq!(&frame[..], b"after"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_removes_what_the_node_no_longer_holds() {
    let Some(nats) = NatsServer::start() else { return };
    let cfg = config(&nats.url());
    let (mut a, b) = (Node::start(&cfg).await, Node::start(&cfg).await);
    a.adapter.set_snapshot(Arc::new(Vec::new));
    a.adapter.join(member("gone", SocketId::new(1, 1), None)).await.unwrap();
    b.adapter.join(member("kept", SocketId::new(2, 1), None)).await.unwrap();
    // Someone else writing the node's heartbeat (a survivor's claim after a stall) triggers it.
    let client = async_nats::connect(nats.url()).await.expect("a plain client connects");
    let kv = async_nats::jetstream::new(client).get_key_value("t_cluster").await.expect("the bucket exists");
    kv.put(format!("node.{}", a.adapter.node().hex()), Bytes::from_static(b"{\"reaped_by\":\"test\"}"))
        .await
        .expect("put");
    match next(&mut a.rx).await {
        Remote::Reaped { channel, outcome, .. } => assert_eq!((channel.as_str(), outcome.vacated), ("gone", true)),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(b.adapter.counts(APP, "kept").await.unwrap().subscription_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_when_nats_is_unreachable() {
    let port = support::free_port();
    let (sink, _rx) = recording_sink();
    let tracker = TaskTracker::new();
    let started = Instant::now();
    let result = NatsAdapter::connect(
        &config(&format!("nats://127.0.0.1:{port}")),
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
