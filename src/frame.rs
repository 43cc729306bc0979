//! An event encoded once: the bytes of one WebSocket text frame, shared by every subscriber.
//!
//! Server frames are unmasked, so the same bytes are valid on every socket. Nothing here
//! knows about sockets; the framing itself is fastwebsockets'.

use bytes::Bytes;
use fastwebsockets::{Frame as WsFrame, OpCode, Payload};
use herald_protocol::ServerMessage;

/// One complete WebSocket frame, ready to write. Cloning it is a reference-count bump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// A complete frame that another herald node encoded.
    pub fn from_wire(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// Encodes `message` as a text frame.
    pub fn message(message: &ServerMessage<'_>) -> Self {
        Self::text(&message.to_json())
    }

    /// Encodes `json` as a text frame.
    pub fn text(json: &str) -> Self {
        Self::encode(WsFrame::text(Payload::Borrowed(json.as_bytes())))
    }

    /// A close frame with `code` and a reason (cut to the 123 bytes a close frame allows).
    pub fn close(code: u16, reason: &str) -> Self {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self::encode(WsFrame::close(code, &reason.as_bytes()[..end]))
    }

    /// A pong control frame echoing `payload`.
    pub fn pong(payload: &[u8]) -> Self {
        Self::encode(WsFrame::new(true, OpCode::Pong, None, Payload::Borrowed(payload)))
    }

    /// Encodes any fastwebsockets frame (used for the replies its reader obliges us to send).
    pub fn encode(mut frame: WsFrame<'_>) -> Self {
        let mut buf = Vec::with_capacity(frame.payload.len() + 14);
        let len = frame.write(&mut buf).len();
        buf.truncate(len);
        Self(Bytes::from(buf))
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length on the wire.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The frame's payload: its bytes after the header (server frames are unmasked, so the
    /// header is 2, 4 or 10 bytes).
    pub fn payload(&self) -> &[u8] {
        let header = match self.0.get(1).map(|b| b & 0x7f) {
            Some(126) => 4,
            Some(127) => 10,
            _ => 2,
        };
        self.0.get(header..).unwrap_or_default()
    }

    /// The payload of a text frame, `None` for any other frame: what a transport that is not
    /// a WebSocket (Server-Sent Events, the HTTP fallbacks) sends of it.
    pub fn text_payload(&self) -> Option<&[u8]> {
        let bytes = &self.0;
        let (first, second) = (*bytes.first()?, *bytes.get(1)?);
        // Only complete, unmasked text frames: the only text frames a server sends.
        if first != 0x81 || second & 0x80 != 0 {
            return None;
        }
        let (len, start): (usize, usize) = match second {
            126 => (usize::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)), 4),
            127 => (usize::try_from(u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)).ok()?, 10),
            n => (usize::from(n), 2),
        };
        bytes.get(start..start.checked_add(len)?)
    }

    /// Whether the frame is empty (never, for a real frame).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_frame_has_a_two_byte_header() {
        let f = Frame::text("{}");
        assert_eq!(f.bytes().as_ref(), &[0x81, 2, b'{', b'}']);
    }

    #[test]
    fn long_text_frame_uses_the_16_bit_length() {
        let json = "x".repeat(300);
        let f = Frame::text(&json);
        assert_eq!(&f.bytes()[..4], &[0x81, 126, 1, 44]);
        assert_eq!(f.len(), 304);
        assert_eq!(f.payload(), json.as_bytes());
        assert_eq!(Frame::text("{}").payload(), b"{}");
    }

    #[test]
    fn text_payload_reads_every_length_form() {
        for len in [0, 2, 125, 126, 300, 70_000] {
            let json = "x".repeat(len);
            assert_eq!(Frame::text(&json).text_payload(), Some(json.as_bytes()), "length {len}");
        }
    }

    #[test]
    fn control_frames_have_no_text_payload() {
        assert_eq!(Frame::close(4100, "Slow consumer").text_payload(), None);
        assert_eq!(Frame::pong(b"x").text_payload(), None);
        assert_eq!(Frame::from_wire(bytes::Bytes::from_static(&[0x81, 5, b'a'])).text_payload(), None);
    }

    #[test]
    fn close_frame_carries_code_and_reason() {
        let f = Frame::close(4201, "Pong reply not received in time");
        assert_eq!(f.bytes()[0], 0x88);
        assert_eq!(&f.bytes()[2..4], &4201u16.to_be_bytes());
    }
}
