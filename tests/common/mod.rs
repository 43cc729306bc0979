//! The black-box harness: a herald [`TestServer`] on 127.0.0.1:0, a Pusher-speaking WebSocket
//! [`Client`] and a signed HTTP [`Api`] client.
//!
//! Everything here talks to the server through real sockets only; nothing reaches into
//! herald's internals beyond `Server::bind` / `run`. Every wait has a deadline
//! ([`FRAME_TIMEOUT`]) and panics with a message saying what was awaited.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use herald::config::{AppConfig, Config};
use herald_protocol::signature::{auth_token, channel_string_to_sign};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long any single expected frame, close or response may take.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

pub const APP_ID: &str = "app1";
pub const APP_KEY: &str = "key1";
pub const APP_SECRET: &str = "secret1";

/// The default test app: `app1` / `key1` / `secret1` with Pusher's default limits.
pub fn app() -> AppConfig {
    AppConfig::new(APP_ID, APP_KEY, APP_SECRET)
}

/// A configuration listening on 127.0.0.1:0 serving the given apps.
pub fn config_with(apps: Vec<AppConfig>) -> Config {
    let mut config = Config::default();
    config.server.host = "127.0.0.1".parse().expect("literal address");
    config.server.port = 0;
    config.metrics.host = Some("127.0.0.1".parse().expect("literal address"));
    config.metrics.port = 0;
    config.apps = apps;
    config
}

/// herald running in-process; cancelled when dropped.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: Option<SocketAddr>,
    pub config: Config,
    shutdown: CancellationToken,
}

impl TestServer {
    /// A server with the default test app only.
    pub async fn start() -> Self {
        Self::with_config(config_with(vec![app()])).await
    }

    /// A server with one app, customised by the caller.
    pub async fn with_app(app: AppConfig) -> Self {
        Self::with_config(config_with(vec![app])).await
    }

    pub async fn with_config(config: Config) -> Self {
        let server = herald::Server::bind(config.clone()).await.expect("herald binds 127.0.0.1:0");
        let addr = server.local_addr();
        let metrics_addr = server.metrics_addr();
        let shutdown = CancellationToken::new();
        tokio::spawn(server.run(shutdown.clone()));
        Self { addr, metrics_addr, config, shutdown }
    }

    fn prefix(&self) -> &str {
        &self.config.server.path_prefix
    }

    /// `ws://addr[prefix]/app/{key}?protocol=7&client=js&version=8.6.0&flash=false`.
    pub fn ws_url(&self, key: &str) -> String {
        self.ws_url_with_query(key, "protocol=7&client=js&version=8.6.0&flash=false")
    }

    pub fn ws_url_with_query(&self, key: &str, query: &str) -> String {
        format!("ws://{}{}/app/{key}?{query}", self.addr, self.prefix())
    }

    /// Connects to the default app and waits for `connection_established`.
    pub async fn connect(&self) -> Client {
        self.connect_app(APP_KEY, APP_SECRET).await
    }

    /// Connects with the given app credentials and waits for `connection_established`.
    pub async fn connect_app(&self, key: &str, secret: &str) -> Client {
        let mut client = self.open(&self.ws_url(key), None).await;
        client.key = key.into();
        client.secret = secret.into();
        client.await_established().await;
        client
    }

    /// Opens a WebSocket to `url` (optionally with an `Origin` header) without reading anything.
    /// The upgrade must succeed; refusals after the upgrade are read from the returned client.
    pub async fn open(&self, url: &str, origin: Option<&str>) -> Client {
        let mut request = url.into_client_request().expect("valid ws url");
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", HeaderValue::from_str(origin).expect("valid origin header"));
        }
        let Ok(result) = tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(request)).await else {
            panic!("WebSocket upgrade to {url} timed out");
        };
        let (ws, _) = result.unwrap_or_else(|e| panic!("WebSocket upgrade to {url} failed: {e}"));
        Client { ws, socket_id: String::new(), key: APP_KEY.into(), secret: APP_SECRET.into() }
    }

    /// Attempts an upgrade expected to be refused at the HTTP level; returns the HTTP status.
    pub async fn upgrade_status(&self, url: &str) -> u16 {
        let Ok(result) = tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(url)).await else {
            panic!("WebSocket upgrade to {url} timed out");
        };
        match result {
            Ok(_) => panic!("WebSocket upgrade to {url} succeeded, expected an HTTP refusal"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
            Err(e) => panic!("WebSocket upgrade to {url} failed without an HTTP response: {e}"),
        }
    }

    /// A signed API client for the default app.
    pub fn api(&self) -> Api {
        self.api_for(APP_ID, APP_KEY, APP_SECRET)
    }

    pub fn api_for(&self, app_id: &str, key: &str, secret: &str) -> Api {
        Api {
            base: format!("http://{}{}", self.addr, self.prefix()),
            app_id: app_id.into(),
            key: key.into(),
            secret: secret.into(),
            http: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http(),
        }
    }
}

impl TestServer {
    /// Starts the drain, as SIGTERM does.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// What one read from the socket produced.
#[derive(Debug)]
pub enum Incoming {
    Frame(Value),
    Binary(Bytes),
    Pong(Bytes),
    /// A close frame's code (None when the close frame had no code), or the stream ending.
    Close(Option<u16>),
    Ended(String),
}

/// A Pusher client over one WebSocket.
#[derive(Debug)]
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
    pub key: String,
    pub secret: String,
}

impl Client {
    /// Reads the first frame, which must be `pusher:connection_established`, and records the socket id.
    pub async fn await_established(&mut self) -> Value {
        let frame = self.expect_event("pusher:connection_established").await;
        let data = data_of(&frame);
        self.socket_id = data["socket_id"].as_str().unwrap_or_else(|| panic!("no socket_id in {frame}")).to_string();
        data
    }

    /// The next thing the server sent, skipping WS Ping control frames (tungstenite answers them).
    pub async fn next_incoming(&mut self) -> Incoming {
        loop {
            let next = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no message from the server within {FRAME_TIMEOUT:?}"));
            return match next {
                None => Incoming::Ended("stream ended".into()),
                Some(Err(e)) => Incoming::Ended(e.to_string()),
                Some(Ok(Message::Text(text))) => Incoming::Frame(
                    serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("server sent a text frame that is not JSON ({e}): {text}")),
                ),
                Some(Ok(Message::Binary(bytes))) => Incoming::Binary(bytes),
                Some(Ok(Message::Ping(_))) | Some(Ok(Message::Frame(_))) => continue,
                Some(Ok(Message::Pong(bytes))) => Incoming::Pong(bytes),
                Some(Ok(Message::Close(frame))) => Incoming::Close(frame.map(|f| u16::from(f.code))),
            };
        }
    }

    /// The next JSON frame; panics on anything else or after [`FRAME_TIMEOUT`].
    pub async fn next_frame(&mut self) -> Value {
        match self.next_incoming().await {
            Incoming::Frame(frame) => frame,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The next frame, which must be the event `name`.
    pub async fn expect_event(&mut self, name: &str) -> Value {
        let frame = self.next_frame().await;
        assert_eq!(frame["event"], name, "expected event {name}, got frame {frame}");
        frame
    }

    /// The next frame, which must be `pusher:error`; returns its `data` object.
    pub async fn expect_error(&mut self) -> Value {
        let frame = self.expect_event("pusher:error").await;
        let data = frame["data"].clone();
        assert!(data.is_object(), "pusher:error data must be an object, got {frame}");
        assert!(data["message"].is_string(), "pusher:error needs a message string, got {frame}");
        data
    }

    /// The next frame must be `pusher:error` with this code (`None` for `"code":null`).
    pub async fn expect_error_code(&mut self, code: Option<u16>) -> Value {
        let data = self.expect_error().await;
        let expected = code.map_or(Value::Null, |c| json!(c));
        assert_eq!(data["code"], expected, "pusher:error code: expected {expected}, got {data}");
        data
    }

    /// The next message must be a close frame with `code`.
    pub async fn expect_close(&mut self, code: u16) {
        match self.next_incoming().await {
            Incoming::Close(Some(got)) => assert_eq!(got, code, "close code"),
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    /// A refusal: a `pusher:error` frame with `code`, then close with the same code.
    pub async fn expect_refusal(&mut self, code: u16) {
        self.expect_error_code(Some(code)).await;
        self.expect_close(code).await;
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::text(text.into())).await.expect("send text frame");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    /// Sends `pusher:ping` and asserts the very next frame is its `pusher:pong`: proof that
    /// nothing else was queued for this socket before the server processed the ping.
    pub async fn ping_pong(&mut self) {
        self.send_json(json!({"event": "pusher:ping", "data": {}})).await;
        let frame = self.next_frame().await;
        assert_eq!(frame, json!({"event": "pusher:pong", "data": "{}"}), "expected only a pong, got {frame}");
    }

    /// `key:hex(hmac(secret, socket_id:channel[:channel_data]))` for this connection.
    pub fn auth_for(&self, channel: &str, channel_data: Option<&str>) -> String {
        auth_token(&self.key, &self.secret, &channel_string_to_sign(&self.socket_id, channel, channel_data))
    }

    pub async fn send_subscribe(&mut self, channel: &str, auth: Option<&str>, channel_data: Option<&str>) {
        let mut data = json!({"channel": channel});
        if let Some(auth) = auth {
            data["auth"] = json!(auth);
        }
        if let Some(channel_data) = channel_data {
            data["channel_data"] = json!(channel_data);
        }
        self.send_json(json!({"event": "pusher:subscribe", "data": data})).await;
    }

    /// Expects `subscription_succeeded` for `channel`; returns the decoded `data`.
    pub async fn expect_subscribed(&mut self, channel: &str) -> Value {
        let frame = self.expect_event("pusher_internal:subscription_succeeded").await;
        assert_eq!(frame["channel"], channel, "subscription_succeeded for the wrong channel: {frame}");
        assert!(frame["data"].is_string(), "subscription_succeeded data must be a JSON string: {frame}");
        data_of(&frame)
    }

    /// Subscribes to a public channel the way pusher-js does (`auth: ""`) and waits for success.
    pub async fn subscribe(&mut self, channel: &str) {
        self.send_subscribe(channel, Some(""), None).await;
        self.expect_subscribed(channel).await;
    }

    /// Subscribes to a private or private-encrypted channel with a valid signature.
    pub async fn subscribe_private(&mut self, channel: &str) {
        let auth = self.auth_for(channel, None);
        self.send_subscribe(channel, Some(&auth), None).await;
        self.expect_subscribed(channel).await;
    }

    /// Sends a correctly signed presence subscribe with `channel_data` verbatim.
    pub async fn send_presence_subscribe(&mut self, channel: &str, channel_data: &str) {
        let auth = self.auth_for(channel, Some(channel_data));
        self.send_subscribe(channel, Some(&auth), Some(channel_data)).await;
    }

    /// Joins a presence channel; returns the decoded `presence` roster object.
    pub async fn subscribe_presence(&mut self, channel: &str, channel_data: &str) -> Value {
        self.send_presence_subscribe(channel, channel_data).await;
        let data = self.expect_subscribed(channel).await;
        data["presence"].clone()
    }

    pub async fn unsubscribe(&mut self, channel: &str) {
        self.send_json(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}})).await;
    }

    pub async fn send_client_event(&mut self, channel: &str, event: &str, data: Value) {
        self.send_json(json!({"event": event, "channel": channel, "data": data})).await;
    }

    /// Closes the socket from the client side and waits for the server's close reply.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(FRAME_TIMEOUT, async { while let Some(Ok(_)) = self.ws.next().await {} }).await;
    }
}

/// A frame's `data`, decoded from its JSON string when it is one.
pub fn data_of(frame: &Value) -> Value {
    match &frame["data"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())),
        other => other.clone(),
    }
}

/// `^\d+\.\d+$`
pub fn is_socket_id(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs()
}

/// A signed HTTP API client for one app.
#[derive(Debug)]
pub struct Api {
    /// `http://addr[prefix]`
    pub base: String,
    pub app_id: String,
    pub key: String,
    pub secret: String,
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    /// `/apps/{app_id}{rest}`
    pub fn path(&self, rest: &str) -> String {
        format!("/apps/{}{rest}", self.app_id)
    }

    /// A signed query string as the SDKs build it, with the current time.
    pub fn signed_query(&self, method: &str, path: &str, body: &[u8], params: &[(&str, &str)]) -> String {
        herald_protocol::http::sign_request(method, path, &self.key, &self.secret, now_unix(), body, params)
    }

    /// Sends `method base+path_and_query` with `body`; returns the status and the JSON body
    /// (a JSON string holding the raw text when the body is not JSON).
    pub async fn raw(&self, method: &str, path_and_query: &str, body: impl Into<Bytes>) -> (u16, Value) {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(body.into()))
            .expect("valid request");
        let response = tokio::time::timeout(FRAME_TIMEOUT, self.http.request(request))
            .await
            .unwrap_or_else(|_| panic!("{method} {path_and_query} timed out"))
            .unwrap_or_else(|e| panic!("{method} {path_and_query} failed: {e}"));
        let status = response.status().as_u16();
        let bytes = tokio::time::timeout(FRAME_TIMEOUT, response.into_body().collect())
            .await
            .unwrap_or_else(|_| panic!("{method} {path_and_query}: body timed out"))
            .unwrap_or_else(|e| panic!("{method} {path_and_query}: body failed: {e}"))
            .to_bytes();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    /// A signed POST of `body` (sent byte-for-byte) to `/apps/{id}{rest}`.
    pub async fn post_raw(&self, rest: &str, body: &str) -> (u16, Value) {
        let path = self.path(rest);
        let query = self.signed_query("POST", &path, body.as_bytes(), &[]);
        self.raw("POST", &format!("{path}?{query}"), body.to_string()).await
    }

    pub async fn post(&self, rest: &str, body: &Value) -> (u16, Value) {
        self.post_raw(rest, &body.to_string()).await
    }

    /// A signed GET of `/apps/{id}{rest}` with extra query parameters.
    pub async fn get(&self, rest: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let path = self.path(rest);
        let query = self.signed_query("GET", &path, b"", params);
        self.raw("GET", &format!("{path}?{query}"), Bytes::new()).await
    }

    /// `POST /events` and asserts 200; returns the JSON body.
    pub async fn trigger(&self, body: Value) -> Value {
        let (status, response) = self.post("/events", &body).await;
        assert_eq!(status, 200, "trigger {body} answered {status} {response}");
        response
    }

    /// Triggers `event` on one channel with `data` and asserts success.
    pub async fn trigger_one(&self, channel: &str, event: &str, data: &str) {
        let response = self.trigger(json!({"name": event, "channels": [channel], "data": data})).await;
        assert_eq!(response, json!({}), "trigger without info answers {{}}");
    }
}

/// The frame herald delivers for an API-triggered event.
pub fn event_frame(channel: &str, event: &str, data: &str) -> Value {
    json!({"event": event, "channel": channel, "data": data})
}

/// Asserts an API error: the status, and a JSON object body with an `error` string.
pub fn assert_api_error(response: &(u16, Value), status: u16, what: &str) {
    assert_eq!(response.0, status, "{what}: expected {status}, got {} {}", response.0, response.1);
    assert!(response.1["error"].is_string(), "{what}: error body must be JSON with \"error\", got {}", response.1);
}
