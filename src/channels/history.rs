//! History channels' events on a single node: one [`ChannelLog`] per channel, written under
//! its own lock together with the fan-out, so the log's order is the order every local
//! subscriber sees. Lock order: a log, then a channel. In a cluster none of this is used; the
//! events live in Redis (src/adapter/redis/history.rs).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use herald_protocol::{ChannelName, SocketId};
use parking_lot::Mutex;
use tokio::time::Instant;

use super::registry::ChannelRegistry;
use crate::config::HistoryRule;
use crate::frame::Frame;
use crate::history::{ChannelLog, Gap, Replay, Since};

/// Every this many new logs, the logs silent for their `max_age` are forgotten.
const SWEEP_EVERY: usize = 256;

impl ChannelRegistry {
    /// Records the event `json` (encoded without a position) in the channel's log and
    /// publishes it stamped with its position; returns that frame and how many local sockets
    /// got it.
    pub fn record_and_publish(
        &self,
        name: &ChannelName,
        json: &str,
        rule: &HistoryRule,
        except: Option<SocketId>,
        cache_data: Option<&str>,
    ) -> (Frame, usize) {
        let log = self.log(name, rule);
        let mut log = log.lock();
        let (position, frame) = log.append(json, Instant::now());
        let delivered = self.publish_at(name, &frame, Some(position), except, cache_data);
        (frame, delivered)
    }

    /// The events after `since` in this node's log of `name`.
    pub fn read_history(&self, name: &ChannelName, rule: &HistoryRule, since: Since) -> Result<Replay, Gap> {
        let now = Instant::now();
        match since {
            Since::Latest => {
                let log = self.log(name, rule);
                let latest = log.lock().latest();
                Ok(Replay { events: Vec::new(), latest })
            }
            Since::Position(position) => {
                let log = self.logs.get(name).map(|l| l.clone()).ok_or(Gap::Unknown)?;
                let mut log = log.lock();
                log.since(position, now)
            }
        }
    }

    /// Every event kept for `name`; empty when it has none.
    pub fn history_all(&self, name: &ChannelName) -> Option<Replay> {
        let log = self.logs.get(name).map(|l| l.clone())?;
        let mut log = log.lock();
        Some(log.all(Instant::now()))
    }

    fn log(&self, name: &ChannelName, rule: &HistoryRule) -> Arc<Mutex<ChannelLog>> {
        if let Some(log) = self.logs.get(name) {
            return log.clone();
        }
        let log = self
            .logs
            .entry(name.clone())
            .or_insert_with(|| Arc::new(Mutex::new(ChannelLog::new(rule, Instant::now()))))
            .clone();
        if self.logs_created.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            let now = Instant::now();
            self.logs.retain(|_, log| !log.lock().is_stale(now));
        }
        log
    }
}
