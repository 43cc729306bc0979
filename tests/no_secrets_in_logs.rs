//! No secret in a log line or an error message: the real `herald` binary runs with
//! `RUST_LOG=trace` and JSON logs while every failure that involves the app secret happens
//! (bad channel auth, bad presence auth, bad sign-in, bad, expired and wrong-key API
//! signatures, a body that does not match `body_md5`, webhooks to a dead target), and neither
//! its output nor any answer it gave contains the secret.
//!
//! The test first waits for the log lines of those failures, so it cannot pass by logging
//! nothing. Everything runs on 127.0.0.1; every wait is bounded.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Client, FRAME_TIMEOUT};
use herald_protocol::http::sign_request;
use herald_protocol::signature::{auth_token, user_string_to_sign};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

const APP_ID: &str = "app1";
const APP_KEY: &str = "key-public";
/// Distinctive, so any occurrence in the output is this secret and nothing else.
const SECRET: &str = "Zq7-secret-NEVER-logged-4f1c";
/// A secret someone might try instead: signatures made with it must fail without echoing
/// either secret.
const WRONG_SECRET: &str = "wrong-secret-9b2d";

/// Everything the process wrote, line by line, from both streams.
type Output = Arc<Mutex<Vec<String>>>;

fn collect(stream: impl Read + Send + 'static, into: Output) {
    std::thread::spawn(move || {
        // Ends when the process exits and its pipe closes.
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            into.lock().expect("output lock").push(line);
        }
    });
}

/// The herald process; killed when dropped.
struct Herald {
    child: Child,
    output: Output,
    config: std::path::PathBuf,
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config);
    }
}

impl Herald {
    fn start(webhook_url: &str) -> Self {
        let config = std::env::temp_dir().join(format!("herald-no-secrets-{}.toml", std::process::id()));
        let text = format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\n\n[metrics]\nenabled = false\n\n\
             [webhooks]\nrequest_timeout_ms = 500\nretry_for_seconds = 1\nshutdown_flush_seconds = 1\n\n\
             [[apps]]\nid = \"{APP_ID}\"\nkey = \"{APP_KEY}\"\nsecret = \"{SECRET}\"\n\
             webhooks = [{{ url = \"{webhook_url}\" }}]\n"
        );
        std::fs::write(&config, text).expect("write the config file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald");
        let output = Output::default();
        collect(child.stdout.take().expect("piped stdout"), output.clone());
        collect(child.stderr.take().expect("piped stderr"), output.clone());
        Self { child, output, config }
    }

    /// Waits (bounded) until a log line satisfies `found`; returns that line.
    async fn await_line(&self, what: &str, found: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(line) = self.output.lock().expect("output lock").iter().find(|l| found(l)) {
                return line.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no log line {what} within 10 s; the output was:\n{}", self.output.lock().expect("lock").join("\n"));
    }

    /// The address from the `listening on <addr>` line.
    async fn addr(&self) -> SocketAddr {
        let line = self.await_line("`listening on`", |l| l.contains("listening on ")).await;
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        let message = value["fields"]["message"].as_str().expect("message field");
        message.trim_start_matches("listening on ").parse().expect("an address")
    }

    /// SIGTERM, so shutdown and the webhook flush log too; then at most 10 s to exit.
    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

/// A port on which nothing listens: bound, then released.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

async fn connect(addr: SocketAddr) -> Client {
    let url = format!("ws://{addr}/app/{APP_KEY}?protocol=7&client=js&version=8.6.0");
    let (ws, _) = tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("upgrade timed out")
        .expect("upgrade");
    let mut client = Client { ws, socket_id: String::new(), key: APP_KEY.into(), secret: WRONG_SECRET.into() };
    client.await_established().await;
    client
}

/// Sends `method url` and returns the status and body text.
async fn http(
    client: &hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: String,
    body: &str,
) -> (u16, String) {
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let response =
        tokio::time::timeout(FRAME_TIMEOUT, client.request(request)).await.expect("timed out").expect("HTTP");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Every client-side failure that involves the secret; returns every answer herald gave.
async fn provoke_websocket_failures(addr: SocketAddr) -> Vec<String> {
    let mut answers = Vec::new();
    let mut client = connect(addr).await;
    // `client.secret` is the wrong one: every signature below is well-formed but wrong.
    let auth = client.auth_for("private-orders", None);
    client.send_subscribe("private-orders", Some(&auth), None).await;
    answers.push(client.expect_error_code(Some(4009)).await.to_string());
    let presence = r#"{"user_id":"1"}"#;
    client.send_presence_subscribe("presence-room", presence).await;
    answers.push(client.expect_error_code(Some(4009)).await.to_string());
    let user_data = json!({"id": "1"}).to_string();
    let auth = auth_token(APP_KEY, WRONG_SECRET, &user_string_to_sign(&client.socket_id, &user_data));
    client.send_json(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})).await;
    answers.push(client.expect_error_code(Some(4009)).await.to_string());
    // A public channel succeeds, so the (dead) webhook target is sent channel_occupied.
    client.subscribe("news").await;
    client.close().await;
    answers
}

/// Every API authentication failure; returns every answer herald gave.
async fn provoke_api_failures(addr: SocketAddr) -> Vec<String> {
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let path = format!("/apps/{APP_ID}/events");
    let body = json!({"name": "e", "channels": ["news"], "data": "{}"}).to_string();
    let now = common::now_unix();
    let cases = [
        ("wrong secret", sign_request("POST", &path, APP_KEY, WRONG_SECRET, now, body.as_bytes(), &[])),
        ("expired", sign_request("POST", &path, APP_KEY, SECRET, now - 3_600, body.as_bytes(), &[])),
        ("wrong key", sign_request("POST", &path, "other-key", SECRET, now, body.as_bytes(), &[])),
        ("body_md5", sign_request("POST", &path, APP_KEY, SECRET, now, b"{}", &[])),
        (
            "secret as signature",
            format!("auth_key={APP_KEY}&auth_timestamp={now}&auth_version=1.0&auth_signature={SECRET}"),
        ),
    ];
    let mut answers = Vec::new();
    for (what, query) in cases {
        let (status, answer) = http(&http_client, "POST", format!("http://{addr}{path}?{query}"), &body).await;
        assert_eq!(status, 401, "{what}: {answer}");
        answers.push(answer);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_secret_appears_in_no_log_line_and_no_error_answer() {
    let webhook_url = format!("http://127.0.0.1:{}/hooks", dead_port());
    let mut herald = Herald::start(&webhook_url);
    let addr = herald.addr().await;

    let mut answers = provoke_websocket_failures(addr).await;
    answers.extend(provoke_api_failures(addr).await);

    // The failures were logged (at debug), so the search below has something to search.
    let refused = |l: &str| l.contains("client message refused") && l.contains("Invalid signature");
    herald.await_line("for a refused channel signature", refused).await;
    herald
        .await_line("for a refused sign-in", |l| l.contains("client message refused") && l.contains("::user::"))
        .await;
    herald
        .await_line("for a refused API signature", |l| l.contains("api request refused") && l.contains("signature"))
        .await;
    herald
        .await_line("for an expired API timestamp", |l| l.contains("api request refused") && l.contains("expired"))
        .await;
    herald.await_line("for a failed webhook", |l| l.contains("webhook") && l.contains("127.0.0.1")).await;
    herald.stop();

    // `herald config check` prints the configuration: masked.
    let check = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["config", "check", "--config"])
        .arg(&herald.config)
        .output()
        .expect("run herald config check");
    assert!(check.status.success(), "{check:?}");
    let printed = [String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr)].concat();
    assert!(printed.contains("********"), "{printed}");

    assert_no_secret(&herald, 20, answers.iter().chain(std::iter::once(&printed)));
}

/// Neither secret in any line herald wrote, nor in any answer it gave.
fn assert_no_secret<'a>(herald: &Herald, min_lines: usize, answers: impl IntoIterator<Item = &'a String>) {
    let output = herald.output.lock().expect("output lock").clone();
    assert!(output.len() >= min_lines, "trace logging produced only {} lines", output.len());
    let leaks: Vec<&String> = output.iter().filter(|l| l.contains(SECRET) || l.contains(WRONG_SECRET)).collect();
    assert!(leaks.is_empty(), "the secret appears in {} log lines, e.g. {}", leaks.len(), leaks[0]);
    for answer in answers {
        assert!(!answer.contains(SECRET) && !answer.contains(WRONG_SECRET), "a secret in an answer: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_sent_by_a_misconfigured_client_is_not_echoed_into_the_log() {
    let mut herald = Herald::start(&format!("http://127.0.0.1:{}/hooks", dead_port()));
    let addr = herald.addr().await;
    let mut client = connect(addr).await;
    // An auth endpoint with key and secret swapped, or one that sends the secret itself.
    let mut answers = Vec::new();
    for auth in [format!("{SECRET}:{}", "0".repeat(64)), format!("{APP_KEY}:{SECRET}")] {
        client.send_subscribe("private-orders", Some(&auth), None).await;
        answers.push(client.expect_error_code(Some(4009)).await.to_string());
    }
    herald.await_line("for the refused subscriptions", |l| l.contains("client message refused")).await;
    herald.stop();
    assert_no_secret(&herald, 5, &answers);
}
