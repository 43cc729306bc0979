//! The task that serves one HTTP session: the transport loop of `xhr_streaming` and
//! `xhr_polling`. It owns the session's [`Session`] (the protocol state machine a WebSocket
//! uses too) and its [`Outbox`]; requests reach it as [`Command`]s.
//!
//! - **Delivery.** What the outbox holds goes, as `a[...]` lines, into the response attached
//!   last (the "receiver"): a streaming response stays attached, a poll is answered once and
//!   let go. A streaming response stops taking messages once it carried more than pusher-js
//!   reads from one response ([`STREAM_LIMIT_UTF16`]); pusher-js then opens a new one, which
//!   takes over where the last stopped, so nothing is lost at the switch.
//! - **Liveness.** Every request counts as activity. An attached receiver gets `h` after a
//!   quiet [`Timing::heartbeat`]. The keepalive is the WebSocket's: after the activity timeout
//!   without a request the server queues `pusher:ping`, and closes with 4201 when no request
//!   follows within the pong timeout. A session with no receiver attached for the activity
//!   timeout (the client is gone) ends as if closed with 4202.
//! - **Closing.** A close (from the outbox: 4100 overflow, 4009, 4201, 4200 on drain) is
//!   written as `pusher:error` and `c[code,"reason"]` to the receiver; without one (or with
//!   one that is not read) the session waits at most [`CLOSE_GRACE`] for the client's next
//!   request. Then the session leaves its channels.
//!
//! Cancel safety of the loop's `select!`: `Outbox::ready`/`closing` re-check the queue before
//! every wait; `reserve_owned` on the response's chunk channel loses only its place in the
//! queue (nothing is taken from the outbox until a place is held); `closed`, `recv` on the
//! command channel, the `Sleep` (re-armed, never lost) and `cancelled` hold no data.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::codes::CLOSE_MESSAGE_TOO_BIG;
use herald_protocol::{ErrorCode, ServerMessage};
use tokio::sync::mpsc::{self, OwnedPermit};
use tokio::sync::oneshot;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::framing;
use super::receiver::{response_gone, writable, Delivery, Receiver};
use super::sessions::Sessions;
use crate::apps::ConnectionSlot;
use crate::metrics::{AppMetrics, Rejection};
use crate::outbox::{CloseReason, Next, Outbox};
use crate::server::ws::session::Session;

/// Most frames taken from the outbox for one `a[...]` line.
const WRITE_BATCH_FRAMES: usize = 64;
/// pusher-js opens a new streaming response once it has read more than this many UTF-16 code
/// units from one (`MAX_BUFFER_LENGTH` in its `http_request.ts`).
pub const STREAM_LIMIT_UTF16: usize = 256 * 1024;
/// The longest quiet time on an attached response before `h` (SockJS's heartbeat).
const MAX_HEARTBEAT: Duration = Duration::from_secs(25);
/// How long a closing session waits for a receiver that takes the close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What a request asks of the session's task.
#[derive(Debug)]
pub enum Command {
    /// A streaming or polling response takes over delivery.
    Attach(Receiver),
    /// Messages POSTed to `xhr_send`, in order; `done` fires once they are handled.
    Send { messages: Vec<String>, done: oneshot::Sender<()> },
}

/// The session's timing.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub activity_timeout: Duration,
    /// With no request attached this long, the session ends (at most `activity_timeout`).
    pub detached_limit: Duration,
    pub pong_timeout: Duration,
    /// A session not authorized by then is closed with 4009.
    pub authorize_within: Option<Duration>,
    /// On shutdown the session closes with 4200 at a random moment within this window.
    pub drain_window: Duration,
}

impl Timing {
    /// Quiet time on an attached response before `h`: well within the activity timeout,
    /// which is also pusher-js's, so pusher-js never has to ping.
    fn heartbeat(&self) -> Duration {
        (self.activity_timeout / 2).clamp(Duration::from_millis(100), MAX_HEARTBEAT)
    }
}

/// Why the session ended, for the log.
#[derive(Debug)]
enum Ended {
    Closed(CloseReason),
    /// No receiver for the activity timeout.
    Expired,
    /// Closing, but no receiver took the close within [`CLOSE_GRACE`].
    CloseUndelivered,
}

/// One HTTP session's state between events.
#[derive(Debug)]
pub struct Transport {
    session: Session,
    outbox: Arc<Outbox>,
    timing: Timing,
    max_message_bytes: usize,
    receiver: Option<Receiver>,
    /// `o` was written (to the first receiver).
    opened: bool,
    last_seen: Instant,
    ping_outstanding: bool,
    keepalive_at: Instant,
    last_written: Instant,
    detached_since: Option<Instant>,
    closing_since: Option<Instant>,
    authorize_at: Option<Instant>,
    drain_at: Option<Instant>,
    /// Counts the session against the app's connection quota until it ends.
    _slot: ConnectionSlot,
}

impl Transport {
    /// A session with `connection_established` already queued in `outbox`, no receiver yet.
    pub fn new(
        session: Session,
        outbox: Arc<Outbox>,
        timing: Timing,
        max_message_bytes: usize,
        slot: ConnectionSlot,
    ) -> Self {
        let now = Instant::now();
        Self {
            session,
            outbox,
            timing,
            max_message_bytes,
            receiver: None,
            opened: false,
            last_seen: now,
            ping_outstanding: false,
            keepalive_at: now + timing.activity_timeout,
            last_written: now,
            detached_since: Some(now),
            closing_since: None,
            authorize_at: timing.authorize_within.map(|d| now + d),
            drain_at: None,
            _slot: slot,
        }
    }

    /// Serves the session until it ends, then removes it from `sessions` and leaves its channels.
    pub async fn serve(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
        sessions: &Sessions,
        (path, id): (&str, u64),
    ) {
        let timer = sleep_until(self.next_wake());
        tokio::pin!(timer);
        let mut draining = false;
        let ended = loop {
            let closing = self.outbox.is_closing();
            if closing && self.closing_since.is_none() {
                self.closing_since = Some(Instant::now());
            }
            let deliverable = self.receiver.as_ref().is_some_and(|r| !r.is_full() || closing);
            timer.as_mut().reset(self.next_wake());
            let chunks = self.receiver.as_ref().map(|r| r.chunks.clone());
            tokio::select! {
                biased;
                permit = writable(&self.outbox, chunks.clone()), if deliverable => match permit {
                    Some(permit) => if let Some(ended) = self.deliver(permit) { break ended },
                    None => self.detach(),
                },
                () = response_gone(chunks), if self.receiver.is_some() => self.detach(),
                // Boxed, like every cold await of a long-lived connection task: the session's
                // futures inline would make the task several KiB bigger for its whole life.
                command = commands.recv() => match command {
                    Some(command) => Box::pin(self.on_command(command)).await,
                    None => break Ended::Expired,
                },
                () = &mut timer => if let Some(ended) = self.on_timer(Instant::now()) { break ended },
                () = shutdown.cancelled(), if !draining => {
                    draining = true;
                    self.drain_at = Some(Instant::now() + self.timing.drain_window.mul_f64(rand::random::<f64>()));
                }
                // Wakes the loop when a close must be delivered to no receiver (the timer's
                // grace period starts) or past a full streaming response.
                () = self.outbox.closing(), if !deliverable && !closing => {}
            }
        };
        sessions.remove(path, id);
        Box::pin(self.finish(ended)).await;
    }

    fn metrics(&self) -> &AppMetrics {
        &self.session.app().metrics
    }

    /// The earliest moment something is due.
    fn next_wake(&self) -> Instant {
        let heartbeat = self.receiver.as_ref().map(|_| self.last_written + self.timing.heartbeat());
        let expiry = self.detached_since.map(|since| since + self.timing.detached_limit);
        let close_given_up = self.closing_since.map(|since| since + CLOSE_GRACE);
        [self.authorize_at, self.drain_at, heartbeat, expiry, close_given_up]
            .into_iter()
            .flatten()
            .fold(self.keepalive_at, Instant::min)
    }

    fn detach(&mut self) {
        if self.receiver.take().is_some() {
            self.detached_since = Some(Instant::now());
        }
    }

    /// Writes the next batch from the outbox into the receiver holding `permit`.
    fn deliver(&mut self, permit: OwnedPermit<Bytes>) -> Option<Ended> {
        let (frames, close) = match self.outbox.take(WRITE_BATCH_FRAMES)? {
            Next::Write(frames) => (frames, None),
            Next::Close(frames, reason) => (frames, Some(reason)),
        };
        self.metrics().messages_sent.inc_by(frames.len() as u64);
        self.metrics().transmitted_bytes.inc_by(frames.iter().map(|f| f.len() as u64).sum());
        // Pusher codes are announced as `pusher:error` before the close, as on a WebSocket.
        let error = close.as_ref().filter(|r| (4000..4300).contains(&r.code));
        let error = error.map(|r| ServerMessage::Error { code: Some(r.code), message: &r.message }.to_json());
        let texts: Vec<&str> = frames
            .iter()
            .filter_map(|f| f.text_payload())
            .filter_map(|p| std::str::from_utf8(p).ok())
            .chain(error.as_deref())
            .collect();
        let mut line = if texts.is_empty() { String::new() } else { framing::messages(texts) };
        if let Some(reason) = &close {
            line.push_str(&framing::close(reason.code, &reason.message));
        }
        let line = Bytes::from(line);
        let len = framing::utf16_len(&line);
        let chunks = permit.send(line);
        self.last_written = Instant::now();
        if let Some(receiver) = self.receiver.as_mut().filter(|r| r.chunks.same_channel(&chunks)) {
            receiver.written += len;
            if receiver.delivery == Delivery::Polling {
                self.detach();
            }
        }
        close.map(Ended::Closed)
    }

    async fn on_command(&mut self, command: Command) {
        self.last_seen = Instant::now();
        self.ping_outstanding = false;
        match command {
            Command::Attach(mut receiver) => {
                if !std::mem::replace(&mut self.opened, true) {
                    receiver.try_write(Bytes::from_static(framing::OPEN));
                }
                self.receiver = Some(receiver);
                self.detached_since = None;
                self.last_written = Instant::now();
            }
            Command::Send { messages, done } => {
                self.handle_messages(messages).await;
                let _ = done.send(());
            }
        }
    }

    /// Feeds sent messages to the session, as a WebSocket's text frames are.
    async fn handle_messages(&mut self, messages: Vec<String>) {
        for message in messages {
            if self.outbox.is_closing() {
                break;
            }
            if message.len() > self.max_message_bytes {
                self.metrics().reject(Rejection::MessageTooLarge);
                self.outbox.close(CLOSE_MESSAGE_TOO_BIG, "Maximum message size exceeded");
                break;
            }
            self.metrics().messages_received.inc();
            self.metrics().received_bytes.inc_by(message.len() as u64);
            self.session.handle_text(&message).await;
        }
    }

    /// Whatever is due at `now`; `Some` when the session is over.
    fn on_timer(&mut self, now: Instant) -> Option<Ended> {
        if self.authorize_at.is_some_and(|at| now >= at) {
            self.authorize_at = None;
            if !self.session.is_authorized() {
                self.outbox.close(ErrorCode::Unauthorized.code(), "Connection is unauthorized: no sign-in in time");
            }
        }
        if self.drain_at.is_some_and(|at| now >= at) {
            self.drain_at = None;
            self.outbox.close(ErrorCode::ReconnectImmediately.code(), "Server shutting down");
        }
        if now >= self.keepalive_at {
            self.keepalive_at = self.on_keepalive_due(now);
        }
        if self.closing_since.is_some_and(|since| now >= since + CLOSE_GRACE) {
            return Some(Ended::CloseUndelivered);
        }
        if self.detached_since.is_some_and(|since| now >= since + self.timing.detached_limit) {
            return Some(Ended::Expired);
        }
        if now >= self.last_written + self.timing.heartbeat() {
            self.last_written = now;
            if let Some(receiver) = self.receiver.as_mut().filter(|r| !r.is_full()) {
                receiver.try_write(Bytes::from_static(framing::HEARTBEAT));
                if receiver.delivery == Delivery::Polling {
                    self.detach();
                }
            }
        }
        None
    }

    /// As on a WebSocket: pings a quiet client, or closes with 4201 when the ping went
    /// unanswered. Returns when the keepalive is due next.
    fn on_keepalive_due(&mut self, now: Instant) -> Instant {
        if self.ping_outstanding {
            self.outbox.close(ErrorCode::PongNotReceived.code(), ErrorCode::PongNotReceived.default_message());
            now + self.timing.pong_timeout
        } else if now >= self.last_seen + self.timing.activity_timeout {
            let _ = self.outbox.push(crate::frame::Frame::message(&ServerMessage::Ping));
            self.ping_outstanding = true;
            now + self.timing.pong_timeout
        } else {
            self.last_seen + self.timing.activity_timeout
        }
    }

    async fn finish(mut self, ended: Ended) {
        // Ends the last response now rather than after the channels are left.
        self.receiver = None;
        self.metrics().disconnections.inc();
        if self.outbox.overflowed() {
            self.metrics().outbox_overflows.inc();
        }
        match ended {
            Ended::Closed(reason) => tracing::debug!(code = reason.code, reason = %reason.message, "closed"),
            Ended::Expired => tracing::debug!(
                code = ErrorCode::ClosedAfterInactivity.code(),
                "expired: no streaming or polling request in time"
            ),
            Ended::CloseUndelivered => tracing::debug!("closed; no response took the close in time"),
        }
        self.session.close().await;
    }
}
