//! An event-stream client for `GET /app/{key}/events` over a real HTTP client (hyper's): it
//! opens the stream, then reads it block by block, each read bounded by [`READ_TIMEOUT`].

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long any single expected message or response may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What one block of the stream was.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A message: its `data` lines joined (the Pusher frame), with any other field lines.
    Message { data: Value, other_fields: Vec<String> },
    /// Comment lines (`: keep-alive`).
    Comment(String),
    /// A `retry:` hint.
    Retry(u64),
}

/// An open event stream.
#[derive(Debug)]
pub struct EventStream {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    body: Incoming,
    buffer: String,
}

/// A refused stream: the status, the JSON body, the headers.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub body: Value,
    pub headers: hyper::HeaderMap,
}

/// `GET url` with `headers`; the response, whatever its status.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> hyper::Response<Incoming> {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut request = hyper::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::new()).expect("valid request");
    tokio::time::timeout(READ_TIMEOUT, client.request(request))
        .await
        .unwrap_or_else(|_| panic!("GET {url} timed out"))
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"))
}

/// Opens a stream that must be accepted (200, `text/event-stream`).
pub async fn open(url: &str, headers: &[(&str, &str)]) -> EventStream {
    let response = get(url, headers).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    if status != 200 {
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        panic!("GET {url}: expected a stream, got {status} {}", String::from_utf8_lossy(&body));
    }
    assert_eq!(headers["content-type"], "text/event-stream", "GET {url}");
    EventStream { status, headers, body: response.into_body(), buffer: String::new() }
}

/// Opens a stream that must be refused; returns the refusal, its body parsed as JSON.
pub async fn refused(url: &str, headers: &[(&str, &str)]) -> Refusal {
    let response = get(url, headers).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert_ne!(status, 200, "GET {url} was accepted, expected a refusal");
    let bytes = tokio::time::timeout(READ_TIMEOUT, response.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("GET {url}: refusal body timed out"))
        .expect("refusal body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("GET {url}: refusal body is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    Refusal { status, body, headers }
}

impl EventStream {
    /// The next block (up to a blank line); panics after [`READ_TIMEOUT`] or at the end.
    pub async fn next_block(&mut self) -> Block {
        match self.next_block_or_end().await {
            Some(block) => block,
            None => panic!("the stream ended; unread: {:?}", self.buffer),
        }
    }

    /// The next block, or `None` once the stream ended cleanly.
    pub async fn next_block_or_end(&mut self) -> Option<Block> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                return Some(parse_block(block.trim_end_matches('\n')));
            }
            let frame = tokio::time::timeout(READ_TIMEOUT, self.body.frame()).await.unwrap_or_else(|_| {
                panic!("nothing from the stream within {READ_TIMEOUT:?}; unread: {:?}", self.buffer)
            });
            match frame {
                None => return None,
                Some(Err(e)) => panic!("the stream failed: {e}"),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.push_str(std::str::from_utf8(&data).expect("the stream is UTF-8"));
                    }
                }
            }
        }
    }

    /// The next message's frame, skipping comments and `retry:`; it must have only `data:`.
    pub async fn next_frame(&mut self) -> Value {
        loop {
            if let Block::Message { data, other_fields } = self.next_block().await {
                assert!(other_fields.is_empty(), "a message with fields besides data: {other_fields:?} {data}");
                return data;
            }
        }
    }

    /// The next frame, which must be the event `name`.
    pub async fn expect_event(&mut self, name: &str) -> Value {
        let frame = self.next_frame().await;
        assert_eq!(frame["event"], name, "expected event {name}, got {frame}");
        frame
    }

    /// Reads `connection_established`; returns its socket id.
    pub async fn expect_established(&mut self) -> String {
        let frame = self.expect_event("pusher:connection_established").await;
        let data: Value = serde_json::from_str(frame["data"].as_str().expect("data is a JSON string")).expect("JSON");
        data["socket_id"].as_str().expect("socket_id").to_string()
    }

    /// Expects `subscription_succeeded` for `channel`.
    pub async fn expect_subscribed(&mut self, channel: &str) -> Value {
        let frame = self.expect_event("pusher_internal:subscription_succeeded").await;
        assert_eq!(frame["channel"], channel, "{frame}");
        frame
    }

    /// Expects the stream to end (the server closed it) within [`READ_TIMEOUT`], skipping
    /// whatever comes before; returns the frames seen.
    pub async fn until_end(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        // Bounded: every read has a deadline, and at most this many blocks are read.
        for _ in 0..10_000 {
            match self.next_block_or_end().await {
                None => return frames,
                Some(Block::Message { data, .. }) => frames.push(data),
                Some(_) => {}
            }
        }
        panic!("the stream did not end: {frames:?}");
    }
}

fn parse_block(block: &str) -> Block {
    let (mut data, mut other_fields, mut comments) = (Vec::new(), Vec::new(), Vec::new());
    for line in block.split('\n') {
        if let Some(comment) = line.strip_prefix(':') {
            comments.push(comment.trim().to_string());
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        } else if let Some(value) = line.strip_prefix("retry:") {
            return Block::Retry(value.trim().parse().unwrap_or_else(|_| panic!("bad retry line {line:?}")));
        } else {
            other_fields.push(line.to_string());
        }
    }
    if data.is_empty() {
        assert!(other_fields.is_empty(), "a block with fields but no data: {block:?}");
        return Block::Comment(comments.join("\n"));
    }
    let json = data.join("\n");
    let data = serde_json::from_str(&json).unwrap_or_else(|e| panic!("data is not JSON ({e}): {json}"));
    Block::Message { data, other_fields }
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after `timeout`.
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
