//! One app's configuration: credentials, switches and per-app limits, with Pusher's defaults.

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError, WebhookTarget};

/// One application: credentials and per-app limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub id: String,
    pub key: String,
    pub secret: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Accept `client-` events on private and presence channels.
    #[serde(default = "yes")]
    pub client_events: bool,
    /// Send `pusher_internal:subscription_count` to subscribers of non-presence channels.
    #[serde(default)]
    pub subscription_count: bool,
    /// Most connections at once; absent means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    #[serde(default = "defaults::max_event_payload_bytes")]
    pub max_event_payload_bytes: usize,
    #[serde(default = "defaults::max_channels_per_trigger")]
    pub max_channels_per_trigger: usize,
    #[serde(default = "defaults::max_batch_size")]
    pub max_batch_size: usize,
    #[serde(default = "defaults::max_presence_members")]
    pub max_presence_members: usize,
    #[serde(default = "defaults::max_presence_user_info_bytes")]
    pub max_presence_user_info_bytes: usize,
    #[serde(default = "defaults::max_user_id_length")]
    pub max_user_id_length: usize,
    /// Client events one connection may send per second; more are answered with 4301.
    #[serde(default = "defaults::client_events_per_second")]
    pub client_events_per_second: u32,
    /// `Origin` hosts allowed to connect, `*` wildcards allowed; `["*"]` allows all.
    #[serde(default = "defaults::allowed_origins")]
    pub allowed_origins: Vec<String>,
    /// Seconds of silence before the server pings; also sent to clients in the handshake.
    #[serde(default = "defaults::activity_timeout_seconds")]
    pub activity_timeout_seconds: u64,
    /// Channels one connection may be subscribed to at once.
    #[serde(default = "defaults::max_subscriptions_per_connection")]
    pub max_subscriptions_per_connection: usize,
    /// Signed HTTP API requests per second for this app; more are answered 429. Absent: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_requests_per_second: Option<u32>,
    /// When set, a connection that neither signs in nor subscribes to a private or presence
    /// channel within this many seconds is closed with 4009 ("authorized connections").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized_connections_timeout_seconds: Option<u64>,
    /// How long a cache channel keeps its last event (Pusher: up to 30 minutes).
    #[serde(default = "defaults::cache_ttl_seconds")]
    pub cache_ttl_seconds: u64,
    /// Send several webhook events in one request when they happen close together.
    #[serde(default)]
    pub webhook_batching: bool,
    /// Where this app's webhooks go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookTarget>,
    /// Channels that keep their recent events for recovery (herald's extension; the first
    /// rule whose pattern matches a channel applies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryRule>,
}

/// Which channels keep history, and how much (`[[apps.history]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRule {
    /// Channel names, `*` matching any run of characters (`orders-*`, `private-chat-*`).
    pub channels: String,
    /// Events kept per channel, the oldest dropped first.
    #[serde(default = "defaults::history_max_events")]
    pub max_events: usize,
    /// Events older than this are not replayed; a channel silent this long forgets its history.
    #[serde(default = "defaults::history_max_age_seconds")]
    pub max_age_seconds: u64,
}

/// Most events one channel may keep: a replay is sent at once into one outbox.
pub const HISTORY_MAX_EVENTS_LIMIT: usize = 10_000;

impl HistoryRule {
    /// Whether this rule covers `channel` (case-sensitive, as channel names are).
    pub fn matches(&self, channel: &str) -> bool {
        crate::config::pattern::matches(&self.channels, channel)
    }
}

fn yes() -> bool {
    true
}

mod defaults {
    pub fn max_event_payload_bytes() -> usize {
        10 * 1024
    }
    pub fn max_channels_per_trigger() -> usize {
        100
    }
    pub fn max_batch_size() -> usize {
        10
    }
    pub fn max_presence_members() -> usize {
        100
    }
    pub fn max_presence_user_info_bytes() -> usize {
        1024
    }
    pub fn max_user_id_length() -> usize {
        128
    }
    pub fn client_events_per_second() -> u32 {
        10
    }
    pub fn allowed_origins() -> Vec<String> {
        vec!["*".into()]
    }
    pub fn activity_timeout_seconds() -> u64 {
        120
    }
    pub fn max_subscriptions_per_connection() -> usize {
        1000
    }
    pub fn cache_ttl_seconds() -> u64 {
        1800
    }
    pub fn history_max_events() -> usize {
        100
    }
    pub fn history_max_age_seconds() -> u64 {
        300
    }
}

impl AppConfig {
    /// An app with Pusher's default limits.
    pub fn new(id: &str, key: &str, secret: &str) -> Self {
        Self {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            enabled: true,
            client_events: true,
            subscription_count: false,
            max_connections: None,
            max_event_payload_bytes: defaults::max_event_payload_bytes(),
            max_channels_per_trigger: defaults::max_channels_per_trigger(),
            max_batch_size: defaults::max_batch_size(),
            max_presence_members: defaults::max_presence_members(),
            max_presence_user_info_bytes: defaults::max_presence_user_info_bytes(),
            max_user_id_length: defaults::max_user_id_length(),
            client_events_per_second: defaults::client_events_per_second(),
            allowed_origins: defaults::allowed_origins(),
            activity_timeout_seconds: defaults::activity_timeout_seconds(),
            authorized_connections_timeout_seconds: None,
            max_subscriptions_per_connection: defaults::max_subscriptions_per_connection(),
            api_requests_per_second: None,
            cache_ttl_seconds: defaults::cache_ttl_seconds(),
            webhook_batching: false,
            webhooks: Vec::new(),
            history: Vec::new(),
        }
    }

    /// The built-in development app that `herald` with no configuration serves.
    pub fn dev() -> Self {
        Self::new("app-id", "app-key", "app-secret")
    }
}

impl AppConfig {
    pub(crate) fn validate(&self, at: &str) -> Result<(), ConfigError> {
        for (field, value) in [("id", &self.id), ("key", &self.key), ("secret", &self.secret)] {
            if value.is_empty() {
                return Err(invalid(format!("{at}.{field}"), "must not be empty"));
            }
        }
        if self.key.contains(':') || self.key.contains('/') {
            return Err(invalid(format!("{at}.key"), "must not contain ':' or '/'"));
        }
        if self.id.contains('/') {
            return Err(invalid(format!("{at}.id"), "must not contain '/'"));
        }
        for (field, value) in [
            ("max_event_payload_bytes", self.max_event_payload_bytes as u64),
            ("max_channels_per_trigger", self.max_channels_per_trigger as u64),
            ("max_batch_size", self.max_batch_size as u64),
            ("max_presence_members", self.max_presence_members as u64),
            ("max_presence_user_info_bytes", self.max_presence_user_info_bytes as u64),
            ("max_user_id_length", self.max_user_id_length as u64),
            ("client_events_per_second", u64::from(self.client_events_per_second)),
            ("activity_timeout_seconds", self.activity_timeout_seconds),
            ("cache_ttl_seconds", self.cache_ttl_seconds),
            ("max_subscriptions_per_connection", self.max_subscriptions_per_connection as u64),
            ("api_requests_per_second", u64::from(self.api_requests_per_second.unwrap_or(1))),
            ("authorized_connections_timeout_seconds", self.authorized_connections_timeout_seconds.unwrap_or(1)),
        ] {
            if value == 0 {
                return Err(invalid(format!("{at}.{field}"), "must be greater than 0"));
            }
        }
        for (i, target) in self.webhooks.iter().enumerate() {
            target.validate(&format!("{at}.webhooks[{i}]"))?;
        }
        for (i, rule) in self.history.iter().enumerate() {
            let at = format!("{at}.history[{i}]");
            if rule.channels.is_empty() {
                return Err(invalid(format!("{at}.channels"), "must name a channel or a pattern like \"orders-*\""));
            }
            if rule.max_events == 0 || rule.max_events > HISTORY_MAX_EVENTS_LIMIT {
                return Err(invalid(format!("{at}.max_events"), format!("must be 1 to {HISTORY_MAX_EVENTS_LIMIT}")));
            }
            if rule.max_age_seconds == 0 {
                return Err(invalid(format!("{at}.max_age_seconds"), "must be greater than 0"));
            }
        }
        if self.allowed_origins.is_empty() {
            return Err(invalid(format!("{at}.allowed_origins"), "must list at least one origin (\"*\" allows all)"));
        }
        Ok(())
    }
}
