//! The engine's moving parts together: the dispatcher's timing under paused tokio time (its
//! endpoint queues read directly), and endpoint workers delivering to a real HTTP server on
//! 127.0.0.1:0 with real time and a short retry schedule.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::{ChannelName, UserId};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{HeaderMap, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::dispatch::{Dispatcher, Emitted};
use super::endpoint::{self, EndpointHandle, EndpointSettings};
use super::retry::RetryPolicy;
use super::route::{AppRoute, WebhookRequest};
use super::*;
use crate::config::WebhookTarget;

const LEAVE: Duration = Duration::from_millis(3000);
const WINDOW: Duration = Duration::from_millis(50);
const WAIT: Duration = Duration::from_secs(10);

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name, 200).expect("valid channel name")
}

fn occupied(name: &str) -> WebhookEvent {
    WebhookEvent::ChannelOccupied { channel: channel(name) }
}

fn vacated(name: &str) -> WebhookEvent {
    WebhookEvent::ChannelVacated { channel: channel(name) }
}

fn app_with(targets: &[(&str, &[&str])], batching: bool) -> Arc<AppRoute> {
    let mut app = AppConfig::new("1", "key", "secret");
    app.webhook_batching = batching;
    app.webhooks = targets
        .iter()
        .map(|(url, kinds)| WebhookTarget {
            url: url.to_string(),
            event_types: kinds.iter().map(|k| k.to_string()).collect(),
            headers: Default::default(),
        })
        .collect();
    Arc::new(AppRoute::new(&app).expect("usable targets"))
}

const ALL: &[&str] = &["channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event"];

fn settings(policy: RetryPolicy, threshold: u32, cooldown: Duration) -> EndpointSettings {
    EndpointSettings {
        policy,
        breaker_threshold: threshold,
        breaker_cooldown: cooldown,
        capacity: 100,
        flush: Duration::from_secs(1),
        client: client::HttpClient::new(Duration::from_millis(500)),
        stats: Arc::new(WebhookStats::default()),
        shutdown: CancellationToken::new(),
        tracker: TaskTracker::new(),
    }
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy { first: Duration::from_millis(20), max: Duration::from_millis(100), budget: Duration::from_secs(5) }
}

/// A running dispatcher whose endpoints are queues the test reads.
struct Harness {
    ingress: mpsc::Sender<Emitted>,
    shutdown: CancellationToken,
}

fn dispatcher(urls: &[&str]) -> (Harness, Vec<mpsc::Receiver<WebhookRequest>>) {
    let s = settings(RetryPolicy::from_config(&WebhooksConfig::default()), 5, Duration::from_secs(30));
    let mut dispatcher = Dispatcher::new(LEAVE, WINDOW, 100, s);
    let mut queues = Vec::new();
    for url in urls {
        let (handle, rx) = EndpointHandle::detached(url, 100);
        dispatcher.attach(url, handle);
        queues.push(rx);
    }
    let (ingress, rx) = mpsc::channel(100);
    let shutdown = CancellationToken::new();
    tokio::spawn(dispatcher.run(rx, shutdown.clone(), Duration::from_secs(10)));
    (Harness { ingress, shutdown }, queues)
}

impl Harness {
    async fn emit(&self, app: &Arc<AppRoute>, event: WebhookEvent) {
        self.ingress.send(Emitted { app: app.clone(), event, check: None }).await.expect("dispatcher runs");
    }
}

/// The event names of one request's body.
fn names(request: &WebhookRequest) -> Vec<String> {
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    body["events"].as_array().expect("events").iter().map(|e| e["name"].as_str().unwrap_or("").to_string()).collect()
}

async fn next(queue: &mut mpsc::Receiver<WebhookRequest>) -> WebhookRequest {
    tokio::time::timeout(Duration::from_secs(3600), queue.recv()).await.expect("a request").expect("queue open")
}

#[tokio::test(start_paused = true)]
async fn vacated_waits_the_leave_delay_while_occupied_goes_at_once() {
    let (h, mut queues) = dispatcher(&["http://a/"]);
    let app = app_with(&[("http://a/", ALL)], false);
    let start = Instant::now();
    h.emit(&app, occupied("c")).await;
    assert_eq!(names(&next(&mut queues[0]).await), ["channel_occupied"]);
    assert_eq!(Instant::now(), start, "occupied is not delayed");
    h.emit(&app, vacated("c")).await;
    assert_eq!(names(&next(&mut queues[0]).await), ["channel_vacated"]);
    assert_eq!(Instant::now() - start, LEAVE);
}

#[tokio::test(start_paused = true)]
async fn a_rejoin_within_the_delay_sends_neither_leave_nor_rejoin() {
    let (h, mut queues) = dispatcher(&["http://a/"]);
    let app = app_with(&[("http://a/", ALL)], false);
    let user = |id: &str| UserId::new(id);
    h.emit(&app, occupied("c")).await;
    next(&mut queues[0]).await;
    h.emit(&app, vacated("c")).await;
    let removed = WebhookEvent::MemberRemoved { channel: channel("presence-p"), user_id: user("1") };
    h.emit(&app, removed.clone()).await;
    h.emit(&app, WebhookEvent::MemberRemoved { channel: channel("presence-p"), user_id: user("2") }).await;
    tokio::time::sleep(LEAVE / 2).await;
    h.emit(&app, occupied("c")).await;
    h.emit(&app, WebhookEvent::MemberAdded { channel: channel("presence-p"), user_id: user("1") }).await;
    // Only user 2's removal survives: a different user's join cancels nothing.
    let request = next(&mut queues[0]).await;
    let body: Value = serde_json::from_slice(&request.body).expect("JSON");
    assert_eq!(body["events"][0]["name"], "member_removed");
    assert_eq!(body["events"][0]["user_id"], "2");
    tokio::time::sleep(LEAVE * 2).await;
    assert!(queues[0].try_recv().is_err(), "nothing else is sent");
}

#[tokio::test(start_paused = true)]
async fn each_target_gets_only_the_kinds_it_asked_for() {
    let (h, mut queues) = dispatcher(&["http://a/", "http://b/"]);
    let app = app_with(&[("http://a/", &["channel_occupied"]), ("http://b/", &["cache_miss"])], false);
    h.emit(&app, occupied("c")).await;
    h.emit(&app, WebhookEvent::CacheMiss { channel: channel("cache-c") }).await;
    assert_eq!(names(&next(&mut queues[0]).await), ["channel_occupied"]);
    assert_eq!(names(&next(&mut queues[1]).await), ["cache_miss"]);
    tokio::time::sleep(LEAVE).await;
    assert!(queues[0].try_recv().is_err() && queues[1].try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn batching_apps_send_one_request_per_window() {
    let (h, mut queues) = dispatcher(&["http://a/"]);
    let app = app_with(&[("http://a/", ALL)], true);
    let start = Instant::now();
    h.emit(&app, occupied("a")).await;
    h.emit(&app, occupied("b")).await;
    tokio::time::sleep(WINDOW / 2).await;
    h.emit(&app, occupied("c")).await;
    let request = next(&mut queues[0]).await;
    assert_eq!(Instant::now() - start, WINDOW);
    assert_eq!(names(&request), ["channel_occupied"; 3]);
    assert_eq!(request.events, 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_waiting_leaves_at_once() {
    let (h, mut queues) = dispatcher(&["http://a/"]);
    let app = app_with(&[("http://a/", ALL)], false);
    h.emit(&app, vacated("c")).await;
    tokio::task::yield_now().await;
    let start = Instant::now();
    h.shutdown.cancel();
    assert_eq!(names(&next(&mut queues[0]).await), ["channel_vacated"]);
    assert_eq!(Instant::now(), start);
    h.emit(&app, vacated("d")).await;
    assert_eq!(names(&next(&mut queues[0]).await), ["channel_vacated"], "leaves during the drain are not delayed");
    assert_eq!(Instant::now(), start);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_and_counts_without_waiting() {
    let config = WebhooksConfig { queue_capacity: 2, ..WebhooksConfig::default() };
    let webhooks = Webhooks::start(&config, CancellationToken::new(), &TaskTracker::new());
    let mut app = AppConfig::new("1", "key", "secret");
    app.webhooks =
        vec![WebhookTarget { url: "http://127.0.0.1:9/".into(), event_types: vec![], headers: Default::default() }];
    assert!(!webhooks.for_app(&app).wants("channel_occupied"), "a target with no kinds wants nothing");
    app.webhooks[0].event_types = vec!["channel_occupied".into()];
    let handle = webhooks.for_app(&app);
    assert!(handle.wants("channel_occupied") && !handle.wants("client_event"));
    // On this single-threaded runtime the dispatcher cannot run between these calls.
    for name in ["a", "b", "c", "d", "e"] {
        handle.emit(occupied(name));
    }
    handle.emit(WebhookEvent::CacheMiss { channel: channel("cache-x") }); // not wanted: not counted
    assert_eq!(handle.dropped(), 3);
    assert_eq!(webhooks.stats().queue_depth(), 2);
    assert_eq!(AppWebhooks::disabled().dropped(), 0);
}

/// A receiving HTTP server: answers with `statuses` in turn (then 200) and reports every request.
async fn receiver(statuses: Vec<u16>) -> (SocketAddr, mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
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
                    let _ = tx.send((parts.headers, body));
                    let status = StatusCode::from_u16(*statuses.get(n).unwrap_or(&200)).unwrap_or(StatusCode::OK);
                    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    (addr, rx)
}

async fn received(rx: &mut mpsc::UnboundedReceiver<(HeaderMap, Bytes)>) -> (HeaderMap, Bytes) {
    tokio::time::timeout(WAIT, rx.recv()).await.expect("a webhook within the wait").expect("receiver runs")
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn request_to(url: &str, event: WebhookEvent) -> WebhookRequest {
    let app = app_with(&[(url, ALL)], false);
    app.request(&app.targets[0], &[event])
}

#[tokio::test]
async fn a_target_failing_twice_gets_the_event_exactly_once_with_pusher_headers() {
    let (addr, mut rx) = receiver(vec![500, 503]).await;
    let url = format!("http://{addr}/hook");
    let s = settings(fast_policy(), 5, Duration::from_secs(30));
    let handle = endpoint::spawn(&url, &s);
    assert!(handle.offer(request_to(&url, occupied("c"))));
    for _ in 0..3 {
        let (headers, body) = received(&mut rx).await;
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-pusher-key"], "key");
        assert_eq!(headers["x-pusher-signature"].to_str().ok(), Some(payload::signature("secret", &body).as_str()));
    }
    eventually("the delivery to be counted", || s.stats.deliveries() == 1).await;
    assert_eq!((s.stats.failures(), s.stats.retries(), s.stats.dropped()), (2, 2, 0));
    assert_eq!(s.stats.queue_depth(), 0);
    drop(handle);
    s.tracker.close();
    tokio::time::timeout(WAIT, s.tracker.wait()).await.expect("the worker ends when its queue closes");
    assert!(rx.try_recv().is_err(), "delivered exactly once");
}

#[tokio::test]
async fn a_dead_endpoint_opens_its_breaker_and_is_not_attempted_while_open() {
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let url = format!("http://{dead}/");
    let s = settings(fast_policy(), 2, Duration::from_secs(3600));
    let handle = endpoint::spawn(&url, &s);
    for name in ["a", "b", "c", "d"] {
        assert!(handle.offer(request_to(&url, occupied(name))));
    }
    let open = || s.stats.endpoints().first().is_some_and(|e| e.breaker == BreakerState::Open);
    eventually("the breaker to open", open).await;
    let failures = s.stats.failures();
    assert!((2..=4).contains(&failures), "{failures} attempts before the breaker opened");
    // Retries fall due every 20-100 ms; none may reach the endpoint while the breaker is open.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.stats.failures(), failures);
    assert_eq!(s.stats.endpoints()[0].pending, 4);
}

#[tokio::test]
async fn a_successful_trial_after_the_cooldown_closes_the_breaker() {
    let (addr, mut rx) = receiver(vec![500]).await;
    let url = format!("http://{addr}/");
    let s = settings(fast_policy(), 1, Duration::from_millis(200));
    let handle = endpoint::spawn(&url, &s);
    assert!(handle.offer(request_to(&url, occupied("a"))));
    received(&mut rx).await;
    let opened = Instant::now();
    received(&mut rx).await;
    assert!(opened.elapsed() >= Duration::from_millis(150), "the trial waits for the cooldown");
    eventually("the delivery", || s.stats.deliveries() == 1).await;
    eventually("the breaker to close", || s.stats.endpoints()[0].breaker == BreakerState::Closed).await;
}

#[tokio::test]
async fn shutdown_stops_retrying_after_the_flush_window_and_counts_the_rest() {
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let url = format!("http://{dead}/");
    let mut s = settings(fast_policy(), 100, Duration::from_secs(1));
    s.flush = Duration::from_millis(200);
    let handle = endpoint::spawn(&url, &s);
    assert!(handle.offer(request_to(&url, occupied("a"))));
    eventually("a failed attempt", || s.stats.failures() >= 1).await;
    s.shutdown.cancel();
    s.tracker.close();
    tokio::time::timeout(WAIT, s.tracker.wait()).await.expect("the worker stops after the flush window");
    assert_eq!(s.stats.dropped(), 1);
    assert_eq!(s.stats.deliveries(), 0);
}

impl Harness {
    /// Emits a cluster-held leave whose check answers `answer`, reporting when it was asked.
    async fn emit_held(&self, app: &Arc<AppRoute>, event: WebhookEvent, answer: bool) -> mpsc::UnboundedReceiver<()> {
        let (asked, asked_rx) = mpsc::unbounded_channel();
        let check = super::LeaveCheck::new(move || {
            Box::pin(async move {
                let _ = asked.send(());
                answer
            })
        });
        self.ingress.send(Emitted { app: app.clone(), event, check: Some(check) }).await.expect("dispatcher runs");
        asked_rx
    }
}

#[tokio::test(start_paused = true)]
async fn a_cluster_held_leave_is_checked_when_due_and_sent_only_if_it_stands() {
    let (h, mut queues) = dispatcher(&["http://a/"]);
    let app = app_with(&[("http://a/", ALL)], false);
    let start = Instant::now();
    let mut taken_back = h.emit_held(&app, vacated("gone"), false).await;
    let mut stands = h.emit_held(&app, vacated("kept"), true).await;
    taken_back.recv().await.expect("the first check ran");
    stands.recv().await.expect("the second check ran");
    assert_eq!(Instant::now() - start, LEAVE, "checks run when the delay is over");
    let request = next(&mut queues[0]).await;
    let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
    assert_eq!(body["events"][0]["channel"], "kept", "only the leave that stands is sent");
    // Nothing else follows: a later occupied is the next request.
    h.emit(&app, occupied("after")).await;
    let body: Value = serde_json::from_slice(&next(&mut queues[0]).await.body).expect("JSON body");
    assert_eq!(body["events"][0]["channel"], "after");
}

#[tokio::test(start_paused = true)]
async fn a_local_join_does_not_cancel_a_leave_the_cluster_decides() {
    let (h, mut queues) = dispatcher(&["http://a/"]);
    let app = app_with(&[("http://a/", ALL)], false);
    let mut asked = h.emit_held(&app, vacated("c"), true).await;
    h.emit(&app, occupied("c")).await;
    assert_eq!(names(&next(&mut queues[0]).await), ["channel_occupied"]);
    asked.recv().await.expect("the check ran");
    assert_eq!(names(&next(&mut queues[0]).await), ["channel_vacated"], "the cluster's answer decides");
}
