//! The `api` run: K keep-alive HTTP/1.1 connections each send signed `POST /apps/{id}/events`
//! one after another for S seconds (or until `--max-requests` in total), optionally with N
//! sockets subscribed to the channel so every trigger fans out.
//!
//! Each connection is its own hyper `http1` connection owned by one worker task, so K is
//! exactly the number of connections; a connection the server closes is reopened. A request's
//! latency runs from just before it is sent to its last response byte (closed loop: the next
//! request waits for this one). Events carry the usual stamps, so subscribers count deliveries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::Method;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::signed_request;
use crate::cli::ApiArgs;
use crate::clock::Clock;
use crate::connect;
use crate::payload;
use crate::process;
use crate::recorder::{self, Recorder};
use crate::report::{ConnectStats, Latency, Summary, Table};
use crate::subscriber::Shared;
use crate::trigger::EVENT_NAME;
use crate::usage::{Moment, Usage};
use crate::Run;

/// Pause after a failed connect before the worker tries again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);
const MAX_LATENCY_NS: u64 = 60_000_000_000;

#[derive(Debug, Serialize)]
pub struct ApiReport {
    pub scenario: &'static str,
    pub load_average: Option<f64>,
    pub params: ApiParams,
    pub subscribers_connect: Option<ConnectStats>,
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_second: f64,
    pub status: StatusCounts,
    pub first_error: Option<String>,
    pub request_latency_us: Option<Latency>,
    pub delivery: Option<ApiDelivery>,
    pub delivery_latency_us: Option<Latency>,
    pub server_cpu_us_per_request: Option<f64>,
    pub generator_cpu_us_per_request: Option<f64>,
    /// From the first request to the end of the drain.
    pub server: Option<Usage>,
    pub generator: Usage,
}

#[derive(Debug, Serialize)]
pub struct ApiParams {
    pub http_url: String,
    pub concurrency: usize,
    pub seconds: u64,
    pub channel: String,
    pub subscribers: usize,
    pub payload_bytes: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct StatusCounts {
    pub ok_2xx: u64,
    pub client_4xx: u64,
    pub server_5xx: u64,
    /// Any other status (1xx, 3xx).
    pub other: u64,
    /// No response: connect, send or receive failed, or the deadline cut it.
    pub errors: u64,
}

#[derive(Debug, Serialize)]
pub struct ApiDelivery {
    /// 2xx requests × subscribed sockets.
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
}

/// What one worker measured.
#[derive(Debug)]
struct Worker {
    latency: Histogram<u64>,
    status: StatusCounts,
    first_error: Option<String>,
}

/// What the workers share.
#[derive(Debug)]
struct Load {
    run: Run,
    clock: Clock,
    path: String,
    channel: [String; 1],
    payload_bytes: usize,
    next_seq: AtomicU64,
    max_requests: u64,
    end: Instant,
}

pub async fn run(run: &Run, args: &ApiArgs) -> anyhow::Result<ApiReport> {
    let load_average = process::load_average();
    let shared = Arc::new(Shared {
        target: run.target.clone(),
        clock: Clock::start(),
        recorder: Recorder::new()?,
        events: args.max_requests,
        stop: CancellationToken::new(),
        deadline: run.deadline,
    });
    let channels = [args.channel.clone()];
    let (handles, subscribers_connect) = if args.subscribers > 0 {
        let (h, c) = connect::connect_all(&shared, &channels, args.subscribers, args.connect_concurrency).await;
        (h, Some(c))
    } else {
        (Vec::new(), None)
    };
    let opened = subscribers_connect.as_ref().map_or(0, |c| c.opened as u64);

    let start = Moment::now(run.server);
    let started = Instant::now();
    let load = Arc::new(Load {
        run: run.clone(),
        clock: shared.clock,
        path: format!("/apps/{}/events", run.target.app_id),
        channel: channels,
        payload_bytes: args.payload_bytes,
        next_seq: AtomicU64::new(0),
        max_requests: args.max_requests,
        end: (started + Duration::from_secs(args.seconds)).min(run.deadline),
    });
    let workers: Vec<_> = (0..args.concurrency).map(|_| tokio::spawn(work(load.clone()))).collect();
    let Worker { latency, status, first_error } = join_workers(workers).await?;
    let seconds = started.elapsed().as_secs_f64();
    let expected = status.ok_2xx * opened;
    recorder::drain(&shared.recorder, expected, Duration::from_secs(args.drain_seconds), false, run.deadline).await;
    let end = Moment::now(run.server);
    let outcomes = connect::stop_all(&shared, handles).await;

    let requests = latency.len();
    let delivery = subscribers_connect.as_ref().map(|_| {
        let received = outcomes.iter().map(|o| o.unique).sum();
        let duplicates = outcomes.iter().map(|o| o.duplicates).sum();
        ApiDelivery { expected, received, lost: expected.saturating_sub(received), duplicates }
    });
    let server = Usage::server(run.server, &start, &end);
    let generator = Usage::generator(&start, &end);
    Ok(ApiReport {
        scenario: "api",
        load_average,
        params: ApiParams {
            http_url: run.http_url.clone(),
            concurrency: args.concurrency,
            seconds: args.seconds,
            channel: args.channel.clone(),
            subscribers: args.subscribers,
            payload_bytes: args.payload_bytes,
        },
        subscribers_connect,
        requests,
        seconds,
        requests_per_second: requests as f64 / seconds.max(1e-9),
        status,
        first_error,
        request_latency_us: Latency::from_histogram(&latency),
        delivery,
        delivery_latency_us: Latency::from_histogram(&shared.recorder.merged()?),
        server_cpu_us_per_request: server.as_ref().and_then(|s| s.cpu_us_per(requests)),
        generator_cpu_us_per_request: generator.cpu_us_per(requests),
        server,
        generator,
    })
}

/// Waits for every worker and adds up what they measured.
async fn join_workers(workers: Vec<tokio::task::JoinHandle<anyhow::Result<Worker>>>) -> anyhow::Result<Worker> {
    let mut total = Worker::new()?;
    for worker in workers {
        let w = worker.await??;
        total.latency.add(&w.latency)?;
        add_status(&mut total.status, &w.status);
        total.first_error = total.first_error.or(w.first_error);
    }
    Ok(total)
}

impl Worker {
    fn new() -> anyhow::Result<Self> {
        let latency = Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)?;
        Ok(Self { latency, status: StatusCounts::default(), first_error: None })
    }
}

/// One connection's loop: send, wait for the whole response, count, repeat until the end.
async fn work(load: Arc<Load>) -> anyhow::Result<Worker> {
    let mut w = Worker::new()?;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < load.end {
        let ready = match sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            match tokio::time::timeout_at(load.end, open(&load.run)).await {
                Ok(Ok(s)) => sender = Some(s),
                Ok(Err(error)) => {
                    w.status.errors += 1;
                    w.first_error.get_or_insert_with(|| format!("connect: {error:#}"));
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
                Err(_) => {}
            }
            continue;
        }
        let Some(s) = sender.as_mut() else { continue };
        let seq = load.next_seq.fetch_add(1, Ordering::Relaxed);
        if seq >= load.max_requests {
            break;
        }
        let sent_ns = load.clock.now_ns();
        let result = tokio::time::timeout_at(load.run.deadline, request(s, &load, seq, sent_ns)).await;
        w.latency.saturating_record(load.clock.now_ns().saturating_sub(sent_ns).max(1));
        match result {
            Ok(Ok(status)) => count_status(&mut w, status),
            Ok(Err(error)) => {
                w.status.errors += 1;
                w.first_error.get_or_insert_with(|| format!("{error:#}"));
                sender = None;
            }
            Err(_) => {
                w.status.errors += 1;
                sender = None;
            }
        }
    }
    Ok(w)
}

/// Opens one HTTP/1.1 connection; its driver runs in its own task until the sender is dropped.
async fn open(run: &Run) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(run.target.http.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One signed trigger; the status, and the body of the first non-2xx as its error text.
async fn request(
    sender: &mut SendRequest<Full<Bytes>>,
    load: &Load,
    seq: u64,
    sent_ns: u64,
) -> anyhow::Result<Response> {
    let data = payload::event_data(seq, sent_ns, load.payload_bytes);
    let body = payload::trigger_body(EVENT_NAME, &load.channel, &data)?;
    let request = signed_request(&load.run.target, Method::POST, &load.path, body, &[])?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Response { status: status.as_u16(), body })
}

#[derive(Debug)]
struct Response {
    status: u16,
    body: Bytes,
}

fn count_status(w: &mut Worker, response: Response) {
    let s = &mut w.status;
    match response.status {
        200..=299 => s.ok_2xx += 1,
        400..=499 => s.client_4xx += 1,
        500..=599 => s.server_5xx += 1,
        _ => s.other += 1,
    }
    if !(200..300).contains(&response.status) {
        let text = String::from_utf8_lossy(&response.body);
        w.first_error.get_or_insert_with(|| format!("HTTP {}: {text}", response.status));
    }
}

fn add_status(total: &mut StatusCounts, s: &StatusCounts) {
    total.ok_2xx += s.ok_2xx;
    total.client_4xx += s.client_4xx;
    total.server_5xx += s.server_5xx;
    total.other += s.other;
    total.errors += s.errors;
}

impl Summary for ApiReport {
    fn table(&self) -> String {
        let p = &self.params;
        let load = self.load_average.map_or("-".to_string(), |l| format!("{l:.2}"));
        let mut t = Table::new(format!(
            "api against {} ({} connections, {} subscriber(s), load average {load})",
            p.http_url, p.concurrency, p.subscribers
        ));
        if let Some(c) = &self.subscribers_connect {
            t.row("subscribers opened", format!("{} of {} ({} failed)", c.opened, p.subscribers, c.failed));
        }
        t.row("requests", format!("{} in {:.2} s", self.requests, self.seconds));
        t.row("requests/s", format!("{:.0}", self.requests_per_second));
        let s = &self.status;
        t.row(
            "status 2xx/4xx/5xx/other/error",
            format!("{} / {} / {} / {} / {}", s.ok_2xx, s.client_4xx, s.server_5xx, s.other, s.errors),
        );
        if let Some(error) = &self.first_error {
            t.row("first error", error);
        }
        if let Some(l) = &self.request_latency_us {
            t.row("request p50 / p99 / p99.9", format!("{:.0} / {:.0} / {:.0} µs", l.p50, l.p99, l.p99_9));
            t.row("request max / mean", format!("{:.0} / {:.0} µs", l.max, l.mean));
        }
        if let Some(d) = &self.delivery {
            t.row("deliveries expected", d.expected);
            t.row("deliveries received", format!("{} (lost {}, duplicate {})", d.received, d.lost, d.duplicates));
            t.latency(self.delivery_latency_us.as_ref());
        }
        t.usage("server", self.server.as_ref(), Some((self.requests, "request")));
        t.usage("generator", Some(&self.generator), Some((self.requests, "request")));
        t.finish()
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = &self.status;
        let failed = s.client_4xx + s.server_5xx + s.other + s.errors;
        if failed > 0 {
            let why = self.first_error.as_deref().unwrap_or("");
            out.push(format!("{failed} requests failed: {why}"));
        }
        if let Some(c) = self.subscribers_connect.as_ref().filter(|c| c.failed > 0) {
            out.push(format!("{} subscribers failed: {}", c.failed, c.first_error.as_deref().unwrap_or("deadline")));
        }
        if let Some(d) = self.delivery.as_ref().filter(|d| d.lost > 0 || d.duplicates > 0) {
            out.push(format!("{} deliveries lost, {} duplicated", d.lost, d.duplicates));
        }
        out
    }
}
