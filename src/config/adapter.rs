//! `[adapter]`: how nodes share state. `local` (the default) needs nothing; `redis` makes N
//! nodes one server through Redis (standalone, Sentinel or Cluster); `nats` through a NATS
//! server (or NATS cluster) with JetStream enabled (docs/nats.md).

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterDriver {
    Local,
    Redis,
    Nats,
}

/// How this node finds the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdapterConfig {
    pub driver: AdapterDriver,
    /// `redis://[user:password@]host:port[/db]` or `rediss://…`. With `cluster = true`, one
    /// seed node of the Redis Cluster (more in `cluster_urls`). With `driver = "nats"`:
    /// `nats://[user:password@]host:port` or `tls://…`, several separated by commas.
    pub url: String,
    /// Redis Cluster mode: keys and sharded pub/sub spread over the cluster's masters.
    pub cluster: bool,
    /// More Redis Cluster seed nodes.
    pub cluster_urls: Vec<String>,
    /// Redis Sentinel: the monitored master's name; `url` and `sentinel_urls` are sentinels.
    pub sentinel_master: Option<String>,
    pub sentinel_urls: Vec<String>,
    /// Prefix of every key and topic, so several clusters can share one Redis (with NATS: of
    /// every subject, and the KV bucket's name; letters, digits, `-` and `_` only).
    pub prefix: String,
    /// How often a node proves it is alive.
    pub heartbeat_interval_ms: u64,
    /// A node silent this long is dead; a survivor removes what it held.
    pub node_timeout_ms: u64,
    /// Events waiting to be published to other nodes; beyond it they are dropped and counted.
    pub publish_queue_capacity: usize,
    /// Timeout of one Redis command (one NATS request) on the hot path.
    pub command_timeout_ms: u64,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            driver: AdapterDriver::Local,
            url: "redis://127.0.0.1:6379".into(),
            cluster: false,
            cluster_urls: Vec::new(),
            sentinel_master: None,
            sentinel_urls: Vec::new(),
            prefix: "herald".into(),
            heartbeat_interval_ms: 5_000,
            node_timeout_ms: 15_000,
            publish_queue_capacity: 65_536,
            command_timeout_ms: 1_000,
        }
    }
}

impl AdapterConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match self.driver {
            AdapterDriver::Local => return Ok(()),
            AdapterDriver::Redis => self.validate_redis()?,
            AdapterDriver::Nats => self.validate_nats()?,
        }
        if self.heartbeat_interval_ms == 0 || self.node_timeout_ms < 2 * self.heartbeat_interval_ms {
            return Err(invalid("adapter.node_timeout_ms", "must be at least twice heartbeat_interval_ms (> 0)"));
        }
        if self.publish_queue_capacity == 0 || self.command_timeout_ms == 0 {
            return Err(invalid("adapter.publish_queue_capacity", "and command_timeout_ms must be greater than 0"));
        }
        Ok(())
    }

    fn validate_redis(&self) -> Result<(), ConfigError> {
        for (i, url) in std::iter::once(&self.url).chain(&self.cluster_urls).chain(&self.sentinel_urls).enumerate() {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(invalid(
                    format!("adapter.url ({i})"),
                    format!("{url:?} is not a redis:// or rediss:// URL"),
                ));
            }
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}', ' ']) {
            return Err(invalid("adapter.prefix", "must be non-empty, without braces or spaces"));
        }
        Ok(())
    }

    fn validate_nats(&self) -> Result<(), ConfigError> {
        for (i, url) in self.url.split(',').map(str::trim).enumerate() {
            let Some((scheme, rest)) = url.split_once("://") else {
                return Err(invalid(format!("adapter.url ({i})"), format!("{url:?} is not a nats:// or tls:// URL")));
            };
            if !matches!(scheme, "nats" | "tls") || rest.is_empty() || rest.contains(['/', ' ']) {
                return Err(invalid(format!("adapter.url ({i})"), format!("{url:?} is not a nats:// or tls:// URL")));
            }
        }
        if self.cluster
            || self.sentinel_master.is_some()
            || !self.cluster_urls.is_empty()
            || !self.sentinel_urls.is_empty()
        {
            return Err(invalid(
                "adapter.cluster",
                "and the sentinel settings are for redis; list NATS servers in url",
            ));
        }
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if self.prefix.is_empty() || self.prefix.len() > 64 || !self.prefix.chars().all(valid) {
            return Err(invalid("adapter.prefix", "must be 1-64 letters, digits, '-' or '_' with driver = \"nats\""));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats(url: &str) -> AdapterConfig {
        AdapterConfig { driver: AdapterDriver::Nats, url: url.into(), ..AdapterConfig::default() }
    }

    #[test]
    fn nats_urls_are_checked() {
        assert!(nats("nats://127.0.0.1:4222").validate().is_ok());
        assert!(nats("nats://a:4222, tls://user:pw@b:4222").validate().is_ok());
        for bad in ["redis://127.0.0.1:6379", "127.0.0.1:4222", "nats://", "nats://host:4222/path"] {
            let err = nats(bad).validate().unwrap_err().to_string();
            assert!(err.contains("adapter.url"), "{bad}: {err}");
        }
    }

    #[test]
    fn nats_prefixes_must_fit_a_bucket_name() {
        let mut config = nats("nats://127.0.0.1:4222");
        config.prefix = "herald.prod".into();
        assert!(config.validate().unwrap_err().to_string().contains("adapter.prefix"));
        config.prefix = "herald_prod-1".into();
        assert!(config.validate().is_ok());
        config.cluster = true;
        assert!(config.validate().unwrap_err().to_string().contains("adapter.cluster"));
    }
}
