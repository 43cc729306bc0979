//! `[adapter]`: how nodes share state. `local` (the default) needs nothing; `redis` makes N
//! nodes one server through Redis (standalone, Sentinel or Cluster).

use serde::{Deserialize, Serialize};

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterDriver {
    Local,
    Redis,
}

/// How this node finds the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdapterConfig {
    pub driver: AdapterDriver,
    /// `redis://[user:password@]host:port[/db]` or `rediss://…`. With `cluster = true`, one
    /// seed node of the Redis Cluster (more in `cluster_urls`).
    pub url: String,
    /// Redis Cluster mode: keys and sharded pub/sub spread over the cluster's masters.
    pub cluster: bool,
    /// More Redis Cluster seed nodes.
    pub cluster_urls: Vec<String>,
    /// Redis Sentinel: the monitored master's name; `url` and `sentinel_urls` are sentinels.
    pub sentinel_master: Option<String>,
    pub sentinel_urls: Vec<String>,
    /// Prefix of every key and topic, so several clusters can share one Redis.
    pub prefix: String,
    /// How often a node proves it is alive.
    pub heartbeat_interval_ms: u64,
    /// A node silent this long is dead; a survivor removes what it held.
    pub node_timeout_ms: u64,
    /// Events waiting to be published to other nodes; beyond it they are dropped and counted.
    pub publish_queue_capacity: usize,
    /// Timeout of one Redis command on the hot path.
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
        if self.driver == AdapterDriver::Local {
            return Ok(());
        }
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
        if self.heartbeat_interval_ms == 0 || self.node_timeout_ms < 2 * self.heartbeat_interval_ms {
            return Err(invalid("adapter.node_timeout_ms", "must be at least twice heartbeat_interval_ms (> 0)"));
        }
        if self.publish_queue_capacity == 0 || self.command_timeout_ms == 0 {
            return Err(invalid("adapter.publish_queue_capacity", "and command_timeout_ms must be greater than 0"));
        }
        Ok(())
    }
}
