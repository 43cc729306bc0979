//! One chat member: connect, sign its own private subscription, then send `client-msg` client
//! events at a fixed rate while a second task receives the other members' messages.
//!
//! The socket is split: this task owns the write half and sends; a spawned reader owns the
//! read half (so no not-cancel-safe read ever sits beside a send in one `select!`). A message
//! carries `{"hb_seq":slot×K+k,"hb_sent_ns":intended}`: its intended send time, so a sender
//! that falls behind shows up as latency. The reader counts unique messages, duplicates,
//! echoes of its own messages and `pusher:error` frames (a rejected client event).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fastwebsockets::{Frame, OpCode, Payload, WebSocketRead};
use memchr::memmem;
use tokio::io::ReadHalf;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::payload;
use crate::recorder::{Recorder, SeenSet};
use crate::socket::{self, Ws};
use crate::target::Target;

type Io = hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>;

/// What every member of a run shares.
#[derive(Debug)]
pub struct Chat {
    pub target: Target,
    pub clock: Clock,
    pub recorder: Recorder,
    /// Members per room.
    pub members: usize,
    /// Messages each member sends.
    pub messages: u64,
    pub interval_ns: u64,
    /// Members in the whole run, to spread their send times over one interval.
    pub total_members: usize,
    /// The first message's intended time (Unix ns), 0 until every member is ready.
    pub start: watch::Receiver<u64>,
    pub sent: AtomicU64,
    pub send_failures: AtomicU64,
    pub stop: CancellationToken,
    pub deadline: Instant,
}

/// Where a member sits: its index in the run, its room and its slot in the room.
#[derive(Debug, Clone, Copy)]
pub struct Seat {
    pub index: usize,
    pub room: usize,
    pub slot: usize,
}

/// What one member's reader saw.
#[derive(Debug, Default)]
pub struct Received {
    pub joined: bool,
    /// Why the member failed or its socket ended before the stop signal.
    pub error: Option<String>,
    pub unique: u64,
    pub duplicates: u64,
    /// The member's own messages, which the server should not have sent back.
    pub echoes: u64,
    pub foreign: u64,
    /// `pusher:error` frames: client events the server refused.
    pub server_errors: u64,
    pub first_server_error: Option<String>,
}

/// Joins `private-chat-{room}`, reports on `ready`, sends once the start is given, and returns
/// what its reader saw once the run stops.
pub async fn run(
    seat: Seat,
    chat: Arc<Chat>,
    permit: OwnedSemaphorePermit,
    ready: mpsc::Sender<Result<(), String>>,
) -> Received {
    let channel = format!("private-chat-{}", seat.room);
    let joined = tokio::time::timeout_at(chat.deadline, join(&chat.target, &channel)).await;
    drop(permit);
    let ws = match joined {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => return failed(&ready, format!("{error:#}")).await,
        Err(_) => return failed(&ready, "timed out joining".into()).await,
    };
    // The run may have stopped waiting already; a closed channel is not this task's concern.
    let _ = ready.send(Ok(())).await;
    drop(ready);
    let (rx, mut tx) = ws.split(tokio::io::split);
    let reader = tokio::spawn(receive(seat, rx, chat.clone()));
    send_all(seat, &channel, &mut tx, &chat).await;
    chat.stop.cancelled().await;
    drop(tx);
    reader
        .await
        .unwrap_or_else(|error| Received { error: Some(format!("reader failed: {error}")), ..Received::default() })
}

async fn failed(ready: &mpsc::Sender<Result<(), String>>, error: String) -> Received {
    // The run may have stopped waiting already; then nobody needs the message.
    let _ = ready.send(Err(error.clone())).await;
    Received { error: Some(error), ..Received::default() }
}

async fn join(target: &Target, channel: &str) -> anyhow::Result<Ws> {
    let (mut ws, socket_id) = socket::connect(target).await?;
    let auth = target.channel_auth(&socket_id, channel, None);
    socket::subscribe(&mut ws, channel, Some(&auth), None, |_| {}).await?;
    Ok(ws)
}

/// Sends this member's messages at their intended times; stops early at the stop signal or
/// the deadline.
async fn send_all<W>(seat: Seat, channel: &str, tx: &mut fastwebsockets::WebSocketWrite<W>, chat: &Chat)
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut start = chat.start.clone();
    let start_ns = tokio::select! {
        // Cancel safety: both branches only wait.
        _ = chat.stop.cancelled() => return,
        start = start.wait_for(|s| *s > 0) => match start {
            Ok(s) => *s,
            Err(_) => return,
        },
    };
    let offset_ns = chat.interval_ns * seat.index as u64 / chat.total_members.max(1) as u64;
    let channel = serde_json::to_string(channel).unwrap_or_default();
    for k in 0..chat.messages {
        let intended_ns = start_ns + offset_ns + k * chat.interval_ns;
        let due = Instant::from_std(chat.clock.instant_at(intended_ns));
        if due >= chat.deadline {
            return;
        }
        tokio::select! {
            // Cancel safety: both branches only wait.
            _ = chat.stop.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        let seq = seat.slot as u64 * chat.messages + k;
        let data = payload::event_data(seq, intended_ns, 0);
        let message = format!(r#"{{"event":"client-msg","channel":{channel},"data":{data}}}"#);
        if tx.write_frame(Frame::text(Payload::Owned(message.into_bytes()))).await.is_err() {
            // The socket is gone: this message and the rest are not sent.
            chat.send_failures.fetch_add(chat.messages - k, Ordering::Relaxed);
            return;
        }
        chat.sent.fetch_add(1, Ordering::Relaxed);
    }
}

/// Receives until the stop signal, timing every message from another member.
async fn receive(seat: Seat, mut rx: WebSocketRead<ReadHalf<Io>>, chat: Arc<Chat>) -> Received {
    let mut out = Received { joined: true, ..Received::default() };
    let mut seen = SeenSet::new(chat.members as u64 * chat.messages);
    let own = seat.slot as u64 * chat.messages..(seat.slot as u64 + 1) * chat.messages;
    // The reader cannot write; frames the protocol obliges it to answer are dropped (the
    // writer's messages keep the connection active, and runs are short).
    let mut obligated = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
    let stopped = chat.stop.cancelled();
    tokio::pin!(stopped);
    loop {
        // Cancel safety: if `stop` wins, the half-read frame is lost, but the read half is
        // dropped right after and never read again.
        let frame = tokio::select! {
            biased;
            _ = &mut stopped => break,
            frame = rx.read_frame(&mut obligated) => frame,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                out.error = Some(format!("read failed: {error}"));
                break;
            }
        };
        match frame.opcode {
            OpCode::Text => {
                let now = chat.clock.now_ns();
                let Some((seq, sent_ns)) = payload::scan(&frame.payload) else {
                    if memmem::find(&frame.payload, b"pusher:error").is_some() {
                        out.server_errors += 1;
                        out.first_server_error.get_or_insert_with(|| String::from_utf8_lossy(&frame.payload).into());
                    }
                    continue;
                };
                if own.contains(&seq) {
                    out.echoes += 1;
                    continue;
                }
                match seen.insert(seq) {
                    Some(true) => {
                        out.unique += 1;
                        chat.recorder.record(seat.index, now.saturating_sub(sent_ns));
                    }
                    Some(false) => out.duplicates += 1,
                    None => out.foreign += 1,
                }
            }
            OpCode::Close => {
                out.error = Some(format!("closed by server with code {}", socket::close_code(&frame.payload)));
                break;
            }
            _ => {}
        }
    }
    out
}
