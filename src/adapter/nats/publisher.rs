//! Fan-out to other nodes through NATS: the non-blocking `publish*` calls, and how one batch of
//! the shared publish queue (`adapter::queue`: bounded, never blocking, drops counted) is
//! sent: each message to its subject, then one `flush` (a round trip to the server), so a
//! batch's latency is measured and a slow server slows the task, not the callers.

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{SocketId, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::NatsAdapter;
use crate::adapter::queue::{self, Outgoing};
use crate::adapter::stats::bump;
use crate::adapter::wire::{self, Kind};

impl NatsAdapter {
    /// Sends `frame` to the other nodes' subscribers of the channel. Never blocks.
    pub fn publish(&self, app: &str, channel: &str, except: Option<SocketId>, frame: Bytes) {
        self.publish_to(self.names.channel_subject(app, channel), Kind::Channel, except, &frame);
    }

    /// Sends `frame` to the other nodes' sockets signed in as `user`. Never blocks.
    pub fn publish_user(&self, app: &str, user: &UserId, frame: Bytes) {
        self.publish_to(self.names.user_subject(app, user.as_str()), Kind::User, None, &frame);
    }

    /// Asks the other nodes to close their sockets signed in as `user`. Never blocks.
    pub fn terminate_user(&self, app: &str, user: &UserId) {
        self.publish_to(self.names.user_subject(app, user.as_str()), Kind::Terminate, None, b"");
    }

    /// Sends a watchlist frame to the other nodes' sockets watching `watched`. Never blocks.
    pub fn publish_watch(&self, app: &str, watched: &UserId, frame: Bytes) {
        self.publish_to(self.names.watch_subject(app, watched.as_str()), Kind::Watch, None, &frame);
    }

    fn publish_to(&self, topic: String, kind: Kind, except: Option<SocketId>, payload: &[u8]) {
        if !self.breaker.allows() {
            bump(&self.counters.publish_dropped, 1);
            return;
        }
        let message = wire::encode(kind, self.node, except, payload);
        self.enqueue(Outgoing::Publish { topic, message });
    }

    pub(super) fn enqueue(&self, item: Outgoing) {
        queue::enqueue(&self.outgoing, &self.counters, item);
    }

    /// The publisher task: [`queue::drain`] with this adapter's way of sending a batch.
    pub(super) async fn publisher(self: Arc<Self>, rx: mpsc::Receiver<Outgoing>, shutdown: CancellationToken) {
        queue::drain(rx, shutdown, |batch| self.flush(batch)).await;
    }

    async fn flush(&self, batch: Vec<Outgoing>) {
        let mut messages = Vec::with_capacity(batch.len());
        let mut apps = Vec::new();
        for item in batch {
            match item {
                Outgoing::Publish { topic, message } => messages.push((topic, message)),
                Outgoing::WriteConns { app } => apps.push(app),
            }
        }
        if !messages.is_empty() {
            self.send(messages).await;
        }
        apps.sort();
        apps.dedup();
        for app in apps {
            let count = self.local.connections(&app);
            if let Err(e) = self.write_connections(self.names.node(), &app, count).await {
                tracing::debug!(error = %e, app, "connection count not written");
            }
        }
    }

    async fn send(&self, messages: Vec<(String, Bytes)>) {
        let count = messages.len() as u64;
        let client = &self.client;
        let started = tokio::time::Instant::now();
        let sent = self
            .run(async move {
                for (subject, message) in messages {
                    client.publish(subject, message).await?;
                }
                client.flush().await?;
                Ok::<_, async_nats::Error>(())
            })
            .await;
        match sent {
            Ok(()) => {
                self.counters.observe_publish(started.elapsed());
                bump(&self.counters.published, count);
            }
            Err(e) => {
                tracing::debug!(error = %e, dropped = count, "publish failed");
                bump(&self.counters.publish_dropped, count);
            }
        }
    }
}
