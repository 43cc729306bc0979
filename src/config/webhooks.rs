//! Webhook configuration: per-app targets and the server-wide delivery settings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

/// The event kinds a target can ask for (PROTOCOL.md §12).
pub const WEBHOOK_EVENT_TYPES: [&str; 7] = [
    "channel_occupied",
    "channel_vacated",
    "member_added",
    "member_removed",
    "client_event",
    "cache_miss",
    "subscription_count",
];

/// One webhook endpoint of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// `http://` or `https://` URL that receives `POST`s.
    pub url: String,
    /// Which event kinds to send; all of them when absent.
    #[serde(default = "all_event_types")]
    pub event_types: Vec<String>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn all_event_types() -> Vec<String> {
    WEBHOOK_EVENT_TYPES.iter().map(|s| s.to_string()).collect()
}

impl WebhookTarget {
    /// Whether this target wants events named `name`.
    pub fn wants(&self, name: &str) -> bool {
        self.event_types.iter().any(|t| t == name)
    }

    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(invalid(format!("{at}.url"), "must be an http:// or https:// URL"));
        }
        if let Some(bad) = self.event_types.iter().find(|t| !WEBHOOK_EVENT_TYPES.contains(&t.as_str())) {
            return Err(invalid(
                format!("{at}.event_types"),
                format!("unknown event type {bad:?}; known: {}", WEBHOOK_EVENT_TYPES.join(", ")),
            ));
        }
        for name in self.headers.keys() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(invalid(format!("{at}.headers"), format!("{name:?} is not a valid header name")));
            }
        }
        Ok(())
    }
}

/// Server-wide webhook delivery settings (`[webhooks]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// How long `channel_vacated` and `member_removed` wait; a rejoin within it cancels both
    /// the removal and the re-add (Pusher: 3 s).
    pub leave_delay_ms: u64,
    /// How long batching apps collect events before sending one request.
    pub batch_window_ms: u64,
    /// Timeout of one delivery attempt.
    pub request_timeout_ms: u64,
    /// How long a failing event is retried, with exponential backoff (Pusher: 5 minutes).
    pub retry_for_seconds: u64,
    /// Webhook requests waiting to be sent, across all apps; beyond it new ones are dropped
    /// and counted.
    pub queue_capacity: usize,
    /// Consecutive failures that open an endpoint's circuit breaker.
    pub breaker_failure_threshold: u32,
    /// How long an open breaker waits before letting one trial request through.
    pub breaker_cooldown_seconds: u64,
    /// On shutdown, how long to keep delivering what is queued.
    pub shutdown_flush_seconds: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            leave_delay_ms: 3000,
            batch_window_ms: 50,
            request_timeout_ms: 5000,
            retry_for_seconds: 300,
            queue_capacity: 10_000,
            breaker_failure_threshold: 5,
            breaker_cooldown_seconds: 30,
            shutdown_flush_seconds: 10,
        }
    }
}

impl WebhooksConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("webhooks.request_timeout_ms", self.request_timeout_ms),
            ("webhooks.queue_capacity", self.queue_capacity as u64),
            ("webhooks.breaker_failure_threshold", u64::from(self.breaker_failure_threshold)),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        Ok(())
    }
}
