//! Users and connections across the cluster: sign-ins (for watchlists and "online"), and the
//! per-app connection quota.
//!
//! The quota: `P:A:conns` holds each node's open connections. `acquire_connection` reserves
//! locally, then the `acquire` script counts it unless the sum over every node is at the
//! quota. `release_connection` only lowers the local count and queues a write of it (full →
//! dropped; harmless: every heartbeat writes each app's local count again), so the shared
//! count converges to the truth within one heartbeat even after a dropped write or an outage.
//! A dead node's field is removed by the reaper.

use herald_protocol::{SocketId, UserId};

use super::keys::{sign_in_record, socket_field};
use super::RedisAdapter;
use crate::adapter::queue::Outgoing;
use crate::adapter::AdapterError;

/// Users checked per batch by [`RedisAdapter::online`].
const ONLINE_BATCH: usize = 256;

impl RedisAdapter {
    /// Records a socket signed in as `user`; true when it is the user's first anywhere.
    pub async fn sign_in(&self, app: &str, user: &UserId, socket: SocketId) -> Result<bool, AdapterError> {
        let node = self.keys.node().to_owned();
        let mut conn = self.link.cmd();
        let record = sign_in_record(app, user, socket);
        self.run(redis::cmd("SADD").arg(self.keys.node_sign_ins(&node)).arg(record).exec_async(&mut conn)).await?;
        let mut invocation = self.scripts.sign_in.key(self.keys.signed_in(app, user));
        invocation.arg(socket_field(&node, socket));
        let first: u8 = self.run(invocation.invoke_async(&mut conn)).await?;
        Ok(first == 1)
    }

    /// Removes a signed-in socket; true when it was the user's last anywhere.
    pub async fn sign_out(&self, app: &str, user: &UserId, socket: SocketId) -> Result<bool, AdapterError> {
        let node = self.keys.node().to_owned();
        self.sign_out_as(&node, app, user, socket).await
    }

    pub(super) async fn sign_out_as(
        &self,
        node: &str,
        app: &str,
        user: &UserId,
        socket: SocketId,
    ) -> Result<bool, AdapterError> {
        let mut conn = self.link.cmd();
        let mut invocation = self.scripts.sign_out.key(self.keys.signed_in(app, user));
        invocation.arg(socket_field(node, socket));
        let last: u8 = self.run(invocation.invoke_async(&mut conn)).await?;
        let record = sign_in_record(app, user, socket);
        self.run(redis::cmd("SREM").arg(self.keys.node_sign_ins(node)).arg(record).exec_async(&mut conn)).await?;
        Ok(last == 1)
    }

    /// Whether each user has a signed-in socket anywhere.
    pub async fn online(&self, app: &str, users: &[UserId]) -> Result<Vec<bool>, AdapterError> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(ONLINE_BATCH) {
            let cmds: Vec<redis::Cmd> =
                chunk.iter().map(|u| redis::cmd("EXISTS").arg(self.keys.signed_in(app, u)).to_owned()).collect();
            let values = self.run(self.link.cmd().batch(&cmds)).await?;
            out.extend(values.iter().map(|v| redis::from_redis_value_ref::<u8>(v).unwrap_or(0) == 1));
        }
        Ok(out)
    }

    /// Counts a new connection against the app's cluster-wide quota; false when over it.
    pub async fn acquire_connection(&self, app: &str, max: Option<u64>) -> Result<bool, AdapterError> {
        if !self.breaker.allows() {
            return Err(AdapterError::Unavailable);
        }
        let first_here = {
            let mut local = self.local_conns.lock();
            let first = !local.contains_key(app);
            *local.entry(app.to_owned()).or_insert(0) += 1;
            first
        };
        let result = self.count_connection(app, max, first_here).await;
        if !matches!(result, Ok(true)) {
            self.lower_local(app);
        }
        result
    }

    async fn count_connection(&self, app: &str, max: Option<u64>, first_here: bool) -> Result<bool, AdapterError> {
        let mut conn = self.link.cmd();
        if first_here {
            let apps = self.keys.node_apps(self.keys.node());
            self.run(redis::cmd("SADD").arg(apps).arg(app).exec_async(&mut conn)).await?;
        }
        let mut invocation = self.scripts.acquire.key(self.keys.conns(app));
        invocation.arg(self.keys.node()).arg(max.map(|m| m.min(i64::MAX as u64) as i64).unwrap_or(-1));
        let counted: u8 = self.run(invocation.invoke_async(&mut conn)).await?;
        Ok(counted == 1)
    }

    /// A connection counted by `acquire_connection` closed. Never blocks.
    pub fn release_connection(&self, app: &str) {
        self.lower_local(app);
        self.enqueue(Outgoing::WriteConns { app: app.to_owned() });
    }

    fn lower_local(&self, app: &str) {
        let mut local = self.local_conns.lock();
        if let Some(n) = local.get_mut(app) {
            *n = n.saturating_sub(1);
        }
    }

    /// This node's open connections of `app`, as it last counted them.
    pub(super) fn local_connections(&self, app: &str) -> u64 {
        self.local_conns.lock().get(app).copied().unwrap_or(0)
    }

    /// Every app with a local count, and the count.
    pub(super) fn local_connection_counts(&self) -> Vec<(String, u64)> {
        self.local_conns.lock().iter().map(|(a, n)| (a.clone(), *n)).collect()
    }

    /// Open connections of `app` on every node.
    pub async fn connection_count(&self, app: &str) -> Result<u64, AdapterError> {
        let values: Vec<i64> =
            self.run(redis::cmd("HVALS").arg(self.keys.conns(app)).query_async(&mut self.link.cmd())).await?;
        Ok(values.into_iter().map(|v| v.max(0) as u64).sum())
    }
}
