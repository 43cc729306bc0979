//! Real Redis for tests: `redis-server` processes on free 127.0.0.1 ports (killed on drop), a
//! three-master Redis Cluster, and a [`RemoteSink`] that records into channels to await.
//!
//! Every wait polls a condition against a deadline and panics saying what it waited for.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald::adapter::redis::RemoteExtra;
use herald::adapter::{Remote, RemoteSink};
use tokio::sync::mpsc;

/// How long a server may take to answer after start, or a cluster to form.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `condition` every 20 ms until it holds, or panics after `timeout` naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The async twin of [`wait_until`].
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One `redis-server` process.
pub struct RedisServer {
    pub port: u16,
    config_file: Option<String>,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(free_port(), Vec::new())
    }

    pub fn start_with(port: u16, extra: Vec<String>) -> Self {
        let mut server = Self { port, config_file: None, extra, child: None };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, on the same port) and waits until it answers PING.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let port = self.port.to_string();
        // A config file must come first.
        let child = Command::new("redis-server")
            .args(&self.config_file)
            .args(["--port", &port, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server)");
        self.child = Some(child);
        wait_until(&format!("redis-server on {port}"), START_TIMEOUT, || {
            redis_cli(self.port, &["PING"]).is_some_and(|o| o.contains("PONG"))
        });
    }

    /// Kills the process (SIGKILL) and waits until the port refuses connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Sentinel (`redis-server <conf> --sentinel`) monitoring `master` as `name`.
pub struct RedisSentinel {
    pub server: RedisServer,
    conf: PathBuf,
}

impl RedisSentinel {
    pub fn start(name: &str, master: &RedisServer) -> Self {
        Self::with_config(|port| {
            format!("port {port}\nbind 127.0.0.1\nsentinel monitor {name} 127.0.0.1 {} 1\n", master.port)
        })
    }

    /// A sentinel on a free port with the config `text(port)`.
    fn with_config(text: impl FnOnce(u16) -> String) -> Self {
        let port = free_port();
        let conf = std::env::temp_dir().join(format!("herald-sentinel-{}-{port}.conf", std::process::id()));
        std::fs::write(&conf, text(port)).expect("sentinel config");
        // The config file comes first; `--sentinel` makes redis-server a sentinel.
        let mut server = RedisServer {
            port,
            config_file: Some(conf.display().to_string()),
            extra: vec!["--sentinel".into()],
            child: None,
        };
        server.restart();
        Self { server, conf }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.server.kill();
        let _ = std::fs::remove_file(&self.conf);
    }
}

/// How a group of sentinels judges and replaces a master (see [`RedisSentinel::start_group`]).
#[derive(Debug, Clone, Copy)]
pub struct SentinelTiming {
    /// Sentinels that must agree the master is down before a failover.
    pub quorum: u32,
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
}

impl RedisServer {
    /// A server that may take part in replication, as master or replica, before or after a
    /// failover: transfers go over the socket (no RDB file in the working directory, no
    /// delay), and anything written anyway lands in the temp dir.
    pub fn start_replicable(extra: Vec<String>) -> Self {
        let diskless =
            ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", "--repl-diskless-load", "swapdb"];
        let dir = std::env::temp_dir().display().to_string();
        let args = diskless.iter().map(|s| s.to_string()).chain(["--dir".into(), dir]).chain(extra).collect();
        Self::start_with(free_port(), args)
    }

    /// A replicable `redis-server --replicaof` `master`, returned once its link is up.
    pub fn start_replica_of(master: &RedisServer) -> Self {
        let replica = Self::start_replicable(vec!["--replicaof".into(), "127.0.0.1".into(), master.port.to_string()]);
        wait_until(&format!("replica on {} synced with {}", replica.port, master.port), START_TIMEOUT, || {
            replica.cli(&["INFO", "replication"]).contains("master_link_status:up")
        });
        replica
    }

    /// Whether this server answers `ROLE` as a master.
    pub fn is_master(&self) -> bool {
        self.cli(&["ROLE"]).lines().next() == Some("master")
    }
}

impl RedisSentinel {
    /// `count` sentinels monitoring `master` as `name` with `timing`, returned once each one
    /// knows the others and `replicas` replicas — so that a failover can be elected.
    pub fn start_group(
        name: &str,
        master: &RedisServer,
        count: usize,
        replicas: usize,
        timing: SentinelTiming,
    ) -> Vec<Self> {
        let group: Vec<Self> = (0..count).map(|_| Self::start_timed(name, master, timing)).collect();
        for sentinel in &group {
            wait_until(
                &format!("sentinel {} to see its peers and replicas", sentinel.server.port),
                START_TIMEOUT,
                || {
                    let info = sentinel.master_info(name);
                    info.get("num-other-sentinels") == Some(&(count - 1).to_string())
                        && info.get("num-slaves") == Some(&replicas.to_string())
                },
            );
        }
        group
    }

    fn start_timed(name: &str, master: &RedisServer, timing: SentinelTiming) -> Self {
        Self::with_config(|port| {
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor {name} 127.0.0.1 {} {}\n\
                 sentinel down-after-milliseconds {name} {}\nsentinel failover-timeout {name} {}\n",
                master.port, timing.quorum, timing.down_after_ms, timing.failover_timeout_ms
            )
        })
    }

    /// `SENTINEL MASTER name` as field → value (empty when the sentinel does not answer).
    pub fn master_info(&self, name: &str) -> std::collections::HashMap<String, String> {
        let out = self.server.cli(&["SENTINEL", "MASTER", name]);
        let lines: Vec<&str> = out.lines().collect();
        lines.chunks_exact(2).map(|kv| (kv[0].to_owned(), kv[1].to_owned())).collect()
    }

    /// The port of the master this sentinel currently names for `name`.
    pub fn master_port(&self, name: &str) -> Option<u16> {
        self.server.cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", name]).lines().nth(1)?.trim().parse().ok()
    }
}

/// Three cluster-enabled masters joined into one Redis Cluster (no replicas).
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    dir: PathBuf,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("herald-redis-cluster-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                let port = free_port();
                let conf = dir.join(format!("nodes-{port}.conf")).display().to_string();
                let extra = ["--cluster-enabled", "yes", "--cluster-config-file", &conf, "--dir"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain([dir.display().to_string()])
                    .collect();
                RedisServer::start_with(port, extra)
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let status = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(status.success(), "redis-cli --cluster create failed");
        for node in &nodes {
            wait_until("cluster_state:ok on every node", START_TIMEOUT, || {
                node.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
        Self { nodes, dir }
    }

    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Records what an adapter hands its sink, for the test to await.
pub struct RecordingSink {
    tx: mpsc::UnboundedSender<Remote>,
}

impl RemoteSink for RecordingSink {
    fn receive(&self, message: Remote) {
        let _ = self.tx.send(message);
    }
}

pub fn recording_sink() -> (Arc<RecordingSink>, mpsc::UnboundedReceiver<Remote>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(RecordingSink { tx }), rx)
}

pub fn recording_extra() -> (Arc<dyn Fn(RemoteExtra) + Send + Sync>, mpsc::UnboundedReceiver<RemoteExtra>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Arc::new(move |extra| {
            let _ = tx.send(extra);
        }),
        rx,
    )
}

/// The next message within `timeout`, or `None`.
pub async fn next_within<T>(rx: &mut mpsc::UnboundedReceiver<T>, timeout: Duration) -> Option<T> {
    tokio::time::timeout(timeout, rx.recv()).await.ok().flatten()
}
