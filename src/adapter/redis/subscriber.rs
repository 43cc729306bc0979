//! Interest-based routing: which topics this node listens to, the subscriber task that makes
//! Redis agree, and the receiver task that hands what arrives to the sink.
//!
//! `watch_*` never blocks: it updates the wanted set (topic → what it delivers to) and marks
//! the topic dirty. Both are bounded by the node's local interests; a topic toggled many times
//! before the task runs is applied once, in its last state. The task sends `SUBSCRIBE` or
//! `UNSUBSCRIBE` (sharded on a cluster) for each dirty topic, by its wanted state; a failure
//! leaves it dirty for the next retry tick. After a reconnect or an outage every wanted topic
//! is subscribed again (the connection also resubscribes by itself; doing it twice is harmless).
//!
//! The receiver drops messages for topics not wanted (any more), messages this node sent, and
//! undecodable ones.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::UserId;
use parking_lot::{Mutex, RwLock};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::{RedisAdapter, RemoteExtra};
use crate::adapter::stats::bump;
use crate::adapter::wire::{self, Kind};
use crate::adapter::Remote;

/// Topics per `SUBSCRIBE` command.
const TOPICS_PER_COMMAND: usize = 256;

/// What a topic delivers to on this node.
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
    /// Subscribe every wanted topic again (after a reconnect).
    resync: AtomicBool,
}

impl Interest {
    fn set(&self, topic: String, target: Option<Target>) {
        match target {
            Some(target) => self.wanted.write().insert(topic.clone(), target),
            None => self.wanted.write().remove(&topic),
        };
        self.dirty.lock().insert(topic);
        self.wake.notify_one();
    }

    pub fn resync(&self) {
        self.resync.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn target(&self, topic: &[u8]) -> Option<Target> {
        let topic = std::str::from_utf8(topic).ok()?;
        self.wanted.read().get(topic).cloned()
    }
}

impl RedisAdapter {
    /// Listen (or stop listening) to the channel's traffic from other nodes. Never blocks.
    pub fn watch_channel(&self, app: &str, channel: &str, on: bool) {
        let target = on.then(|| Target::Channel { app: app.to_owned(), channel: channel.to_owned() });
        self.interest.set(self.keys.channel_topic(app, channel), target);
    }

    /// This node has (or no longer has) sockets signed in as `user`. Never blocks.
    pub fn watch_user(&self, app: &str, user: &UserId, on: bool) {
        let target = on.then(|| Target::User { app: app.to_owned(), user: user.clone() });
        self.interest.set(self.keys.user_topic(app, user), target);
    }

    /// This node has (or no longer has) sockets watching `watched`. Never blocks.
    pub fn watch_watchers(&self, app: &str, watched: &UserId, on: bool) {
        let target = on.then(|| Target::Watch { app: app.to_owned(), watched: watched.clone() });
        self.interest.set(self.keys.watch_topic(app, watched), target);
    }

    /// The subscriber task. Cancel-safety: it waits only in `select!` on the token, a `Notify`
    /// and an interval, all cancel-safe; commands run outside the `select!`.
    pub(super) async fn subscriber(self: Arc<Self>, shutdown: CancellationToken) {
        let mut retry = tokio::time::interval(self.timing.probe);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.interest.wake.notified() => {}
                _ = retry.tick() => {}
            }
            if !self.breaker.allows() {
                continue;
            }
            if self.disconnected.swap(false, Ordering::AcqRel) | self.interest.resync.swap(false, Ordering::AcqRel) {
                let all: Vec<String> = self.interest.wanted.read().keys().cloned().collect();
                self.interest.dirty.lock().extend(all);
            }
            let dirty: Vec<String> = std::mem::take(&mut *self.interest.dirty.lock()).into_iter().collect();
            if !dirty.is_empty() {
                self.apply_interest(dirty).await;
            }
        }
    }

    async fn apply_interest(&self, dirty: Vec<String>) {
        let (on, off): (Vec<String>, Vec<String>) = {
            let wanted = self.interest.wanted.read();
            dirty.into_iter().partition(|t| wanted.contains_key(t))
        };
        for (topics, subscribe) in [(on, true), (off, false)] {
            for chunk in topics.chunks(TOPICS_PER_COMMAND) {
                let mut conn = self.link.sub();
                let result = if subscribe {
                    self.run(conn.subscribe(chunk)).await
                } else {
                    self.run(conn.unsubscribe(chunk)).await
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, subscribe, "pub/sub interest not applied; retrying");
                    self.interest.dirty.lock().extend(chunk.iter().cloned());
                }
            }
        }
    }

    /// The receiver task: pushes from the pub/sub connection → the sink. Cancel-safety: `recv`
    /// is cancel-safe; handling a push never awaits.
    pub(super) async fn receiver(self: Arc<Self>, mut rx: mpsc::Receiver<PushInfo>, shutdown: CancellationToken) {
        loop {
            let push = tokio::select! {
                _ = shutdown.cancelled() => return,
                push = rx.recv() => match push {
                    Some(push) => push,
                    None => return,
                },
            };
            match push.kind {
                PushKind::Message | PushKind::SMessage => self.deliver(push.data),
                PushKind::Disconnection => {
                    self.disconnected.store(true, Ordering::Release);
                    self.interest.wake.notify_one();
                }
                _ => {}
            }
        }
    }

    fn deliver(&self, data: Vec<Value>) {
        let mut data = data.into_iter();
        let (Some(Value::BulkString(topic)), Some(Value::BulkString(payload))) = (data.next(), data.next()) else {
            bump(&self.counters.receive_dropped, 1);
            return;
        };
        let Some(target) = self.interest.target(&topic) else { return };
        let Some(msg) = wire::decode(Bytes::from(payload)) else {
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
