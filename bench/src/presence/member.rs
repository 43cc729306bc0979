//! One presence member: connect, sign its own presence subscription, join, then count the
//! `member_added` and `member_removed` frames it receives until told to leave.
//!
//! One task per member owns its socket. Counts go to the shared [`Roster`]; the removals each
//! member has seen are kept per member, so the run can let member `i` leave only after it saw
//! every earlier leave (which makes the expected count exact).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fastwebsockets::{Frame, OpCode};
use memchr::memmem;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::socket::{self, Ws};
use crate::target::Target;

const MEMBER_ADDED: &[u8] = b"pusher_internal:member_added";
const MEMBER_REMOVED: &[u8] = b"pusher_internal:member_removed";

/// What every member of a run shares.
#[derive(Debug)]
pub struct Roster {
    pub target: Target,
    pub channel: String,
    pub clock: Clock,
    /// `member_added` frames received by anyone.
    pub added: AtomicU64,
    /// `member_removed` frames received by anyone.
    pub removed: AtomicU64,
    /// `member_removed` frames received by each member.
    pub removed_seen: Vec<AtomicU64>,
    /// When the last member frame arrived, in [`Clock`] nanoseconds.
    pub last_event_ns: AtomicU64,
    /// Woken whenever a member sees a removal.
    pub progress: Notify,
    pub stop: CancellationToken,
    pub deadline: Instant,
}

/// How one member's run ended.
#[derive(Debug, Default)]
pub struct MemberOutcome {
    pub joined: bool,
    /// Why the member failed or its socket ended before it was told to leave.
    pub error: Option<String>,
}

/// Joins as user `u{index}`, reports on `ready`, counts member frames until `leave` fires
/// (then closes the socket with 1000) or the run stops.
pub async fn run(
    index: usize,
    roster: Arc<Roster>,
    permit: OwnedSemaphorePermit,
    ready: mpsc::Sender<Result<(), String>>,
    leave: oneshot::Receiver<()>,
) -> MemberOutcome {
    let joined = tokio::time::timeout_at(roster.deadline, join(index, &roster)).await;
    drop(permit);
    let result = match joined {
        Ok(Ok(ws)) => Ok(ws),
        Ok(Err(error)) => Err(format!("{error:#}")),
        Err(_) => Err("timed out joining".to_string()),
    };
    let ws = match result {
        Ok(ws) => ws,
        Err(error) => {
            // The run may have stopped waiting already; then nobody needs the message.
            let _ = ready.send(Err(error.clone())).await;
            return MemberOutcome { joined: false, error: Some(error) };
        }
    };
    let _ = ready.send(Ok(())).await;
    drop(ready);
    let error = listen(index, ws, &roster, leave).await;
    MemberOutcome { joined: true, error }
}

/// Connects and subscribes with a signed `channel_data` naming user `u{index}`.
async fn join(index: usize, roster: &Roster) -> anyhow::Result<Ws> {
    let (mut ws, socket_id) = socket::connect(&roster.target).await?;
    let channel_data = format!(r#"{{"user_id":"u{index}","user_info":{{}}}}"#);
    let auth = roster.target.channel_auth(&socket_id, &roster.channel, Some(&channel_data));
    // A member_added may race the subscription_succeeded; it is counted all the same.
    socket::subscribe(&mut ws, &roster.channel, Some(&auth), Some(&channel_data), |frame| count(index, roster, frame))
        .await?;
    Ok(ws)
}

/// Counts member frames until told to leave or to stop; returns why it ended otherwise.
async fn listen(index: usize, mut ws: Ws, roster: &Roster, mut leave: oneshot::Receiver<()>) -> Option<String> {
    let stopped = roster.stop.cancelled();
    tokio::pin!(stopped);
    loop {
        // Cancel safety: `read_frame` is not cancel-safe, but when another branch wins the
        // socket is closed and dropped right after, never read again. The oneshot receiver
        // and the cancellation future are cancel-safe.
        let frame = tokio::select! {
            biased;
            _ = &mut stopped => return None,
            _ = &mut leave => {
                // A failed close still ends the member: the socket is dropped either way.
                let _ = ws.write_frame(Frame::close(1000, b"")).await;
                return None;
            }
            frame = ws.read_frame() => frame,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => return Some(format!("read failed: {error}")),
        };
        match frame.opcode {
            OpCode::Text if memmem::find(&frame.payload, b"\"pusher:ping\"").is_some() => {
                drop(frame);
                if socket::answer_ping(&mut ws).await.is_err() {
                    return Some("could not answer pusher:ping".into());
                }
            }
            OpCode::Text => count(index, roster, &frame.payload),
            OpCode::Close => return Some(format!("closed by server with code {}", socket::close_code(&frame.payload))),
            _ => {}
        }
    }
}

fn count(index: usize, roster: &Roster, frame: &[u8]) {
    if memmem::find(frame, MEMBER_ADDED).is_some() {
        roster.added.fetch_add(1, Ordering::Relaxed);
    } else if memmem::find(frame, MEMBER_REMOVED).is_some() {
        roster.removed.fetch_add(1, Ordering::Relaxed);
        roster.removed_seen[index].fetch_add(1, Ordering::Release);
        roster.progress.notify_waiters();
    } else {
        return;
    }
    roster.last_event_ns.fetch_max(roster.clock.now_ns(), Ordering::Relaxed);
}
