//! Fan-out to other nodes: the non-blocking `publish*` calls and the publisher task.
//!
//! Every call encodes one message and `try_send`s it into a bounded queue
//! (`publish_queue_capacity`). Full queue, or breaker open: the message is dropped and counted
//! (`publish_dropped`) — the caller has delivered locally already, and a slow or absent Redis
//! must not stall it. The one publisher task takes what is queued (up to [`MAX_BATCH`]) and
//! sends it as one pipeline (concurrent commands on a cluster).

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{SocketId, UserId};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::RedisAdapter;
use crate::adapter::stats::bump;
use crate::adapter::wire::{self, Kind};

/// Messages sent in one pipeline at most.
const MAX_BATCH: usize = 128;

/// One entry of the publish queue.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Publish {
        topic: String,
        message: Bytes,
    },
    /// Write this node's connection count of the app (after a release).
    WriteConns {
        app: String,
    },
}

impl RedisAdapter {
    /// Sends `frame` to the other nodes' subscribers of the channel. Never blocks.
    pub fn publish(&self, app: &str, channel: &str, except: Option<SocketId>, frame: Bytes) {
        let topic = self.keys.channel_topic(app, channel);
        self.publish_to(topic, Kind::Channel, except, &frame);
    }

    /// Sends `frame` to the other nodes' sockets signed in as `user`. Never blocks.
    pub fn publish_user(&self, app: &str, user: &UserId, frame: Bytes) {
        self.publish_to(self.keys.user_topic(app, user), Kind::User, None, &frame);
    }

    /// Asks the other nodes to close their sockets signed in as `user`. Never blocks.
    pub fn terminate_user(&self, app: &str, user: &UserId) {
        self.publish_to(self.keys.user_topic(app, user), Kind::Terminate, None, b"");
    }

    /// Sends a watchlist frame to the other nodes' sockets watching `watched`. Never blocks.
    pub fn publish_watch(&self, app: &str, watched: &UserId, frame: Bytes) {
        self.publish_to(self.keys.watch_topic(app, watched), Kind::Watch, None, &frame);
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
        let conn = self.link.cmd();
        let mut publishes = 0;
        let cmds: Vec<redis::Cmd> = batch
            .iter()
            .map(|item| match item {
                Outgoing::Publish { topic, message } => {
                    publishes += 1;
                    conn.publish_cmd(topic, message)
                }
                Outgoing::WriteConns { app } => redis::cmd("HSET")
                    .arg(self.keys.conns(app))
                    .arg(self.keys.node())
                    .arg(self.local_connections(app))
                    .to_owned(),
            })
            .collect();
        let started = tokio::time::Instant::now();
        match self.run(conn.batch(&cmds)).await {
            Ok(_) => {
                self.counters.observe_publish(started.elapsed());
                bump(&self.counters.published, publishes);
            }
            Err(e) => {
                tracing::debug!(error = %e, dropped = publishes, "publish failed");
                bump(&self.counters.publish_dropped, publishes);
            }
        }
    }
}
