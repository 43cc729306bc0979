//! The read side of a socket, handed to fastwebsockets one frame at a time.
//!
//! fastwebsockets gives each reader an 8 KiB buffer up front and reads as much as the socket
//! has into it, so a reader that lives as long as its connection keeps 8 KiB per idle socket —
//! about half of herald's memory per idle connection (bench/RESULTS.md). [`FrameGate`] lets
//! the connection hold no reader while it waits: it reads a frame's header itself (only to
//! learn where the frame ends; every check and the unmasking stay fastwebsockets'), and then
//! passes fastwebsockets the header and at most that frame's payload. So after each frame the
//! reader's buffer is empty and can be dropped; the next one is made when the next frame
//! starts arriving.
//!
//! The price: two or three smaller reads per inbound frame instead of one. Inbound traffic is
//! the light direction of this protocol (subscriptions, pings, client events); the heavy one,
//! fan-out, does not pass here.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Longest frame header: 2 bytes, an 8-byte extended length, a 4-byte mask key.
const MAX_HEADER: usize = 14;

/// An [`AsyncRead`] that never yields bytes past the end of the current WebSocket frame.
#[derive(Debug)]
pub struct FrameGate<R> {
    inner: R,
    /// The current frame's header, as read so far.
    head: [u8; MAX_HEADER],
    head_len: usize,
    /// How much of `head` has been handed on.
    head_given: usize,
    /// Payload bytes of the current frame still to hand on; `None` while its header is
    /// incomplete.
    body_left: Option<u64>,
}

impl<R: AsyncRead + Unpin> FrameGate<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, head: [0; MAX_HEADER], head_len: 0, head_given: 0, body_left: Some(0) }
    }

    /// Waits until the next frame's header has arrived (cancel safe: what was read stays in
    /// the gate). `Ok(false)` at end of stream between frames.
    pub async fn next_frame_arrived(&mut self) -> io::Result<bool> {
        std::future::poll_fn(|cx| self.poll_header(cx)).await
    }

    /// Whether the current frame has been handed on completely.
    fn at_boundary(&self) -> bool {
        self.body_left == Some(0) && self.head_given == self.head_len
    }

    /// Reads the next frame's header into `head` (never more). `Ok(false)`: end of stream
    /// before any byte of it.
    fn poll_header(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.at_boundary() {
            self.head_len = 0;
            self.head_given = 0;
            self.body_left = None;
        }
        while self.body_left.is_none() {
            let want = header_len(&self.head[..self.head_len]);
            let mut buf = ReadBuf::new(&mut self.head[self.head_len..want]);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut buf))?;
            let n = buf.filled().len();
            if n == 0 {
                if self.head_len == 0 {
                    self.body_left = Some(0);
                    return Poll::Ready(Ok(false));
                }
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            self.head_len += n;
            if self.head_len == header_len(&self.head[..self.head_len]) {
                self.body_left = Some(payload_len(&self.head[..self.head_len]));
            }
        }
        Poll::Ready(Ok(true))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for FrameGate<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at_boundary() || this.body_left.is_none() {
            // A reader asking past the frame: the next frame's header comes first. At end of
            // stream this yields nothing, which the reader sees as EOF.
            if !ready!(this.poll_header(cx))? {
                return Poll::Ready(Ok(()));
            }
        }
        if this.head_given < this.head_len {
            let n = (this.head_len - this.head_given).min(buf.remaining());
            buf.put_slice(&this.head[this.head_given..this.head_given + n]);
            this.head_given += n;
            return Poll::Ready(Ok(()));
        }
        let left = this.body_left.unwrap_or(0);
        let limit = usize::try_from(left).unwrap_or(usize::MAX).min(buf.remaining());
        // Read through a view of exactly `limit` bytes (zeroed first where not yet
        // initialised: no unsafe, and no more than the bytes about to be read).
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(limit));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        buf.advance(n);
        this.body_left = Some(left - n as u64);
        Poll::Ready(Ok(()))
    }
}

/// The header's full length, known from its first two bytes (2 until they are there).
fn header_len(head: &[u8]) -> usize {
    let Some(&b1) = head.get(1) else { return 2 };
    let extended = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// The payload length a complete header announces.
fn payload_len(head: &[u8]) -> u64 {
    match head[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => u64::from_be_bytes([head[2], head[3], head[4], head[5], head[6], head[7], head[8], head[9]]),
        n => u64::from(n),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// A masked client frame with `payload` (mask key zero, so the payload is as given).
    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x81];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn a_reader_never_gets_bytes_past_the_current_frame() {
        let (a, b, c) = (frame(b"first"), frame(&[7u8; 300]), frame(&[9u8; 70_000]));
        let wire = [a.clone(), b.clone(), c.clone()].concat();
        let mut gate = FrameGate::new(&wire[..]);
        for expected in [a, b, c] {
            assert!(gate.next_frame_arrived().await.expect("read"));
            let mut got = Vec::new();
            let mut chunk = [0u8; 8192];
            while got.len() < expected.len() {
                let n = gate.read(&mut chunk).await.expect("read");
                assert!(n > 0, "the frame ended early");
                got.extend_from_slice(&chunk[..n]);
            }
            assert_eq!(got, expected, "exactly one frame, header included");
            assert!(gate.at_boundary());
        }
        assert!(!gate.next_frame_arrived().await.expect("read"), "end of stream between frames");
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_header_is_an_error() {
        let wire = [0x81u8, 0x80 | 126, 0x01];
        let mut gate = FrameGate::new(&wire[..]);
        assert_eq!(gate.next_frame_arrived().await.expect_err("cut").kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn header_lengths_follow_rfc_6455() {
        assert_eq!(header_len(&[]), 2);
        assert_eq!(header_len(&[0x81, 5]), 2);
        assert_eq!(header_len(&[0x81, 0x85]), 6);
        assert_eq!(header_len(&[0x81, 0x80 | 126]), 8);
        assert_eq!(header_len(&[0x81, 0x80 | 127]), 14);
        assert_eq!(payload_len(&[0x81, 0x80 | 126, 1, 0, 0, 0, 0, 0]), 256);
    }
}
