//! The `text/event-stream` bytes herald writes (docs/sse.md): a `retry:` hint first, then
//! one message per Pusher frame — `data: <the frame's JSON>` and a blank line, no `event:`
//! field, so `EventSource.onmessage` sees every frame — and `: keep-alive` comments. Pure.

use bytes::Bytes;
use herald_protocol::ServerMessage;

use super::resume::Positions;
use crate::frame::Frame;
use crate::outbox::CloseReason;

/// The reconnection delay suggested to `EventSource`, in milliseconds (pusher-js waits about
/// as long before it reconnects a slow consumer).
pub const RETRY_MS: u32 = 1000;

/// A comment line: ignored by every client, it keeps proxies from timing the stream out.
pub const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// The first bytes of every stream.
pub fn preamble() -> Bytes {
    Bytes::from(format!("retry: {RETRY_MS}\n\n"))
}

/// `frames` as SSE messages, in one buffer. A message that moves a history channel's position
/// gets an `id:` line naming them all (`resume.rs`). Frames that are not text (none are
/// queued for an event stream) are skipped.
pub fn messages(frames: &[Frame], positions: &mut Positions) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames.iter().map(|f| f.len() + 8).sum());
    for payload in frames.iter().filter_map(Frame::text_payload) {
        if positions.observe(payload) {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(positions.id().as_bytes());
            out.push(b'\n');
        }
        push_message(&mut out, payload);
    }
    out
}

/// The last message of a stream the server ends: `pusher:error` with the close code and
/// reason, as a WebSocket gets before its close frame.
pub fn closing(reason: &CloseReason) -> Vec<u8> {
    let error = ServerMessage::Error { code: Some(reason.code), message: &reason.message };
    let mut out = Vec::new();
    push_message(&mut out, error.to_json().as_bytes());
    out
}

/// One message: a `data:` line per line of `json` (herald's JSON has none, but a line break
/// inside a message would otherwise end it), then the blank line that dispatches it.
fn push_message(out: &mut Vec<u8>, json: &[u8]) {
    for line in json.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_frame_is_one_data_line_and_a_blank_line() {
        let frames = [Frame::text(r#"{"event":"a","channel":"c","data":"1"}"#), Frame::text("{}")];
        let out = messages(&frames, &mut Positions::default());
        assert_eq!(out, b"data: {\"event\":\"a\",\"channel\":\"c\",\"data\":\"1\"}\n\ndata: {}\n\n");
    }

    #[test]
    fn control_frames_are_not_sent() {
        assert!(messages(&[Frame::close(4100, "x"), Frame::pong(b"")], &mut Positions::default()).is_empty());
    }

    #[test]
    fn a_line_break_inside_a_frame_continues_the_message() {
        assert_eq!(messages(&[Frame::text("{\n}\r\n")], &mut Positions::default()), b"data: {\ndata: }\ndata: \n\n");
    }

    #[test]
    fn the_closing_message_is_pusher_error_with_the_code() {
        let reason = CloseReason { code: 4200, message: "Server shutting down".into() };
        let out = closing(&reason);
        assert_eq!(
            out,
            b"data: {\"event\":\"pusher:error\",\"data\":{\"code\":4200,\"message\":\"Server shutting down\"}}\n\n"
        );
    }

    #[test]
    fn the_preamble_is_a_retry_hint() {
        assert_eq!(preamble(), Bytes::from_static(b"retry: 1000\n\n"));
    }
}
