//! Fan-out to other nodes: the non-blocking `publish*` calls and the publisher task.
//!
//! As in the Redis adapter, every call encodes one message (`adapter::wire`) and `try_send`s
//! it into a bounded queue (`publish_queue_capacity`). Full queue, or breaker open: the message
//! is dropped and counted (`publish_dropped`) — the caller has delivered locally already. The
//! one publisher task takes what is queued (up to [`MAX_BATCH`]), hands each message to the
//! client for its subject and ends the batch with one `flush` (a round trip to the server), so
//! a batch's latency is measured and a slow server slows the task, not the callers.

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{SocketId, UserId};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::NatsAdapter;
use crate::adapter::stats::bump;
use crate::adapter::wire::{self, Kind};

/// Messages sent between two flushes at most.
const MAX_BATCH: usize = 128;

/// One entry of the publish queue.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Publish {
        subject: String,
        message: Bytes,
    },
    /// Write this node's connection count of the app (after a release).
    WriteConns {
        app: String,
    },
}

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

    fn publish_to(&self, subject: String, kind: Kind, except: Option<SocketId>, payload: &[u8]) {
        if !self.breaker.allows() {
            bump(&self.counters.publish_dropped, 1);
            return;
        }
        let message = wire::encode(kind, self.node, except, payload);
        self.enqueue(Outgoing::Publish { subject, message });
    }

    pub(super) fn enqueue(&self, item: Outgoing) {
        match self.outgoing.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(Outgoing::Publish { .. }) | TrySendError::Closed(Outgoing::Publish { .. })) => {
                bump(&self.counters.publish_dropped, 1);
            }
            // The next heartbeat writes the count anyway.
            Err(_) => {}
        }
    }

    /// The publisher task. Cancel-safety: `recv` is the only `select!` branch besides the
    /// token, and it is cancel-safe; a batch in flight finishes (bounded by the command
    /// timeout). On shutdown, what is queued then is sent once more (one bounded attempt).
    pub(super) async fn publisher(self: Arc<Self>, mut rx: mpsc::Receiver<Outgoing>, shutdown: CancellationToken) {
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => break,
                item = rx.recv() => match item {
                    Some(item) => item,
                    None => return,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            self.flush(batch).await;
        }
        let mut rest = Vec::new();
        while let Ok(item) = rx.try_recv() {
            rest.push(item);
            if rest.len() == MAX_BATCH {
                self.flush(std::mem::take(&mut rest)).await;
            }
        }
        if !rest.is_empty() {
            self.flush(rest).await;
        }
    }

    async fn flush(&self, batch: Vec<Outgoing>) {
        let mut messages = Vec::with_capacity(batch.len());
        let mut apps = Vec::new();
        for item in batch {
            match item {
                Outgoing::Publish { subject, message } => messages.push((subject, message)),
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
