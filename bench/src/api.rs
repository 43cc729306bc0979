//! The signed HTTP API client: triggers events and reads subscription counts.
//!
//! One hyper-util client holding at most one idle keep-alive connection; requests are sent one
//! after another, so a run's triggers reuse a single TCP connection. Requests are signed with
//! `herald_protocol::http::sign_request`, exactly as the Pusher server SDKs sign them
//! ([`signed_request`], which the `api` scenario also uses on its own connections).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::target::Target;

/// Pusher's limit on channels per trigger request.
pub const MAX_CHANNELS_PER_TRIGGER: usize = 100;
/// Pusher's limit on events per `batch_events` request.
pub const MAX_EVENTS_PER_BATCH: usize = 10;

#[derive(Debug)]
pub struct ApiClient {
    client: Client<HttpConnector, Full<Bytes>>,
    target: Target,
}

impl ApiClient {
    pub fn new(target: Target) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(1).build(connector);
        Self { client, target }
    }

    /// `POST /apps/{id}/events` with a prepared JSON body; any status but 200 is an error.
    pub async fn trigger(&self, body: Vec<u8>) -> anyhow::Result<()> {
        let path = format!("/apps/{}/events", self.target.app_id);
        self.send(Method::POST, &path, body, &[]).await.map(drop)
    }

    /// `POST /apps/{id}/batch_events` with a prepared JSON body; any status but 200 is an error.
    pub async fn trigger_batch(&self, body: Vec<u8>) -> anyhow::Result<()> {
        let path = format!("/apps/{}/batch_events", self.target.app_id);
        self.send(Method::POST, &path, body, &[]).await.map(drop)
    }

    /// `GET /apps/{id}/channels/{name}?info=subscription_count` → the count (0 if unoccupied).
    pub async fn subscription_count(&self, channel: &str) -> anyhow::Result<u64> {
        let path = format!("/apps/{}/channels/{channel}", self.target.app_id);
        let body = self.send(Method::GET, &path, Vec::new(), &[("info", "subscription_count")]).await?;
        let value: serde_json::Value = serde_json::from_slice(&body).context("channel info is not JSON")?;
        Ok(value.get("subscription_count").and_then(serde_json::Value::as_u64).unwrap_or(0))
    }

    async fn send(&self, method: Method, path: &str, body: Vec<u8>, params: &[(&str, &str)]) -> anyhow::Result<Bytes> {
        let mut request = signed_request(&self.target, method, path, body, params)?;
        // The pooled client wants an absolute URI; it sends the origin form on the wire.
        *request.uri_mut() = format!("http://{}{}", self.target.http.addr, request.uri()).parse()?;
        let response = self.client.request(request).await.context("HTTP request")?;
        let status = response.status();
        let bytes = response.into_body().collect().await.context("HTTP response body")?.to_bytes();
        if status != StatusCode::OK {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes)
    }
}

/// A request to `path` (below the deployment prefix) signed as the Pusher SDKs sign it, with
/// an origin-form URI (`/prefix/path?query`) and the `Host` header of the target.
pub fn signed_request(
    target: &Target,
    method: Method,
    path: &str,
    body: Vec<u8>,
    params: &[(&str, &str)],
) -> anyhow::Result<Request<Full<Bytes>>> {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let query = herald_protocol::http::sign_request(
        method.as_str(),
        path,
        &target.key,
        &target.secret,
        timestamp,
        &body,
        params,
    );
    Ok(Request::builder()
        .method(method)
        .uri(format!("{}{path}?{query}", target.http.prefix))
        .header(HOST, &target.http.authority)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?)
}
