//! A socket's outbound queue: frames waiting to be written, bounded in bytes.
//!
//! Anyone may push (the channel registry during fan-out, the socket's own session); only the
//! socket's task takes frames out. Pushing never blocks and never waits on the socket. When a
//! push would take the queue past its byte limit the frame is refused and the outbox is
//! marked closing with 4100: a consumer that cannot keep up is disconnected (pusher-js backs
//! off a second and reconnects) rather than growing the server's memory or slowing anyone else.

use std::collections::VecDeque;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::frame::Frame;

/// The close code of a slow consumer: 4100, over capacity (pusher-js retries after a second).
const OVERFLOW_CLOSE_CODE: u16 = 4100;

/// Why a socket is being closed, decided by whoever closed its outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub message: String,
}

/// The outbox was already closing, or this push filled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// One socket's bounded outbound queue.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    ready: Notify,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Frame>,
    bytes: usize,
    closing: Option<CloseReason>,
}

/// What the socket's task should do next.
#[derive(Debug)]
pub enum Next {
    /// Write these frames, in order.
    Write(Vec<Frame>),
    /// Write what is left (may be empty), then close with this reason.
    Close(Vec<Frame>, CloseReason),
}

impl Outbox {
    /// An empty outbox holding at most `max_bytes` of frames.
    pub fn new(max_bytes: usize) -> Self {
        Self { state: Mutex::new(State::default()), ready: Notify::new(), max_bytes }
    }

    /// Queues `frame`. Refused when closing; a push that would exceed the limit closes the
    /// outbox with 4100 (slow consumer) and is refused.
    pub fn push(&self, frame: Frame) -> Result<(), Refused> {
        {
            let mut state = self.state.lock();
            if state.closing.is_some() {
                return Err(Refused);
            }
            if state.bytes + frame.len() > self.max_bytes {
                state.closing = Some(CloseReason {
                    code: OVERFLOW_CLOSE_CODE,
                    message: "Slow consumer: outbound queue full".into(),
                });
                state.frames.clear();
                state.bytes = 0;
                drop(state);
                self.ready.notify_one();
                return Err(Refused);
            }
            state.bytes += frame.len();
            state.frames.push_back(frame);
            // Frames already waiting mean the socket task has a wake-up pending (or is
            // draining and will look again under this lock): one notification is enough.
            if state.frames.len() > 1 {
                return Ok(());
            }
        }
        self.ready.notify_one();
        Ok(())
    }

    /// Asks the socket to close after writing what is queued. The first reason wins.
    pub fn close(&self, code: u16, message: impl Into<String>) {
        let mut state = self.state.lock();
        if state.closing.is_none() {
            state.closing = Some(CloseReason { code, message: message.into() });
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Whether the outbox was closed because it overflowed (a slow consumer).
    pub fn overflowed(&self) -> bool {
        self.state.lock().closing.as_ref().is_some_and(|r| r.code == OVERFLOW_CLOSE_CODE)
    }

    /// Whether the outbox is closing.
    pub fn is_closing(&self) -> bool {
        self.state.lock().closing.is_some()
    }

    /// Takes up to `max_frames` queued frames, or the close request once the queue is empty.
    /// `None` when there is nothing to do.
    pub fn take(&self, max_frames: usize) -> Option<Next> {
        let mut state = self.state.lock();
        if state.frames.is_empty() {
            return state.closing.clone().map(|reason| Next::Close(Vec::new(), reason));
        }
        let n = state.frames.len().min(max_frames);
        let frames: Vec<Frame> = state.frames.drain(..n).collect();
        state.bytes -= frames.iter().map(Frame::len).sum::<usize>();
        Some(Next::Write(frames))
    }

    /// Waits until there is something to [`take`](Self::take).
    ///
    /// Cancel safe: a wake-up that arrives while nobody waits is kept as a permit by `Notify`,
    /// and the state is checked before every wait.
    pub async fn ready(&self) {
        loop {
            {
                let state = self.state.lock();
                if !state.frames.is_empty() || state.closing.is_some() {
                    return;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Waits until the outbox is closing (used to abandon a write that cannot finish).
    pub async fn closing(&self) {
        loop {
            if self.is_closing() {
                return;
            }
            self.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_order() {
        let o = Outbox::new(1024);
        o.push(Frame::text("1")).unwrap();
        o.push(Frame::text("2")).unwrap();
        let Some(Next::Write(frames)) = o.take(10) else { panic!("expected frames") };
        assert_eq!(frames, vec![Frame::text("1"), Frame::text("2")]);
        assert!(o.take(10).is_none());
    }

    #[test]
    fn a_full_outbox_refuses_and_closes_with_4100() {
        let o = Outbox::new(10);
        o.push(Frame::text("12345")).unwrap();
        assert_eq!(o.push(Frame::text("12345")), Err(Refused));
        let Some(Next::Close(left, reason)) = o.take(10) else { panic!("expected close") };
        assert!(left.is_empty());
        assert_eq!(reason.code, 4100);
        assert_eq!(o.push(Frame::text("1")), Err(Refused));
    }

    #[test]
    fn close_after_queued_frames_are_taken() {
        let o = Outbox::new(1024);
        o.push(Frame::text("1")).unwrap();
        o.close(4200, "bye");
        assert!(matches!(o.take(10), Some(Next::Write(_))));
        assert!(matches!(o.take(10), Some(Next::Close(_, r)) if r.code == 4200));
    }

    #[tokio::test]
    async fn ready_returns_once_a_frame_is_pushed() {
        let o = std::sync::Arc::new(Outbox::new(1024));
        let waiter = tokio::spawn({
            let o = o.clone();
            async move { o.ready().await }
        });
        o.push(Frame::text("1")).unwrap();
        waiter.await.unwrap();
    }
}
