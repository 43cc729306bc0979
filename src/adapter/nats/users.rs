//! Users and connections across the cluster: sign-ins (for watchlists and "online") and the
//! per-app connection quota, both as per-node counts in one document per user or app.
//!
//! * `user.A.U` holds, per node, how many sockets are signed in as U. `sign_in` counts one more
//!   for this node (first anywhere: the total went from 0), `sign_out` one less (last: to 0).
//! * `conns.A` holds each node's open connections. `acquire_connection` reserves locally, then
//!   adds one to this node's count unless the sum over every node is at the quota.
//!   `release_connection` only lowers the local count and queues a write of it (full →
//!   dropped; every heartbeat writes each app's local count again), so the shared count
//!   converges to the truth within one heartbeat. A dead node's counts are removed by the reaper.

use futures_util::future::join_all;
use herald_protocol::{SocketId, UserId};

use super::store::PerNode;
use super::NatsAdapter;
use crate::adapter::queue::Outgoing;
use crate::adapter::AdapterError;

/// Users looked up at once by [`NatsAdapter::online`].
const ONLINE_BATCH: usize = 64;

fn total(doc: &PerNode) -> u64 {
    doc.values().sum()
}

impl NatsAdapter {
    /// Records a socket signed in as `user`; true when it is the user's first anywhere.
    pub async fn sign_in(&self, app: &str, user: &UserId, socket: SocketId) -> Result<bool, AdapterError> {
        let _gate = self.gates.enter(app, user.as_str()).await;
        if !self.local.add_sign_in(app, user, socket) {
            return Ok(false);
        }
        let node = self.names.node();
        let result = self
            .transact(&self.names.sign_in(app, user.as_str()), |doc: &mut PerNode| {
                let first = total(doc) == 0;
                *doc.entry(node.to_owned()).or_insert(0) += 1;
                first
            })
            .await;
        if result.is_err() {
            self.local.remove_sign_in(app, user, socket);
        }
        result
    }

    /// Removes a signed-in socket; true when it was the user's last anywhere.
    pub async fn sign_out(&self, app: &str, user: &UserId, socket: SocketId) -> Result<bool, AdapterError> {
        let _gate = self.gates.enter(app, user.as_str()).await;
        if !self.local.remove_sign_in(app, user, socket) {
            return Ok(false);
        }
        let node = self.names.node();
        let result = self
            .transact(&self.names.sign_in(app, user.as_str()), |doc: &mut PerNode| {
                let Some(n) = doc.get_mut(node).filter(|n| **n > 0) else { return false };
                *n -= 1;
                if *n == 0 {
                    doc.remove(node);
                }
                total(doc) == 0
            })
            .await;
        if result.is_err() {
            self.local.add_sign_in(app, user, socket);
        }
        result
    }

    /// Replaces this node's count of `user`'s sign-ins (`0`: removes it); `Some(online)` when
    /// that changed whether the user is signed in anywhere. Reconciliation and reaping.
    pub(super) async fn rewrite_sign_ins(
        &self,
        node: &str,
        app: &str,
        user: &str,
        count: u64,
    ) -> Result<Option<bool>, AdapterError> {
        self.transact(&self.names.sign_in(app, user), |doc: &mut PerNode| {
            let before = total(doc) > 0;
            match count {
                0 => doc.remove(node),
                n => doc.insert(node.to_owned(), n),
            };
            let after = total(doc) > 0;
            (before != after).then_some(after)
        })
        .await
    }

    /// Whether each user has a signed-in socket anywhere.
    pub async fn online(&self, app: &str, users: &[UserId]) -> Result<Vec<bool>, AdapterError> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(ONLINE_BATCH) {
            let keys: Vec<String> = chunk.iter().map(|u| self.names.sign_in(app, u.as_str())).collect();
            for read in join_all(keys.iter().map(|key| self.read::<PerNode>(key))).await {
                out.push(total(&read?.0) > 0);
            }
        }
        Ok(out)
    }

    /// Counts a new connection against the app's cluster-wide quota; false when over it.
    pub async fn acquire_connection(&self, app: &str, max: Option<u64>) -> Result<bool, AdapterError> {
        if !self.breaker.allows() {
            return Err(AdapterError::Unavailable);
        }
        self.local.reserve_connection(app);
        let node = self.names.node();
        let result = self
            .transact(&self.names.conns(app), |doc: &mut PerNode| {
                if max.is_some_and(|max| total(doc) >= max) {
                    return false;
                }
                *doc.entry(node.to_owned()).or_insert(0) += 1;
                true
            })
            .await;
        if !matches!(result, Ok(true)) {
            self.local.release_connection(app);
        }
        result
    }

    /// A connection counted by `acquire_connection` closed. Never blocks.
    pub fn release_connection(&self, app: &str) {
        self.local.release_connection(app);
        self.enqueue(Outgoing::WriteConns { app: app.to_owned() });
    }

    /// Writes this node's count of `app`'s connections (`0`: removes it).
    pub(super) async fn write_connections(&self, node: &str, app: &str, count: u64) -> Result<(), AdapterError> {
        self.transact(&self.names.conns(app), |doc: &mut PerNode| {
            match count {
                0 => doc.remove(node),
                n => doc.insert(node.to_owned(), n),
            };
        })
        .await
    }

    /// Open connections of `app` on every node.
    pub async fn connection_count(&self, app: &str) -> Result<u64, AdapterError> {
        Ok(total(&self.read::<PerNode>(&self.names.conns(app)).await?.0))
    }
}
