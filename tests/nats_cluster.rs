//! herald nodes sharing one real `nats-server -js`: delivery across three nodes, presence and
//! the HTTP API cluster-wide, webhooks decided once, a SIGKILLed node reaped by the survivors,
//! and a NATS restart. Mirrors tests/cluster_faults.rs and the cluster parts of
//! tests/webhooks.rs. Skipped when nats-server is not installed, unless HERALD_REQUIRE_NATS
//! is set.

mod common;
#[path = "support/nats.rs"]
mod nats_support;
#[path = "support/redis.rs"]
mod support;

use std::convert::Infallible;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::{app, config_with, Client, TestServer, APP_ID, APP_KEY, APP_SECRET};
use herald::config::{AdapterDriver, AppConfig, Config, WebhookTarget};
use herald_protocol::signature::{auth_token, user_string_to_sign};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::Response;
use hyper_util::rt::TokioIo;
use nats_support::NatsServer;
use serde_json::{json, Value};
use support::{eventually, free_port};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn node_config(apps: Vec<AppConfig>, nats: &NatsServer, prefix: &str) -> Config {
    let mut config = config_with(apps);
    config.adapter.driver = AdapterDriver::Nats;
    config.adapter.url = nats.url();
    config.adapter.prefix = prefix.to_string();
    config.adapter.heartbeat_interval_ms = 200;
    config.adapter.node_timeout_ms = 1000;
    config
}

async fn nodes(nats: &NatsServer, count: usize) -> Vec<TestServer> {
    let prefix = format!("c{}", std::process::id());
    let mut app = app();
    app.client_events = true;
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(TestServer::with_config(node_config(vec![app.clone()], nats, &prefix)).await);
    }
    out
}

/// Signs `client` in as `id` watching `watchlist`; returns the `signin_success` frame.
async fn sign_in(client: &mut Client, id: &str, watchlist: &[&str]) -> Value {
    let user_data = json!({"id": id, "watchlist": watchlist}).to_string();
    let auth = auth_token(APP_KEY, APP_SECRET, &user_string_to_sign(&client.socket_id, &user_data));
    client.send_json(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})).await;
    client.expect_event("pusher:signin_success").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_channel_client_and_user_events_to_each_other() {
    let Some(nats) = NatsServer::start() else { return };
    let nodes = nodes(&nats, 3).await;
    let mut clients = Vec::new();
    for node in &nodes {
        let mut client = node.connect().await;
        client.subscribe_private("private-chat").await;
        clients.push(client);
    }
    nodes[0].api().trigger_one("private-chat", "news", r#"{"n":1}"#).await;
    for client in clients.iter_mut() {
        assert_eq!(client.expect_event("news").await["data"], r#"{"n":1}"#);
    }
    // A client event from node B reaches A and C, not its sender.
    clients[1].send_client_event("private-chat", "client-typing", json!({"who": "b"})).await;
    assert_eq!(common::data_of(&clients[0].expect_event("client-typing").await), json!({"who": "b"}));
    assert_eq!(common::data_of(&clients[2].expect_event("client-typing").await), json!({"who": "b"}));
    nodes[1].api().trigger_one("private-chat", "marker", "{}").await;
    clients[1].expect_event("marker").await;

    // Server-to-user events and terminate_connections reach the node the user is on.
    let mut ada = nodes[2].connect().await;
    sign_in(&mut ada, "ada", &[]).await;
    let api = nodes[0].api();
    let sent = json!({"name": "hello", "channel": "#server-to-user-ada", "data": "{}"});
    // C listens to ada's subject once her sign-in is recorded: retry until an event arrives.
    let started = tokio::time::Instant::now();
    loop {
        api.trigger(sent.clone()).await;
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(200), ada.next_frame()).await {
            if frame["event"] == "hello" {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5), "a server-to-user event on A did not reach C");
    }
    let (status, _) = nodes[1].api().post("/users/ada/terminate_connections", &json!({})).await;
    assert_eq!(status, 200);
    // As on one node: a pusher:error 4009, then the close.
    assert_eq!(ada.expect_error_code(Some(4009)).await["message"], "You got disconnected by the app");
    ada.expect_close(4009).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchlists_hear_users_come_and_go_on_other_nodes() {
    let Some(nats) = NatsServer::start() else { return };
    let nodes = nodes(&nats, 2).await;
    let mut watcher = nodes[0].connect().await;
    sign_in(&mut watcher, "watcher", &["bob"]).await;
    let status = watcher.expect_event("pusher_internal:watchlist_events").await;
    assert_eq!(common::data_of(&status)["events"], json!([{"name": "offline", "user_ids": ["bob"]}]));
    let mut bob = nodes[1].connect().await;
    sign_in(&mut bob, "bob", &[]).await;
    let online = watcher.expect_event("pusher_internal:watchlist_events").await;
    assert_eq!(common::data_of(&online)["events"], json!([{"name": "online", "user_ids": ["bob"]}]));
    bob.close().await;
    let offline = watcher.expect_event("pusher_internal:watchlist_events").await;
    assert_eq!(common::data_of(&offline)["events"], json!([{"name": "offline", "user_ids": ["bob"]}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_rosters_member_events_and_the_http_api_are_cluster_wide() {
    let Some(nats) = NatsServer::start() else { return };
    let nodes = nodes(&nats, 3).await;
    let mut ada = nodes[0].connect().await;
    ada.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
    let mut bob = nodes[1].connect().await;
    bob.subscribe_presence("presence-room", r#"{"user_id":"bob","user_info":{"name":"Bob"}}"#).await;
    let mut carol = nodes[2].connect().await;
    let joined = carol.subscribe_presence("presence-room", r#"{"user_id":"carol"}"#).await;
    assert_eq!(joined["count"], 3, "{joined}");
    assert_eq!(joined["hash"]["bob"], json!({"name": "Bob"}), "{joined}");
    for name in ["bob", "carol"] {
        assert_eq!(common::data_of(&ada.expect_event("pusher_internal:member_added").await)["user_id"], name);
    }
    assert_eq!(common::data_of(&bob.expect_event("pusher_internal:member_added").await)["user_id"], "carol");
    let mut plain = nodes[2].connect().await;
    plain.subscribe("news").await;

    for node in &nodes {
        let api = node.api();
        let (status, users) = api.get("/channels/presence-room/users", &[]).await;
        assert_eq!((status, users), (200, json!({"users": [{"id": "ada"}, {"id": "bob"}, {"id": "carol"}]})));
        let (_, room) = api.get("/channels/presence-room", &[("info", "subscription_count,user_count")]).await;
        assert_eq!((room["occupied"].clone(), room["subscription_count"].clone()), (json!(true), json!(3)));
        assert_eq!(room["user_count"], 3);
        let (_, list) = api.get("/channels", &[("filter_by_prefix", "presence-"), ("info", "user_count")]).await;
        assert_eq!(list, json!({"channels": {"presence-room": {"user_count": 3}}}));
        let (_, all) = api.get("/channels", &[]).await;
        assert_eq!(all, json!({"channels": {"news": {}, "presence-room": {}}}));
    }

    bob.close().await;
    assert_eq!(common::data_of(&ada.expect_event("pusher_internal:member_removed").await)["user_id"], "bob");
    assert_eq!(common::data_of(&carol.expect_event("pusher_internal:member_removed").await)["user_id"], "bob");
    let api = nodes[2].api();
    eventually("the cluster counts two members", Duration::from_secs(5), || async {
        api.get("/channels/presence-room", &[("info", "user_count")]).await.1["user_count"] == 2
    })
    .await;
}

/// A receiving HTTP server that answers 200 and reports each request's JSON body.
async fn webhook_receiver() -> (String, mpsc::UnboundedReceiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("receiver binds");
    let url = format!("http://{}/webhooks", listener.local_addr().expect("receiver address"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let tx = tx.clone();
                async move {
                    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let _ = tx.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::spawn(connection);
        }
    });
    (url, rx)
}

async fn next_webhook_event(rx: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    let body = tokio::time::timeout(Duration::from_secs(8), rx.recv()).await.expect("a webhook").expect("receiver");
    body["events"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_sends_each_webhook_once_whichever_node_saw_the_transition() {
    let Some(nats) = NatsServer::start() else { return };
    let (url, mut receiver) = webhook_receiver().await;
    let events = ["channel_occupied", "channel_vacated", "member_added", "member_removed"].map(String::from);
    let target = WebhookTarget { url, event_types: events.to_vec(), headers: Default::default() };
    let app = AppConfig { webhooks: vec![target], ..app() };
    let prefix = format!("hooks{}", std::process::id());
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut config = node_config(vec![app.clone()], &nats, &prefix);
        config.webhooks.leave_delay_ms = 200;
        nodes.push(TestServer::with_config(config).await);
    }
    let mut on_a = nodes[0].connect().await;
    let mut on_b = nodes[1].connect().await;
    on_a.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
    // Ada's second socket on the other node, then Bob: one member_added for Bob only.
    on_b.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
    let mut bob = nodes[1].connect().await;
    bob.subscribe_presence("presence-room", r#"{"user_id":"bob"}"#).await;
    bob.close().await;
    on_a.close().await;
    on_b.close().await;

    let mut seen: Vec<Value> = Vec::new();
    let count = |seen: &[Value], name: &str| seen.iter().filter(|e| e["name"] == name).count();
    while count(&seen, "channel_vacated") == 0 || count(&seen, "member_removed") < 2 {
        seen.push(next_webhook_event(&mut receiver).await);
    }
    // A sentinel channel's vacancy, emitted after everything above, closes the window.
    let mut sentinel = nodes[0].connect().await;
    sentinel.subscribe("sentinel").await;
    sentinel.unsubscribe("sentinel").await;
    loop {
        let event = next_webhook_event(&mut receiver).await;
        if event["channel"] == "sentinel" {
            if event["name"] == "channel_vacated" {
                break;
            }
            continue;
        }
        seen.push(event);
    }
    let mut names: Vec<String> = seen
        .iter()
        .map(|e| format!("{} {}", e["name"].as_str().unwrap_or(""), e["user_id"].as_str().unwrap_or("")))
        .collect();
    names.sort();
    let expected = [
        "channel_occupied ",
        "channel_vacated ",
        "member_added ada",
        "member_added bob",
        "member_removed ada",
        "member_removed bob",
    ];
    assert_eq!(names, expected, "{seen:?}");
}

/// herald as a process, so it can die for real.
struct Process {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Process {
    fn start(nats: &NatsServer, prefix: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("herald-nats-fault-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("herald.toml");
        let toml = format!(
            "[server]\nhost = \"127.0.0.1\"\nport = {port}\n\n[metrics]\nenabled = false\n\n[adapter]\ndriver = \"nats\"\n\
             url = \"{}\"\nprefix = \"{prefix}\"\nheartbeat_interval_ms = 200\nnode_timeout_ms = 1000\n\n\
             [[apps]]\nid = \"{APP_ID}\"\nkey = \"{APP_KEY}\"\nsecret = \"{APP_SECRET}\"\n",
            nats.url()
        );
        std::fs::write(&config, toml).expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start herald");
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/app/{APP_KEY}?protocol=7&client=js&version=8.6.0", self.port)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_presence_members_are_removed_by_the_survivors() {
    let Some(nats) = NatsServer::start() else { return };
    let prefix = format!("death{}", std::process::id());
    let survivors = [
        TestServer::with_config(node_config(vec![app()], &nats, &prefix)).await,
        TestServer::with_config(node_config(vec![app()], &nats, &prefix)).await,
    ];
    let mut doomed = Process::start(&nats, &prefix);
    let mut ada = survivors[0].connect().await;
    ada.subscribe_presence("presence-room", r#"{"user_id":"ada"}"#).await;
    let started = tokio::time::Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", doomed.port)).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "herald did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bob = survivors[0].open(&doomed.url(), None).await;
    bob.await_established().await;
    bob.subscribe_presence("presence-room", r#"{"user_id":"bob"}"#).await;
    let mut news = survivors[1].connect().await;
    news.subscribe("news").await;
    let mut bob_news = survivors[1].open(&doomed.url(), None).await;
    bob_news.await_established().await;
    bob_news.subscribe("news").await;
    assert_eq!(common::data_of(&ada.expect_event("pusher_internal:member_added").await)["user_id"], "bob");

    let _ = doomed.child.kill(); // SIGKILL: no goodbye to NATS.
    let _ = doomed.child.wait();
    let removed = tokio::time::timeout(Duration::from_secs(30), ada.expect_event("pusher_internal:member_removed"))
        .await
        .expect("member_removed within 30 s of the node's death");
    assert_eq!(common::data_of(&removed)["user_id"], "bob");
    for server in &survivors {
        let api = server.api();
        let (status, users) = api.get("/channels/presence-room/users", &[]).await;
        assert_eq!((status, users), (200, json!({"users": [{"id": "ada"}]})));
        eventually("the dead node's news subscription removed", Duration::from_secs(10), || async {
            api.get("/channels/news", &[("info", "subscription_count")]).await.1["subscription_count"] == 1
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_restart_keeps_local_delivery_and_the_cluster_recovers() {
    let Some(mut nats) = NatsServer::start() else { return };
    let nodes = nodes(&nats, 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut on_a = a.connect().await;
    let mut on_b = b.connect().await;
    on_a.subscribe("news").await;
    on_b.subscribe("news").await;
    a.api().trigger_one("news", "before", "{}").await;
    on_b.expect_event("before").await;
    on_a.expect_event("before").await;

    nats.kill();
    let api_a = a.api();
    eventually("node A reports not ready", Duration::from_secs(10), || async {
        api_a.raw("GET", "/readyz", "").await.0 == 503
    })
    .await;
    a.api().trigger_one("news", "during", "{}").await;
    on_a.expect_event("during").await;
    // A subscription made during the outage is reconciled into NATS afterwards.
    let mut late = a.connect().await;
    late.subscribe("news").await;

    nats.restart();
    eventually("node A is ready again", Duration::from_secs(15), || async {
        api_a.raw("GET", "/readyz", "").await.0 == 200
    })
    .await;
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
    let api_b = b.api();
    eventually("the cluster counts all three subscribers", Duration::from_secs(15), || async {
        let (status, body) = api_b.get("/channels/news", &[("info", "subscription_count")]).await;
        status == 200 && body["subscription_count"] == json!(3)
    })
    .await;
}
