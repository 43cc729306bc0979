//! The dispatcher task: takes emitted events off the shared ingress queue, applies Pusher's
//! timing (the leave delay and its cancellation by a rejoin, batching), builds the signed
//! requests and offers them to the endpoints' queues. It never awaits anything but its own
//! queue and its timers, so one slow endpoint cannot hold it up.
//!
//! In a cluster a held leave carries a [`LeaveCheck`]: when it falls due, a task asks the
//! cluster whether a join on some node took it back, and the answer comes back on the
//! dispatcher's own queue; only a leave still standing is sent. A join that took a leave back
//! is never emitted (the cluster says so), so local cancellation is for single-node leaves.
//!
//! Shutdown: once cancelled, waiting leaves and open batches go out at once, as does anything
//! emitted afterwards (sockets closing during the drain), until every emitter is gone (the
//! ingress closes) or `shutdown_flush_seconds` pass; events still queued then are dropped and
//! counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::batch::Batches;
use super::endpoint::{self, EndpointHandle, EndpointSettings};
use super::leave::{self, LeaveDelay, LeaveKey, Role};
use super::route::{AppRoute, Target};
use super::stats::WebhookStats;
use super::{sleep_until_some, LeaveCheck, WebhookEvent};

/// Most events in one batched request.
const MAX_BATCH_EVENTS: usize = 100;

/// A check that has not answered by then counts as "send": a leave is never lost to a slow
/// Redis (the adapter's own command timeout is shorter).
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// One event on its way in, with the app it belongs to.
#[derive(Debug)]
pub(super) struct Emitted {
    pub app: Arc<AppRoute>,
    pub event: WebhookEvent,
    /// For a leave decided by the cluster: asked when its delay is over.
    pub check: Option<LeaveCheck>,
}

/// The batch of one app's target (the same URL in two apps is two batches: two secrets).
#[derive(Debug)]
struct BatchKey {
    app: Arc<AppRoute>,
    target: Arc<Target>,
}

impl PartialEq for BatchKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.app, &other.app) && Arc::ptr_eq(&self.target, &other.target)
    }
}

type Pending = (Arc<AppRoute>, WebhookEvent, Option<LeaveCheck>);

/// A held leave's key: the app, what it waits for, and whether the cluster decides it (then
/// only its check can drop it, never a local join).
type HeldKey = (Arc<str>, LeaveKey, bool);

/// A check's answer: the leave, and whether it is still to be sent.
type Checked = (Arc<AppRoute>, WebhookEvent, bool);

/// The dispatcher's state; owned by its task.
#[derive(Debug)]
pub(super) struct Dispatcher {
    leaves: LeaveDelay<HeldKey, Pending>,
    /// Answers of running checks, and how many are running.
    checked: (mpsc::UnboundedSender<Checked>, mpsc::UnboundedReceiver<Checked>),
    checks_running: usize,
    batches: Batches<BatchKey, WebhookEvent>,
    endpoints: HashMap<String, EndpointHandle>,
    settings: EndpointSettings,
    stats: Arc<WebhookStats>,
    flushing: bool,
}

impl Dispatcher {
    /// `max_pending_leaves` bounds the leaves waiting out their delay (when full, a leave is
    /// sent at once instead).
    pub(super) fn new(
        leave_delay: Duration,
        batch_window: Duration,
        max_pending_leaves: usize,
        settings: EndpointSettings,
    ) -> Self {
        Self {
            leaves: LeaveDelay::new(leave_delay, max_pending_leaves),
            checked: mpsc::unbounded_channel(),
            checks_running: 0,
            batches: Batches::new(batch_window, MAX_BATCH_EVENTS),
            endpoints: HashMap::new(),
            stats: settings.stats.clone(),
            settings,
            flushing: false,
        }
    }

    /// Routes requests for `url` into `handle` instead of a worker of its own.
    #[cfg(test)]
    pub(super) fn attach(&mut self, url: &str, handle: EndpointHandle) {
        self.endpoints.insert(url.to_string(), handle);
    }

    pub(super) async fn run(
        mut self,
        mut ingress: mpsc::Receiver<Emitted>,
        shutdown: CancellationToken,
        flush: Duration,
    ) {
        let mut deadline: Option<Instant> = None;
        let mut closed = false;
        while !(closed && self.checks_running == 0) {
            let wake = self.next_due();
            // Cancel safety: `recv` loses nothing when another branch wins; the sleeps and
            // `cancelled` hold no state.
            tokio::select! {
                emitted = ingress.recv(), if !closed => match emitted {
                    Some(emitted) => {
                        self.stats.ingress_popped();
                        self.accept(emitted, Instant::now());
                    }
                    None => closed = true,
                },
                Some(checked) = self.checked.1.recv() => self.answered(checked, Instant::now()),
                () = sleep_until_some(wake), if wake.is_some() => self.release_due(Instant::now()),
                () = shutdown.cancelled(), if deadline.is_none() => {
                    deadline = Some(Instant::now() + flush);
                    self.flushing = true;
                }
                () = sleep_until_some(deadline), if deadline.is_some() => break,
            }
            if self.flushing {
                self.release_all();
            }
        }
        self.release_all();
        ingress.close();
        while ingress.try_recv().is_ok() {
            self.stats.ingress_popped();
            self.stats.record_drop(1, "shutdown flush deadline passed");
        }
    }

    fn next_due(&mut self) -> Option<Instant> {
        match (self.leaves.next_due(), self.batches.next_due()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes one emitted event through the leave delay into routing.
    pub(super) fn accept(&mut self, emitted: Emitted, now: Instant) {
        let Emitted { app, event, check } = emitted;
        match leave::role(&event) {
            Role::Join(key) => {
                if self.leaves.cancel(&(app.id.clone(), key, false)) {
                    return; // A quick leave-and-rejoin: neither is sent.
                }
            }
            Role::Leave(key) if !self.flushing => {
                let held = (app.id.clone(), key, check.is_some());
                if let Some(pending) = self.leaves.hold(held, (app, event, check), now) {
                    self.release(pending, now);
                }
                return;
            }
            Role::Leave(_) if check.is_some() => return self.release((app, event, check), now),
            Role::Leave(_) | Role::Other => {}
        }
        self.route(&app, event, now);
    }

    /// A leave whose delay is over: routed, or first checked with the cluster.
    fn release(&mut self, (app, event, check): Pending, now: Instant) {
        let Some(check) = check else { return self.route(&app, event, now) };
        let answers = self.checked.0.clone();
        self.checks_running += 1;
        tokio::spawn(async move {
            let send = tokio::time::timeout(CHECK_TIMEOUT, check.run()).await.unwrap_or(true);
            let _ = answers.send((app, event, send));
        });
    }

    fn answered(&mut self, (app, event, send): Checked, now: Instant) {
        self.checks_running = self.checks_running.saturating_sub(1);
        if send {
            self.route(&app, event, now);
        }
    }

    fn release_due(&mut self, now: Instant) {
        for pending in self.leaves.take_due(now) {
            self.release(pending, now);
        }
        for (key, events) in self.batches.take_due(now) {
            self.send(&key.app, &key.target, &events);
        }
    }

    fn release_all(&mut self) {
        let now = Instant::now();
        for pending in self.leaves.take_all() {
            self.release(pending, now);
        }
        for (key, events) in self.batches.take_all() {
            self.send(&key.app, &key.target, &events);
        }
    }

    /// Sends `event` to every target of `app` that wants it, batched when the app batches.
    fn route(&mut self, app: &Arc<AppRoute>, event: WebhookEvent, now: Instant) {
        for target in app.targets.iter().filter(|t| t.wants.contains(event.name())) {
            if app.batching {
                let key = BatchKey { app: app.clone(), target: target.clone() };
                if let Some((key, events)) = self.batches.add(key, event.clone(), now) {
                    self.send(&key.app, &key.target, &events);
                }
            } else {
                self.send(app, target, std::slice::from_ref(&event));
            }
        }
    }

    fn send(&mut self, app: &AppRoute, target: &Arc<Target>, events: &[WebhookEvent]) {
        let request = app.request(target, events);
        let settings = &self.settings;
        let handle = self.endpoints.entry(target.url.clone()).or_insert_with(|| endpoint::spawn(&target.url, settings));
        let events = request.events;
        if !handle.offer(request) {
            self.stats.record_drop(events, "endpoint queue full");
        }
    }
}
