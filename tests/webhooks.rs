//! Webhooks through the real server: a receiving HTTP server on 127.0.0.1:0 collects what
//! herald POSTs while Pusher clients subscribe, leave and talk over real WebSockets.

mod common;
#[path = "support/redis.rs"]
mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{app, config_with, TestServer, APP_KEY, APP_SECRET};
use herald::config::{AppConfig, Config, WebhookTarget};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{HeaderMap, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The leave delay the tests configure (Pusher's is 3 s).
const LEAVE_DELAY: Duration = Duration::from_millis(200);
/// The longest any expected webhook may take (a retried one waits 0.5-1 s, then 1-2 s).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(8);

/// One POST the receiver got.
#[derive(Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("webhook body is not JSON ({e}): {:?}", self.body))
    }

    /// The single event of an unbatched webhook.
    fn event(&self) -> Value {
        let body = self.json();
        let events = body["events"].as_array().unwrap_or_else(|| panic!("no events in {body}"));
        assert_eq!(events.len(), 1, "unbatched webhooks carry one event: {body}");
        events[0].clone()
    }
}

/// A receiving HTTP server that answers `statuses` in turn (then 200) and reports each request.
struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    async fn start(statuses: Vec<u16>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("receiver binds");
        let addr = listener.local_addr().expect("receiver address");
        let (tx, rx) = mpsc::unbounded_channel();
        let statuses = Arc::new(statuses);
        let served = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, statuses, served) = (tx.clone(), statuses.clone(), served.clone());
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let (tx, statuses, served) = (tx.clone(), statuses.clone(), served.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let n = served.fetch_add(1, Ordering::SeqCst);
                        let _ = tx.send(Received { headers: parts.headers, body });
                        let status = statuses.get(n).copied().unwrap_or(200);
                        let mut response = Response::new(Full::new(Bytes::new()));
                        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                        Ok::<_, Infallible>(response)
                    }
                });
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                tokio::spawn(connection);
            }
        });
        Self { url: format!("http://{addr}/webhooks"), rx }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(WEBHOOK_TIMEOUT, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no webhook within {WEBHOOK_TIMEOUT:?}"))
            .expect("receiver runs")
    }

    /// The next webhook's single event, checked for Pusher's headers and signature.
    async fn next_event(&mut self) -> Value {
        let received = self.next().await;
        assert_signed(&received);
        received.event()
    }
}

fn assert_signed(received: &Received) {
    let h = &received.headers;
    assert_eq!(h["content-type"], "application/json", "exactly application/json");
    assert_eq!(h["x-pusher-key"], APP_KEY);
    let signature = h["x-pusher-signature"].to_str().expect("ascii signature");
    assert!(herald_protocol::signature::verify(APP_SECRET, &received.body, signature), "bad signature");
    let time_ms = received.json()["time_ms"].as_u64().expect("time_ms");
    let now_ms = common::now_unix() * 1000;
    assert!(time_ms.abs_diff(now_ms) < 60_000, "time_ms {time_ms} is not now ({now_ms})");
}

fn target(url: &str) -> WebhookTarget {
    WebhookTarget {
        url: url.to_string(),
        event_types: ["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event"]
            .map(String::from)
            .to_vec(),
        headers: Default::default(),
    }
}

fn config(targets: Vec<WebhookTarget>) -> Config {
    let app = AppConfig { webhooks: targets, ..app() };
    let mut config = config_with(vec![app]);
    config.webhooks.leave_delay_ms = LEAVE_DELAY.as_millis() as u64;
    config
}

async fn server_with_receiver() -> (TestServer, Receiver) {
    let receiver = Receiver::start(vec![]).await;
    let server = TestServer::with_config(config(vec![target(&receiver.url)])).await;
    (server, receiver)
}

#[tokio::test]
async fn subscribing_sends_channel_occupied_signed_as_pusher_does() {
    let (server, mut receiver) = server_with_receiver().await;
    let mut client = server.connect().await;
    client.subscribe("news").await;
    assert_eq!(receiver.next_event().await, json!({"name": "channel_occupied", "channel": "news"}));
}

#[tokio::test]
async fn unsubscribing_sends_channel_vacated_after_the_leave_delay() {
    let (server, mut receiver) = server_with_receiver().await;
    let mut client = server.connect().await;
    client.subscribe("news").await;
    receiver.next_event().await;
    let left = Instant::now();
    client.unsubscribe("news").await;
    assert_eq!(receiver.next_event().await, json!({"name": "channel_vacated", "channel": "news"}));
    assert!(left.elapsed() >= LEAVE_DELAY, "vacated came after {:?}, before the delay", left.elapsed());
}

#[tokio::test]
async fn presence_joins_and_leaves_send_member_added_and_member_removed() {
    let (server, mut receiver) = server_with_receiver().await;
    let mut client = server.connect().await;
    client.subscribe_presence("presence-room", r#"{"user_id":"42","user_info":{}}"#).await;
    let mut events = [receiver.next_event().await, receiver.next_event().await];
    events.sort_by_key(|e| e["name"].as_str().unwrap_or("").to_string());
    assert_eq!(events[0], json!({"name": "channel_occupied", "channel": "presence-room"}));
    assert_eq!(events[1], json!({"name": "member_added", "channel": "presence-room", "user_id": "42"}));
    client.unsubscribe("presence-room").await;
    let mut events = [receiver.next_event().await, receiver.next_event().await];
    events.sort_by_key(|e| e["name"].as_str().unwrap_or("").to_string());
    assert_eq!(events[0], json!({"name": "channel_vacated", "channel": "presence-room"}));
    assert_eq!(events[1], json!({"name": "member_removed", "channel": "presence-room", "user_id": "42"}));
}

#[tokio::test]
async fn client_events_are_sent_with_their_socket_id() {
    let (server, mut receiver) = server_with_receiver().await;
    let mut sender = server.connect().await;
    sender.subscribe_private("private-chat").await;
    receiver.next_event().await;
    sender.send_client_event("private-chat", "client-typing", json!({"typing": true})).await;
    let event = receiver.next_event().await;
    assert_eq!(
        event,
        json!({
            "name": "client_event",
            "channel": "private-chat",
            "event": "client-typing",
            "data": r#"{"typing":true}"#,
            "socket_id": sender.socket_id,
        })
    );
}

#[tokio::test]
async fn a_quick_leave_and_rejoin_sends_nothing() {
    let (server, mut receiver) = server_with_receiver().await;
    let mut client = server.connect().await;
    client.subscribe("news").await;
    receiver.next_event().await;
    client.unsubscribe("news").await;
    client.subscribe("news").await;
    // Past the delay, a marker: the first webhook after the rejoin must be the marker's.
    tokio::time::sleep(LEAVE_DELAY * 2).await;
    client.subscribe("marker").await;
    assert_eq!(receiver.next_event().await, json!({"name": "channel_occupied", "channel": "marker"}));
}

#[tokio::test]
async fn a_target_failing_twice_gets_the_event_exactly_once() {
    let mut receiver = Receiver::start(vec![500, 500]).await;
    let server = TestServer::with_config(config(vec![target(&receiver.url)])).await;
    let mut client = server.connect().await;
    client.subscribe("news").await;
    let first = receiver.next().await;
    for _ in 0..2 {
        let again = receiver.next().await;
        assert_eq!(again.body, first.body, "a retry resends the same body and time_ms");
        assert_signed(&again);
    }
    // The answer to the third attempt was 200: a marker event comes next, not a fourth copy.
    client.subscribe("marker").await;
    assert_eq!(receiver.next_event().await, json!({"name": "channel_occupied", "channel": "marker"}));
}

#[tokio::test]
async fn a_dead_target_does_not_hold_up_a_live_one() {
    let dead: SocketAddr = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let mut live = Receiver::start(vec![]).await;
    let mut config = config(vec![target(&format!("http://{dead}/")), target(&live.url)]);
    config.webhooks.breaker_failure_threshold = 1;
    let server = TestServer::with_config(config).await;
    let mut client = server.connect().await;
    let started = Instant::now();
    for i in 0..20 {
        let channel = format!("channel-{i}");
        client.subscribe(&channel).await;
        assert_eq!(live.next_event().await, json!({"name": "channel_occupied", "channel": channel}));
    }
    assert!(started.elapsed() < Duration::from_secs(3), "the live target waited on the dead one");
}

/// Two nodes sharing one Redis, both sending this app's webhooks to `receiver`.
async fn cluster_of_two(receiver: &Receiver) -> (support::RedisServer, TestServer, TestServer) {
    cluster_of_two_with(receiver, LEAVE_DELAY).await
}

async fn cluster_of_two_with(
    receiver: &Receiver,
    leave_delay: Duration,
) -> (support::RedisServer, TestServer, TestServer) {
    let redis = support::RedisServer::start();
    let prefix = format!("hooks{}", std::process::id());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut c = config(vec![target(&receiver.url)]);
        c.webhooks.leave_delay_ms = leave_delay.as_millis() as u64;
        c.adapter.driver = herald::config::AdapterDriver::Redis;
        c.adapter.url = redis.url();
        c.adapter.prefix = prefix.clone();
        nodes.push(TestServer::with_config(c).await);
    }
    let b = nodes.pop().expect("two nodes");
    let a = nodes.pop().expect("two nodes");
    (redis, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_sends_each_transition_once_whichever_node_saw_it() {
    let mut receiver = Receiver::start(vec![]).await;
    let (_redis, a, b) = cluster_of_two(&receiver).await;
    let mut on_a = a.connect().await;
    let mut on_b = b.connect().await;
    on_a.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
    // Ada's second socket on the other node, then Bob: one member_added for Bob only.
    on_b.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
    let mut bob = b.connect().await;
    bob.subscribe_presence("presence-room", r#"{"user_id":"bob"}"#).await;
    bob.close().await;
    on_a.close().await;
    on_b.close().await;

    // Everything the cluster sends, until the channel's vacancy and Ada's removal (both delayed
    // by the leave delay, in either order); then a sentinel channel's vacancy (emitted later,
    // delayed the same way) proves nothing else follows.
    let mut sentinel = a.connect().await;
    let mut events: Vec<Value> = Vec::new();
    let seen = |events: &[Value], name: &str, user: Option<&str>| {
        events.iter().filter(|e| e["name"] == name && user.is_none_or(|u| e["user_id"] == u)).count()
    };
    while seen(&events, "channel_vacated", None) == 0 || seen(&events, "member_removed", Some("ada")) == 0 {
        events.push(receiver.next_event().await);
    }
    sentinel.subscribe("sentinel").await;
    sentinel.unsubscribe("sentinel").await;
    loop {
        let event = receiver.next_event().await;
        if event["channel"] == "sentinel" && event["name"] == "channel_vacated" {
            break;
        }
        if event["channel"] != "sentinel" {
            events.push(event);
        }
    }
    assert_eq!(seen(&events, "channel_occupied", None), 1, "{events:?}");
    assert_eq!(seen(&events, "member_added", Some("ada")), 1, "{events:?}");
    assert_eq!(seen(&events, "member_added", Some("bob")), 1, "{events:?}");
    assert_eq!(seen(&events, "member_removed", Some("bob")), 1, "{events:?}");
    assert_eq!(seen(&events, "member_removed", Some("ada")), 1, "{events:?}");
    assert_eq!(seen(&events, "channel_vacated", None), 1, "{events:?}");
    assert_eq!(events.len(), 6, "{events:?}");
}

/// Waits until `server`'s HTTP API reports `channel` unoccupied (the cluster's view).
async fn until_vacant(server: &TestServer, channel: &str) {
    support::eventually("the channel is vacant cluster-wide", Duration::from_secs(5), || async {
        let (status, body) = server.api().get(&format!("/channels/{channel}"), &[]).await;
        status == 200 && body["occupied"] == false
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_on_another_node_within_the_leave_delay_sends_nothing() {
    // The leave delay must outlast the steps between the leave and the rejoin (an HTTP poll
    // and a subscribe, about 0.1 s); 4 s leaves room for a loaded CI machine.
    let mut receiver = Receiver::start(vec![]).await;
    let (_redis, a, b) = cluster_of_two_with(&receiver, Duration::from_secs(4)).await;
    let ada = r#"{"user_id":"ada"}"#;
    let mut on_a = a.connect().await;
    on_a.subscribe_presence("presence-room", ada).await;
    let mut first = [receiver.next_event().await, receiver.next_event().await];
    first.sort_by_key(|e| e["name"].as_str().unwrap_or("").to_string());
    assert_eq!(first[0], json!({"name": "channel_occupied", "channel": "presence-room"}));
    assert_eq!(first[1], json!({"name": "member_added", "channel": "presence-room", "user_id": "ada"}));

    // Ada reloads the page: her socket on A goes, and her new one lands on B, within the delay.
    on_a.close().await;
    until_vacant(&b, "presence-room").await;
    let mut on_b = b.connect().await;
    on_b.subscribe_presence("presence-room", ada).await;
    // A quick leave-and-rejoin on one node is also taken back, whichever node held the leave.
    on_b.unsubscribe("presence-room").await;
    until_vacant(&a, "presence-room").await;
    on_b.subscribe_presence("presence-room", ada).await;
    on_b.close().await;

    // Now she is really gone: exactly one removal and one vacancy follow, and nothing else
    // (a sentinel channel's vacancy, emitted after them, closes the window).
    let mut events: Vec<Value> = Vec::new();
    while events.len() < 2 {
        events.push(receiver.next_event().await);
    }
    let mut sentinel = a.connect().await;
    sentinel.subscribe("sentinel").await;
    sentinel.unsubscribe("sentinel").await;
    loop {
        let event = receiver.next_event().await;
        if event["channel"] == "sentinel" {
            if event["name"] == "channel_vacated" {
                break;
            }
            continue;
        }
        events.push(event);
    }
    events.sort_by_key(|e| e["name"].as_str().unwrap_or("").to_string());
    assert_eq!(
        events,
        [
            json!({"name": "channel_vacated", "channel": "presence-room"}),
            json!({"name": "member_removed", "channel": "presence-room", "user_id": "ada"}),
        ]
    );
}
