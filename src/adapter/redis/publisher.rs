//! Fan-out to other nodes through Redis: the non-blocking `publish*` calls, and how one batch
//! of the shared publish queue (`adapter::queue`: bounded, never blocking, drops counted) is
//! sent: as one pipeline (concurrent commands on a cluster).

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{SocketId, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::RedisAdapter;
use crate::adapter::queue::{self, Outgoing};
use crate::adapter::stats::bump;
use crate::adapter::wire::{self, Kind};

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
        queue::enqueue(&self.outgoing, &self.counters, item);
    }

    /// The publisher task: [`queue::drain`] with this adapter's way of sending a batch.
    pub(super) async fn publisher(self: Arc<Self>, rx: mpsc::Receiver<Outgoing>, shutdown: CancellationToken) {
        queue::drain(rx, shutdown, |batch| self.flush(batch)).await;
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
