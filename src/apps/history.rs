//! An app's history channels: publishing an event with its position, and reading what came
//! after a position, from this node's logs or, in a cluster, from Redis.

use herald_protocol::history::stamp;
use herald_protocol::{ChannelName, ServerMessage, SocketId};
use tokio::sync::Mutex;

use super::App;
use crate::channels::RecoveryStart;
use crate::frame::Frame;
use crate::history::{Gap, Replay, Since};

/// Stripes of the per-channel publish order in a cluster.
const ORDER_STRIPES: usize = 16;

/// One async lock per stripe of channel names.
#[derive(Debug)]
pub(super) struct OrderLocks([Mutex<()>; ORDER_STRIPES]);

impl Default for OrderLocks {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Mutex::new(())))
    }
}

impl OrderLocks {
    fn of(&self, name: &ChannelName) -> &Mutex<()> {
        let hash = name.as_str().bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.0[hash % ORDER_STRIPES]
    }
}

impl App {
    /// Publishes an event message everywhere. On a history channel it is recorded first and
    /// its frame carries its position; when the cluster cannot record it, it is delivered
    /// without one (and a recovery across it cannot see it).
    pub async fn publish_event(
        &self,
        name: &ChannelName,
        message: &ServerMessage<'_>,
        except: Option<SocketId>,
        cache_data: Option<&str>,
    ) {
        let Some(rule) = self.channels.policy().history.for_channel(name.as_str()) else {
            return self.publish(name, &Frame::message(message), except, cache_data);
        };
        let json = message.to_json();
        let Some(cluster) = &self.cluster else {
            let (frame, delivered) = self.channels.record_and_publish(name, &json, rule, except, cache_data);
            return self.published(name, &frame, except, delivered);
        };
        if !cluster.keeps_history() {
            return self.publish(name, &Frame::text(&json), except, cache_data);
        }
        let _in_order = self.history_order.of(name).lock().await;
        match cluster.history_append(&self.config.id, name.as_str(), &json, rule).await {
            Ok(position) => {
                let frame = Frame::text(&stamp(&json, position));
                self.publish_at(name, &frame, Some(position), except, cache_data);
            }
            Err(error) => {
                self.metrics.history_unrecorded.inc();
                tracing::warn!(%error, channel = name.as_str(), "could not record a history event; sent without a position");
                self.publish(name, &Frame::text(&json), except, cache_data);
            }
        }
    }

    /// The events of `name` after `since`.
    pub async fn read_history(&self, name: &ChannelName, since: Since) -> Result<Replay, Gap> {
        let rule = self.channels.policy().history.for_channel(name.as_str()).ok_or(Gap::NoHistory)?;
        match &self.cluster {
            None => self.channels.read_history(name, rule, since),
            Some(cluster) if !cluster.is_available() => Err(Gap::Unavailable),
            Some(cluster) => cluster.history_read(&self.config.id, name.as_str(), rule, since).await,
        }
    }

    /// Every event `name` keeps (`None`: none yet).
    pub async fn history_kept(&self, name: &ChannelName) -> Result<Option<Replay>, Gap> {
        let rule = self.channels.policy().history.for_channel(name.as_str()).ok_or(Gap::NoHistory)?;
        match &self.cluster {
            None => Ok(self.channels.history_all(name)),
            Some(cluster) if !cluster.is_available() => Err(Gap::Unavailable),
            Some(cluster) => cluster.history_kept(&self.config.id, name.as_str(), rule).await,
        }
    }

    /// Replays to `socket`, subscribed to `name` and started with
    /// [`begin_recovery`](crate::channels::ChannelRegistry::begin_recovery) (or joined
    /// recovering), what it missed after `since`, then the outcome event.
    pub async fn recover(&self, name: &ChannelName, socket: SocketId, since: Since, start: RecoveryStart) {
        let read = self.read_history(name, since).await;
        match &read {
            Ok(_) => self.metrics.recoveries_done.inc(),
            Err(_) => self.metrics.recoveries_failed.inc(),
        }
        self.channels.finish_recovery(name, socket, since, start, read);
    }
}
