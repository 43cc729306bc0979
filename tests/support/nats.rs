//! Real NATS for tests: a `nats-server` process with JetStream on a free 127.0.0.1 port, its
//! store in a temp dir (killed and removed on drop), restartable on the same port with the same
//! store or a fresh one, and its monitoring endpoint to see who subscribes to what.
//!
//! When `nats-server` is not installed the tests skip with a message — unless
//! `HERALD_REQUIRE_NATS` is set (scripts/test.sh sets it), then they fail. Every wait polls a
//! condition against a deadline and panics saying what it waited for.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept clients with JetStream after start.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Whether `nats-server` runs here. When it does not: panics if `HERALD_REQUIRE_NATS` is set,
/// else says the test is skipped and answers false.
pub fn nats_server_available() -> bool {
    let installed = Command::new("nats-server").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if installed.is_ok_and(|s| s.success()) {
        return true;
    }
    let required = std::env::var_os("HERALD_REQUIRE_NATS").is_some_and(|v| !v.is_empty());
    assert!(!required, "HERALD_REQUIRE_NATS is set but nats-server is not installed (apt-get install nats-server)");
    eprintln!("SKIPPED: nats-server is not installed (apt-get install nats-server); set HERALD_REQUIRE_NATS=1 to fail instead");
    false
}

/// One `nats-server -js` process.
pub struct NatsServer {
    pub port: u16,
    /// The monitoring (HTTP) port: `/connz`, `/jsz`.
    pub monitor_port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// A server, or `None` (skip the test) when `nats-server` is not installed.
    pub fn start() -> Option<Self> {
        if !nats_server_available() {
            return None;
        }
        // A port found free can be taken by another test before the server binds it; the
        // server then exits at once, and is started again on other ports (bounded).
        for _ in 0..5 {
            let (port, mut monitor_port) = (free_port(), free_port());
            while monitor_port == port {
                monitor_port = free_port();
            }
            let store = std::env::temp_dir().join(format!("herald-nats-{}-{port}", std::process::id()));
            let mut server = Self { port, monitor_port, store, child: None };
            if server.launch() {
                return Some(server);
            }
            server.kill_and_forget();
        }
        panic!("nats-server did not start on a free port in 5 attempts");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process (again, on the same ports, with the store as it was) and waits until
    /// it greets clients with JetStream on.
    pub fn restart(&mut self) {
        assert!(self.launch(), "nats-server on {} exited at start (its ports are taken)", self.port);
    }

    /// Starts the process and waits until it greets clients with JetStream on; false when it
    /// exited instead.
    fn launch(&mut self) -> bool {
        assert!(self.child.is_none(), "already running");
        std::fs::create_dir_all(&self.store).expect("store dir");
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-m", &self.monitor_port.to_string()])
            .args(["-js", "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let port = self.port;
        let mut exited = false;
        wait_until(&format!("nats-server with JetStream on {port}"), START_TIMEOUT, || {
            exited = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some());
            exited || greeting(port).is_some_and(|info| info.contains("\"jetstream\":true"))
        });
        if exited {
            self.child = None;
        }
        !exited
    }

    /// Kills the process (SIGKILL); the store stays for [`Self::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process and deletes its store: restarted, it has forgotten everything.
    pub fn kill_and_forget(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }

    /// How many subscriptions on exactly `subject` the server has, over every connection.
    pub fn subscriptions(&self, subject: &str) -> usize {
        let Some(body) = http_get(self.monitor_port, "/connz?subs=1") else { return 0 };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else { return 0 };
        let connections = json["connections"].as_array().cloned().unwrap_or_default();
        connections
            .iter()
            .flat_map(|c| c["subscriptions_list"].as_array().cloned().unwrap_or_default())
            .filter(|s| s.as_str() == Some(subject))
            .count()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill_and_forget();
    }
}

/// The server's `INFO` line, when it accepts a client.
fn greeting(port: u16) -> Option<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    line.starts_with("INFO").then_some(line)
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// Polls `condition` every 20 ms until it holds, or panics after `timeout` naming `what`.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
