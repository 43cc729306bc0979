//! The publish queue both adapters share: what waits to go to the other nodes, how it is
//! queued without blocking, and the loop that takes it out in batches. Each adapter only says
//! how one batch is sent (a Redis pipeline; NATS publishes and one flush).
//!
//! Every `publish*` call encodes one message (`adapter::wire`) and `try_send`s it into a
//! bounded queue (`publish_queue_capacity`). Full queue, or breaker open: the message is
//! dropped and counted (`publish_dropped`) — the caller has delivered locally already, and a
//! slow or absent backend must not stall it.

use std::future::Future;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::stats::{bump, Counters};

/// Messages in one batch at most.
pub(crate) const MAX_BATCH: usize = 128;

/// One entry of the publish queue.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// `message` (already encoded) to the topic or subject `topic`.
    Publish { topic: String, message: Bytes },
    /// Write this node's connection count of the app (after a release).
    WriteConns { app: String },
}

/// Queues `item` without waiting; a publish that does not fit is dropped and counted.
pub(crate) fn enqueue(queue: &mpsc::Sender<Outgoing>, counters: &Counters, item: Outgoing) {
    match queue.try_send(item) {
        Ok(()) => {}
        Err(TrySendError::Full(Outgoing::Publish { .. }) | TrySendError::Closed(Outgoing::Publish { .. })) => {
            bump(&counters.publish_dropped, 1);
        }
        // The next heartbeat writes the count anyway.
        Err(_) => {}
    }
}

/// The publisher task's loop: takes what is queued, up to [`MAX_BATCH`] at a time, and hands
/// each batch to `send`. Cancel-safety: `recv` is the only `select!` branch besides the
/// token, and it is cancel-safe; a batch in flight finishes (bounded by the adapter's command
/// timeout). On shutdown, what is queued then is sent once more (one bounded attempt each).
pub(crate) async fn drain<F, Fut>(mut rx: mpsc::Receiver<Outgoing>, shutdown: CancellationToken, mut send: F)
where
    F: FnMut(Vec<Outgoing>) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            item = rx.recv() => match item {
                Some(item) => item,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        send(batch).await;
    }
    let mut rest = Vec::new();
    while let Ok(item) = rx.try_recv() {
        rest.push(item);
        if rest.len() == MAX_BATCH {
            send(std::mem::take(&mut rest)).await;
        }
    }
    if !rest.is_empty() {
        send(rest).await;
    }
}
