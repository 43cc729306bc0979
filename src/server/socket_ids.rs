//! Socket ids unique across a cluster without coordination: a random per-process prefix and
//! a per-process counter scrambled by a bijection, so ids never repeat within a process and
//! do not reveal how many connections came before. Also keeps the ids that event-stream
//! clients choose themselves (docs/sse.md) unique among this node's live connections.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};

use herald_protocol::SocketId;
use parking_lot::Mutex;

/// Hands out socket ids.
#[derive(Debug)]
pub struct SocketIds {
    prefix: u32,
    key: u32,
    counter: AtomicU32,
    /// Live ids chosen by clients. None has this node's prefix, so none can equal an id
    /// [`next`](Self::next) hands out; bounded by the live connections.
    claimed: Mutex<HashSet<SocketId>>,
}

/// Why a client-chosen socket id cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("socket_id {0} is in use by another live connection")]
    InUse(SocketId),
    #[error("socket_id {0} has the prefix this node gives its own ids: choose another")]
    Reserved(SocketId),
}

impl SocketIds {
    pub fn new() -> Self {
        // The prefix stays below 2^31 so ids look like every other Pusher server's.
        Self {
            prefix: rand::random::<u32>() >> 1,
            key: rand::random(),
            counter: AtomicU32::new(0),
            claimed: Mutex::new(HashSet::new()),
        }
    }

    pub fn next(&self) -> SocketId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Multiplying by an odd constant is a bijection on u32; so is xor with a key.
        SocketId::new(self.prefix, n.wrapping_mul(0x9E37_79B1) ^ self.key)
    }

    /// Reserves `id`, chosen by a client, until [`release`](Self::release).
    pub fn claim(&self, id: SocketId) -> Result<(), ClaimError> {
        if id.high() == self.prefix {
            return Err(ClaimError::Reserved(id));
        }
        match self.claimed.lock().insert(id) {
            true => Ok(()),
            false => Err(ClaimError::InUse(id)),
        }
    }

    /// Frees an id [`claim`](Self::claim)ed before.
    pub fn release(&self, id: SocketId) {
        self.claimed.lock().remove(&id);
    }
}

impl Default for SocketIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_do_not_repeat() {
        let ids = SocketIds::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(ids.next()));
        }
    }

    #[test]
    fn a_claimed_id_is_refused_until_released() {
        let ids = SocketIds::new();
        let id = SocketId::new(ids.prefix ^ 1, 7);
        assert_eq!(ids.claim(id), Ok(()));
        assert_eq!(ids.claim(id), Err(ClaimError::InUse(id)));
        ids.release(id);
        assert_eq!(ids.claim(id), Ok(()));
    }

    #[test]
    fn ids_with_the_nodes_own_prefix_cannot_be_claimed() {
        let ids = SocketIds::new();
        let own = ids.next();
        assert_eq!(ids.claim(own), Err(ClaimError::Reserved(own)));
    }
}
