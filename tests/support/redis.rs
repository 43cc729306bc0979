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
        let port = free_port();
        let conf = std::env::temp_dir().join(format!("herald-sentinel-{}-{port}.conf", std::process::id()));
        let text = format!("port {port}\nbind 127.0.0.1\nsentinel monitor {name} 127.0.0.1 {} 1\n", master.port);
        std::fs::write(&conf, text).expect("sentinel config");
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
