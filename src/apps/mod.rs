//! Apps: their configuration, their channels and their connection count, found by id (HTTP
//! API) or key (WebSocket).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use herald_protocol::presence::PresenceLimits;

mod debug;
mod history;
mod membership;
mod remote;

pub use debug::DebugFeed;
pub use remote::Inbound;

use crate::adapter::Cluster;
use crate::channels::{ChannelPolicy, ChannelRegistry, RemotePublish};
use crate::config::pattern::matches_ignoring_case;
use crate::config::AppConfig;
use crate::frame::Frame;
use crate::history::HistoryRules;
use crate::metrics::{AppMetrics, Metrics};
use crate::users::UserRegistry;
use crate::webhooks::{AppWebhooks, LeaveCheck, Webhooks};

/// One app at run time.
#[derive(Debug)]
pub struct App {
    pub config: AppConfig,
    pub channels: ChannelRegistry,
    pub users: UserRegistry,
    pub webhooks: AppWebhooks,
    pub metrics: AppMetrics,
    /// The cluster adapter (Redis or NATS), when this node is part of a cluster.
    pub cluster: Option<Cluster>,
    /// What happens in the app, for the `/dashboard` page.
    pub debug: DebugFeed,
    /// The app's HTTP API request budget, when it has one.
    pub api_limiter: Option<governor::DefaultDirectRateLimiter>,
    connections: AtomicU64,
    /// In a cluster: the order of a channel's history events on this node, and the channels
    /// whose events could not be recorded.
    cluster_history: history::ClusterHistory,
}

/// Holds one of the app's connection slots; dropping it frees the slot (and the cluster's
/// count of it, when the cluster counted it).
#[derive(Debug)]
pub struct ConnectionSlot {
    app: Arc<App>,
    counted_by_cluster: bool,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.app.connections.fetch_sub(1, Ordering::Relaxed);
        if let (true, Some(cluster)) = (self.counted_by_cluster, &self.app.cluster) {
            cluster.release_connection(&self.app.config.id);
        }
    }
}

impl App {
    pub fn new(config: AppConfig, webhooks: AppWebhooks, metrics: AppMetrics, cluster: Option<Cluster>) -> Self {
        let policy = ChannelPolicy {
            max_presence_members: config.max_presence_members,
            subscription_count: config.subscription_count,
            cache_ttl: std::time::Duration::from_secs(config.cache_ttl_seconds),
            history: HistoryRules::new(config.history.clone()),
        };
        let remote = cluster
            .as_ref()
            .map(|c| Arc::new(ClusterPublish { cluster: c.clone(), app: config.id.clone() }) as Arc<dyn RemotePublish>);
        let api_limiter = config
            .api_requests_per_second
            .and_then(std::num::NonZeroU32::new)
            .map(|n| governor::RateLimiter::direct(governor::Quota::per_second(n)));
        Self {
            cluster_history: history::ClusterHistory::default(),
            api_limiter,
            channels: ChannelRegistry::new(policy, webhooks.clone(), remote),
            cluster,
            debug: DebugFeed::default(),
            users: UserRegistry::new(),
            config,
            webhooks,
            metrics,
            connections: AtomicU64::new(0),
        }
    }

    /// Takes a connection slot, or `None` when the app is at `max_connections` — on this
    /// node, and in the cluster when there is one (if the cluster cannot answer, the local
    /// count alone decides).
    pub async fn try_connect(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let max = self.config.max_connections;
        let local_max = max.unwrap_or(u64::MAX);
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < local_max).then_some(n + 1))
            .ok()?;
        let mut slot = ConnectionSlot { app: self.clone(), counted_by_cluster: false };
        if let Some(cluster) = self.cluster.as_ref().filter(|c| c.is_available()) {
            match cluster.acquire_connection(&self.config.id, max).await {
                Ok(true) => slot.counted_by_cluster = true,
                Ok(false) => return None,
                Err(_) => {}
            }
        }
        Some(slot)
    }

    /// Updates the gauges that are computed rather than tracked, before a scrape.
    pub fn refresh_metrics(&self) {
        self.metrics.connected.set(self.connection_count() as i64);
        self.metrics.channels.set(self.channels.len() as i64);
        self.metrics.presence_members.set(self.channels.presence_member_count() as i64);
    }

    /// Connections open now.
    pub fn connection_count(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// The presence limits of this app.
    pub fn presence_limits(&self) -> PresenceLimits {
        PresenceLimits {
            max_user_id_length: self.config.max_user_id_length,
            max_user_info_bytes: self.config.max_presence_user_info_bytes,
        }
    }

    /// Whether a WebSocket with this `Origin` header may connect. Entries match the origin's
    /// host with `*` wildcards; `*` alone allows everything, including no `Origin` at all.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        let allowed = &self.config.allowed_origins;
        if allowed.iter().any(|a| a == "*") {
            return true;
        }
        let Some(origin) = origin else { return false };
        let host = origin_host(origin);
        allowed.iter().any(|pattern| matches_ignoring_case(pattern, host) || matches_ignoring_case(pattern, origin))
    }
}

/// The host part of an `Origin` (`https://app.example.com:8443` → `app.example.com`).
fn origin_host(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, r)| r);
    let rest = rest.split('/').next().unwrap_or(rest);
    if rest.starts_with('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h.trim_start_matches('['));
    }
    rest.rsplit_once(':').map_or(rest, |(h, _)| h)
}

/// Every configured app.
#[derive(Debug, Default)]
pub struct Apps {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl Apps {
    pub fn new(configs: &[AppConfig], webhooks: &Webhooks, metrics: &Metrics, cluster: Option<&Cluster>) -> Self {
        let mut apps = Self::default();
        for config in configs {
            let (hooks, stats, cluster) = (webhooks.for_app(config), metrics.for_app(&config.id), cluster.cloned());
            let app = Arc::new(App::new(config.clone(), hooks, stats, cluster));
            apps.by_id.insert(config.id.clone(), app.clone());
            apps.by_key.insert(config.key.clone(), app);
        }
        apps
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }
}

/// Forwards what the registry publishes to the other nodes of the cluster.
#[derive(Debug)]
struct ClusterPublish {
    cluster: Cluster,
    app: String,
}

impl RemotePublish for ClusterPublish {
    fn publish(
        &self,
        channel: &herald_protocol::ChannelName,
        frame: &Frame,
        except: Option<herald_protocol::SocketId>,
    ) {
        if self.cluster.is_available() {
            self.cluster.publish(&self.app, channel.as_str(), except, frame.bytes().clone());
        }
    }

    fn leave_check(
        &self,
        channel: &herald_protocol::ChannelName,
        user: Option<&herald_protocol::UserId>,
    ) -> Option<LeaveCheck> {
        if !self.cluster.holds_leaves() {
            return None;
        }
        let (cluster, app, channel, user) =
            (self.cluster.clone(), self.app.clone(), channel.as_str().to_owned(), user.cloned());
        Some(LeaveCheck::new(move || {
            Box::pin(async move {
                // The cluster unreachable: send it (a duplicate transition beats a lost one).
                cluster.confirm_leave(&app, &channel, user.as_ref()).await.unwrap_or(true)
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(origins: &[&str]) -> Arc<App> {
        let mut c = AppConfig::dev();
        c.allowed_origins = origins.iter().map(|s| s.to_string()).collect();
        c.max_connections = Some(1);
        Arc::new(App::new(c, AppWebhooks::disabled(), AppMetrics::detached(), None))
    }

    #[test]
    fn origins_match_by_host_with_wildcards() {
        let a = app(&["*.example.com", "localhost"]);
        assert!(a.allows_origin(Some("https://app.example.com")));
        assert!(a.allows_origin(Some("http://localhost:5173")));
        assert!(!a.allows_origin(Some("https://example.org")));
        assert!(!a.allows_origin(None));
        assert!(app(&["*"]).allows_origin(None));
    }

    #[tokio::test]
    async fn connection_slots_respect_the_quota_and_free_on_drop() {
        let a = app(&["*"]);
        let slot = a.try_connect().await.unwrap();
        assert!(a.try_connect().await.is_none());
        drop(slot);
        assert!(a.try_connect().await.is_some());
    }
}
