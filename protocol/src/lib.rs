//! The Pusher Channels wire protocol, version 7, as herald speaks it.
//!
//! This crate is pure: it parses and encodes frames, validates channel names and presence
//! data, and computes and verifies signatures. It owns no sockets, no clocks and no tasks,
//! so every rule here is testable byte for byte (see `tests/`). The server crate decides
//! *when* things happen; this crate decides *what they look like on the wire*.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod channel;
pub mod codes;
pub mod history;
pub mod http;
pub mod inbound;
pub mod outbound;
pub mod presence;
pub mod signature;
pub mod socket_id;
pub mod user;

pub use channel::{ChannelKind, ChannelName, ChannelNameError};
pub use codes::ErrorCode;
pub use inbound::{ClientMessage, DecodeError};
pub use outbound::ServerMessage;
pub use presence::{PresenceMember, UserId};
pub use socket_id::SocketId;
