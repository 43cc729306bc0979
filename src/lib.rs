//! herald: a Pusher Channels compatible realtime server.
//!
//! Layers, and the way dependencies point: `herald-protocol` (pure wire format) ← the domain
//! (`apps`, `channels`, `outbox`, `frame`) ← `server` (sockets, HTTP, WebSocket) ← `main`.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod adapter;
pub mod apps;
pub mod channels;
pub mod cli;
pub mod config;
pub mod frame;
pub mod history;
pub mod metrics;
pub mod outbox;
pub mod server;
pub mod users;
pub mod webhooks;

pub use server::Server;
