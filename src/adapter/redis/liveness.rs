//! Liveness: this node's heartbeat, the breaker's probe, recovery after an outage, and the
//! reaper that removes what dead nodes held.
//!
//! * heartbeat (every `heartbeat_interval_ms`): `SET P:node:N … PX node_timeout GET`,
//!   `SADD P:nodes N`, and this node's connection count per app. If the previous heartbeat
//!   is gone (Redis restarted or failed over without it, or a peer reaped this node after a
//!   stall), the node's state in Redis is suspect → recovery.
//! * probe (every min(heartbeat, 1 s), only while the breaker is open): one `PING` (after
//!   asking the sentinels for the master again, with Sentinel); success closes the breaker.
//! * recovery: resubscribe every topic, beat, reconcile (`reconcile.rs`); the reaper then
//!   waits one `node_timeout` so peers that were cut off too can beat before being judged.
//! * reaper (every heartbeat interval, in its own task so a long reap never delays a beat):
//!   a node in `P:nodes` without a heartbeat is dead; the node that wins `SET P:reap:N NX`
//!   leaves each of N's subscriptions (reporting `Remote::Reaped`), signs out N's sockets,
//!   removes N's connection counts, then N's keys and its `P:nodes` entry.
//!
//! All four tasks wait only in `select!` on the token and an interval or a `Notify` (all
//! cancel-safe); their Redis calls are bounded by the command timeout.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::keys::{parse_sign_in_record, parse_sub_record};
use super::{RedisAdapter, RemoteExtra};
use crate::adapter::stats::bump;
use crate::adapter::{AdapterError, Remote};

/// How long a survivor's claim on a dead node lasts (another survivor takes over after it).
const REAP_CLAIM: Duration = Duration::from_secs(60);
/// Records taken per round, and rounds at most per dead node and sweep.
const REAP_PAGE: usize = 200;
const MAX_REAP_ROUNDS: usize = 5_000;
/// Nodes looked at per sweep at most.
const MAX_NODES: usize = 1_024;
/// Attempts of one recovery before waiting for the next trigger.
const RECOVERY_ATTEMPTS: u32 = 3;

fn interval(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

impl RedisAdapter {
    /// One heartbeat; true when the previous one was gone (state in Redis suspect).
    pub(super) async fn heartbeat(&self) -> Result<bool, AdapterError> {
        let node = self.keys.node();
        let mut conn = self.link.cmd();
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let ttl_ms = self.timing.node_timeout.as_millis() as u64;
        let set =
            redis::cmd("SET").arg(self.keys.heartbeat(node)).arg(now_ms).arg("PX").arg(ttl_ms).arg("GET").to_owned();
        let previous: Option<String> = self.run(set.query_async(&mut conn)).await?;
        let mut cmds = vec![redis::cmd("SADD").arg(self.keys.nodes()).arg(node).to_owned()];
        for (app, count) in self.local_connection_counts() {
            cmds.push(redis::cmd("SADD").arg(self.keys.node_apps(node)).arg(&app).to_owned());
            cmds.push(redis::cmd("HSET").arg(self.keys.conns(&app)).arg(node).arg(count).to_owned());
        }
        self.run(conn.batch(&cmds)).await?;
        Ok(previous.is_none())
    }

    pub(super) async fn heartbeat_task(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = interval(self.timing.heartbeat);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !self.breaker.allows() {
                continue;
            }
            match self.heartbeat().await {
                Ok(true) => {
                    tracing::warn!("this node's heartbeat was gone from redis: reconciling");
                    self.recover.notify_one();
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
            }
        }
    }

    pub(super) async fn reaper(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = interval(self.timing.heartbeat);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !self.breaker.allows() || Instant::now() < *self.reap_after.lock() {
                continue;
            }
            if let Err(e) = self.reap_sweep(&shutdown).await {
                tracing::debug!(error = %e, "reaper sweep failed");
            }
        }
    }

    pub(super) async fn probe(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = interval(self.timing.probe);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if self.breaker.allows() {
                continue;
            }
            if let Ok(Err(e)) = tokio::time::timeout(self.timing.command * 2, self.link.reopen()).await {
                tracing::debug!(error = %e, "sentinel: master not found");
            }
            let ping = redis::cmd("PING");
            let pong = self.run_unguarded(ping.query_async::<String>(&mut self.link.cmd())).await;
            if pong.is_ok() && self.breaker.close() {
                tracing::info!("redis answers again: circuit breaker closed");
                self.recover.notify_one();
            }
        }
    }

    pub(super) async fn recovery(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.recover.notified() => {}
            }
            *self.reap_after.lock() = Instant::now() + self.timing.node_timeout;
            self.interest.resync();
            for attempt in 1..=RECOVERY_ATTEMPTS {
                let result = match self.heartbeat().await {
                    Ok(_) => self.reconcile().await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {
                        self.report_extra(RemoteExtra::Reconnected);
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, attempt, "reconciliation failed"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(self.timing.probe * attempt) => {}
                }
            }
        }
    }

    async fn reap_sweep(&self, shutdown: &CancellationToken) -> Result<(), AdapterError> {
        let mut conn = self.link.cmd();
        let nodes: Vec<String> =
            self.run(redis::cmd("SRANDMEMBER").arg(self.keys.nodes()).arg(MAX_NODES).query_async(&mut conn)).await?;
        for node in nodes.iter().filter(|n| n.as_str() != self.keys.node()) {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let alive: bool =
                self.run(redis::cmd("EXISTS").arg(self.keys.heartbeat(node)).query_async(&mut conn)).await?;
            if alive {
                continue;
            }
            let claim = redis::cmd("SET")
                .arg(self.keys.reap_claim(node))
                .arg(self.keys.node())
                .arg("NX")
                .arg("PX")
                .arg(REAP_CLAIM.as_millis() as u64)
                .to_owned();
            let won: Option<String> = self.run(claim.query_async(&mut conn)).await?;
            if won.is_none() {
                continue;
            }
            tracing::info!(dead = %node, "reaping a dead node's subscriptions");
            if let Err(e) = self.reap_node(node).await {
                // Let the next sweep (this node's or another's) start over.
                let _ = self.run(redis::cmd("DEL").arg(self.keys.reap_claim(node)).exec_async(&mut conn)).await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn reap_node(&self, node: &str) -> Result<(), AdapterError> {
        let mut conn = self.link.cmd();
        let subs = self.keys.node_subs(node);
        for _ in 0..MAX_REAP_ROUNDS {
            let page: Vec<String> =
                self.run(redis::cmd("SRANDMEMBER").arg(&subs).arg(REAP_PAGE).query_async(&mut conn)).await?;
            if page.is_empty() {
                break;
            }
            for record in page {
                let Some(r) = parse_sub_record(&record) else {
                    self.run(redis::cmd("SREM").arg(&subs).arg(&record).exec_async(&mut conn)).await?;
                    continue;
                };
                let (outcome, user) = self.leave_as(node, &r.app, &r.channel, r.socket, &record).await?;
                if !outcome.not_found {
                    bump(&self.counters.reaped, 1);
                    self.sink.receive(Remote::Reaped { app: r.app, channel: r.channel, user, outcome });
                }
            }
        }
        self.reap_sign_ins(node).await?;
        let apps: Vec<String> =
            self.run(redis::cmd("SMEMBERS").arg(self.keys.node_apps(node)).query_async(&mut conn)).await?;
        for app in apps {
            self.run(redis::cmd("HDEL").arg(self.keys.conns(&app)).arg(node).exec_async(&mut conn)).await?;
        }
        let back: bool = self.run(redis::cmd("EXISTS").arg(self.keys.heartbeat(node)).query_async(&mut conn)).await?;
        if !back {
            for key in [subs, self.keys.node_sign_ins(node), self.keys.node_apps(node)] {
                self.run(redis::cmd("DEL").arg(key).exec_async(&mut conn)).await?;
            }
            self.run(redis::cmd("SREM").arg(self.keys.nodes()).arg(node).exec_async(&mut conn)).await?;
        }
        Ok(())
    }

    async fn reap_sign_ins(&self, node: &str) -> Result<(), AdapterError> {
        let mut conn = self.link.cmd();
        let key = self.keys.node_sign_ins(node);
        for _ in 0..MAX_REAP_ROUNDS {
            let page: Vec<String> =
                self.run(redis::cmd("SRANDMEMBER").arg(&key).arg(REAP_PAGE).query_async(&mut conn)).await?;
            if page.is_empty() {
                break;
            }
            for record in page {
                let Some((app, socket, user)) = parse_sign_in_record(&record) else {
                    self.run(redis::cmd("SREM").arg(&key).arg(&record).exec_async(&mut conn)).await?;
                    continue;
                };
                if self.sign_out_as(node, &app, &user, socket).await? {
                    self.report_extra(RemoteExtra::Presence { app, user, online: false });
                }
            }
        }
        Ok(())
    }
}
