//! One subscribed WebSocket connection: handshake, subscribe, then receive and time events.
//!
//! One task per connection, nothing else per connection: the task owns its socket, reads and
//! (rarely) writes on it, and keeps its own loss and duplicate bookkeeping. It never parses
//! JSON on the hot path (see `payload::scan`). It stops at the run's stop signal, after which
//! the socket is dropped — the only reason a not-cancel-safe `read_frame` may sit in `select!`.

use std::sync::Arc;

use fastwebsockets::OpCode;
use memchr::memmem;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::payload;
use crate::recorder::{Recorder, SeenSet};
use crate::socket::{self, Ws};
use crate::target::Target;

/// What every connection of a run shares.
#[derive(Debug)]
pub struct Shared {
    pub target: Target,
    pub clock: Clock,
    pub recorder: Recorder,
    /// Events per connection this run expects (sequence numbers `0..events`).
    pub events: u64,
    pub stop: CancellationToken,
    pub deadline: Instant,
}

/// What one connection saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub subscribed: bool,
    /// Why the connection failed or ended before the stop signal.
    pub error: Option<String>,
    pub unique: u64,
    pub duplicates: u64,
    /// Stamped frames whose sequence number is outside this run.
    pub foreign: u64,
    /// Earliest intended send time among the events received (`u64::MAX` if none).
    pub first_sent_ns: u64,
    pub last_receive_ns: u64,
}

impl Outcome {
    pub fn failed(error: String) -> Self {
        Self { error: Some(error), first_sent_ns: u64::MAX, ..Self::default() }
    }
}

/// Connects, subscribes to `channel`, reports readiness on `ready`, then receives until stopped.
pub async fn run(
    index: usize,
    channel: String,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
    ready: mpsc::Sender<Result<(), String>>,
) -> Outcome {
    let opened = tokio::time::timeout_at(shared.deadline, open(&shared, &channel)).await;
    drop(permit);
    let ws = match opened {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => return failed(&ready, format!("{error:#}")).await,
        Err(_) => return failed(&ready, "timed out connecting".into()).await,
    };
    // The run may have stopped waiting already; a closed channel is not this task's concern.
    let _ = ready.send(Ok(())).await;
    drop(ready);
    receive(index, ws, &shared).await
}

async fn failed(ready: &mpsc::Sender<Result<(), String>>, error: String) -> Outcome {
    // The run may have stopped waiting already; then nobody needs the message.
    let _ = ready.send(Err(error.clone())).await;
    Outcome::failed(error)
}

/// Connects and subscribes to the public `channel`.
async fn open(shared: &Shared, channel: &str) -> anyhow::Result<Ws> {
    let (mut ws, _socket_id) = socket::connect(&shared.target).await?;
    socket::subscribe(&mut ws, channel, None, None, |_| {}).await?;
    Ok(ws)
}

/// Receives until the stop signal, timing every stamped event.
async fn receive(index: usize, mut ws: Ws, shared: &Shared) -> Outcome {
    let mut outcome = Outcome { subscribed: true, first_sent_ns: u64::MAX, ..Outcome::default() };
    let mut seen = SeenSet::new(shared.events);
    // One waiter registered for the whole loop, not one per frame.
    let stopped = shared.stop.cancelled();
    tokio::pin!(stopped);
    loop {
        // Cancel safety: if `stop` wins, the half-read frame is lost, but the socket is dropped
        // right after and never read again. `biased` lets the stop win a tie.
        let frame = tokio::select! {
            biased;
            _ = &mut stopped => break,
            frame = ws.read_frame() => frame,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                outcome.error = Some(format!("read failed: {error}"));
                break;
            }
        };
        match frame.opcode {
            OpCode::Text => {
                let now = shared.clock.now_ns();
                let Some((seq, sent_ns)) = payload::scan(&frame.payload) else {
                    let ping = memmem::find(&frame.payload, b"\"pusher:ping\"").is_some();
                    drop(frame);
                    if ping && socket::answer_ping(&mut ws).await.is_err() {
                        outcome.error = Some("could not answer pusher:ping".into());
                        break;
                    }
                    continue;
                };
                match seen.insert(seq) {
                    Some(true) => {
                        outcome.unique += 1;
                        outcome.last_receive_ns = now;
                        outcome.first_sent_ns = outcome.first_sent_ns.min(sent_ns);
                        shared.recorder.record(index, now.saturating_sub(sent_ns));
                    }
                    Some(false) => outcome.duplicates += 1,
                    None => outcome.foreign += 1,
                }
            }
            OpCode::Close => {
                outcome.error = Some(format!("closed by server with code {}", socket::close_code(&frame.payload)));
                break;
            }
            _ => {}
        }
    }
    outcome
}
