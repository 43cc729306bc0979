//! Cache channels' memory: the last event published on each, with its expiry, and when the
//! last `cache_miss` webhook went out (PROTOCOL.md §8).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::frame::Frame;

/// How long after a `cache_miss` webhook another one for the same channel is suppressed.
pub const CACHE_MISS_WEBHOOK_INTERVAL: Duration = Duration::from_secs(10);

/// What a cache channel remembers.
#[derive(Debug, Clone, Default)]
pub struct CacheSlot {
    /// The last event, encoded for replay, with its `data` and expiry.
    pub last: Option<CachedEvent>,
    /// When the last `cache_miss` webhook was emitted.
    pub last_miss_webhook: Option<Instant>,
}

#[derive(Debug, Clone)]
pub struct CachedEvent {
    pub frame: Frame,
    pub data: Arc<str>,
    pub expires: Instant,
}

impl CacheSlot {
    /// The cached event, unless it has expired.
    pub fn current(&self, now: Instant) -> Option<&CachedEvent> {
        self.last.as_ref().filter(|e| e.expires > now)
    }

    /// Whether a `cache_miss` webhook may go out now; records it when so.
    pub fn take_miss_webhook(&mut self, now: Instant) -> bool {
        let due = self.last_miss_webhook.is_none_or(|t| now.duration_since(t) >= CACHE_MISS_WEBHOOK_INTERVAL);
        if due {
            self.last_miss_webhook = Some(now);
        }
        due
    }

    /// Whether nothing worth keeping is left.
    pub fn is_stale(&self, now: Instant) -> bool {
        self.current(now).is_none()
            && self.last_miss_webhook.is_none_or(|t| now.duration_since(t) >= CACHE_MISS_WEBHOOK_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_event_is_not_replayed() {
        let now = Instant::now();
        let slot = CacheSlot {
            last: Some(CachedEvent { frame: Frame::text("{}"), data: Arc::from("d"), expires: now }),
            last_miss_webhook: None,
        };
        assert!(slot.current(now).is_none());
        assert!(slot.current(now - Duration::from_secs(1)).is_some());
    }

    #[test]
    fn cache_miss_webhooks_are_spaced_out() {
        let now = Instant::now();
        let mut slot = CacheSlot::default();
        assert!(slot.take_miss_webhook(now));
        assert!(!slot.take_miss_webhook(now + Duration::from_secs(5)));
        assert!(slot.take_miss_webhook(now + CACHE_MISS_WEBHOOK_INTERVAL));
    }
}
