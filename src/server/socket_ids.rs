//! Socket ids unique across a cluster without coordination: a random per-process prefix and
//! a per-process counter scrambled by a bijection, so ids never repeat within a process and
//! do not reveal how many connections came before.

use std::sync::atomic::{AtomicU32, Ordering};

use herald_protocol::SocketId;

/// Hands out socket ids.
#[derive(Debug)]
pub struct SocketIds {
    prefix: u32,
    key: u32,
    counter: AtomicU32,
}

impl SocketIds {
    pub fn new() -> Self {
        // The prefix stays below 2^31 so ids look like every other Pusher server's.
        Self { prefix: rand::random::<u32>() >> 1, key: rand::random(), counter: AtomicU32::new(0) }
    }

    pub fn next(&self) -> SocketId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Multiplying by an odd constant is a bijection on u32; so is xor with a key.
        SocketId::new(self.prefix, n.wrapping_mul(0x9E37_79B1) ^ self.key)
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
}
