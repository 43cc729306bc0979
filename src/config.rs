//! herald's configuration: the TOML file, environment variables and flags, merged with one
//! precedence (flags > environment > file > defaults) and validated before anything starts.
//!
//! This module owns parsing and validation only; it never opens a socket.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub apps: Vec<AppConfig>,
}

/// Server-wide options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: IpAddr,
    pub port: u16,
    /// A path prefix in front of `/app` and `/apps` (Reverb's `REVERB_SERVER_PATH`).
    pub path_prefix: String,
    /// Largest inbound WebSocket message; a larger one closes the socket with 1009.
    pub max_message_bytes: usize,
    /// Bytes that may wait in one socket's outbound queue before it is closed as a slow consumer.
    pub max_outbox_bytes: usize,
    /// Largest HTTP API request body; a larger one is answered 413.
    pub max_request_body_bytes: usize,
    /// How far an API request's `auth_timestamp` may be from the server clock.
    pub max_timestamp_skew_seconds: u64,
    /// How long to wait for a pong after pinging an idle connection before closing it with 4201.
    pub pong_timeout_seconds: u64,
    /// Longest channel name accepted (Pusher: 164).
    pub max_channel_name_length: usize,
    /// Longest event name accepted (the SDKs' limit: 200).
    pub max_event_name_length: usize,
    /// Close with 4008 when a client gives no `protocol` parameter, instead of assuming 7.
    pub strict_protocol_version: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 6001,
            path_prefix: String::new(),
            max_message_bytes: 10_000,
            max_outbox_bytes: 1 << 20,
            max_request_body_bytes: 1 << 20,
            max_timestamp_skew_seconds: 600,
            pong_timeout_seconds: 30,
            max_channel_name_length: 164,
            max_event_name_length: 200,
            strict_protocol_version: false,
        }
    }
}

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
        }
    }

    /// The built-in development app that `herald` with no configuration serves.
    pub fn dev() -> Self {
        Self::new("app-id", "app-key", "app-secret")
    }
}

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

impl Config {
    /// Reads and parses a TOML file; unknown keys are errors.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: shown, message: e.to_string() })
    }

    /// Checks every value; the error names the first key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        if !s.path_prefix.is_empty() && (!s.path_prefix.starts_with('/') || s.path_prefix.ends_with('/')) {
            return Err(invalid("server.path_prefix", "must start with / and not end with / (e.g. \"/ws\")"));
        }
        for (key, value) in [
            ("server.max_message_bytes", s.max_message_bytes as u64),
            ("server.max_outbox_bytes", s.max_outbox_bytes as u64),
            ("server.max_request_body_bytes", s.max_request_body_bytes as u64),
            ("server.pong_timeout_seconds", s.pong_timeout_seconds),
            ("server.max_channel_name_length", s.max_channel_name_length as u64),
            ("server.max_event_name_length", s.max_event_name_length as u64),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        for (i, app) in self.apps.iter().enumerate() {
            app.validate(&format!("apps[{i}]"))?;
            if self.apps[..i].iter().any(|a| a.id == app.id) {
                return Err(invalid(format!("apps[{i}].id"), format!("duplicate app id {:?}", app.id)));
            }
            if self.apps[..i].iter().any(|a| a.key == app.key) {
                return Err(invalid(format!("apps[{i}].key"), format!("duplicate app key {:?}", app.key)));
            }
        }
        Ok(())
    }

    /// The configuration as TOML with every secret masked, for `herald config check`.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.clone();
        for app in &mut masked.apps {
            app.secret = "********".into();
        }
        toml::to_string_pretty(&masked).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

impl AppConfig {
    fn validate(&self, at: &str) -> Result<(), ConfigError> {
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
        ] {
            if value == 0 {
                return Err(invalid(format!("{at}.{field}"), "must be greater than 0"));
            }
        }
        if self.allowed_origins.is_empty() {
            return Err(invalid(format!("{at}.allowed_origins"), "must list at least one origin (\"*\" allows all)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_parses_with_defaults_for_the_rest() {
        let c: Config = toml::from_str(
            "[server]\nhost = \"127.0.0.1\"\nport = 6001\n\n[[apps]]\nid = \"app1\"\nkey = \"key1\"\nsecret = \"secret1\"\nclient_events = true\nsubscription_count = true\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.server.port, 6001);
        assert!(c.apps[0].subscription_count);
        assert_eq!(c.apps[0].max_event_payload_bytes, 10 * 1024);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let err = toml::from_str::<Config>("[server]\nprot = 1\n").unwrap_err().to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let mut c = Config::default();
        c.apps.push(AppConfig::dev());
        c.apps.push(AppConfig::new("b", "app-key", "s"));
        let err = c.validate().unwrap_err().to_string();
        assert!(err.starts_with("apps[1].key"), "{err}");
        c.apps[1].key = "other".into();
        c.apps[1].activity_timeout_seconds = 0;
        assert!(c.validate().unwrap_err().to_string().starts_with("apps[1].activity_timeout_seconds"));
    }

    #[test]
    fn masked_output_hides_secrets() {
        let mut c = Config::default();
        c.apps.push(AppConfig::dev());
        let out = c.to_masked_toml();
        assert!(!out.contains("app-secret"));
        assert!(out.contains("********"));
    }
}
