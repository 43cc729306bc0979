//! herald's configuration: the TOML file, environment variables and flags, merged with one
//! precedence (flags > environment > file > defaults) and validated before anything starts.
//!
//! This module owns parsing and validation only; it never opens a socket.

use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

mod adapter;
mod app;
pub mod pattern;
mod webhooks;

pub use adapter::{AdapterConfig, AdapterDriver};
pub use app::{AppConfig, HistoryRule, HISTORY_MAX_EVENTS_LIMIT};
pub use webhooks::{WebhookTarget, WebhooksConfig};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub adapter: AdapterConfig,
    pub metrics: MetricsConfig,
    pub dashboard: DashboardConfig,
    pub webhooks: WebhooksConfig,
    pub apps: Vec<AppConfig>,
}

/// The live debug page (`[dashboard]`) on the main port at `/dashboard`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    pub enabled: bool,
    /// Required to see the page and its data (`Authorization: Bearer …` or `?token=…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
}

/// The Prometheus endpoint (`[metrics]`), on its own port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Defaults to `[server] host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<IpAddr>,
    /// 0 picks a free port.
    pub port: u16,
    /// Prefix of every metric name (`herald_connected`, …).
    pub prefix: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self { enabled: true, host: None, port: 9601, prefix: "herald".into() }
    }
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
    /// An HTTP fallback session (xhr_streaming / xhr_polling) with no request attached for this
    /// long ends (at most the app's activity timeout): pusher-js reattaches at once, so a longer
    /// silence means the page is gone (SockJS's `disconnect_delay`).
    pub http_session_detached_seconds: u64,
    /// Longest channel name accepted (Pusher: 164).
    pub max_channel_name_length: usize,
    /// Longest event name accepted (the SDKs' limit: 200).
    pub max_event_name_length: usize,
    /// Close with 4008 when a client gives no `protocol` parameter, instead of assuming 7.
    pub strict_protocol_version: bool,
    /// On SIGTERM/SIGINT, sockets are closed with 4200 at random moments spread over this
    /// window, so clients reconnect elsewhere gradually instead of all at once.
    pub drain_window_seconds: u64,
    /// Hard limit on shutdown: the process exits this long after the signal, drained or not.
    pub shutdown_grace_seconds: u64,
    /// WebSocket connection attempts one IP address may make per minute; more are answered
    /// 429 before the upgrade. Absent: unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_attempts_per_ip_per_minute: Option<u32>,
    /// TLS termination; absent serves plain `ws://` and `http://`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// How long a client may take to send a request's headers before it is disconnected.
    pub header_read_timeout_seconds: u64,
    /// Take the client address from the first `X-Forwarded-For` entry (behind a trusted proxy).
    pub trust_forwarded_for: bool,
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
            http_session_detached_seconds: 10,
            max_channel_name_length: 164,
            max_event_name_length: 200,
            strict_protocol_version: false,
            drain_window_seconds: 10,
            shutdown_grace_seconds: 30,
            connection_attempts_per_ip_per_minute: None,
            trust_forwarded_for: false,
            header_read_timeout_seconds: 10,
            tls: None,
        }
    }
}

/// `[server.tls]`: PEM files for `wss://` and `https://` on the main port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert_path: std::path::PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: std::path::PathBuf,
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

pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
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
            ("server.http_session_detached_seconds", s.http_session_detached_seconds),
            ("server.max_channel_name_length", s.max_channel_name_length as u64),
            ("server.max_event_name_length", s.max_event_name_length as u64),
            ("server.shutdown_grace_seconds", s.shutdown_grace_seconds),
            ("server.header_read_timeout_seconds", s.header_read_timeout_seconds),
            (
                "server.connection_attempts_per_ip_per_minute",
                u64::from(s.connection_attempts_per_ip_per_minute.unwrap_or(1)),
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        self.webhooks.validate()?;
        if self.dashboard.enabled && self.dashboard.admin_token.as_deref().is_none_or(|t| t.len() < 16) {
            return Err(invalid(
                "dashboard.admin_token",
                "must be set, at least 16 characters, when the dashboard is enabled",
            ));
        }
        self.adapter.validate()?;
        let p = &self.metrics.prefix;
        let valid_prefix = p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_prefix {
            return Err(invalid("metrics.prefix", "must match [a-zA-Z_][a-zA-Z0-9_]*"));
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
        if masked.dashboard.admin_token.is_some() {
            masked.dashboard.admin_token = Some("********".into());
        }
        toml::to_string_pretty(&masked).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
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
