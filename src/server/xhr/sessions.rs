//! The live HTTP sessions, by their path `{key}/{server}/{session}`: how a request finds the
//! task serving its session. Bounded: past [`MAX_SESSIONS`] a new session is refused (4100,
//! over capacity). An entry is removed by its own task when the session ends; a request that
//! finds an entry whose task is gone removes it too.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::{mpsc, oneshot};

use super::receiver::Receiver;
use super::transport::Command;

/// Most HTTP sessions one node keeps at once (each app's connection quota applies as well).
pub const MAX_SESSIONS: usize = 100_000;

/// The way to one session's task.
#[derive(Debug, Clone)]
pub struct Handle {
    /// Tells this session from a later one that reuses the path.
    id: u64,
    commands: mpsc::Sender<Command>,
}

/// The session's task has ended: the session is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended;

impl Handle {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Hands the session a new streaming or polling response to deliver into.
    pub async fn attach(&self, receiver: Receiver) -> Result<(), Ended> {
        self.commands.send(Command::Attach(receiver)).await.map_err(|_| Ended)
    }

    /// Delivers POSTed messages and waits until the session has handled them.
    pub async fn send(&self, messages: Vec<String>) -> Result<(), Ended> {
        let (done, handled) = oneshot::channel();
        self.commands.send(Command::Send { messages, done }).await.map_err(|_| Ended)?;
        // A session that ends while handling them drops `done`: they were still delivered to it.
        let _ = handled.await;
        Ok(())
    }
}

/// Why a session could not be added.
#[derive(Debug)]
pub enum Refused {
    /// [`MAX_SESSIONS`] are live.
    Full,
    /// Another request created this session first.
    Taken(Handle),
}

/// Every live HTTP session of this node.
#[derive(Debug)]
pub struct Sessions {
    map: DashMap<String, Handle>,
    len: AtomicUsize,
    next_id: AtomicU64,
    max: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::with_capacity(MAX_SESSIONS)
    }
}

impl Sessions {
    /// A table holding at most `max` sessions.
    pub fn with_capacity(max: usize) -> Self {
        Self { map: DashMap::new(), len: AtomicUsize::new(0), next_id: AtomicU64::new(1), max }
    }

    pub fn get(&self, path: &str) -> Option<Handle> {
        self.map.get(path).map(|h| h.clone())
    }

    /// Adds a session at `path` whose task reads `commands`.
    pub fn insert(&self, path: &str, commands: mpsc::Sender<Command>) -> Result<Handle, Refused> {
        if self.len.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.len.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::Full);
        }
        let handle = Handle { id: self.next_id.fetch_add(1, Ordering::Relaxed), commands };
        match self.map.entry(path.to_string()) {
            Entry::Occupied(existing) => {
                self.len.fetch_sub(1, Ordering::Relaxed);
                Err(Refused::Taken(existing.get().clone()))
            }
            Entry::Vacant(slot) => {
                slot.insert(handle.clone());
                Ok(handle)
            }
        }
    }

    /// Removes the session at `path` if it is still the one with `id`.
    pub fn remove(&self, path: &str, id: u64) {
        if self.map.remove_if(path, |_, h| h.id == id).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Live sessions.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_refuses_and_a_removed_entry_frees_its_place() {
        let table = Sessions::with_capacity(1);
        let (tx, _rx) = mpsc::channel(1);
        let first = table.insert("k/1/a", tx.clone()).unwrap();
        assert!(matches!(table.insert("k/1/b", tx.clone()), Err(Refused::Full)));
        table.remove("k/1/a", first.id());
        assert!(table.is_empty());
        assert!(table.insert("k/1/b", tx).is_ok());
    }

    #[test]
    fn the_same_path_twice_returns_the_first_session() {
        let table = Sessions::with_capacity(4);
        let (tx, _rx) = mpsc::channel(1);
        let first = table.insert("k/1/a", tx.clone()).unwrap();
        let Err(Refused::Taken(existing)) = table.insert("k/1/a", tx) else { panic!("expected Taken") };
        assert_eq!(existing.id(), first.id());
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn removing_with_a_stale_id_keeps_the_newer_session() {
        let table = Sessions::with_capacity(4);
        let (tx, _rx) = mpsc::channel(1);
        let first = table.insert("k/1/a", tx.clone()).unwrap();
        table.remove("k/1/a", first.id());
        let second = table.insert("k/1/a", tx).unwrap();
        table.remove("k/1/a", first.id());
        assert_eq!(table.get("k/1/a").map(|h| h.id()), Some(second.id()));
    }
}
