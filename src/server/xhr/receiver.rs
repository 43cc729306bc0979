//! A response waiting for lines (streaming or polling): the sending end of its body, how
//! much pusher-js has read from it, and the two waits the session's task selects on.

use bytes::Bytes;
use tokio::sync::mpsc::{self, OwnedPermit};

use super::framing;
use super::transport::STREAM_LIMIT_UTF16;
use crate::outbox::Outbox;

/// How a receiver is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Stays open; every line goes into it.
    Streaming,
    /// Answered with the first line(s) available, then ended.
    Polling,
}

/// A response waiting for lines: the sending end of its body.
#[derive(Debug)]
pub struct Receiver {
    pub(super) chunks: mpsc::Sender<Bytes>,
    pub(super) delivery: Delivery,
    /// UTF-16 code units written so far (how pusher-js counts).
    pub(super) written: usize,
}

impl Receiver {
    pub fn new(chunks: mpsc::Sender<Bytes>, delivery: Delivery) -> Self {
        Self { chunks, delivery, written: 0 }
    }

    /// A streaming response past pusher-js's limit waits for its replacement.
    pub(super) fn is_full(&self) -> bool {
        self.delivery == Delivery::Streaming && self.written > STREAM_LIMIT_UTF16
    }

    /// Writes `line` if the response has room; a response that is not read is skipped.
    pub(super) fn try_write(&mut self, line: Bytes) {
        let len = framing::utf16_len(&line);
        if self.chunks.try_send(line).is_ok() {
            self.written += len;
        }
    }
}

/// A place in the receiver's chunk channel once the outbox has something to deliver; `None`
/// when the response is gone, or when it is not read while the session is being closed.
pub(super) async fn writable(outbox: &Outbox, chunks: Option<mpsc::Sender<Bytes>>) -> Option<OwnedPermit<Bytes>> {
    let chunks = chunks?;
    outbox.ready().await;
    let closing_before = outbox.is_closing();
    tokio::select! {
        permit = chunks.reserve_owned() => permit.ok(),
        () = outbox.closing(), if !closing_before => None,
    }
}

/// Completes when the response behind `chunks` is gone (the client aborted or finished it).
pub(super) async fn response_gone(chunks: Option<mpsc::Sender<Bytes>>) {
    match chunks {
        Some(chunks) => chunks.closed().await,
        None => std::future::pending().await,
    }
}
