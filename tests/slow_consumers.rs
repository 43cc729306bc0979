//! Slow consumers against the real `herald` binary: 500 sockets subscribe and then never read
//! while events flow. The server must close them once their outbox (`max_outbox_bytes`) is
//! full, keep its resident memory under a bound computed from its configuration, and deliver
//! every event, in order, to the clients that do read.
//!
//! The binary runs as its own process so that `/proc/<pid>/status` measures the server alone.
//! Everything it is given is on 127.0.0.1; every loop is bounded in count and in time.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, FRAME_TIMEOUT};
use futures_util::future::join_all;
use futures_util::StreamExt;
use herald_protocol::http::sign_request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

const APP_ID: &str = "slow";
const APP_KEY: &str = "slow-key";
const APP_SECRET: &str = "slow-secret";
const CHANNEL: &str = "firehose";

/// Sockets that subscribe and then never read.
const NON_READERS: usize = 500;
/// Sockets that read everything.
const READERS: usize = 4;
/// The per-socket outbound queue limit given to the server.
const MAX_OUTBOX_BYTES: usize = 64 * 1024;
/// Events triggered, in batches of `BATCH` (the API's `max_batch_size`).
const EVENTS: usize = 400;
const BATCH: usize = 10;
/// Bytes of each event's `data`.
const PAYLOAD_BYTES: usize = 4_000;
/// What a non-reader asks the kernel for as its receive buffer (SO_RCVBUF; Linux doubles it
/// and applies its minimum), so little of the flow is absorbed on the client side.
const NON_READER_RCVBUF: usize = 4_096;
/// The segment size non-readers announce: Ethernet's, as a client across the internet has.
const NON_READER_MSS: u32 = 1_460;
/// User-space memory one open connection costs herald beyond its queued frames: the
/// fastwebsockets read buffer (8 KiB), the task, the session and the outbox (about 9 KB
/// measured, docs/ECOSYSTEM.md), rounded up.
const PER_CONNECTION_BYTES: u64 = 16 * 1024;
/// Allocator and runtime slack: glibc arenas per worker thread, the HTTP requests in flight,
/// the channel map.
const SLACK_BYTES: u64 = 32 * 1024 * 1024;

/// The herald process; killed when dropped.
struct Herald {
    child: Child,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    _config: TempFile,
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Starts the binary on 127.0.0.1 port 0 and reads the addresses it logs.
fn start_herald() -> Herald {
    let path = std::env::temp_dir().join(format!("herald-slow-consumers-{}.toml", std::process::id()));
    let config = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = 0\nmax_outbox_bytes = {MAX_OUTBOX_BYTES}\n\n\
         [metrics]\nhost = \"127.0.0.1\"\nport = 0\n\n\
         [[apps]]\nid = \"{APP_ID}\"\nkey = \"{APP_KEY}\"\nsecret = \"{APP_SECRET}\"\n"
    );
    std::fs::write(&path, config).expect("write the config file");
    let config = TempFile(path);
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(&config.0)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    // Forwards log messages until the process exits (its stderr closes).
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let message = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["fields"]["message"].as_str().map(str::to_string));
            if tx.send(message.unwrap_or(line)).is_err() {
                return;
            }
        }
    });
    let (mut addr, mut metrics_addr) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while addr.is_none() || metrics_addr.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| panic!("herald did not log its addresses within 10 s"));
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = a.trim().parse().ok();
        }
        if let Some(a) = line.strip_prefix("metrics on http://").and_then(|a| a.strip_suffix("/metrics")) {
            metrics_addr = a.trim().parse().ok();
        }
    }
    let (addr, metrics_addr) = (addr.expect("listening address"), metrics_addr.expect("metrics address"));
    Herald { child, addr, metrics_addr, _config: config }
}

/// `VmRSS` of `pid` in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kb * 1024
}

/// Samples the server's RSS every 20 ms until stopped; keeps the peak.
struct RssMonitor {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl RssMonitor {
    fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_bytes(pid)));
        let thread = std::thread::spawn({
            let (stop, peak) = (stop.clone(), peak.clone());
            move || {
                // Bounded: stopped by the test, and at most 5 minutes of samples regardless.
                for _ in 0..15_000 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Self { stop, peak, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.peak.load(Ordering::Relaxed)
    }
}

/// How a socket connects: as a loopback client (64 KiB segments, large buffers) or as a
/// client across a real network would look to the server.
#[derive(Debug, Clone, Copy)]
enum Link {
    Loopback,
    /// MSS `NON_READER_MSS` (Ethernet's) and a receive buffer of `NON_READER_RCVBUF`.
    Internet,
}

/// A WebSocket to herald, subscribed to `CHANNEL`.
async fn connect(addr: SocketAddr, link: Link) -> Client {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .expect("tcp socket");
    if let Link::Internet = link {
        // Announced in the SYN, so the server's kernel sizes its send buffer for this
        // segment size (on loopback it would start at ~2.6 MB for 64 KiB segments).
        socket.set_tcp_mss(NON_READER_MSS).expect("TCP_MAXSEG");
        socket.set_recv_buffer_size(NON_READER_RCVBUF).expect("SO_RCVBUF");
    }
    // A loopback connect completes at once (the kernel answers the SYN).
    socket.connect(&addr.into()).expect("tcp connect");
    socket.set_nonblocking(true).expect("non-blocking");
    let stream = tokio::net::TcpStream::from_std(socket.into()).expect("tokio stream");
    let url = format!("ws://{addr}/app/{APP_KEY}?protocol=7&client=js&version=8.6.0");
    let (ws, _) =
        tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)))
            .await
            .expect("upgrade timed out")
            .expect("upgrade");
    let mut client = Client { ws, socket_id: String::new(), key: APP_KEY.into(), secret: APP_SECRET.into() };
    client.await_established().await;
    client.subscribe(CHANNEL).await;
    client
}

/// A signed HTTP client for the app.
struct Api {
    addr: SocketAddr,
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    fn new(addr: SocketAddr) -> Self {
        Self { addr, http: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http() }
    }

    async fn get(&self, url: String) -> (u16, String) {
        self.send(hyper::Request::get(url).body(Full::default()).expect("request")).await
    }

    async fn send(&self, request: hyper::Request<Full<Bytes>>) -> (u16, String) {
        let response = tokio::time::timeout(FRAME_TIMEOUT, self.http.request(request))
            .await
            .expect("HTTP timed out")
            .expect("HTTP");
        let status = response.status().as_u16();
        let body = tokio::time::timeout(FRAME_TIMEOUT, response.into_body().collect())
            .await
            .expect("HTTP body timed out")
            .expect("HTTP body")
            .to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// A signed `GET /apps/{id}{rest}`.
    async fn signed_get(&self, rest: &str) -> (u16, String) {
        let path = format!("/apps/{APP_ID}{rest}");
        let query = sign_request("GET", &path, APP_KEY, APP_SECRET, common::now_unix(), b"", &[]);
        self.get(format!("http://{}{path}?{query}", self.addr)).await
    }

    /// Triggers events `first..first + BATCH` in one signed `POST /batch_events`.
    async fn trigger_batch(&self, first: usize) {
        let padding = "x".repeat(PAYLOAD_BYTES - 7);
        let batch: Vec<_> = (first..first + BATCH)
            .map(|seq| json!({"channel": CHANNEL, "name": "tick", "data": format!("{seq:06}:{padding}")}))
            .collect();
        let body = json!({ "batch": batch }).to_string();
        let path = format!("/apps/{APP_ID}/batch_events");
        let query = sign_request("POST", &path, APP_KEY, APP_SECRET, common::now_unix(), body.as_bytes(), &[]);
        let request = hyper::Request::post(format!("http://{}{path}?{query}", self.addr))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let (status, response) = self.send(request).await;
        assert_eq!(status, 200, "batch from {first}: {response}");
    }
}

/// The sum of a counter family's samples in a Prometheus text scrape.
fn metric_sum(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Reads events until `EVENTS` have arrived, checking their order; reports progress.
async fn read_every_event(mut client: Client, progress: Arc<AtomicU64>) -> Client {
    for expected in 0..EVENTS {
        let frame = client.expect_event("tick").await;
        let data = frame["data"].as_str().unwrap_or_default();
        assert_eq!(&data[..6], format!("{expected:06}"), "events arrive in order");
        assert_eq!(data.len(), PAYLOAD_BYTES);
        progress.store(expected as u64 + 1, Ordering::Release);
    }
    client
}

/// What ended a non-reader, once it finally reads.
#[derive(Debug, Default)]
struct Endings {
    closed_4100: usize,
    dropped: usize,
    still_open: usize,
    other: Vec<String>,
    events_seen: usize,
}

/// Reads what a non-reader was sent until its connection ends; `(events, ending)`.
async fn drain_non_reader(mut client: Client) -> (usize, Result<Option<u16>, String>) {
    let mut events = 0;
    // Bounded: a non-reader holds at most what fitted in the outbox and the kernel buffers.
    for _ in 0..=EVENTS + 2 {
        let next = match tokio::time::timeout(Duration::from_secs(2), client.ws.next()).await {
            Err(_) => return (events, Err("still open".into())),
            Ok(next) => next,
        };
        match next {
            None | Some(Err(_)) => return (events, Ok(None)),
            Some(Ok(Message::Close(frame))) => return (events, Ok(frame.map(|f| u16::from(f.code)))),
            Some(Ok(Message::Text(text))) => {
                let frame: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                match frame["event"].as_str() {
                    Some("tick") => events += 1,
                    Some("pusher:error") if frame["data"]["code"] == 4100 => {}
                    _ => return (events, Err(format!("unexpected {frame}"))),
                }
            }
            Some(Ok(other)) => return (events, Err(format!("unexpected {other:?}"))),
        }
    }
    (events, Err("more frames than events were sent".into()))
}

fn tally(drained: Vec<(usize, Result<Option<u16>, String>)>) -> Endings {
    let mut endings = Endings::default();
    for (events, ending) in drained {
        endings.events_seen += events;
        match ending {
            Ok(Some(4100)) => endings.closed_4100 += 1,
            Ok(None) => endings.dropped += 1,
            Err(e) if e == "still open" => endings.still_open += 1,
            Ok(Some(code)) => endings.other.push(format!("close {code}")),
            Err(e) => endings.other.push(e),
        }
    }
    endings
}

/// What one run of the scenario measured.
#[derive(Debug)]
struct Report {
    non_readers: usize,
    base_rss: u64,
    peak_rss: u64,
    /// Connections the server still had open after the flow.
    open_afterwards: u64,
    /// `herald_outbox_overflows_total` after the flow.
    overflows_counted: f64,
    endings: Endings,
}

impl Report {
    /// herald's idle RSS, plus for every socket a full outbox (as if no frame were shared
    /// between sockets, though fan-out shares them) and its per-connection state, plus
    /// allocator slack. Kernel socket buffers are not part of RSS.
    fn rss_bound(&self) -> u64 {
        let sockets = (self.non_readers + READERS) as u64;
        self.base_rss + sockets * (MAX_OUTBOX_BYTES as u64 + PER_CONNECTION_BYTES) + SLACK_BYTES
    }

    /// Bytes the non-readers were offered: what an unbounded server would have to hold.
    fn offered(&self) -> u64 {
        (EVENTS * PAYLOAD_BYTES * self.non_readers) as u64
    }
}

/// Runs herald, connects `READERS` readers and `non_readers` sockets that never read,
/// triggers `EVENTS` events, and checks that every reader got every event in order.
async fn run_scenario(non_readers: usize) -> Report {
    let started = Instant::now();
    let herald = start_herald();
    let pid = herald.child.id();
    let api = Api::new(herald.addr);
    let base_rss = rss_bytes(pid);
    let monitor = RssMonitor::start(pid);

    let mut readers = Vec::new();
    for _ in 0..READERS {
        readers.push(connect(herald.addr, Link::Loopback).await);
    }
    let mut stalled = Vec::with_capacity(non_readers);
    while stalled.len() < non_readers {
        let n = (non_readers - stalled.len()).min(50);
        stalled.extend(join_all((0..n).map(|_| connect(herald.addr, Link::Internet))).await);
    }
    let (_, body) = api.signed_get("/connections").await;
    assert_eq!(body, json!({"connections": non_readers + READERS}).to_string());

    // Readers read in their own tasks; the non-readers' sockets are simply never polled.
    let progress: Vec<Arc<AtomicU64>> = (0..READERS).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let reading: Vec<_> =
        readers.into_iter().zip(&progress).map(|(c, p)| tokio::spawn(read_every_event(c, p.clone()))).collect();

    // One batch at a time: the next goes out once every reader has the previous one, so a
    // reader's own 64 KiB outbox is never what limits it; each wait is bounded.
    let mut slowest_batch = Duration::ZERO;
    for first in (0..EVENTS).step_by(BATCH) {
        let sent = Instant::now();
        api.trigger_batch(first).await;
        let target = (first + BATCH) as u64;
        let mut waited = 0;
        while progress.iter().any(|p| p.load(Ordering::Acquire) < target) {
            assert!(waited < 500, "readers did not get events up to {target} within 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
        }
        slowest_batch = slowest_batch.max(sent.elapsed());
    }
    for task in reading {
        task.await.expect("reader got every event in order").close().await;
    }

    // Only the non-readers are left; wait (bounded) for the server to have closed them all.
    let mut open_afterwards = u64::MAX;
    for _ in 0..100 {
        let (_, body) = api.signed_get("/connections").await;
        let answer: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        open_afterwards = answer["connections"].as_u64().unwrap_or(u64::MAX);
        if open_afterwards == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let peak_rss = monitor.stop();
    let (_, scrape) = api.get(format!("http://{}/metrics", herald.metrics_addr)).await;
    let overflows_counted = metric_sum(&scrape, "herald_outbox_overflows_total");
    let endings = tally(join_all(stalled.into_iter().map(drain_non_reader)).await);
    let report = Report { non_readers, base_rss, peak_rss, open_afterwards, overflows_counted, endings };
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    eprintln!(
        "slow consumers ({non_readers} non-readers): RSS base {:.1} MiB, peak {:.1} MiB, bound {:.1} MiB; \
         {:.0} MiB offered to non-readers; overflows counted {overflows_counted}; {:?}; slowest batch {:?}; \
         open afterwards {open_afterwards}; {:?} in all",
        mib(base_rss),
        mib(peak_rss),
        mib(report.rss_bound()),
        mib(report.offered()),
        report.endings,
        slowest_batch,
        started.elapsed(),
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_sockets_that_never_read_are_closed_while_readers_get_every_event_and_memory_stays_bounded() {
    // Readers getting every event in order is checked inside the run.
    let report = run_scenario(NON_READERS).await;
    let bound = report.rss_bound();
    assert!(bound < report.offered() / 4, "the bound must be far below what buffering everything would take");
    assert!(report.peak_rss < bound, "peak RSS {} over the bound {bound}", report.peak_rss);
    assert_eq!(report.open_afterwards, 0, "every non-reader was closed by the server");
    let endings = &report.endings;
    assert_eq!(endings.closed_4100 + endings.dropped, NON_READERS, "{endings:?}");
    assert!(endings.events_seen < EVENTS * NON_READERS / 4, "non-readers cannot have taken most of the flow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slow_consumer_closed_is_counted_in_outbox_overflows_total() {
    let report = run_scenario(50).await;
    assert_eq!(report.open_afterwards, 0, "every non-reader was closed by the server");
    assert_eq!(report.overflows_counted, 50.0, "{:?}", report.endings);
}
