//! The dispatcher task: takes emitted events off the shared ingress queue, applies Pusher's
//! timing (the leave delay and its cancellation by a rejoin, batching), builds the signed
//! requests and offers them to the endpoints' queues. It never awaits anything but its own
//! queue and its timers, so one slow endpoint cannot hold it up.
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
use super::{sleep_until_some, WebhookEvent};

/// Most events in one batched request.
const MAX_BATCH_EVENTS: usize = 100;

/// One event on its way in, with the app it belongs to.
#[derive(Debug)]
pub(super) struct Emitted {
    pub app: Arc<AppRoute>,
    pub event: WebhookEvent,
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

type Pending = (Arc<AppRoute>, WebhookEvent);

/// The dispatcher's state; owned by its task.
#[derive(Debug)]
pub(super) struct Dispatcher {
    leaves: LeaveDelay<(Arc<str>, LeaveKey), Pending>,
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
        loop {
            let wake = self.next_due();
            // Cancel safety: `recv` loses nothing when another branch wins; the sleeps and
            // `cancelled` hold no state.
            tokio::select! {
                emitted = ingress.recv() => match emitted {
                    Some(emitted) => {
                        self.stats.ingress_popped();
                        self.accept(emitted, Instant::now());
                    }
                    None => break,
                },
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
        let Emitted { app, event } = emitted;
        match leave::role(&event) {
            Role::Join(key) => {
                if self.leaves.cancel(&(app.id.clone(), key)) {
                    return; // A quick leave-and-rejoin: neither is sent.
                }
            }
            Role::Leave(key) if !self.flushing => {
                let Some((app, event)) = self.leaves.hold((app.id.clone(), key), (app, event), now) else {
                    return;
                };
                return self.route(&app, event, now);
            }
            Role::Leave(_) | Role::Other => {}
        }
        self.route(&app, event, now);
    }

    fn release_due(&mut self, now: Instant) {
        for (app, event) in self.leaves.take_due(now) {
            self.route(&app, event, now);
        }
        for (key, events) in self.batches.take_due(now) {
            self.send(&key.app, &key.target, &events);
        }
    }

    fn release_all(&mut self) {
        let now = Instant::now();
        for (app, event) in self.leaves.take_all() {
            self.route(&app, event, now);
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
