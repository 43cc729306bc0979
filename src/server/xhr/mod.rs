//! pusher-js's HTTP fallback transports, `xhr_streaming` and `xhr_polling` (its web build
//! falls back to them where WebSockets are blocked):
//! `POST {path_prefix}/pusher/app/{key}/{server}/{session}/{xhr_streaming|xhr|xhr_send}`.
//!
//! An HTTP session is a Pusher connection like a WebSocket: the same admission (`ws::admit`:
//! app, enabled, protocol version, origin; then the app's connection quota), the same
//! [`Session`] and [`Outbox`], counted in the same connection metrics. Only the transport loop
//! differs ([`transport`]): the outbox is drained into streaming or polling responses, and
//! POSTed messages are fed to `Session::handle_text`.
//!
//! This module owns the request handling and the session table; the framing is in
//! [`framing`], the URLs in [`path`], cross-origin access in [`cors`].
//!
//! [`Session`]: crate::server::ws::session::Session
//! [`Outbox`]: crate::outbox::Outbox

mod cors;
mod framing;
mod path;
mod receiver;
mod sessions;
mod transport;

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::{ErrorCode, ServerMessage};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame as BodyFrame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, ORIGIN};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub use path::ROOT;
pub use sessions::Sessions;

use self::cors::Cors;
use self::path::{Kind, SessionPath};
use self::receiver::{Delivery, Receiver};
use self::sessions::{Handle, Refused};
use self::transport::{Command, Timing, Transport};
use super::ws::session::{Session, SessionLimits};
use super::ws::{admit, Handshake};
use super::{full, http, Body, Shared};
use crate::apps::{App, ConnectionSlot};
use crate::frame::Frame;
use crate::metrics::Rejection;
use crate::outbox::Outbox;

/// Lines that may wait in a response's channel while the client reads (each up to 64 messages).
const CHUNKS_IN_FLIGHT: usize = 2;
/// Requests that may wait for a session's task before the next one waits for room.
const COMMANDS_IN_FLIGHT: usize = 16;
/// What every receiving response declares: lines of JavaScript-ish text, never cached.
const CONTENT_TYPE_LINES: &str = "application/javascript; charset=UTF-8";

/// Serves one request under [`ROOT`]; `rest` is what follows it.
pub async fn handle(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
    rest: &str,
    client_ip: IpAddr,
    tracker: &TaskTracker,
) -> Response<Body> {
    let Some(target) = SessionPath::parse(rest) else { return http::not_found() };
    let cors = Cors::for_request(shared.apps.by_key(&target.app_key).map(|a| &**a), request.headers());
    let mut response = match (request.method(), target.kind) {
        (&Method::OPTIONS, _) => cors::preflight(request.headers()),
        (&Method::POST, Kind::Send) => send(shared, request, &target).await,
        (&Method::POST, Kind::Streaming) => {
            receive(shared, request, &target, Delivery::Streaming, client_ip, tracker).await
        }
        (&Method::POST, Kind::Polling) => {
            receive(shared, request, &target, Delivery::Polling, client_ip, tracker).await
        }
        (method, _) => http::ApiError::MethodNotAllowed(method.to_string()).into_response(),
    };
    cors.apply(&mut response);
    response
}

/// Why a new session is not opened; each maps to one response.
#[derive(Debug)]
enum OpenRefused {
    /// A Pusher refusal, answered as a WebSocket gets it: open, `pusher:error`, close.
    Pusher(ErrorCode),
    /// Too many connection attempts from this address: 429, as a WebSocket upgrade gets.
    TooManyAttempts,
}

impl OpenRefused {
    fn into_response(self) -> Response<Body> {
        match self {
            Self::Pusher(code) => {
                tracing::debug!(code = code.code(), "http session refused");
                let message = code.default_message();
                let error = ServerMessage::Error { code: Some(code.code()), message }.to_json();
                let body = [framing::OPEN, framing::messages([error.as_str()]).as_bytes()].concat();
                let body = [body, framing::close(code.code(), message).into_bytes()].concat();
                lines_response(full(body))
            }
            Self::TooManyAttempts => {
                http::ApiError::TooManyRequests("Too many connection attempts from this address".into()).into_response()
            }
        }
    }
}

/// `xhr_streaming` / `xhr`: attaches a response to the session, opening the session first if
/// this is its first request.
async fn receive(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
    target: &SessionPath,
    delivery: Delivery,
    client_ip: IpAddr,
    tracker: &TaskTracker,
) -> Response<Body> {
    let handle = match shared.xhr.get(&target.id) {
        Some(handle) => handle,
        None => match open(shared, &request, target, client_ip, tracker).await {
            Ok(handle) => handle,
            Err(refused) => return refused.into_response(),
        },
    };
    let (chunks, body) = mpsc::channel(CHUNKS_IN_FLIGHT);
    match handle.attach(Receiver::new(chunks, delivery)).await {
        Ok(()) => lines_response(stream_body(body)),
        Err(_) => session_gone(shared, target, &handle),
    }
}

/// Admits a new session at `target` and starts its task.
async fn open(
    shared: &Arc<Shared>,
    request: &Request<Incoming>,
    target: &SessionPath,
    client_ip: IpAddr,
    tracker: &TaskTracker,
) -> Result<Handle, OpenRefused> {
    if let Some(limiter) = &shared.connection_attempts {
        if limiter.check_key(&client_ip).is_err() {
            if let Some(app) = shared.apps.by_key(&target.app_key) {
                app.metrics.reject(Rejection::ConnectionRate);
            }
            return Err(OpenRefused::TooManyAttempts);
        }
    }
    let handshake = Handshake {
        app_key: target.app_key.clone(),
        query: request.uri().query().map(str::to_string),
        origin: request.headers().get(ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string),
    };
    let app = admit(shared, &handshake).map_err(OpenRefused::Pusher)?;
    let Some(slot) = app.try_connect().await else {
        app.metrics.reject(Rejection::ConnectionQuota);
        return Err(OpenRefused::Pusher(ErrorCode::OverConnectionQuota));
    };
    let (commands, inbox) = mpsc::channel(COMMANDS_IN_FLIGHT);
    let handle = match shared.xhr.insert(&target.id, commands) {
        Ok(handle) => handle,
        Err(Refused::Taken(existing)) => return Ok(existing),
        Err(Refused::Full) => return Err(OpenRefused::Pusher(ErrorCode::OverCapacity)),
    };
    start(shared, app, slot, inbox, (target.id.clone(), handle.id()), tracker);
    Ok(handle)
}

/// Starts the task of a session just admitted, with `connection_established` queued.
fn start(
    shared: &Arc<Shared>,
    app: Arc<App>,
    slot: ConnectionSlot,
    inbox: mpsc::Receiver<Command>,
    (path, id): (String, u64),
    tracker: &TaskTracker,
) {
    app.metrics.new_connections.inc();
    let socket_id = shared.socket_ids.next();
    let outbox = Arc::new(Outbox::new(shared.config.max_outbox_bytes));
    let established = ServerMessage::ConnectionEstablished {
        socket_id,
        activity_timeout_seconds: app.config.activity_timeout_seconds,
    };
    let _ = outbox.push(Frame::message(&established));
    let limits = SessionLimits {
        max_channel_name_length: shared.config.max_channel_name_length,
        max_event_name_length: shared.config.max_event_name_length,
    };
    let activity_timeout = Duration::from_secs(app.config.activity_timeout_seconds);
    let timing = Timing {
        activity_timeout,
        detached_limit: Duration::from_secs(shared.config.http_session_detached_seconds).min(activity_timeout),
        pong_timeout: Duration::from_secs(shared.config.pong_timeout_seconds),
        authorize_within: app.config.authorized_connections_timeout_seconds.map(Duration::from_secs),
        drain_window: Duration::from_secs(shared.config.drain_window_seconds),
    };
    let session = Session::new(app.clone(), limits, socket_id, outbox.clone());
    let transport = Transport::new(session, outbox, timing, shared.config.max_message_bytes, slot);
    let span = tracing::info_span!("http_session", %socket_id, app = %app.config.id);
    let shared = shared.clone();
    tracing::debug!(%socket_id, "http session opened");
    app.debug.emit(|| serde_json::json!({"type": "connected", "socket_id": socket_id.to_string()}));
    tracker.spawn(
        async move {
            transport.serve(inbox, shared.shutdown.clone(), &shared.xhr, (&path, id)).await;
            app.debug.emit(|| serde_json::json!({"type": "disconnected", "socket_id": socket_id.to_string()}));
        }
        .instrument(span),
    );
}

/// `xhr_send`: hands the POSTed messages to the session; 204 once it has handled them.
async fn send(shared: &Arc<Shared>, request: Request<Incoming>, target: &SessionPath) -> Response<Body> {
    let Some(handle) = shared.xhr.get(&target.id) else { return session_not_found() };
    let limit = send_body_limit(shared);
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            let message = format!("Request body is larger than {limit} bytes");
            return http::ApiError::PayloadTooLarge(message).into_response();
        }
    };
    let messages = match framing::parse_send(&body) {
        Ok(messages) => messages,
        Err(error) => return http::bad_request(&error.to_string()),
    };
    match handle.send(messages).await {
        Ok(()) => {
            let mut response = Response::new(full(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(_) => session_gone(shared, target, &handle),
    }
}

/// The largest `xhr_send` body: one message of the largest size, escaped into a JSON string in
/// the worst case (every byte `\u00XX`). pusher-js sends one message per request.
fn send_body_limit(shared: &Shared) -> usize {
    let one_message = shared.config.max_message_bytes.saturating_mul(6).saturating_add(16);
    one_message.min(shared.config.max_request_body_bytes)
}

/// The session's task ended between the lookup and the request: forget it, answer 404.
fn session_gone(shared: &Shared, target: &SessionPath, handle: &Handle) -> Response<Body> {
    shared.xhr.remove(&target.id, handle.id());
    session_not_found()
}

fn session_not_found() -> Response<Body> {
    http::ApiError::NotFound("No such session".into()).into_response()
}

/// A 200 response carrying transport lines.
fn lines_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_LINES));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, no-transform, must-revalidate, max-age=0"),
    );
    // Proxies that buffer responses (nginx) would hold a stream back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A body made of the lines the session's task sends; it ends when the task lets go.
fn stream_body(chunks: mpsc::Receiver<Bytes>) -> Body {
    let lines = futures_util::stream::unfold(chunks, |mut chunks| async move {
        let line = chunks.recv().await?;
        Some((Ok::<_, Infallible>(BodyFrame::data(line)), chunks))
    });
    StreamBody::new(lines).boxed()
}
