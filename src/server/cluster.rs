//! Joining the cluster at start (when `[adapter] driver` is `"redis"` or `"nats"`) and leaving
//! it at stop.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::adapter::nats::NatsAdapter;
use crate::adapter::redis::RedisAdapter;
use crate::adapter::{AdapterError, Cluster, NodeId, RemoteSink};
use crate::apps::{Apps, Inbound};
use crate::config::{AdapterConfig, AdapterDriver};

/// This node's place in the cluster: the adapter, the sink it delivers into, and its tasks.
/// The adapter outlives the connections (their leaves still go to the backend during the
/// drain) and stops last.
#[derive(Debug)]
pub struct ClusterLink {
    pub adapter: Cluster,
    inbound: Arc<Inbound>,
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl ClusterLink {
    /// Connects when the configuration asks for a cluster; fails when its backend cannot be
    /// reached.
    pub async fn connect(config: &AdapterConfig) -> std::io::Result<Option<Self>> {
        if config.driver == AdapterDriver::Local {
            return Ok(None);
        }
        let (inbound, tracker, stop) = (Arc::new(Inbound::new()), TaskTracker::new(), CancellationToken::new());
        let node = NodeId::random();
        let sink: Arc<dyn RemoteSink> = inbound.clone();
        let adapter = connect_adapter(config, node, sink, stop.clone(), &tracker).await.map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("cannot join the cluster at {}: {e}", redacted(&config.url)),
            )
        })?;
        let (snapshot, sign_ins, extra) = (inbound.clone(), inbound.clone(), inbound.clone());
        adapter.set_snapshot(Arc::new(move || snapshot.memberships()));
        adapter.set_sign_in_snapshot(Arc::new(move || sign_ins.sign_ins()));
        adapter.set_extra_sink(Arc::new(move |report| extra.extra(report)));
        tracing::info!(%node, driver = ?config.driver, "joined the cluster");
        Ok(Some(Self { adapter, inbound, tracker, stop }))
    }

    /// Starts delivering what other nodes send into `apps`.
    pub fn bind(&self, apps: &Arc<Apps>) {
        self.inbound.bind(apps);
    }

    /// Stops the adapter's tasks, once the connections are gone.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn connect_adapter(
    config: &AdapterConfig,
    node: NodeId,
    sink: Arc<dyn RemoteSink>,
    stop: CancellationToken,
    tracker: &TaskTracker,
) -> Result<Cluster, AdapterError> {
    Ok(match config.driver {
        AdapterDriver::Nats => Cluster::Nats(NatsAdapter::connect(config, node, sink, stop, tracker).await?),
        _ => Cluster::Redis(RedisAdapter::connect(config, node, sink, stop, tracker).await?),
    })
}

/// The URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(super::redacted("redis://:secret@host:6379"), "redis://***@host:6379");
        assert_eq!(super::redacted("redis://host:6379"), "redis://host:6379");
        assert_eq!(super::redacted("nats://user:pw@host:4222"), "nats://***@host:4222");
    }
}
