//! History and recovery (herald's extension): events on history channels carry positions, a
//! reconnecting client gets what it missed exactly once and in order, a gap beyond the
//! history is reported, and backends read the history over the signed HTTP API. On one node
//! and on two nodes sharing a real Redis.

mod common;
#[path = "support/nats.rs"]
mod nats_support;
#[path = "support/redis.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{app, assert_api_error, config_with, data_of, Api, Client, TestServer};
use herald::config::{AdapterDriver, AppConfig, Config, HistoryRule};
use serde_json::{json, Value};
use support::{eventually, free_port, RedisServer};
use tokio::sync::watch;

const CHANNEL: &str = "orders-1";
/// Most events a flowing publisher sends before the test stops it.
const MAX_FLOWING: usize = 5_000;

fn history_app(max_events: usize) -> AppConfig {
    let mut app = app();
    app.history = vec![HistoryRule { channels: "orders-*".into(), max_events, max_age_seconds: 300 }];
    app
}

fn nats_node(nats: &nats_support::NatsServer, prefix: &str, app: AppConfig) -> Config {
    let mut config = config_with(vec![app]);
    config.adapter.driver = AdapterDriver::Nats;
    config.adapter.url = nats.url();
    config.adapter.prefix = prefix.to_string();
    config
}

fn node(redis: &RedisServer, prefix: &str) -> Config {
    let mut config = config_with(vec![history_app(1_000)]);
    config.adapter.driver = AdapterDriver::Redis;
    config.adapter.url = redis.url();
    config.adapter.prefix = prefix.to_string();
    config
}

/// One event as a subscriber saw it: its number (`data`) and position.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    n: usize,
    position: String,
}

/// Reads frames until the next event named `e`; returns it as [`Seen`].
async fn next_event(client: &mut Client) -> Seen {
    let frame = client.expect_event("e").await;
    let n = frame["data"].as_str().and_then(|d| d.parse().ok()).unwrap_or_else(|| panic!("numbered data: {frame}"));
    let position = frame["position"].as_str().unwrap_or_else(|| panic!("a position: {frame}")).to_string();
    Seen { n, position }
}

async fn send_recover(client: &mut Client, since: &str) {
    client.send_json(json!({"event": "herald:recover", "data": {"channel": CHANNEL, "since": since}})).await;
}

/// Triggers events numbered from 0 through `api` until `stop` (or [`MAX_FLOWING`]), telling
/// `sent` each time; returns how many it sent.
fn publish_until(api: Api, stop: Arc<AtomicBool>, sent: watch::Sender<usize>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut n = 0;
        while n < MAX_FLOWING && !stop.load(Ordering::SeqCst) {
            api.trigger_one(CHANNEL, "e", &n.to_string()).await;
            n += 1;
            sent.send_replace(n);
        }
        n
    })
}

/// The scenario of the issue: a subscriber is cut off after `cut_after` events while events
/// keep flowing, reconnects (through `reconnect`), asks for what it missed before it
/// subscribes, and must see every event exactly once and in order.
async fn cut_mid_stream(publish: Api, first: &TestServer, reconnect: &TestServer) {
    let mut before = first.connect().await;
    before.subscribe(CHANNEL).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (sent_tx, mut sent_rx) = watch::channel(0);
    let publisher = publish_until(publish, stop.clone(), sent_tx);
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen.push(next_event(&mut before).await);
    }
    drop(before); // the connection is cut: no close handshake
    let last = seen.last().expect("50 events").position.clone();
    // At least 10 events go out while it is away.
    sent_rx.wait_for(|n| *n >= 60).await.expect("the publisher runs");

    let mut after = reconnect.connect().await;
    send_recover(&mut after, &last).await;
    after.subscribe(CHANNEL).await;
    let mut recovered = None;
    let mut live_after_recovered = 0;
    while live_after_recovered < 20 {
        let frame = after.next_frame().await;
        match frame["event"].as_str() {
            Some("herald:recovered") => recovered = Some(data_of(&frame)),
            Some("e") => {
                let n = frame["data"].as_str().and_then(|d| d.parse().ok()).expect("numbered data");
                seen.push(Seen { n, position: frame["position"].as_str().expect("position").into() });
                live_after_recovered += usize::from(recovered.is_some());
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    let sent = publisher.await.expect("publisher");
    while seen.last().map(|s| s.n + 1) != Some(sent) {
        seen.push(next_event(&mut after).await);
    }
    let recovered = recovered.expect("herald:recovered");
    assert_eq!(recovered["since"], last);
    assert!(recovered["replayed"].as_u64().is_some_and(|n| n >= 10), "{recovered}");
    let numbers: Vec<usize> = seen.iter().map(|s| s.n).collect();
    assert_eq!(numbers, (0..sent).collect::<Vec<_>>(), "every event once, in order");
    let positions: Vec<&String> = seen.iter().map(|s| &s.position).collect();
    let mut unique = positions.clone();
    unique.dedup();
    assert_eq!(unique.len(), positions.len(), "one position per event");
}

#[tokio::test]
async fn a_client_cut_mid_stream_gets_every_missed_event_once_and_in_order_on_one_node() {
    let server = TestServer::with_app(history_app(1_000)).await;
    cut_mid_stream(server.api(), &server, &server).await;
}

#[tokio::test]
async fn a_client_cut_on_one_node_recovers_on_another_through_redis() {
    let redis = RedisServer::start();
    let prefix = format!("h{}", std::process::id());
    let a = TestServer::with_config(node(&redis, &prefix)).await;
    let b = TestServer::with_config(node(&redis, &prefix)).await;
    cut_mid_stream(a.api(), &a, &b).await;
}

#[tokio::test]
async fn recovering_after_subscribing_replays_only_what_the_subscription_did_not_bring() {
    let server = TestServer::with_app(history_app(100)).await;
    let api = server.api();
    for n in 0..3 {
        api.trigger_one(CHANNEL, "e", &n.to_string()).await;
    }
    let since = {
        let mut c = server.connect().await;
        c.subscribe(CHANNEL).await;
        api.trigger_one(CHANNEL, "e", "3").await;
        next_event(&mut c).await.position
    };
    for n in 4..7 {
        api.trigger_one(CHANNEL, "e", &n.to_string()).await;
    }
    // pusher-js resubscribes on its own when it reconnects; the recovery request comes after.
    let mut client = server.connect().await;
    client.subscribe(CHANNEL).await;
    api.trigger_one(CHANNEL, "e", "7").await;
    assert_eq!(next_event(&mut client).await.n, 7, "live since the subscription");
    send_recover(&mut client, &since).await;
    let replayed: Vec<usize> = vec![next_event(&mut client).await.n, next_event(&mut client).await.n];
    let third = next_event(&mut client).await.n;
    assert_eq!([replayed[0], replayed[1], third], [4, 5, 6]);
    let done = client.expect_event("herald:recovered").await;
    assert_eq!(data_of(&done)["replayed"], 3);
    api.trigger_one(CHANNEL, "e", "8").await;
    assert_eq!(next_event(&mut client).await.n, 8, "7 is not sent twice");
}

#[tokio::test]
async fn a_gap_older_than_the_history_is_reported_as_a_failed_recovery() {
    let server = TestServer::with_app(history_app(3)).await;
    let api = server.api();
    let mut c = server.connect().await;
    c.subscribe(CHANNEL).await;
    api.trigger_one(CHANNEL, "e", "0").await;
    let first = next_event(&mut c).await.position;
    drop(c);
    for n in 1..6 {
        api.trigger_one(CHANNEL, "e", &n.to_string()).await;
    }
    let mut client = server.connect().await;
    send_recover(&mut client, &first).await;
    client.subscribe(CHANNEL).await;
    let failed = client.expect_event("herald:recovery_failed").await;
    assert_eq!(failed["channel"], CHANNEL);
    let data = data_of(&failed);
    assert_eq!(data["since"], first);
    assert!(data["reason"].as_str().is_some_and(|r| r.contains("no longer kept")), "{failed}");
    api.trigger_one(CHANNEL, "e", "6").await;
    assert_eq!(next_event(&mut client).await.n, 6, "the subscription stays live");
}

#[tokio::test]
async fn recovery_requests_that_cannot_succeed_say_why() {
    let server = TestServer::with_app(history_app(10)).await;
    let mut client = server.connect().await;
    client.subscribe("news").await;
    for (channel, since, reason) in [
        ("news", "1-1", "does not keep history"),
        (CHANNEL, "yesterday", "since must be a position"),
        (CHANNEL, "1-1", "not in the channel's history"),
    ] {
        client.send_json(json!({"event": "herald:recover", "data": {"channel": channel, "since": since}})).await;
        if channel == CHANNEL && since == "1-1" {
            client.subscribe(CHANNEL).await;
        }
        let failed = client.expect_event("herald:recovery_failed").await;
        assert_eq!(failed["channel"], channel);
        let why = data_of(&failed)["reason"].as_str().unwrap_or_default().to_string();
        assert!(why.contains(reason), "{channel} since {since}: {why}");
    }
}

#[tokio::test]
async fn a_flood_of_recovery_requests_is_refused_past_its_budget() {
    let server = TestServer::with_app(history_app(10)).await;
    let mut client = server.connect().await;
    client.subscribe(CHANNEL).await;
    // 100 at once, then 10 a second: of 300 sent in a burst, the first 100 are served and
    // well over 100 are refused (unless sending them took 10 s), and the connection lives.
    for _ in 0..300 {
        send_recover(&mut client, "latest").await;
    }
    let (mut served, mut refused) = (0, 0);
    for n in 0..300 {
        let frame = client.next_frame().await;
        match frame["event"].as_str() {
            Some("herald:recovered") => served += 1,
            Some("herald:recovery_failed") => {
                assert!(n >= 100, "one of the first 100 was refused: {frame}");
                assert!(data_of(&frame)["reason"].as_str().is_some_and(|r| r.contains("too many recovery requests")));
                refused += 1;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    assert!(served >= 100 && refused >= 100, "served {served}, refused {refused}");
    client.ping_pong().await;
}

#[tokio::test]
async fn since_latest_anchors_a_client_that_has_seen_nothing_yet() {
    let server = TestServer::with_app(history_app(10)).await;
    let api = server.api();
    let mut client = server.connect().await;
    send_recover(&mut client, "latest").await;
    client.subscribe(CHANNEL).await;
    let anchor = data_of(&client.expect_event("herald:recovered").await)["position"].as_str().unwrap().to_string();
    drop(client);
    api.trigger_one(CHANNEL, "e", "0").await;
    let mut back = server.connect().await;
    send_recover(&mut back, &anchor).await;
    back.subscribe(CHANNEL).await;
    assert_eq!(next_event(&mut back).await.n, 0, "missed while it had seen nothing");
    back.expect_event("herald:recovered").await;
}

#[tokio::test]
async fn client_events_on_history_channels_are_recorded_with_positions() {
    let mut app = history_app(10);
    app.history[0].channels = "private-orders-*".into();
    let server = TestServer::with_app(app).await;
    let (mut a, mut b) = (server.connect().await, server.connect().await);
    a.subscribe_private("private-orders-1").await;
    b.subscribe_private("private-orders-1").await;
    a.send_client_event("private-orders-1", "client-typing", json!({"n": 1})).await;
    let got = b.expect_event("client-typing").await;
    assert!(got["position"].is_string(), "{got}");
    let (status, body) = server.api().get("/channels/private-orders-1/history", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["events"][0]["event"], "client-typing");
    assert_eq!(body["events"][0]["position"], got["position"]);
}

#[tokio::test]
async fn events_on_other_channels_carry_no_position() {
    let server = TestServer::with_app(history_app(10)).await;
    let mut c = server.connect().await;
    c.subscribe("news").await;
    server.api().trigger_one("news", "e", "x").await;
    let frame = c.expect_event("e").await;
    assert_eq!(frame, json!({"event": "e", "channel": "news", "data": "x"}));
}

async fn history_api(api: &Api) {
    for n in 0..4 {
        api.trigger_one(CHANNEL, "e", &n.to_string()).await;
    }
    let (status, all) = api.get(&format!("/channels/{CHANNEL}/history"), &[]).await;
    assert_eq!(status, 200, "{all}");
    let events = all["events"].as_array().expect("events");
    let data: Vec<&str> = events.iter().map(|e| e["data"].as_str().unwrap_or_default()).collect();
    assert_eq!(data, ["0", "1", "2", "3"]);
    assert_eq!(all["position"], events[3]["position"]);
    assert_eq!(events[0]["channel"], CHANNEL);
    let since = events[1]["position"].as_str().expect("position");
    let (status, after) = api.get(&format!("/channels/{CHANNEL}/history"), &[("since", since)]).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["events"], Value::Array(events[2..].to_vec()));
    let (status, none) = api.get("/channels/orders-never/history", &[]).await;
    assert_eq!((status, none["events"].clone(), none["position"].clone()), (200, json!([]), Value::Null));
    assert_api_error(&api.get("/channels/news/history", &[]).await, 404, "a channel without history");
    assert_api_error(
        &api.get(&format!("/channels/{CHANNEL}/history"), &[("since", "soon")]).await,
        400,
        "a bad position",
    );
}

#[tokio::test]
async fn backends_read_a_channels_history_over_the_http_api() {
    let server = TestServer::with_app(history_app(4)).await;
    history_api(&server.api()).await;
    let api = server.api();
    let (_, all) = api.get(&format!("/channels/{CHANNEL}/history"), &[]).await;
    let first = all["events"][0]["position"].as_str().unwrap().to_string();
    api.trigger_one(CHANNEL, "e", "4").await;
    let (_, all) = api.get(&format!("/channels/{CHANNEL}/history"), &[]).await;
    assert_eq!(all["events"].as_array().map(Vec::len), Some(4), "bounded by max_events");
    let (status, _) = api.get(&format!("/channels/{CHANNEL}/history"), &[("since", &first)]).await;
    assert_eq!(status, 200, "the event after `first` is still kept");
    api.trigger_one(CHANNEL, "e", "5").await;
    assert_api_error(&api.get(&format!("/channels/{CHANNEL}/history"), &[("since", &first)]).await, 410, "trimmed");
}

#[tokio::test]
async fn backends_read_the_history_from_redis_on_any_node() {
    let redis = RedisServer::start();
    let prefix = format!("hapi{}", std::process::id());
    let a = TestServer::with_config(node(&redis, &prefix)).await;
    let b = TestServer::with_config(node(&redis, &prefix)).await;
    history_api(&a.api()).await;
    let (status, from_b) = b.api().get(&format!("/channels/{CHANNEL}/history"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(from_b["events"].as_array().map(Vec::len), Some(4), "{from_b}");
}

/// A node that could not record events (Redis refused the writes) remembers it: the next recorded event
/// of the channel is preceded by a gap entry, and a recovery across it fails instead of
/// silently missing what was not recorded. A recovery from after it still works.
#[tokio::test]
async fn a_recovery_across_events_redis_could_not_record_fails_instead_of_missing_them() {
    let redis = RedisServer::start();
    let server = TestServer::with_config(node(&redis, &format!("hgap{}", std::process::id()))).await;
    let api = server.api();
    let mut before = server.connect().await;
    before.subscribe(CHANNEL).await;
    api.trigger_one(CHANNEL, "e", "0").await;
    let seen = next_event(&mut before).await.position;
    drop(before);

    // Redis refuses writes (out of memory): "1" is delivered (to nobody) but not recorded.
    redis.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cli(&["CONFIG", "SET", "maxmemory", "1"]);
    api.trigger_one(CHANNEL, "e", "1").await;
    redis.cli(&["CONFIG", "SET", "maxmemory", "0"]);
    api.trigger_one(CHANNEL, "e", "2").await;

    let mut across = server.connect().await;
    send_recover(&mut across, &seen).await;
    across.subscribe(CHANNEL).await;
    let failed = across.expect_event("herald:recovery_failed").await;
    assert!(data_of(&failed)["reason"].as_str().is_some_and(|r| r.contains("not recorded")), "{failed}");

    let (status, all) = api.get(&format!("/channels/{CHANNEL}/history"), &[]).await;
    assert_eq!(status, 200, "{all}");
    let events = all["events"].as_array().expect("events");
    let last = events.last().expect("2 is recorded")["position"].as_str().expect("position").to_string();
    let mut after = server.connect().await;
    send_recover(&mut after, &last).await;
    after.subscribe(CHANNEL).await;
    assert_eq!(data_of(&after.expect_event("herald:recovered").await)["replayed"], 0);
}

/// When Redis is down, the node cannot write the gap entry before a next event; it writes it
/// as soon as Redis is back and it has reconciled, so a recovery across the outage fails even
/// if the channel stays silent. Redis keeps its data across the restart (append-only file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_returns_the_node_records_the_gap_even_if_no_event_follows() {
    let dir = std::env::temp_dir().join(format!("herald-history-aof-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let dir_arg = dir.to_string_lossy().to_string();
    let persistent = ["--appendonly", "yes", "--appendfsync", "always", "--dir", &dir_arg];
    let mut redis = RedisServer::start_with(free_port(), persistent.iter().map(|s| s.to_string()).collect());
    let prefix = format!("hout{}", std::process::id());
    let mut config = node(&redis, &prefix);
    config.adapter.heartbeat_interval_ms = 200;
    config.adapter.node_timeout_ms = 1000;
    config.adapter.command_timeout_ms = 300;
    let server = TestServer::with_config(config).await;
    let api = server.api();
    let mut before = server.connect().await;
    before.subscribe(CHANNEL).await;
    api.trigger_one(CHANNEL, "e", "0").await;
    let seen = next_event(&mut before).await.position;
    drop(before);

    redis.kill();
    api.trigger_one(CHANNEL, "e", "during the outage").await;
    redis.restart();
    let key = format!("{prefix}:{{app1:{CHANNEL}}}:history");
    eventually("the node writes the gap once Redis is back", std::time::Duration::from_secs(15), || {
        let entries = redis.cli(&["XRANGE", &key, "-", "+"]);
        async move { entries.lines().any(|l| l == "g") }
    })
    .await;

    let mut across = server.connect().await;
    send_recover(&mut across, &seen).await;
    across.subscribe(CHANNEL).await;
    let failed = across.expect_event("herald:recovery_failed").await;
    assert!(data_of(&failed)["reason"].as_str().is_some_and(|r| r.contains("not recorded")), "{failed}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_client_cut_on_one_node_recovers_on_another_through_nats() {
    let Some(nats) = nats_support::NatsServer::start() else { return };
    let prefix = format!("hn{}", std::process::id());
    let a = TestServer::with_config(nats_node(&nats, &prefix, history_app(1_000))).await;
    let b = TestServer::with_config(nats_node(&nats, &prefix, history_app(1_000))).await;
    cut_mid_stream(a.api(), &a, &b).await;
}

#[tokio::test]
async fn backends_read_the_history_from_nats_on_any_node_and_old_gaps_fail() {
    let Some(nats) = nats_support::NatsServer::start() else { return };
    let prefix = format!("hnapi{}", std::process::id());
    let a = TestServer::with_config(nats_node(&nats, &prefix, history_app(4))).await;
    let b = TestServer::with_config(nats_node(&nats, &prefix, history_app(4))).await;
    history_api(&a.api()).await;
    let (status, from_b) = b.api().get(&format!("/channels/{CHANNEL}/history"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(from_b["events"].as_array().map(Vec::len), Some(4), "{from_b}");
    let first = from_b["events"][0]["position"].as_str().expect("position").to_string();
    for n in 4..6 {
        a.api().trigger_one(CHANNEL, "e", &n.to_string()).await;
    }
    let mut client = b.connect().await;
    send_recover(&mut client, &first).await;
    client.subscribe(CHANNEL).await;
    let failed = client.expect_event("herald:recovery_failed").await;
    assert!(data_of(&failed)["reason"].as_str().is_some_and(|r| r.contains("no longer kept")), "{failed}");
}
