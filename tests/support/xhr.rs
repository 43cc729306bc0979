//! A raw client of pusher-js's HTTP transports over a real HTTP client (hyper): opens
//! streaming responses and polls on `/pusher/app/{key}/{server}/{session}/…`, POSTs to
//! `xhr_send`, and parses the lines (`o`, `h`, `a[...]`, `c[code,"reason"]`).
//!
//! Every wait has a deadline ([`FRAME_TIMEOUT`]) and panics saying what it waited for.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long any expected line, response or close may take.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// The query pusher-js puts on a receiving request.
pub const QUERY: &str = "protocol=7&client=js&version=8.6.0";

/// One line of a receiving response.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Open,
    Heartbeat,
    /// The decoded Pusher messages of an `a[...]` line.
    Messages(Vec<Value>),
    Close(u16, String),
}

/// Parses one line (without its `\n`).
pub fn parse_line(line: &str) -> Line {
    let (kind, rest) = line.split_at(1.min(line.len()));
    match kind {
        "o" => Line::Open,
        "h" => Line::Heartbeat,
        "a" => {
            let texts: Vec<String> = serde_json::from_str(rest).unwrap_or_else(|e| panic!("bad a-line {line}: {e}"));
            Line::Messages(texts.iter().map(|t| serde_json::from_str(t).expect("each message is JSON")).collect())
        }
        "c" => {
            let (code, reason): (u16, String) =
                serde_json::from_str(rest).unwrap_or_else(|e| panic!("bad c-line {line}: {e}"));
            Line::Close(code, reason)
        }
        _ => panic!("unknown line {line:?}"),
    }
}

/// One HTTP session's client side.
#[derive(Debug, Clone)]
pub struct XhrClient {
    http: Client<HttpConnector, Full<Bytes>>,
    /// `http://addr/pusher/app/{key}/{server}/{session}`
    pub base: String,
}

impl XhrClient {
    /// A client of the session `server/session` of app `key` on `addr`.
    pub fn new(addr: SocketAddr, key: &str, session: &str) -> Self {
        let http = Client::builder(TokioExecutor::new()).build_http();
        Self { http, base: format!("http://{addr}/pusher/app/{key}/{session}") }
    }

    /// Sends `method` to `{base}/{kind}[?query]` with `headers` and `body`; returns the response.
    pub async fn request(
        &self,
        method: &str,
        kind: &str,
        query: Option<&str>,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> hyper::Response<Incoming> {
        let uri = match query {
            Some(q) => format!("{}/{kind}?{q}", self.base),
            None => format!("{}/{kind}", self.base),
        };
        let mut builder = hyper::Request::builder().method(method).uri(&uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.into())).expect("valid request");
        tokio::time::timeout(FRAME_TIMEOUT, self.http.request(request))
            .await
            .unwrap_or_else(|_| panic!("{method} {uri}: no response headers in time"))
            .unwrap_or_else(|e| panic!("{method} {uri} failed: {e}"))
    }

    /// Opens the streaming response (`xhr_streaming`), which must be 200.
    pub async fn stream(&self) -> LineStream {
        let response = self.request("POST", "xhr_streaming", Some(QUERY), &[], Bytes::new()).await;
        assert_eq!(response.status(), 200, "xhr_streaming status");
        LineStream::new(response.into_body())
    }

    /// One poll (`xhr`): the status and every line of the (ended) response.
    pub async fn poll(&self) -> (u16, Vec<Line>) {
        let response = self.request("POST", "xhr", Some(QUERY), &[], Bytes::new()).await;
        let status = response.status().as_u16();
        let body = tokio::time::timeout(FRAME_TIMEOUT, response.into_body().collect())
            .await
            .expect("the poll ends in time")
            .expect("the poll's body")
            .to_bytes();
        let text = String::from_utf8(body.to_vec()).expect("UTF-8 body");
        let lines = match status {
            200 => text.split_terminator('\n').map(parse_line).collect(),
            _ => Vec::new(),
        };
        (status, lines)
    }

    /// POSTs `messages` (each encoded to its JSON text) to `xhr_send`; returns the status.
    pub async fn send(&self, messages: &[Value]) -> u16 {
        let texts: Vec<String> = messages.iter().map(Value::to_string).collect();
        self.send_raw(serde_json::to_string(&texts).expect("strings encode")).await
    }

    /// POSTs `body` verbatim to `xhr_send`; returns the status.
    pub async fn send_raw(&self, body: impl Into<Bytes>) -> u16 {
        let response = self.request("POST", "xhr_send", None, &[("content-type", "application/json")], body).await;
        let status = response.status().as_u16();
        let _ = tokio::time::timeout(FRAME_TIMEOUT, response.into_body().collect()).await;
        status
    }
}

/// A streaming response read line by line.
#[derive(Debug)]
pub struct LineStream {
    body: Incoming,
    buffer: String,
    lines: VecDeque<Line>,
    messages: VecDeque<Value>,
    /// Bytes of complete lines read so far.
    pub read: usize,
}

impl LineStream {
    pub fn new(body: Incoming) -> Self {
        Self { body, buffer: String::new(), lines: VecDeque::new(), messages: VecDeque::new(), read: 0 }
    }

    /// The next line; `None` when the response ended.
    pub async fn next_line(&mut self) -> Option<Line> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Some(line);
            }
            let frame = tokio::time::timeout(FRAME_TIMEOUT, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no line from the streaming response within {FRAME_TIMEOUT:?}"));
            let frame = frame?;
            let Ok(data) = frame.expect("streaming body").into_data() else { continue };
            self.buffer.push_str(std::str::from_utf8(&data).expect("UTF-8 chunk"));
            while let Some(end) = self.buffer.find('\n') {
                let line: String = self.buffer.drain(..=end).collect();
                self.read += line.len();
                self.lines.push_back(parse_line(&line[..end]));
            }
        }
    }

    /// The next Pusher message, skipping heartbeats; panics on a close or the end.
    pub async fn next_message(&mut self) -> Value {
        loop {
            if let Some(message) = self.messages.pop_front() {
                return message;
            }
            match self.next_line().await {
                Some(Line::Messages(messages)) => self.messages.extend(messages),
                Some(Line::Heartbeat) => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The next message, which must be the event `name`.
    pub async fn expect_event(&mut self, name: &str) -> Value {
        let message = self.next_message().await;
        assert_eq!(message["event"], name, "expected {name}, got {message}");
        message
    }

    /// The next line that is not a heartbeat or a message, which must be a close.
    pub async fn expect_close(&mut self) -> (u16, String) {
        assert!(self.messages.is_empty(), "messages left before the close: {:?}", self.messages);
        loop {
            match self.next_line().await {
                Some(Line::Close(code, reason)) => return (code, reason),
                Some(Line::Heartbeat) => {}
                other => panic!("expected a close, got {other:?}"),
            }
        }
    }
}
