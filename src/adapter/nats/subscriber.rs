//! Interest-based routing: which subjects this node listens to, and the subscriber task that
//! holds one NATS subscription per wanted subject and hands what arrives to the sink.
//!
//! `watch_*` never blocks: it updates the wanted set (subject → what it delivers to) and marks
//! the subject dirty; a subject toggled many times before the task runs is applied once, in its
//! last state. The task subscribes or drops (unsubscribes) each dirty subject; a failure leaves
//! it dirty for the next retry tick. The NATS server routes a message only to connections with
//! a subscription on its subject, so a node receives only channels it has sockets in. After a
//! reconnect the client subscribes again by itself.
//!
//! Delivery drops messages for subjects not wanted (any more), messages this node sent (the
//! connection is `no_echo` too) and undecodable ones.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_nats::Subscriber;
use herald_protocol::UserId;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_stream::{StreamExt, StreamMap};
use tokio_util::sync::CancellationToken;

use super::NatsAdapter;
use crate::adapter::stats::bump;
use crate::adapter::wire::{self, Kind};
use crate::adapter::{Remote, RemoteExtra};

/// What a subject delivers to on this node.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Channel {
        app: String,
        channel: String,
    },
    /// Both `User` and `Terminate` messages.
    User {
        app: String,
        user: UserId,
    },
    Watch {
        app: String,
        watched: UserId,
    },
}

#[derive(Debug, Default)]
pub(crate) struct Interest {
    wanted: RwLock<HashMap<String, Target>>,
    dirty: Mutex<HashSet<String>>,
    wake: Notify,
}

impl Interest {
    fn set(&self, subject: String, target: Option<Target>) {
        match target {
            Some(target) => self.wanted.write().insert(subject.clone(), target),
            None => self.wanted.write().remove(&subject),
        };
        self.dirty.lock().insert(subject);
        self.wake.notify_one();
    }

    fn target(&self, subject: &str) -> Option<Target> {
        self.wanted.read().get(subject).cloned()
    }
}

impl NatsAdapter {
    /// Listen (or stop listening) to the channel's traffic from other nodes. Never blocks.
    pub fn watch_channel(&self, app: &str, channel: &str, on: bool) {
        let target = on.then(|| Target::Channel { app: app.to_owned(), channel: channel.to_owned() });
        self.interest.set(self.names.channel_subject(app, channel), target);
    }

    /// This node has (or no longer has) sockets signed in as `user`. Never blocks.
    pub fn watch_user(&self, app: &str, user: &UserId, on: bool) {
        let target = on.then(|| Target::User { app: app.to_owned(), user: user.clone() });
        self.interest.set(self.names.user_subject(app, user.as_str()), target);
    }

    /// This node has (or no longer has) sockets watching `watched`. Never blocks.
    pub fn watch_watchers(&self, app: &str, watched: &UserId, on: bool) {
        let target = on.then(|| Target::Watch { app: app.to_owned(), watched: watched.clone() });
        self.interest.set(self.names.watch_subject(app, watched.as_str()), target);
    }

    /// The subscriber task. Cancel-safety: it waits only in `select!` on the token, a `Notify`,
    /// an interval and `StreamMap::next`, all cancel-safe (a message is never half taken);
    /// subscribing runs outside the `select!`.
    pub(super) async fn subscriber(self: Arc<Self>, shutdown: CancellationToken) {
        let mut subscriptions: StreamMap<String, Subscriber> = StreamMap::new();
        let mut retry = tokio::time::interval(self.timing.probe);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.interest.wake.notified() => {}
                _ = retry.tick() => {}
                Some((subject, message)) = subscriptions.next(), if !subscriptions.is_empty() => {
                    self.deliver(&subject, message.payload);
                    continue;
                }
            }
            let dirty: Vec<String> = std::mem::take(&mut *self.interest.dirty.lock()).into_iter().collect();
            if !dirty.is_empty() {
                self.apply_interest(&mut subscriptions, dirty).await;
            }
        }
    }

    async fn apply_interest(&self, subscriptions: &mut StreamMap<String, Subscriber>, dirty: Vec<String>) {
        for subject in dirty {
            let wanted = self.interest.wanted.read().contains_key(&subject);
            if !wanted {
                // Dropping the subscription unsubscribes.
                subscriptions.remove(&subject);
                continue;
            }
            if subscriptions.contains_key(&subject) {
                continue;
            }
            match self.run(self.client.subscribe(subject.clone())).await {
                Ok(subscription) => {
                    subscriptions.insert(subject, subscription);
                }
                Err(e) => {
                    tracing::debug!(error = %e, subject, "subscription not made; retrying");
                    self.interest.dirty.lock().insert(subject);
                }
            }
        }
    }

    fn deliver(&self, subject: &str, payload: bytes::Bytes) {
        let Some(target) = self.interest.target(subject) else { return };
        let Some(msg) = wire::decode(payload) else {
            bump(&self.counters.receive_dropped, 1);
            return;
        };
        if msg.origin == self.node {
            return;
        }
        let remote = match (target, msg.kind) {
            (Target::Channel { app, channel }, Kind::Channel) => {
                Remote::Channel { app, channel, except: msg.except, frame: msg.payload }
            }
            (Target::User { app, user }, Kind::User) => Remote::User { app, user, frame: msg.payload },
            (Target::User { app, user }, Kind::Terminate) => Remote::Terminate { app, user },
            (Target::Watch { app, watched }, Kind::Watch) => {
                bump(&self.counters.received, 1);
                self.report_extra(RemoteExtra::Watch { app, watched, frame: msg.payload });
                return;
            }
            _ => {
                bump(&self.counters.receive_dropped, 1);
                return;
            }
        };
        bump(&self.counters.received, 1);
        self.sink.receive(remote);
    }
}
