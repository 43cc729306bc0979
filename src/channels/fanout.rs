//! Fan-out: an encoded event to every local subscriber of a channel (one `Bytes` clone
//! each) and to the other nodes, and what other nodes send to the local subscribers only.
//! History events carry their position, so subscribers being recovered get them in order.

use std::sync::Arc;

use herald_protocol::history::position_of;
use herald_protocol::{ChannelName, SocketId};
use tokio::time::Instant;

use super::cache::CachedEvent;
use super::registry::ChannelRegistry;
use crate::frame::Frame;
use crate::history::Position;

impl ChannelRegistry {
    /// Queues `frame` to every local subscriber of `name` except `except` and forwards it to
    /// the other nodes; returns how many local sockets got it. `cache_data` (cache channels,
    /// HTTP events only) makes it the channel's cached event here.
    pub fn publish(
        &self,
        name: &ChannelName,
        frame: &Frame,
        except: Option<SocketId>,
        cache_data: Option<&str>,
    ) -> usize {
        self.publish_at(name, frame, None, except, cache_data)
    }

    /// [`publish`](Self::publish) for a frame that carries its history `position`, if any.
    pub fn publish_at(
        &self,
        name: &ChannelName,
        frame: &Frame,
        position: Option<Position>,
        except: Option<SocketId>,
        cache_data: Option<&str>,
    ) -> usize {
        self.forward(name, frame, except);
        let channel = self.channels.get(name).map(|c| c.clone());
        let state = channel.as_ref().map(|c| c.state.read());
        if let Some(data) = cache_data {
            let expires = Instant::now() + self.policy.cache_ttl;
            let event = CachedEvent { frame: frame.clone(), data: Arc::from(data), expires };
            self.caches.entry(name.clone()).or_default().last = Some(event);
        }
        let delivered = match (&state, position) {
            (None, _) => 0,
            (Some(s), Some(position)) => s.broadcast_at(frame, position, except),
            (Some(s), None) => s.broadcast(frame, except),
        };
        drop(state);
        delivered
    }

    /// Queues a frame that another node published to the local subscribers only.
    pub fn deliver_remote(&self, name: &str, frame: &Frame, except: Option<SocketId>) -> usize {
        let Some(channel) = self.channels.get(name).map(|c| c.clone()) else { return 0 };
        let state = channel.state.read();
        let position = state.tracking().and_then(|_| position_of(frame.payload()));
        match position {
            Some(position) => state.broadcast_at(frame, position, except),
            None => state.broadcast(frame, except),
        }
    }

    pub(super) fn forward(&self, name: &ChannelName, frame: &Frame, except: Option<SocketId>) {
        if let Some(remote) = &self.remote {
            remote.publish(name, frame, except);
        }
    }
}
