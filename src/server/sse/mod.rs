//! Server-Sent Events: `GET /app/{key}/events?channels=a,b`, a listen-only transport for
//! dashboards, curl and clients without WebSockets (docs/sse.md).
//!
//! A stream is served by the same [`Session`] and [`Outbox`] as a WebSocket, so fan-out,
//! limits, counts, metrics and webhooks are the same: the session subscribes, the outbox
//! collects the frames, and the stream task (`stream.rs`) writes each frame's JSON as one SSE
//! message. This module owns the admission — app, origin, rate, request, socket id,
//! signatures, quota, each refusal a 4xx JSON answer before anything streams — the response
//! headers and CORS. It never touches the Pusher state machine (the session's) or the
//! channel registry.

mod error;
mod request;
mod resume;
mod stream;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::{ChannelKind, ChannelName, ServerMessage, SocketId};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use self::error::SseError;
use self::request::StreamRequest;
use self::stream::{ClaimedSocketId, EventStream, Held};
use super::ws::session::{Session, SessionLimits};
use super::{full, Body, Shared};
use crate::apps::App;
use crate::frame::Frame;
use crate::metrics::Rejection;
use crate::outbox::Outbox;

/// Chunks waiting between the stream task and hyper (each up to 64 messages): one, so what a
/// slow client has not taken is in the outbox, where its byte cap applies.
const CHUNKS_IN_FLIGHT: usize = 1;

/// Serves `/app/{key}/events`: a stream, or a JSON refusal. `abort` drops the connection.
pub async fn handle(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
    key: &str,
    peer: SocketAddr,
    tracker: &TaskTracker,
    abort: &CancellationToken,
) -> Response<Body> {
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    // A page on another origin may read the stream (or the refusal) when the app allows it.
    let cors = origin.filter(|o| shared.apps.by_key(key).is_some_and(|app| app.allows_origin(Some(o))));
    let cors = cors.and_then(|o| HeaderValue::from_str(o).ok());
    let mut response = match open(shared, &request, key, peer, tracker, abort).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, "event stream refused");
            error.into_response()
        }
    };
    if let Some(origin) = cors {
        response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        response.headers_mut().insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

async fn open(
    shared: &Arc<Shared>,
    request: &Request<Incoming>,
    key: &str,
    peer: SocketAddr,
    tracker: &TaskTracker,
    abort: &CancellationToken,
) -> Result<Response<Body>, SseError> {
    let app = admit(shared, request, key)?;
    if request.method() == Method::OPTIONS {
        return Ok(preflight());
    }
    if super::over_attempt_rate(shared, request, peer, key) {
        return Err(SseError::ConnectionRate);
    }
    let last_event_id = request.headers().get("last-event-id").and_then(|v| v.to_str().ok());
    let query = request.uri().query().unwrap_or("");
    let wanted = request::parse(query, last_event_id, app.config.max_subscriptions_per_connection)?;
    let (socket_id, claimed) = take_socket_id(shared, &wanted)?;
    let outbox = Arc::new(Outbox::new(shared.config.max_outbox_bytes));
    let limits = SessionLimits {
        max_channel_name_length: shared.config.max_channel_name_length,
        max_event_name_length: shared.config.max_event_name_length,
    };
    let session = Session::new(app.clone(), limits, socket_id, outbox.clone());
    check(&session, &wanted)?;
    let Some(slot) = Box::pin(app.try_connect()).await else {
        app.metrics.reject(Rejection::ConnectionQuota);
        return Err(SseError::OverQuota);
    };
    app.metrics.new_connections.inc();
    app.debug.emit(|| serde_json::json!({"type": "connected", "socket_id": socket_id.to_string()}));
    let established = ServerMessage::ConnectionEstablished {
        socket_id,
        activity_timeout_seconds: app.config.activity_timeout_seconds,
    };
    let _ = outbox.push(Frame::message(&established));
    let (chunks, body) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let _ = chunks.try_send(wire::preamble());
    let stream = EventStream {
        session,
        outbox,
        chunks,
        keep_alive: Duration::from_secs(app.config.activity_timeout_seconds.max(1)),
        drain_window: Duration::from_secs(shared.config.drain_window_seconds),
        shutdown: shared.shutdown.clone(),
        abort: abort.clone(),
        held: Held { slot, claimed },
    };
    let span = tracing::info_span!("event_stream", %socket_id, app = %app.config.id);
    tracker.spawn(stream::run(stream, wanted.channels, wanted.last_event_id).instrument(span));
    Ok(streaming(body))
}

/// The checks that need no request parsing: method, app, drain, origin.
fn admit(shared: &Shared, request: &Request<Incoming>, key: &str) -> Result<Arc<App>, SseError> {
    if !matches!(*request.method(), Method::GET | Method::OPTIONS) {
        return Err(SseError::MethodNotAllowed(request.method().to_string()));
    }
    let app = shared.apps.by_key(key).ok_or_else(|| SseError::AppNotFound(key.chars().take(64).collect()))?;
    if !app.config.enabled {
        return Err(SseError::AppDisabled);
    }
    if shared.shutdown.is_cancelled() {
        return Err(SseError::ShuttingDown);
    }
    let origin = request.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !app.allows_origin(origin) {
        return Err(SseError::OriginNotAllowed(origin.unwrap_or("(none)").chars().take(256).collect()));
    }
    Ok(app.clone())
}

/// The client's socket id, reserved on this node, or a fresh one when it chose none.
fn take_socket_id(
    shared: &Arc<Shared>,
    wanted: &StreamRequest,
) -> Result<(SocketId, Option<ClaimedSocketId>), SseError> {
    let Some(id) = wanted.socket_id else {
        return Ok((shared.socket_ids.next(), None));
    };
    shared.socket_ids.claim(id)?;
    Ok((id, Some(ClaimedSocketId { shared: shared.clone(), id })))
}

/// Every requested subscription, checked by the session exactly as it will subscribe.
fn check(session: &Session, wanted: &StreamRequest) -> Result<(), SseError> {
    let mut authorized = false;
    for c in &wanted.channels {
        let kind = ChannelName::parse(&c.name, usize::MAX).map(|n| n.kind()).ok();
        match kind {
            Some(ChannelKind::ServerToUser) => return Err(SseError::SignInRequired(c.name.clone())),
            Some(kind) if kind.needs_auth() => {
                if wanted.socket_id.is_none() {
                    return Err(SseError::SocketIdRequired(c.name.clone()));
                }
                if c.auth.is_none() {
                    return Err(SseError::AuthRequired(c.name.clone()));
                }
                if kind == ChannelKind::Presence && c.channel_data.is_none() {
                    return Err(SseError::ChannelDataRequired(c.name.clone()));
                }
                authorized = true;
            }
            _ => {}
        }
        session
            .check_subscription(&c.name, c.auth.as_deref(), c.channel_data.as_deref())
            .map_err(|error| SseError::Subscription { channel: c.name.clone(), error })?;
    }
    // "Authorized connections": a stream cannot sign in later, so it must subscribe privately now.
    if session.app().config.authorized_connections_timeout_seconds.is_some() && !authorized {
        return Err(SseError::AuthorizedConnectionRequired);
    }
    Ok(())
}

/// The 200 response whose body is whatever the stream task sends.
fn streaming(mut chunks: mpsc::Receiver<Bytes>) -> Response<Body> {
    let body = futures_util::stream::poll_fn(move |cx| {
        chunks.poll_recv(cx).map(|chunk| chunk.map(|b| Ok::<_, std::convert::Infallible>(BodyFrame::data(b))))
    });
    let mut response = Response::new(StreamBody::new(body).boxed());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // One stream per connection: when it ends, so does the connection (and a client that
    // reconnects opens a new one).
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    // nginx buffers proxied responses unless told not to.
    headers.insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    response
}

/// The answer to a CORS preflight (browsers do not send one for `EventSource`, but a
/// `fetch` with `Last-Event-ID` does).
fn preflight() -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Last-Event-ID, Cache-Control"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}
