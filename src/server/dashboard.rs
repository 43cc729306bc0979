//! `/dashboard`: the live debug page, like Pusher's debug console. Behind an admin token
//! (`?token=` or `Authorization: Bearer`), compared in constant time; 404 while disabled.
//!
//! `GET /dashboard` is the page; `GET /dashboard/api/apps` the apps with their connections
//! and occupied channels; `GET /dashboard/api/stream?app=ID` the app's debug feed as
//! Server-Sent Events (a keep-alive comment every 15 s; ends when the server drains).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::http::{parse_query, query_get};
use herald_protocol::signature;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use tokio::sync::broadcast::error::RecvError;

use super::{full, http, Body, Shared};

const PAGE: &str = include_str!("dashboard.html");
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Serves `/dashboard` and everything under it.
pub async fn handle(shared: &Shared, request: Request<Incoming>, path: &str) -> Response<Body> {
    if !shared.dashboard.enabled {
        return http::not_found();
    }
    let query = parse_query(request.uri().query().unwrap_or(""));
    let bearer = request.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let offered = query_get(&query, "token").or_else(|| bearer.and_then(|b| b.strip_prefix("Bearer ")));
    if !authorized(shared.dashboard.admin_token.as_deref(), offered) {
        return http::json(StatusCode::UNAUTHORIZED, r#"{"error":"Dashboard: missing or wrong admin token"}"#.into());
    }
    match path {
        "/dashboard" | "/dashboard/" => page(),
        "/dashboard/api/apps" => apps(shared),
        "/dashboard/api/stream" => match query_get(&query, "app").and_then(|id| shared.apps.by_id(id)) {
            Some(app) => stream(shared, app.debug.watch()),
            None => http::json(StatusCode::NOT_FOUND, r#"{"error":"Dashboard: unknown app"}"#.into()),
        },
        _ => http::not_found(),
    }
}

/// Constant time: compares HMACs keyed by each token rather than the tokens themselves.
fn authorized(expected: Option<&str>, offered: Option<&str>) -> bool {
    let (Some(expected), Some(offered)) = (expected, offered) else { return false };
    const PROBE: &[u8] = b"herald dashboard token";
    signature::verify(offered, PROBE, &signature::sign(expected, PROBE))
}

fn page() -> Response<Body> {
    let mut response = Response::new(full(PAGE));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

fn apps(shared: &Shared) -> Response<Body> {
    let apps: Vec<serde_json::Value> = shared
        .apps
        .iter()
        .map(|app| {
            let channels: Vec<serde_json::Value> = app
                .channels
                .list("")
                .into_iter()
                .map(|c| {
                    serde_json::json!({"name": c.name.as_str(), "subscription_count": c.subscription_count,
                        "user_count": c.user_count})
                })
                .collect();
            serde_json::json!({"id": app.config.id, "connections": app.connection_count(), "channels": channels})
        })
        .collect();
    http::json(StatusCode::OK, serde_json::json!({ "apps": apps }).to_string())
}

fn stream(shared: &Shared, feed: tokio::sync::broadcast::Receiver<std::sync::Arc<str>>) -> Response<Body> {
    let shutdown = shared.shutdown.clone();
    let events = futures_util::stream::unfold((feed, shutdown), |(mut feed, shutdown)| async move {
        let chunk = tokio::select! {
            line = feed.recv() => match line {
                Ok(line) => format!("data: {line}\n\n"),
                Err(RecvError::Lagged(skipped)) => format!("data: {{\"type\":\"lagged\",\"skipped\":{skipped}}}\n\n"),
                Err(RecvError::Closed) => return None,
            },
            () = tokio::time::sleep(KEEP_ALIVE) => ": keep-alive\n\n".to_string(),
            () = shutdown.cancelled() => return None,
        };
        Some((Ok::<_, Infallible>(BodyFrame::data(Bytes::from(chunk))), (feed, shutdown)))
    });
    let mut response = Response::new(StreamBody::new(events).boxed());
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
