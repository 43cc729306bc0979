//! The task that owns one WebSocket: it reads frames into the [`Session`], writes what the
//! [`Outbox`] holds, and keeps the connection alive or closes it.
//!
//! One task per socket, no separate reader and writer tasks. fastwebsockets' `read_frame` is
//! not cancel safe, so the read is a single future pinned across loop iterations: `select!`
//! polls it in place and never drops it before it completes. The other branches (outbox
//! ready, keepalive timer, shutdown) are cancel safe; each says why below.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use fastwebsockets::{OpCode, Payload, Role, WebSocketError};
use herald_protocol::codes::{CLOSE_INVALID_PAYLOAD, CLOSE_MESSAGE_TOO_BIG, CLOSE_PROTOCOL_ERROR};
use herald_protocol::{ErrorCode, ServerMessage};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::write::flush;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::gate::FrameGate;
use super::session::Session;
use crate::frame::Frame;
use crate::metrics::{AppMetrics, Rejection};
use crate::outbox::{CloseReason, Outbox};

/// Most frames taken from the outbox for one vectored write.
const WRITE_BATCH_FRAMES: usize = 64;

/// Timing of the keepalive, and of the "authorized connections" deadline.
#[derive(Debug, Clone, Copy)]
pub struct Keepalive {
    pub activity_timeout: Duration,
    pub pong_timeout: Duration,
    /// A connection not authorized by then is closed with 4009.
    pub authorize_within: Option<Duration>,
    /// On shutdown the socket closes with 4200 at a random moment within this window.
    pub drain_window: Duration,
}

/// What the connection's one-shot deadline is armed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    None,
    /// "Authorized connections": sign in or subscribe privately by then.
    Authorize,
    /// Shutdown: close with 4200 then.
    Drain,
}

/// Why the loop ended, for the log.
#[derive(Debug)]
pub(super) enum Ended {
    Closed(CloseReason),
    Gone,
}

/// The socket task's state between events.
struct Connection {
    session: Session,
    outbox: Arc<Outbox>,
    keepalive: Keepalive,
    last_seen: Instant,
    ping_outstanding: bool,
    fragments: Fragments,
    max_message_bytes: usize,
}

/// Serves one established connection until it closes. `session` already holds the
/// connection's outbox with `connection_established` queued.
pub async fn run<R, W>(
    gate: FrameGate<R>,
    mut writer: W,
    session: Session,
    outbox: Arc<Outbox>,
    keepalive: Keepalive,
    max_message_bytes: usize,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let now = Instant::now();
    let mut conn = Connection {
        session,
        outbox: outbox.clone(),
        keepalive,
        last_seen: now,
        ping_outstanding: false,
        fragments: Fragments::default(),
        max_message_bytes,
    };
    let read = next_frame(gate, max_message_bytes);
    tokio::pin!(read);
    // One timer for the keepalive and the one-shot deadline (authorization first, then the
    // drain): it is armed for whichever comes first (a `Sleep` is 112 bytes of every socket).
    let mut keepalive_at = now + keepalive.activity_timeout;
    let mut deadline = if keepalive.authorize_within.is_some() { Deadline::Authorize } else { Deadline::None };
    let mut deadline_at = now + keepalive.authorize_within.unwrap_or(Duration::ZERO);
    let timer = sleep_until(wake_at(keepalive_at, deadline, deadline_at));
    tokio::pin!(timer);
    let (mut reading, mut draining) = (true, false);

    let ended = loop {
        tokio::select! {
            biased;
            // Cancel safe: `ready` re-checks the queue before every wait.
            () = outbox.ready() => {
                // Boxed, like every await below that runs rarely or holds much: the task's
                // future is as large as its largest state, and idle sockets wait in the small
                // one (docs/architecture.md, "Memory per connection").
                let write = flush(&mut writer, outbox.take(WRITE_BATCH_FRAMES), &outbox, conn.metrics());
                if let Some(ended) = Box::pin(write).await {
                    break ended;
                }
            }
            // Not cancelled: `read` is pinned outside the loop and polled in place.
            (gate, result) = &mut read, if reading => {
                if Box::pin(conn.on_read(result)).await.is_err() {
                    break Ended::Gone;
                }
                reading = !outbox.is_closing();
                if reading {
                    read.set(next_frame(gate, max_message_bytes));
                }
            }
            // Cancel safe: a `Sleep` is only re-armed, never lost.
            () = &mut timer => {
                let now = Instant::now();
                if deadline != Deadline::None && now >= deadline_at {
                    match std::mem::replace(&mut deadline, Deadline::None) {
                        Deadline::Authorize if !conn.session.is_authorized() => {
                            outbox.close(ErrorCode::Unauthorized.code(), "Connection is unauthorized: no sign-in in time");
                        }
                        Deadline::Drain => outbox.close(ErrorCode::ReconnectImmediately.code(), "Server shutting down"),
                        _ => {}
                    }
                }
                if now >= keepalive_at {
                    keepalive_at = conn.on_keepalive_due(now);
                }
                timer.as_mut().reset(wake_at(keepalive_at, deadline, deadline_at));
            }
            // Cancel safe: `cancelled` has no state to lose.
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                let delay = keepalive.drain_window.mul_f64(rand::random::<f64>());
                deadline_at = Instant::now() + delay;
                deadline = Deadline::Drain;
                timer.as_mut().reset(wake_at(keepalive_at, deadline, deadline_at));
            }
        }
    };
    Box::pin(async move {
        let _ = writer.shutdown().await;
        conn.finish(ended).await;
    })
    .await;
}

/// When the connection's one timer must fire: the keepalive, or the deadline if one is armed
/// and comes first.
fn wake_at(keepalive_at: Instant, deadline: Deadline, deadline_at: Instant) -> Instant {
    match deadline {
        Deadline::None => keepalive_at,
        _ => keepalive_at.min(deadline_at),
    }
}

/// The peer is gone; nothing more can be written.
struct Gone;

impl Connection {
    /// The app's metrics (borrowed from the session: a socket's state stays small).
    fn metrics(&self) -> &AppMetrics {
        &self.session.app().metrics
    }

    /// Handles what the read future produced.
    async fn on_read(&mut self, result: Result<Inbound, WebSocketError>) -> Result<(), Gone> {
        self.last_seen = Instant::now();
        self.ping_outstanding = false;
        match result {
            Ok(frame) => {
                self.metrics().messages_received.inc();
                self.metrics().received_bytes.inc_by(frame.payload.len() as u64);
                handle_frame(frame, &mut self.fragments, &mut self.session, &self.outbox, self.max_message_bytes).await;
                Ok(())
            }
            Err(error) => {
                let (code, message) = close_for(&error).ok_or(Gone)?;
                if code == CLOSE_MESSAGE_TOO_BIG {
                    self.metrics().reject(Rejection::MessageTooLarge);
                }
                self.outbox.close(code, message);
                Ok(())
            }
        }
    }

    /// The keepalive's time came: pings an idle client, or closes with 4201 when the ping went
    /// unanswered. Returns when the keepalive is due next.
    fn on_keepalive_due(&mut self, now: Instant) -> Instant {
        if self.ping_outstanding {
            self.outbox.close(ErrorCode::PongNotReceived.code(), ErrorCode::PongNotReceived.default_message());
            now + self.keepalive.pong_timeout
        } else if now >= self.last_seen + self.keepalive.activity_timeout {
            let _ = self.outbox.push(Frame::message(&ServerMessage::Ping));
            self.ping_outstanding = true;
            now + self.keepalive.pong_timeout
        } else {
            self.last_seen + self.keepalive.activity_timeout
        }
    }

    async fn finish(mut self, ended: Ended) {
        self.metrics().disconnections.inc();
        // A slow consumer is usually dropped mid-write (`Gone`), not closed: ask the outbox.
        if self.outbox.overflowed() {
            self.metrics().outbox_overflows.inc();
        }
        let socket_id = self.session.socket_id();
        match ended {
            Ended::Closed(reason) => {
                tracing::debug!(%socket_id, code = reason.code, reason = %reason.message, "closed")
            }
            Ended::Gone => tracing::debug!(%socket_id, "connection lost"),
        }
        self.session.close().await;
    }
}

/// Reads the next frame, handing the gate back so the caller can read again.
///
/// While no frame is arriving this holds no fastwebsockets reader, only the gate (a few
/// bytes): the reader, with its 8 KiB buffer, is made when a frame starts and dropped after
/// it ([`FrameGate`]). Pings and closes are answered by [`handle_frame`], through the outbox.
async fn next_frame<R: AsyncRead + Unpin>(
    mut gate: FrameGate<R>,
    max_message_bytes: usize,
) -> (FrameGate<R>, Result<Inbound, WebSocketError>) {
    match gate.next_frame_arrived().await {
        Ok(true) => {}
        Ok(false) => return (gate, Err(WebSocketError::UnexpectedEOF)),
        Err(error) => return (gate, Err(WebSocketError::IoError(error))),
    }
    // Boxed: the reader and its read state exist only while a frame arrives.
    let result = Box::pin(async {
        let (mut reader, _) = fastwebsockets::after_handshake_split(&mut gate, tokio::io::sink(), Role::Server);
        reader.set_auto_close(false);
        reader.set_auto_pong(false);
        reader.set_max_message_size(max_message_bytes.saturating_add(1));
        reader.read_frame(&mut |_| std::future::ready(Ok::<(), Infallible>(()))).await.map(Inbound::from)
    })
    .await;
    (gate, result)
}

/// A frame read from the client, owning its payload.
#[derive(Debug)]
struct Inbound {
    fin: bool,
    opcode: OpCode,
    payload: BytesMut,
}

impl From<fastwebsockets::Frame<'_>> for Inbound {
    fn from(frame: fastwebsockets::Frame<'_>) -> Self {
        let payload = match frame.payload {
            Payload::Bytes(bytes) => bytes,
            other => BytesMut::from(&other[..]),
        };
        Self { fin: frame.fin, opcode: frame.opcode, payload }
    }
}

/// The close a read error calls for, or `None` when the peer is simply gone.
fn close_for(error: &WebSocketError) -> Option<(u16, &'static str)> {
    match error {
        WebSocketError::FrameTooLarge => Some((CLOSE_MESSAGE_TOO_BIG, "Maximum message size exceeded")),
        WebSocketError::InvalidUTF8 => Some((CLOSE_INVALID_PAYLOAD, "Invalid UTF-8")),
        WebSocketError::UnexpectedEOF | WebSocketError::IoError(_) | WebSocketError::ConnectionClosed => None,
        _ => Some((CLOSE_PROTOCOL_ERROR, "WebSocket protocol error")),
    }
}

/// A message arriving in several frames, bounded by the message limit.
#[derive(Debug, Default)]
struct Fragments {
    buffer: Option<Vec<u8>>,
    /// The message is binary: reassembled only to be ignored, like a whole binary message.
    binary: bool,
}

async fn handle_frame(
    frame: Inbound,
    fragments: &mut Fragments,
    session: &mut Session,
    outbox: &Outbox,
    max_message_bytes: usize,
) {
    match frame.opcode {
        // RFC 6455 §5.4: no new message may start inside an unfinished one.
        OpCode::Text | OpCode::Binary if fragments.buffer.is_some() => {
            outbox.close(CLOSE_PROTOCOL_ERROR, "New message inside a fragmented one")
        }
        OpCode::Text if frame.fin => handle_text(&frame.payload, session, outbox).await,
        OpCode::Text | OpCode::Binary if !frame.fin => {
            fragments.binary = frame.opcode == OpCode::Binary;
            fragments.buffer = Some(frame.payload.to_vec());
        }
        OpCode::Continuation => {
            let Some(buffer) = fragments.buffer.as_mut() else {
                return outbox.close(CLOSE_PROTOCOL_ERROR, "Unexpected continuation frame");
            };
            if buffer.len() + frame.payload.len() > max_message_bytes {
                return outbox.close(CLOSE_MESSAGE_TOO_BIG, "Maximum message size exceeded");
            }
            buffer.extend_from_slice(&frame.payload);
            if frame.fin {
                if let (Some(message), false) = (fragments.buffer.take(), fragments.binary) {
                    handle_text(&message, session, outbox).await;
                }
            }
        }
        OpCode::Close => {
            let code = match frame.payload.get(..2) {
                Some(b) => u16::from_be_bytes([b[0], b[1]]),
                None => 1000,
            };
            // Echo the client's code unless it is one that must never be sent (RFC 6455 §7.4.1).
            let sendable = (1000..5000).contains(&code) && !matches!(code, 1004..=1006 | 1015);
            let code = if sendable { code } else { 1000 };
            outbox.close(code, "");
        }
        OpCode::Ping => {
            let _ = outbox.push(Frame::encode(fastwebsockets::Frame::pong(Payload::Bytes(frame.payload))));
        }
        // Binary messages are not part of the protocol: ignored. Pongs only count as activity.
        _ => {}
    }
}

async fn handle_text(payload: &[u8], session: &mut Session, outbox: &Outbox) {
    match std::str::from_utf8(payload) {
        Ok(text) => session.handle_text(text).await,
        Err(_) => outbox.close(CLOSE_INVALID_PAYLOAD, "Invalid UTF-8"),
    }
}
