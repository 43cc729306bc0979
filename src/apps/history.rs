//! An app's history channels: publishing an event with its position, and reading what came
//! after a position, from this node's logs or, in a cluster, from Redis.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::history::stamp;
use herald_protocol::{ChannelName, ServerMessage, SocketId};
use tokio::sync::Mutex;

use super::App;
use crate::channels::RecoveryStart;
use crate::frame::Frame;
use crate::history::{Gap, Replay, Since};

/// Stripes of the per-channel publish order in a cluster.
const ORDER_STRIPES: usize = 16;

/// How often a node retries the gap entries it owes.
const GAP_RETRY: Duration = Duration::from_secs(1);

/// Channels remembered as having unrecorded events at most; past it the newest are not
/// remembered (logged), and a recovery across them cannot tell.
const MAX_GAPS: usize = 100_000;

/// An app's history bookkeeping in a cluster: one async lock per stripe of channel names, so
/// this node records and sends a channel's events one at a time (in position order), and the
/// channels whose events it delivered without recording them (the store was unreachable),
/// until a gap entry says so in the store.
#[derive(Debug)]
pub(super) struct ClusterHistory {
    order: [Mutex<()>; ORDER_STRIPES],
    gaps: parking_lot::Mutex<HashSet<ChannelName>>,
    /// A task is retrying the gap entries (one per app at most).
    flushing: AtomicBool,
}

impl Default for ClusterHistory {
    fn default() -> Self {
        Self {
            order: std::array::from_fn(|_| Mutex::new(())),
            gaps: parking_lot::Mutex::default(),
            flushing: AtomicBool::new(false),
        }
    }
}

impl ClusterHistory {
    fn order(&self, name: &ChannelName) -> &Mutex<()> {
        let hash = name.as_str().bytes().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
        &self.order[hash % ORDER_STRIPES]
    }

    /// Remembers `name`; true the first time (until its gap is recorded).
    fn note_gap(&self, name: &ChannelName) -> bool {
        let mut gaps = self.gaps.lock();
        if gaps.contains(name) {
            return false;
        }
        if gaps.len() >= MAX_GAPS {
            tracing::warn!(channel = name.as_str(), "too many history channels with unrecorded events to remember");
            return false;
        }
        gaps.insert(name.clone())
    }

    fn has_gap(&self, name: &ChannelName) -> bool {
        self.gaps.lock().contains(name)
    }

    fn clear_gap(&self, name: &ChannelName) {
        self.gaps.lock().remove(name);
    }
}

impl App {
    /// Publishes an event message everywhere. On a history channel it is recorded first and
    /// its frame carries its position; when the cluster cannot record it, it is delivered
    /// without one and the channel is remembered, so a gap entry makes recoveries across it
    /// fail rather than miss it.
    pub async fn publish_event(
        self: &Arc<Self>,
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
        let _in_order = self.cluster_history.order(name).lock().await;
        let recorded = match self.cluster_history.has_gap(name) {
            // The gap goes into the store before anything recorded after it.
            true => cluster.history_mark_gap(&self.config.id, name.as_str(), rule).await,
            false => Ok(()),
        };
        if recorded.is_ok() {
            self.cluster_history.clear_gap(name);
        }
        let appended = match recorded {
            Ok(()) => cluster.history_append(&self.config.id, name.as_str(), &json, rule).await,
            Err(error) => Err(error),
        };
        match appended {
            Ok(position) => {
                let frame = Frame::text(&stamp(&json, position));
                self.publish_at(name, &frame, Some(position), except, cache_data);
            }
            Err(error) => {
                self.metrics.history_unrecorded.inc();
                // Once per channel and outage: the metric counts every event.
                if self.cluster_history.note_gap(name) {
                    tracing::warn!(%error, channel = name.as_str(), "could not record history events; sending them without positions");
                    self.record_history_gaps();
                }
                self.publish(name, &Frame::text(&json), except, cache_data);
            }
        }
    }

    /// Writes the gap entries this node owes, now (the cluster's store came back) and then
    /// every [`GAP_RETRY`] until none is left, so a recovery across unrecorded events fails
    /// even when the channel stays silent and the outage was too short to open the breaker.
    pub fn record_history_gaps(self: &Arc<Self>) {
        let Some(cluster) = self.cluster.clone() else { return };
        if self.cluster_history.gaps.lock().is_empty() || self.cluster_history.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let app = self.clone();
        tokio::spawn(async move {
            loop {
                app.write_gaps(&cluster).await;
                let history = &app.cluster_history;
                if history.gaps.lock().is_empty() {
                    history.flushing.store(false, Ordering::Release);
                    // A gap noted meanwhile either sees the flag down and starts a task, or
                    // was noted before it went down and is seen here.
                    if history.gaps.lock().is_empty() || history.flushing.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
                tokio::time::sleep(GAP_RETRY).await;
            }
        });
    }

    /// One pass over the owed gap entries; stops at the first that cannot be written.
    async fn write_gaps(&self, cluster: &crate::adapter::Cluster) {
        let names: Vec<ChannelName> = self.cluster_history.gaps.lock().iter().cloned().collect();
        for name in names {
            let Some(rule) = self.channels.policy().history.for_channel(name.as_str()) else {
                self.cluster_history.clear_gap(&name);
                continue;
            };
            let _in_order = self.cluster_history.order(&name).lock().await;
            if !self.cluster_history.has_gap(&name) {
                continue;
            }
            match cluster.history_mark_gap(&self.config.id, name.as_str(), rule).await {
                Ok(()) => self.cluster_history.clear_gap(&name),
                Err(error) => {
                    tracing::debug!(%error, channel = name.as_str(), "history gap not recorded yet");
                    return;
                }
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
