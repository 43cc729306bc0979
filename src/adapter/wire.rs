//! The cluster message: `kind (1) | origin node (16) | except socket id (8) | payload`. Pure.
//!
//! The except socket id is two big-endian u32 (`high`, `low`), all zeros for none; the payload
//! is the already-encoded WebSocket frame, so a receiving node fans out bytes untouched.

use bytes::{BufMut, Bytes, BytesMut};
use herald_protocol::SocketId;

use crate::adapter::NodeId;

const HEADER: usize = 1 + 16 + 8;

/// What a message asks the receiving node to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Deliver to local subscribers of the topic's channel.
    Channel = 1,
    /// Deliver to local sockets signed in as the topic's user.
    User = 2,
    /// Close local sockets signed in as the topic's user.
    Terminate = 3,
    /// Deliver to local sockets watching the topic's user.
    Watch = 4,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Channel,
            2 => Self::User,
            3 => Self::Terminate,
            4 => Self::Watch,
            _ => return None,
        })
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Message {
    pub kind: Kind,
    pub origin: NodeId,
    pub except: Option<SocketId>,
    pub payload: Bytes,
}

pub(crate) fn encode(kind: Kind, origin: NodeId, except: Option<SocketId>, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER + payload.len());
    out.put_u8(kind as u8);
    out.put_slice(&origin.0);
    let (high, low) = except.map(|s| (s.high(), s.low())).unwrap_or((0, 0));
    out.put_u32(high);
    out.put_u32(low);
    out.put_slice(payload);
    out.freeze()
}

/// `None` for a message too short or of an unknown kind (another version's, or garbage).
pub(crate) fn decode(bytes: Bytes) -> Option<Message> {
    if bytes.len() < HEADER {
        return None;
    }
    let kind = Kind::from_byte(bytes[0])?;
    let mut origin = [0u8; 16];
    origin.copy_from_slice(&bytes[1..17]);
    let high = u32::from_be_bytes(bytes[17..21].try_into().ok()?);
    let low = u32::from_be_bytes(bytes[21..25].try_into().ok()?);
    let except = (high != 0 || low != 0).then(|| SocketId::new(high, low));
    Some(Message { kind, origin: NodeId(origin), except, payload: bytes.slice(HEADER..) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_with_and_without_except() {
        let node = NodeId([7; 16]);
        for except in [None, Some(SocketId::new(123, 456))] {
            let encoded = encode(Kind::Channel, node, except, b"{\"event\":\"e\"}");
            assert_eq!(encoded.len(), HEADER + 13);
            let msg = decode(encoded).unwrap();
            assert_eq!(
                msg,
                Message {
                    kind: Kind::Channel,
                    origin: node,
                    except,
                    payload: Bytes::from_static(b"{\"event\":\"e\"}")
                }
            );
        }
    }

    #[test]
    fn header_layout_is_kind_origin_then_big_endian_socket_id() {
        let encoded = encode(Kind::Terminate, NodeId([1; 16]), Some(SocketId::new(1, 2)), b"");
        assert_eq!(encoded[0], 3);
        assert_eq!(&encoded[17..25], &[0, 0, 0, 1, 0, 0, 0, 2]);
    }

    #[test]
    fn short_or_unknown_messages_are_rejected() {
        assert!(decode(Bytes::from_static(b"short")).is_none());
        let mut bad = encode(Kind::User, NodeId([0; 16]), None, b"x").to_vec();
        bad[0] = 99;
        assert!(decode(Bytes::from(bad)).is_none());
    }
}
