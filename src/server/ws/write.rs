//! Writing to the socket: what the outbox hands out goes out in as few syscalls as the kernel
//! allows (one `writev` for up to 64 frames), and a close is preceded by the `pusher:error`
//! Pusher clients expect. A write stuck on a reader that stopped reading is abandoned as soon
//! as the outbox closes.

use std::time::Duration;

use bytes::Buf;
use herald_protocol::ServerMessage;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::connection::Ended;
use crate::frame::Frame;
use crate::metrics::AppMetrics;
use crate::outbox::{Next, Outbox};

/// How long the last frames and the close frame may take to write.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Writes what the outbox handed out; `Some` when the connection is over.
pub(super) async fn flush<W: AsyncWrite + Unpin>(
    writer: &mut W,
    next: Option<Next>,
    outbox: &Outbox,
    metrics: &AppMetrics,
) -> Option<Ended> {
    match next {
        None => None,
        Some(Next::Write(frames)) => {
            metrics.messages_sent.inc_by(frames.len() as u64);
            metrics.transmitted_bytes.inc_by(frames.iter().map(|f| f.len() as u64).sum());
            (!write_frames(writer, frames, outbox).await).then_some(Ended::Gone)
        }
        Some(Next::Close(mut frames, reason)) => {
            // Pusher codes are announced as `pusher:error` before the close, as Pusher does.
            if (4000..4300).contains(&reason.code) {
                let error = ServerMessage::Error { code: Some(reason.code), message: &reason.message };
                frames.push(Frame::message(&error));
            }
            // A reader that stopped reading may never take these: bounded by a deadline.
            frames.push(Frame::close(reason.code, &reason.message));
            let _ = tokio::time::timeout(CLOSE_WRITE_TIMEOUT, write_frames(writer, frames, outbox)).await;
            Some(Ended::Closed(reason))
        }
    }
}

/// Writes `frames` with as few syscalls as the kernel allows. Gives up (false) when the
/// socket fails, or when the outbox is closed while a write is stuck on a slow reader.
async fn write_frames<W: AsyncWrite + Unpin>(writer: &mut W, frames: Vec<Frame>, outbox: &Outbox) -> bool {
    if frames.is_empty() {
        return true;
    }
    let mut buf = FrameBuf::new(frames);
    let closing_before = outbox.is_closing();
    tokio::select! {
        result = writer.write_all_buf(&mut buf) => result.is_ok(),
        // A slow reader whose outbox overflowed: abandon the write, the connection is dropped.
        () = outbox.closing(), if !closing_before => false,
    }
}

/// Queued frames seen as one buffer, so a single `writev` can send many of them.
struct FrameBuf {
    frames: Vec<Frame>,
    index: usize,
    offset: usize,
    remaining: usize,
}

impl FrameBuf {
    fn new(frames: Vec<Frame>) -> Self {
        let remaining = frames.iter().map(Frame::len).sum();
        Self { frames, index: 0, offset: 0, remaining }
    }
}

impl Buf for FrameBuf {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.frames.get(self.index).map_or(&[], |f| &f.bytes()[self.offset..])
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [std::io::IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut offset = self.offset;
        for frame in self.frames[self.index..].iter() {
            if n == dst.len() {
                break;
            }
            dst[n] = std::io::IoSlice::new(&frame.bytes()[offset..]);
            offset = 0;
            n += 1;
        }
        n
    }

    fn advance(&mut self, mut cnt: usize) {
        self.remaining -= cnt;
        while cnt > 0 {
            let left = self.frames[self.index].len() - self.offset;
            if cnt < left {
                self.offset += cnt;
                return;
            }
            cnt -= left;
            self.index += 1;
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_buf_advances_across_frames() {
        let mut buf = FrameBuf::new(vec![Frame::text("ab"), Frame::text("cde")]);
        assert_eq!(buf.remaining(), 9);
        buf.advance(3);
        assert_eq!(buf.chunk(), b"b");
        buf.advance(1);
        assert_eq!(buf.chunk()[2..], *b"cde");
        let mut slices = [std::io::IoSlice::new(&[]); 4];
        assert_eq!(buf.chunks_vectored(&mut slices), 1);
        buf.advance(5);
        assert_eq!(buf.remaining(), 0);
    }
}
