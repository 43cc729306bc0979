//! The connections to Redis: one for commands, one for pub/sub, in one of three topologies.
//!
//! * standalone: two `ConnectionManager`s (RESP3); the pub/sub one has a push sender and
//!   automatic resubscription, so it reconnects and resubscribes by itself;
//! * Sentinel: the same two, opened on the master that the sentinels name; [`Link::reopen`]
//!   asks them again (after a failover the old address answers READONLY or not at all). A
//!   READONLY answer latches [`Demoted`]: the old master may still serve reads, and those
//!   successes would keep the breaker closed forever, so from then on every command of that
//!   link fails as an outage — the breaker opens and its probe reopens the link;
//! * Cluster: two `ClusterConnection`s (RESP3); channel topics use sharded pub/sub.
//!
//! The push sender is [`PushForward`]: a bounded queue, full → counted and dropped, so the
//! Redis reader never blocks and memory stays bounded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use redis::aio::{AsyncPushSender, ConnectionLike, ConnectionManager, ConnectionManagerConfig, SendError};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{
    Client, Cmd, ErrorKind, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, Value,
};
use tokio::sync::mpsc;

use crate::adapter::stats::{bump, Counters};
use crate::config::AdapterConfig;

/// Commands sent concurrently at most by one [`Conn::batch`] on a cluster.
const CLUSTER_BATCH_CONCURRENCY: usize = 32;

/// Whether the master a Sentinel link was opened on has answered READONLY (the sentinels
/// demoted it). Shared by the link's two connections; a reopened link gets a fresh one.
#[derive(Clone, Default)]
pub(crate) struct Demoted(Arc<AtomicBool>);

impl Demoted {
    /// `Err(READONLY)` once latched: the caller counts it as an outage (breaker → probe →
    /// [`Link::reopen`]).
    fn check(&self) -> RedisResult<()> {
        if self.0.load(Ordering::Acquire) {
            return Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ReadOnly),
                "the sentinels demoted this master; waiting to ask them again",
            )));
        }
        Ok(())
    }

    fn observe_error(&self, e: &RedisError) {
        if e.code() == Some("READONLY") {
            self.0.store(true, Ordering::Release);
        }
    }

    fn observe_values(&self, values: &[Value]) {
        if values.iter().any(|v| matches!(v, Value::ServerError(e) if e.code() == "READONLY")) {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// One connection of either topology; cloning is cheap (both are multiplexed handles).
/// `Single` carries a [`Demoted`] latch when the sentinels chose its server.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager, Option<Demoted>),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c, None) => c.req_packed_command(cmd),
            Self::Single(c, Some(demoted)) => Box::pin(async move {
                demoted.check()?;
                let result = c.req_packed_command(cmd).await;
                match &result {
                    Ok(value) => demoted.observe_values(std::slice::from_ref(value)),
                    Err(e) => demoted.observe_error(e),
                }
                result
            }),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c, None) => c.req_packed_commands(pipeline, offset, count),
            Self::Single(c, Some(demoted)) => Box::pin(async move {
                demoted.check()?;
                let result = c.req_packed_commands(pipeline, offset, count).await;
                match &result {
                    Ok(values) => demoted.observe_values(values),
                    Err(e) => demoted.observe_error(e),
                }
                result
            }),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c, _) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// `SUBSCRIBE`, or `SSUBSCRIBE` on a cluster (every topic is sharded there).
    pub async fn subscribe(&mut self, topics: &[String]) -> RedisResult<()> {
        match self {
            Self::Single(c, demoted) => {
                demoted.as_ref().map_or(Ok(()), Demoted::check)?;
                c.subscribe(topics).await
            }
            Self::Cluster(c) => {
                for topic in topics {
                    c.ssubscribe(topic).await?;
                }
                Ok(())
            }
        }
    }

    pub async fn unsubscribe(&mut self, topics: &[String]) -> RedisResult<()> {
        match self {
            Self::Single(c, demoted) => {
                demoted.as_ref().map_or(Ok(()), Demoted::check)?;
                c.unsubscribe(topics).await
            }
            Self::Cluster(c) => {
                for topic in topics {
                    c.sunsubscribe(topic).await?;
                }
                Ok(())
            }
        }
    }

    /// `PUBLISH`, or `SPUBLISH` on a cluster.
    pub fn publish_cmd(&self, topic: &str, message: &[u8]) -> Cmd {
        let mut cmd = redis::cmd(if self.is_cluster() { "SPUBLISH" } else { "PUBLISH" });
        cmd.arg(topic).arg(message);
        cmd
    }

    /// Runs independent commands: one pipeline on a single server; on a cluster (where a
    /// pipeline must stay in one slot) concurrently, at most [`CLUSTER_BATCH_CONCURRENCY`] at once.
    pub async fn batch(&self, cmds: &[Cmd]) -> RedisResult<Vec<Value>> {
        match self {
            Self::Single(..) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd.clone());
                }
                // Through `Conn`, so that a Sentinel link's latch sees the answers.
                pipe.query_async(&mut self.clone()).await
            }
            Self::Cluster(c) => {
                use futures_util::{StreamExt, TryStreamExt};
                // Owned futures, collected first: a stream over a closure taking `&Cmd` would
                // make the caller's future not `Send` (higher-ranked lifetime).
                let requests: Vec<_> = cmds
                    .iter()
                    .cloned()
                    .map(|cmd| {
                        let mut c = c.clone();
                        Box::pin(async move { cmd.query_async::<Value>(&mut c).await })
                    })
                    .collect();
                futures_util::stream::iter(requests).buffered(CLUSTER_BATCH_CONCURRENCY).try_collect().await
            }
        }
    }
}

/// Hands pushes (messages, disconnections) from the pub/sub connection to the receiver task.
#[derive(Clone)]
pub(crate) struct PushForward {
    pub tx: mpsc::Sender<PushInfo>,
    pub counters: Arc<Counters>,
    /// Set when a disconnection push could not be queued.
    pub disconnected: Arc<AtomicBool>,
}

impl AsyncPushSender for PushForward {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        let disconnection = info.kind == PushKind::Disconnection;
        if self.tx.try_send(info).is_err() {
            if disconnection {
                self.disconnected.store(true, Ordering::Release);
            } else {
                bump(&self.counters.receive_dropped, 1);
            }
        }
        // Never an error: an error could make the connection forget its sender.
        Ok(())
    }
}

/// The current connections; replaced whole by [`Link::reopen`] (Sentinel failover).
pub(crate) struct Link {
    cmd: RwLock<Conn>,
    sub: RwLock<Conn>,
    sentinel: Option<tokio::sync::Mutex<SentinelClient>>,
    push: PushForward,
    timeout: Duration,
}

impl Link {
    pub async fn open(config: &AdapterConfig, push: PushForward) -> RedisResult<Self> {
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let mut sentinel = None;
        let (cmd, sub) = if config.cluster {
            open_cluster(config, &push, timeout).await?
        } else if let Some(master) = &config.sentinel_master {
            let mut client = sentinel_client(config, master)?;
            let master = client.async_get_client().await?;
            sentinel = Some(tokio::sync::Mutex::new(client));
            open_single(master, &push, timeout, Some(Demoted::default())).await?
        } else {
            open_single(Client::open(with_resp3(&config.url).as_str())?, &push, timeout, None).await?
        };
        Ok(Self { cmd: RwLock::new(cmd), sub: RwLock::new(sub), sentinel, push, timeout })
    }

    pub fn cmd(&self) -> Conn {
        self.cmd.read().clone()
    }

    pub fn sub(&self) -> Conn {
        self.sub.read().clone()
    }

    /// With Sentinel, asks the sentinels for the master again and replaces both connections
    /// (the subscriber then resubscribes everything). Without Sentinel, nothing to do.
    pub async fn reopen(&self) -> RedisResult<()> {
        let Some(sentinel) = &self.sentinel else { return Ok(()) };
        let master = sentinel.lock().await.async_get_client().await?;
        let (cmd, sub) = open_single(master, &self.push, self.timeout, Some(Demoted::default())).await?;
        *self.cmd.write() = cmd;
        *self.sub.write() = sub;
        Ok(())
    }
}

/// Adds `protocol=resp3` to a redis:// URL (push messages need RESP3).
pub(crate) fn with_resp3(url: &str) -> String {
    if url.contains("protocol=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&protocol=resp3")
    } else {
        format!("{url}?protocol=resp3")
    }
}

async fn open_single(
    client: Client,
    push: &PushForward,
    timeout: Duration,
    demoted: Option<Demoted>,
) -> RedisResult<(Conn, Conn)> {
    let base = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1));
    let cmd = ConnectionManager::new_with_config(client.clone(), base.clone()).await?;
    let sub_config = base.set_push_sender(push.clone()).set_automatic_resubscription();
    let sub = ConnectionManager::new_with_config(client, sub_config).await?;
    Ok((Conn::Single(cmd, demoted.clone()), Conn::Single(sub, demoted)))
}

async fn open_cluster(config: &AdapterConfig, push: &PushForward, timeout: Duration) -> RedisResult<(Conn, Conn)> {
    let seeds: Vec<String> = std::iter::once(&config.url).chain(&config.cluster_urls).map(|u| with_resp3(u)).collect();
    let builder = || {
        ClusterClientBuilder::new(seeds.clone())
            .use_protocol(ProtocolVersion::RESP3)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(2)
            .min_retry_wait(20)
            .max_retry_wait(500)
    };
    let cmd = builder().build()?.get_async_connection().await?;
    let sub = builder().push_sender(push.clone()).build()?.get_async_connection().await?;
    Ok((Conn::Cluster(cmd), Conn::Cluster(sub)))
}

/// The sentinels are `url` and `sentinel_urls`; the master gets `url`'s credentials and db.
fn sentinel_client(config: &AdapterConfig, master: &str) -> RedisResult<SentinelClient> {
    let first = config.url.as_str().into_connection_info()?;
    let redis = first.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(redis);
    let sentinels: Vec<&str> = std::iter::once(&config.url).chain(&config.sentinel_urls).map(String::as_str).collect();
    SentinelClient::build(sentinels, master.to_owned(), Some(node), SentinelServerType::Master)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp3_is_added_once() {
        assert_eq!(with_resp3("redis://h:1"), "redis://h:1?protocol=resp3");
        assert_eq!(with_resp3("redis://h:1/0?x=1"), "redis://h:1/0?x=1&protocol=resp3");
        assert_eq!(with_resp3("redis://h:1?protocol=3"), "redis://h:1?protocol=3");
    }

    #[test]
    fn a_readonly_answer_latches_every_later_command_into_readonly() {
        let demoted = Demoted::default();
        demoted.observe_error(&RedisError::from((ErrorKind::Io, "connection reset")));
        assert!(demoted.check().is_ok(), "only READONLY means demoted");
        demoted.observe_error(&RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "replica")));
        let latched = demoted.check().expect_err("latched");
        assert_eq!(latched.code(), Some("READONLY"), "counted as an outage by the breaker");
    }
}
