//! One endpoint (one URL, shared by every app that targets it): its bounded queue, its worker
//! task, its circuit breaker and its retries. A slow or dead endpoint only ever fills its own
//! queue; other endpoints have their own workers and never wait behind it.
//!
//! Bounds and "full": the queue holds at most `queue_capacity` requests and the worker holds
//! at most `queue_capacity` more (waiting for a retry or in flight, at most [`MAX_IN_FLIGHT`]
//! at once). When the queue is full, [`EndpointHandle::offer`] refuses at once and the
//! dispatcher counts the request's events as dropped. While the breaker is open nothing is
//! attempted or even taken from the queue, so a dead endpoint costs one failed `try_send`.
//!
//! Shutdown: after cancellation the worker keeps going for `shutdown_flush_seconds`, then
//! counts whatever it still holds as dropped and stops; it stops earlier once its queue is
//! closed (the dispatcher is gone) and it holds nothing.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::breaker::Breaker;
use super::client::{DeliveryError, HttpClient};
use super::retry::RetryPolicy;
use super::route::WebhookRequest;
use super::sleep_until_some;
use super::stats::{EndpointStats, WebhookStats};

/// Requests one endpoint has in flight at once.
pub(super) const MAX_IN_FLIGHT: usize = 8;

/// Everything a new endpoint worker needs; shared by all endpoints.
#[derive(Debug, Clone)]
pub(super) struct EndpointSettings {
    pub policy: RetryPolicy,
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    pub capacity: usize,
    pub flush: Duration,
    pub client: HttpClient,
    pub stats: Arc<WebhookStats>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

/// The way into one endpoint's queue.
#[derive(Debug, Clone)]
pub(super) struct EndpointHandle {
    tx: mpsc::Sender<WebhookRequest>,
    stats: Arc<EndpointStats>,
}

impl EndpointHandle {
    /// Queues `request` without waiting; false when the queue is full or closed.
    pub(super) fn offer(&self, request: WebhookRequest) -> bool {
        self.stats.add_pending();
        let queued = self.tx.try_send(request).is_ok();
        if !queued {
            self.stats.remove_pending();
        }
        queued
    }

    /// A handle whose queue the caller reads itself (dispatcher tests).
    #[cfg(test)]
    pub(super) fn detached(url: &str, capacity: usize) -> (Self, mpsc::Receiver<WebhookRequest>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, stats: WebhookStats::default().endpoint(url) }, rx)
    }
}

/// Starts the worker of `url` on the tracker.
pub(super) fn spawn(url: &str, settings: &EndpointSettings) -> EndpointHandle {
    let (tx, rx) = mpsc::channel(settings.capacity.max(1));
    let stats = settings.stats.endpoint(url);
    let worker = Worker {
        url: url.to_string(),
        rx,
        rx_open: true,
        retries: BinaryHeap::new(),
        next_seq: 0,
        in_flight: JoinSet::new(),
        breaker: Breaker::new(settings.breaker_threshold, settings.breaker_cooldown),
        settings: settings.clone(),
        endpoint: stats.clone(),
    };
    settings.tracker.spawn(worker.run());
    EndpointHandle { tx, stats }
}

/// A failed request waiting for its next attempt.
#[derive(Debug)]
struct Retry {
    at: Instant,
    seq: u64,
    failures: u32,
    request: WebhookRequest,
}

impl PartialEq for Retry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Retry {}
impl PartialOrd for Retry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Retry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// What one attempt came to.
#[derive(Debug)]
struct Attempt {
    failures: u32,
    request: WebhookRequest,
    result: Result<(), DeliveryError>,
}

#[derive(Debug)]
struct Worker {
    url: String,
    rx: mpsc::Receiver<WebhookRequest>,
    rx_open: bool,
    retries: BinaryHeap<Reverse<Retry>>,
    next_seq: u64,
    in_flight: JoinSet<Attempt>,
    breaker: Breaker,
    settings: EndpointSettings,
    endpoint: Arc<EndpointStats>,
}

impl Worker {
    async fn run(mut self) {
        let shutdown = self.settings.shutdown.clone();
        let mut deadline: Option<Instant> = None;
        loop {
            self.start_due_retries();
            if !self.rx_open && self.in_flight.is_empty() && self.retries.is_empty() {
                return;
            }
            let now = Instant::now();
            let room = self.in_flight.len() < MAX_IN_FLIGHT
                && self.in_flight.len() + self.retries.len() < self.settings.capacity;
            let accept = self.rx_open && room && self.breaker.would_permit(now);
            let wake = self.next_wake(now);
            // Cancel safety: `recv` and `join_next` lose nothing when another branch wins; the
            // sleeps and `cancelled` hold no state.
            tokio::select! {
                request = self.rx.recv(), if accept => match request {
                    Some(request) => self.start(request, 0),
                    None => self.rx_open = false,
                },
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => self.finish(done),
                () = sleep_until_some(wake), if wake.is_some() => {}
                () = shutdown.cancelled(), if deadline.is_none() => {
                    deadline = Some(Instant::now() + self.settings.flush);
                }
                () = sleep_until_some(deadline), if deadline.is_some() => break,
            }
            self.endpoint.set_breaker(self.breaker.state(Instant::now()));
        }
        self.abandon();
    }

    /// When something becomes possible without an attempt finishing: a retry falling due or
    /// the breaker's cooldown ending while requests wait. `None` when only a finishing
    /// attempt (or a new request) can change anything.
    fn next_wake(&self, now: Instant) -> Option<Instant> {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            return None;
        }
        let gate = self.breaker.next_permit(now)?;
        let retry = self.retries.peek().map(|Reverse(r)| r.at.max(gate));
        let queued = (self.rx_open && !self.rx.is_empty() && gate > now).then_some(gate);
        retry.into_iter().chain(queued).min()
    }

    fn start_due_retries(&mut self) {
        let now = Instant::now();
        while self.in_flight.len() < MAX_IN_FLIGHT && self.breaker.would_permit(now) {
            match self.retries.peek() {
                Some(Reverse(retry)) if retry.at <= now => {}
                _ => return,
            }
            if let Some(Reverse(retry)) = self.retries.pop() {
                self.start(retry.request, retry.failures);
            }
        }
    }

    /// Attempts `request` now, unless its budget is spent or the breaker refuses.
    fn start(&mut self, request: WebhookRequest, failures: u32) {
        let now = Instant::now();
        if now >= request.created + self.settings.policy.budget {
            return self.give_up(&request, "retry budget exhausted");
        }
        if !self.breaker.permit(now) {
            let at = self.breaker.opens_at().unwrap_or(now);
            return self.schedule(request, failures, at);
        }
        let client = self.settings.client.clone();
        self.in_flight.spawn(async move {
            let result = client.post(&request).await;
            Attempt { failures, request, result }
        });
    }

    fn finish(&mut self, done: Result<Attempt, JoinError>) {
        let stats = &self.settings.stats;
        let attempt = match done {
            Ok(attempt) => attempt,
            Err(error) => {
                tracing::error!(url = %self.url, %error, "webhook delivery task failed");
                self.endpoint.remove_pending();
                return stats.record_drop(1, "delivery task failed");
            }
        };
        let Err(error) = attempt.result else {
            self.breaker.on_success();
            self.endpoint.remove_pending();
            return stats.delivered();
        };
        stats.attempt_failed();
        let now = Instant::now();
        if self.breaker.on_failure(now) {
            let cooldown = self.settings.breaker_cooldown;
            tracing::warn!(url = %self.url, %error, ?cooldown, "webhook endpoint failing: circuit breaker open");
        } else {
            tracing::debug!(url = %self.url, %error, "webhook attempt failed");
        }
        let failures = attempt.failures + 1;
        let at = now + self.settings.policy.backoff_jittered(failures);
        if at >= attempt.request.created + self.settings.policy.budget {
            return self.give_up(&attempt.request, "retry budget exhausted");
        }
        stats.retry_scheduled();
        self.schedule(attempt.request, failures, at);
    }

    fn schedule(&mut self, request: WebhookRequest, failures: u32, at: Instant) {
        self.next_seq += 1;
        self.retries.push(Reverse(Retry { at, seq: self.next_seq, failures, request }));
    }

    fn give_up(&self, request: &WebhookRequest, why: &'static str) {
        self.endpoint.remove_pending();
        self.settings.stats.record_drop(request.events, why);
    }

    /// The flush deadline passed: everything still held is dropped and counted.
    fn abandon(&mut self) {
        let mut held: Vec<WebhookRequest> = self.retries.drain().map(|Reverse(r)| r.request).collect();
        while let Ok(request) = self.rx.try_recv() {
            held.push(request);
        }
        for request in &held {
            self.give_up(request, "shutdown flush deadline passed");
        }
        let in_flight = self.in_flight.len();
        self.in_flight.abort_all();
        for _ in 0..in_flight {
            self.endpoint.remove_pending();
        }
        if in_flight > 0 {
            self.settings.stats.record_drop(in_flight as u64, "shutdown flush deadline passed");
        }
    }
}
