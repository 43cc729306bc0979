//! The task that serves one event stream: it subscribes the session, then drains the outbox
//! into the response body as SSE messages, sends keep-alive comments, and ends the stream on
//! a close (slow consumer, drain) or when the client goes away — leaving the channels as a
//! WebSocket's session does.
//!
//! The body is fed through a small channel; hyper takes chunks from it as fast as the client
//! reads. A client that stops reading fills hyper's buffer, then the channel, then the outbox,
//! whose byte cap closes it with 4100: the stream is then abandoned and the connection dropped
//! (the `abort` token), as a WebSocket's stuck write is.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::ErrorCode;
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use super::request::ChannelRequest;
use super::resume::{self, LastEventId, Positions};
use super::wire;
use crate::apps::ConnectionSlot;
use crate::outbox::{CloseReason, Next, Outbox};
use crate::server::ws::session::Session;
use crate::server::Shared;

/// Most frames taken from the outbox for one chunk of the body.
const CHUNK_FRAMES: usize = 64;

/// How long the last message of a stream the server ends may take to reach the client
/// before the connection is dropped.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// Everything one stream holds while it lives; dropping it frees the connection slot and
/// the client's socket id.
#[derive(Debug)]
pub struct EventStream {
    pub session: Session,
    pub outbox: Arc<Outbox>,
    pub chunks: mpsc::Sender<Bytes>,
    /// A comment goes out after this long without anything else.
    pub keep_alive: Duration,
    /// On shutdown the stream ends at a random moment within this window.
    pub drain_window: Duration,
    pub shutdown: CancellationToken,
    /// Cancelled to drop the HTTP connection; cancelled by the server when it ends.
    pub abort: CancellationToken,
    pub held: Held,
}

/// What the stream holds on to for its lifetime, only to drop it when the stream ends.
#[derive(Debug)]
#[expect(dead_code, reason = "held for their Drop: the slot and the socket id are freed with the stream")]
pub struct Held {
    pub slot: ConnectionSlot,
    pub claimed: Option<ClaimedSocketId>,
}

/// A socket id chosen by the client, reserved on this node until dropped.
#[derive(Debug)]
pub struct ClaimedSocketId {
    pub shared: Arc<Shared>,
    pub id: herald_protocol::SocketId,
}

impl Drop for ClaimedSocketId {
    fn drop(&mut self) {
        self.shared.socket_ids.release(self.id);
    }
}

/// Why the pump stopped.
#[derive(Debug)]
enum Ended {
    /// The outbox closed: send what is left and the reason, then end the body.
    Closed(Vec<crate::frame::Frame>, CloseReason),
    /// The client went away (hyper dropped the body).
    Gone,
    /// The client stopped reading and its outbox overflowed: drop the connection.
    Stuck,
}

/// Serves the stream until it ends.
pub async fn run(mut stream: EventStream, channels: Vec<ChannelRequest>, last_event_id: Option<LastEventId>) {
    // The cold awaits are boxed: inline, the session's futures would stay in the task's
    // allocation for the stream's whole life (docs/architecture.md, "Memory per connection").
    let mut positions = Box::pin(resume::resume(&mut stream.session, &channels, last_event_id.as_ref())).await;
    for c in &channels {
        Box::pin(stream.session.subscribe_or_report(&c.name, c.auth.as_deref(), c.channel_data.as_deref())).await;
    }
    drop(channels);
    let ended = stream.pump(&mut positions).await;
    Box::pin(stream.finish(ended, &mut positions)).await;
}

impl EventStream {
    async fn pump(&self, positions: &mut Positions) -> Ended {
        let keep_alive = sleep(self.keep_alive);
        let drain = sleep(Duration::ZERO);
        tokio::pin!(keep_alive, drain);
        let mut draining = false;
        loop {
            tokio::select! {
                biased;
                // Cancel safe: `ready` re-checks the queue before every wait.
                () = self.outbox.ready() => match self.outbox.take(CHUNK_FRAMES) {
                    Some(Next::Write(frames)) => {
                        let metrics = &self.session.app().metrics;
                        metrics.messages_sent.inc_by(frames.len() as u64);
                        let chunk = wire::messages(&frames, positions);
                        metrics.transmitted_bytes.inc_by(chunk.len() as u64);
                        if let Err(ended) = self.send(chunk.into()).await {
                            return ended;
                        }
                        keep_alive.as_mut().reset(Instant::now() + self.keep_alive);
                    }
                    Some(Next::Close(frames, reason)) => return Ended::Closed(frames, reason),
                    None => {}
                },
                // Cancel safe: `closed` only watches the receiver.
                () = self.chunks.closed() => return Ended::Gone,
                // Cancel safe: a `Sleep` is re-armed, never lost.
                () = &mut keep_alive => {
                    if let Err(ended) = self.send(Bytes::from_static(wire::KEEP_ALIVE)).await {
                        return ended;
                    }
                    keep_alive.as_mut().reset(Instant::now() + self.keep_alive);
                }
                // Cancel safe: `cancelled` has no state to lose.
                () = self.shutdown.cancelled(), if !draining => {
                    draining = true;
                    let delay = self.drain_window.mul_f64(rand::random::<f64>());
                    drain.as_mut().reset(Instant::now() + delay);
                }
                () = &mut drain, if draining => {
                    draining = false;
                    self.outbox.close(ErrorCode::ReconnectImmediately.code(), "Server shutting down");
                }
            }
        }
    }

    /// Hands `chunk` to the body. Gives up when the client is gone, or when the outbox
    /// overflows while the client is not taking what was sent.
    async fn send(&self, chunk: Bytes) -> Result<(), Ended> {
        tokio::select! {
            sent = self.chunks.send(chunk) => sent.map_err(|_| Ended::Gone),
            // Dropping the unfinished send loses only this chunk; the stream is over anyway.
            () = overflowed(&self.outbox) => Err(Ended::Stuck),
        }
    }

    async fn finish(self, ended: Ended, positions: &mut Positions) {
        let Self { mut session, outbox, chunks, abort, held, .. } = self;
        let app = session.app().clone();
        let socket_id = session.socket_id();
        // Whether the connection must be dropped now, after a grace, or is gone already.
        let abort_after = match ended {
            Ended::Closed(frames, reason) => {
                tracing::debug!(%socket_id, code = reason.code, reason = %reason.message, "event stream closed");
                let mut last = wire::messages(&frames, positions);
                last.extend(wire::closing(&reason));
                let sent = tokio::time::timeout(FINAL_FLUSH, chunks.send(last.into())).await;
                Some(if matches!(sent, Ok(Ok(()))) { FINAL_FLUSH } else { Duration::ZERO })
            }
            Ended::Gone => {
                tracing::debug!(%socket_id, "event stream client gone");
                None
            }
            Ended::Stuck => {
                tracing::debug!(%socket_id, "event stream dropped: slow consumer");
                Some(Duration::ZERO)
            }
        };
        // Ends the body: hyper finishes the response and closes the connection.
        drop(chunks);
        app.metrics.disconnections.inc();
        if outbox.overflowed() {
            app.metrics.outbox_overflows.inc();
        }
        session.close().await;
        drop(session);
        drop(held);
        app.debug.emit(|| serde_json::json!({"type": "disconnected", "socket_id": socket_id.to_string()}));
        // A client that does not take the end of the stream in time is cut off.
        if let Some(grace) = abort_after {
            tokio::select! {
                () = sleep(grace) => abort.cancel(),
                () = abort.cancelled() => {}
            }
        }
    }
}

/// Resolves once the outbox has overflowed (a closing for another reason never resolves it).
async fn overflowed(outbox: &Outbox) {
    outbox.closing().await;
    if !outbox.overflowed() {
        std::future::pending::<()>().await;
    }
}
