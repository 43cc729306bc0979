//! WebSocket connections: the upgrade on `/app/{key}`, the admission checks of PROTOCOL.md
//! §1.2 (app, protocol version, origin, quota), then the socket's own task.

mod connection;
mod gate;
pub mod session;
mod write;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fastwebsockets::upgrade::UpgradeFut;
use herald_protocol::http::{parse_query, query_get};
use herald_protocol::{ErrorCode, ServerMessage};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::Instrument;

use self::connection::Keepalive;
use self::session::{Session, SessionLimits};
use super::Shared;
use crate::apps::App;
use crate::frame::Frame;
use crate::metrics::Rejection;
use crate::outbox::Outbox;

/// What the upgrade request said, kept for the admission checks.
#[derive(Debug)]
pub struct Handshake {
    pub app_key: String,
    pub query: Option<String>,
    pub origin: Option<String>,
}

/// Why a connection is refused right after the upgrade (or a new HTTP session at its first
/// request: the checks are shared).
pub(super) fn admit(shared: &Shared, handshake: &Handshake) -> Result<Arc<App>, ErrorCode> {
    if shared.shutdown.is_cancelled() {
        return Err(ErrorCode::ReconnectImmediately);
    }
    let app = shared.apps.by_key(&handshake.app_key).ok_or(ErrorCode::AppNotFound)?;
    if !app.config.enabled {
        return Err(ErrorCode::AppDisabled);
    }
    let query = parse_query(handshake.query.as_deref().unwrap_or(""));
    match query_get(&query, "protocol") {
        None if shared.config.strict_protocol_version => return Err(ErrorCode::NoProtocolVersion),
        None => {}
        Some(v) => match v.parse::<u32>() {
            Ok(n) if n >= 4 => {}
            Ok(_) => return Err(ErrorCode::UnsupportedProtocolVersion),
            Err(_) if shared.config.strict_protocol_version => return Err(ErrorCode::InvalidVersionFormat),
            Err(_) => return Err(ErrorCode::UnsupportedProtocolVersion),
        },
    }
    if !app.allows_origin(handshake.origin.as_deref()) {
        return Err(ErrorCode::Unauthorized);
    }
    Ok(app.clone())
}

/// Completes the upgrade and serves the socket until it closes.
pub async fn serve(shared: Arc<Shared>, upgrade: UpgradeFut, handshake: Handshake) {
    let ws = match upgrade.await {
        Ok(ws) => ws,
        Err(error) => return tracing::debug!(%error, "websocket upgrade failed"),
    };
    let upgraded: Upgraded = ws.into_inner().into_inner();
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_split();
            // `read_buf` may be a view into hyper's whole read buffer; copying the (usually
            // empty) leftover lets that buffer go instead of living as long as the socket.
            let leftover = Bytes::copy_from_slice(&parts.read_buf);
            drop(parts.read_buf);
            let read = std::io::Cursor::new(leftover).chain(read);
            accept(shared, read, write, handshake).await
        }
        Err(upgraded) => {
            // TLS (or another transport): boxed, so its setup does not widen the plain
            // socket's task (futures of both arms are laid out side by side).
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            Box::pin(accept(shared, read, write, handshake)).await
        }
    }
}

async fn accept<R, W>(shared: Arc<Shared>, read: R, mut write: W, handshake: Handshake)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let admitted = match admit(&shared, &handshake) {
        Ok(app) => Box::pin(app.try_connect()).await.map(|slot| (app, slot)).ok_or(ErrorCode::OverConnectionQuota),
        Err(code) => Err(code),
    };
    let (app, _slot) = match admitted {
        Ok(admitted) => admitted,
        Err(code) => {
            if code == ErrorCode::OverConnectionQuota {
                if let Some(app) = shared.apps.by_key(&handshake.app_key) {
                    app.metrics.reject(Rejection::ConnectionQuota);
                }
            }
            return Box::pin(refuse(&mut write, code)).await;
        }
    };
    app.metrics.new_connections.inc();
    let connected_app = app.clone();
    let socket_id = shared.socket_ids.next();
    let outbox = Arc::new(Outbox::new(shared.config.max_outbox_bytes));
    let activity_timeout = Duration::from_secs(app.config.activity_timeout_seconds);
    let established = ServerMessage::ConnectionEstablished {
        socket_id,
        activity_timeout_seconds: app.config.activity_timeout_seconds,
    };
    let _ = outbox.push(Frame::message(&established));
    let limits = SessionLimits {
        max_channel_name_length: shared.config.max_channel_name_length,
        max_event_name_length: shared.config.max_event_name_length,
    };
    let keepalive = Keepalive {
        activity_timeout,
        pong_timeout: Duration::from_secs(shared.config.pong_timeout_seconds),
        authorize_within: app.config.authorized_connections_timeout_seconds.map(Duration::from_secs),
        drain_window: Duration::from_secs(shared.config.drain_window_seconds),
    };
    let session = Session::new(app, limits, socket_id, outbox.clone());
    drop(handshake);
    // fastwebsockets reads frames through the gate, one reader per frame (gate.rs); writes
    // go straight to the socket as pre-encoded frames.
    let gate = gate::FrameGate::new(read);
    tracing::debug!(%socket_id, "connected");
    let max_message_bytes = shared.config.max_message_bytes;
    connected_app.debug.emit(|| serde_json::json!({"type": "connected", "socket_id": socket_id.to_string()}));
    // Every log line about this connection carries its socket id and app.
    let span = tracing::info_span!("connection", %socket_id, app = %connected_app.config.id);
    connection::run(gate, write, session, outbox, keepalive, max_message_bytes, shared.shutdown.clone())
        .instrument(span)
        .await;
    connected_app.debug.emit(|| serde_json::json!({"type": "disconnected", "socket_id": socket_id.to_string()}));
}

/// Sends `pusher:error` with `code`, then closes with the same code.
async fn refuse<W: AsyncWrite + Unpin>(write: &mut W, code: ErrorCode) {
    tracing::debug!(code = code.code(), "connection refused");
    let message = code.default_message();
    let error = Frame::message(&ServerMessage::Error { code: Some(code.code()), message });
    let close = Frame::close(code.code(), message);
    let bytes: Vec<u8> = [error.bytes().as_ref(), close.bytes().as_ref()].concat();
    let _ = write.write_all(&Bytes::from(bytes)).await;
    let _ = write.shutdown().await;
}
