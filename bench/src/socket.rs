//! One Pusher client connection's handshake: TCP connect, WebSocket upgrade,
//! `pusher:connection_established` (which names the socket id) and `pusher:subscribe`, public
//! or signed (private and presence channels).
//!
//! Every wait here reads at most [`MAX_HANDSHAKE_FRAMES`] frames; the caller bounds it in time.
//! What a connection does after subscribing belongs to the scenario, not to this module.

use anyhow::{bail, Context};
use bytes::Bytes;
use fastwebsockets::{handshake, Frame, OpCode, Payload, WebSocket};
use http_body_util::Empty;
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::upgrade::Upgraded;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use memchr::memmem;
use tokio::net::TcpStream;

use crate::target::Target;

pub type Ws = WebSocket<TokioIo<Upgraded>>;

/// Frames a server may send before the one we wait for during the handshake.
pub const MAX_HANDSHAKE_FRAMES: usize = 16;
/// Largest message accepted from the server.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// TCP connect, WebSocket upgrade and `connection_established`; returns the socket id.
pub async fn connect(target: &Target) -> anyhow::Result<(Ws, String)> {
    let stream = TcpStream::connect(target.ws.addr).await.context("TCP connect")?;
    stream.set_nodelay(true)?;
    let request = Request::builder()
        .method("GET")
        .uri(target.ws_path())
        .header(HOST, &target.ws.authority)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "upgrade")
        .header("Sec-WebSocket-Key", handshake::generate_key())
        .header("Sec-WebSocket-Version", "13")
        .body(Empty::<Bytes>::new())?;
    let (mut ws, _) = handshake::client(&TokioExecutor::new(), request, stream).await.context("WebSocket upgrade")?;
    ws.set_max_message_size(MAX_MESSAGE_BYTES);
    let established = expect_event(&mut ws, "pusher:connection_established", |_| {}).await?;
    let socket_id = socket_id(&established).context("connection_established without a socket_id")?;
    Ok((ws, socket_id))
}

/// Sends `pusher:subscribe` and waits for `subscription_succeeded`. `seen` is shown every
/// other text frame that arrives meanwhile (a presence member may count `member_added`).
pub async fn subscribe(
    ws: &mut Ws,
    channel: &str,
    auth: Option<&str>,
    channel_data: Option<&str>,
    seen: impl FnMut(&[u8]),
) -> anyhow::Result<()> {
    let message = subscribe_message(channel, auth, channel_data)?;
    ws.write_frame(Frame::text(Payload::Owned(message.into_bytes()))).await?;
    expect_event(ws, "pusher_internal:subscription_succeeded", seen).await.map(drop)
}

/// The `pusher:subscribe` message; `channel_data` is a JSON text sent as a string, as
/// pusher-js sends it.
fn subscribe_message(channel: &str, auth: Option<&str>, channel_data: Option<&str>) -> serde_json::Result<String> {
    let mut data = serde_json::json!({ "channel": channel, "auth": auth.unwrap_or("") });
    if let Some(channel_data) = channel_data {
        data["channel_data"] = channel_data.into();
    }
    serde_json::to_string(&serde_json::json!({ "event": "pusher:subscribe", "data": data }))
}

/// Reads until a text frame naming `event` and returns its payload; a `pusher:error` or a
/// close fails. Other text frames are shown to `seen`.
async fn expect_event(ws: &mut Ws, event: &str, mut seen: impl FnMut(&[u8])) -> anyhow::Result<Vec<u8>> {
    for _ in 0..MAX_HANDSHAKE_FRAMES {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text if memmem::find(&frame.payload, event.as_bytes()).is_some() => {
                return Ok(frame.payload.to_vec())
            }
            OpCode::Text if memmem::find(&frame.payload, b"pusher:error").is_some() => {
                bail!("server refused: {}", String::from_utf8_lossy(&frame.payload))
            }
            OpCode::Text => seen(&frame.payload),
            OpCode::Close => bail!("closed by server with code {}", close_code(&frame.payload)),
            _ => {}
        }
    }
    bail!("no {event} within {MAX_HANDSHAKE_FRAMES} frames")
}

/// The socket id in a `connection_established` frame, whose `data` is a JSON string.
fn socket_id(frame: &[u8]) -> Option<String> {
    let outer: serde_json::Value = serde_json::from_slice(frame).ok()?;
    let data = match &outer["data"] {
        serde_json::Value::String(text) => serde_json::from_str(text).ok()?,
        other => other.clone(),
    };
    Some(data.get("socket_id")?.as_str()?.to_string())
}

/// Answers a server's `pusher:ping`.
pub async fn answer_ping(ws: &mut Ws) -> Result<(), fastwebsockets::WebSocketError> {
    let pong = br#"{"event":"pusher:pong","data":{}}"#;
    ws.write_frame(Frame::text(Payload::Borrowed(pong))).await
}

/// The status code of a close frame (1005 when it carries none).
pub fn close_code(payload: &[u8]) -> u16 {
    match payload {
        [high, low, ..] => u16::from_be_bytes([*high, *low]),
        _ => 1005,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_id_is_read_from_the_data_string() {
        let frame =
            br#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"12.34\",\"activity_timeout\":120}"}"#;
        assert_eq!(socket_id(frame).as_deref(), Some("12.34"));
        assert_eq!(socket_id(br#"{"event":"x","data":"{}"}"#), None);
    }

    #[test]
    fn presence_subscribe_carries_auth_and_channel_data_as_a_string() {
        let message = subscribe_message("presence-a", Some("k:s"), Some(r#"{"user_id":"u1"}"#)).expect("json");
        let value: serde_json::Value = serde_json::from_str(&message).expect("parse");
        assert_eq!(value["data"]["auth"], "k:s");
        assert_eq!(value["data"]["channel_data"], r#"{"user_id":"u1"}"#);
        let public = subscribe_message("bench-0", None, None).expect("json");
        let value: serde_json::Value = serde_json::from_str(&public).expect("parse");
        assert_eq!(value, serde_json::json!({"event": "pusher:subscribe", "data": {"channel": "bench-0", "auth": ""}}));
    }
}
