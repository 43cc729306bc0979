//! Channels: who is subscribed where, presence rosters, cache channels' last events, and
//! fan-out of encoded frames.
//!
//! This module never sees a socket. It holds each subscriber's [`Outbox`] handle and pushes
//! already-encoded [`Frame`]s into it; pushing never blocks. Locks are per channel, short,
//! and never held across an `.await`.
//!
//! [`Outbox`]: crate::outbox::Outbox
//! [`Frame`]: crate::frame::Frame

mod cache;
mod counts;
mod fanout;
mod history;
mod presence;
mod queries;
mod recovery;
mod registry;
mod state;
#[cfg(test)]
mod tests;

pub use presence::Roster;
pub use recovery::RecoveryStart;
pub use registry::{
    ChannelPolicy, ChannelRegistry, ChannelSummary, ClusterJoin, JoinError, Joined, Left, RemotePublish, Subscriber,
};
