//! An app's live debug feed: one JSON line per thing that happens (connections, subscriptions,
//! events), for the `/dashboard` page. Costs one atomic read when nobody watches; when the
//! page falls behind, the oldest lines are dropped (a bounded broadcast channel).

use std::sync::Arc;

use tokio::sync::broadcast;

/// Lines kept for a watcher that falls behind.
const FEED_CAPACITY: usize = 1024;

/// The feed of one app.
#[derive(Debug)]
pub struct DebugFeed {
    tx: broadcast::Sender<Arc<str>>,
}

impl Default for DebugFeed {
    fn default() -> Self {
        Self { tx: broadcast::channel(FEED_CAPACITY).0 }
    }
}

impl DebugFeed {
    /// Sends the line `line()` builds, only when someone is watching.
    pub fn emit(&self, line: impl FnOnce() -> serde_json::Value) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(Arc::from(line().to_string()));
        }
    }

    /// A new watcher.
    pub fn watch(&self) -> broadcast::Receiver<Arc<str>> {
        self.tx.subscribe()
    }
}
