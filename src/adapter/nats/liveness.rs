//! Liveness: this node's heartbeat, the breaker's probe, recovery after an outage, and the
//! reaper that removes what dead nodes held.
//!
//! * heartbeat (every `heartbeat_interval_ms`): `node.N` is written against the revision of the
//!   node's previous beat, with each app's connection count. If that revision is gone — a
//!   survivor claimed the node after a stall, or NATS lost its store — the node's state in the
//!   bucket is suspect: it beats unconditionally and recovers.
//! * reaper (every heartbeat interval): lists `node.*` and remembers, for each other node, its
//!   heartbeat revision and when this node first saw it (its own clock: no clock is compared
//!   across machines). A node whose revision has not moved for `node_timeout_ms` is dead; the
//!   survivor whose write of a claim *against that revision* lands reaps it (exactly one
//!   wins). Reaping drops the dead node's share from every channel document (reporting
//!   `Remote::Reaped`), its sign-in and connection counts, then deletes its heartbeat against
//!   the claim's revision (not if the node beat again meanwhile). A survivor that dies while
//!   reaping leaves the claim, whose revision then stands still: the next survivor takes over
//!   one node timeout later.
//! * probe (while the breaker is open, every min(heartbeat, 1 s), and at once when the client
//!   reconnects): reopens the bucket (recreating it if NATS lost it); success closes the
//!   breaker and starts recovery.
//! * recovery: forget the reaper's observations (peers cut off too get a full node timeout),
//!   beat, reconcile (`reconcile.rs`); rounds of three attempts, spaced out, until one works.
//!
//! All four tasks wait only in `select!` on the token and an interval or a `Notify` (all
//! cancel-safe); their NATS calls are bounded by the command timeout.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::channels::unix_ms;
use super::doc::ChannelDoc;
use super::history::open_history;
use super::names::{parse_key, Key, ALL_CHANNELS, ALL_CONNS, ALL_NODES, ALL_SIGN_INS};
use super::store::{decode, open_bucket, PerNode};
use super::NatsAdapter;
use crate::adapter::stats::bump;
use crate::adapter::{AdapterError, LeaveOutcome, Remote, RemoteExtra};

/// Attempts of one recovery round; after a failed round another one starts.
const RECOVERY_ATTEMPTS: u32 = 3;

fn interval(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

impl NatsAdapter {
    /// One heartbeat; true when the previous one was gone (state in the bucket suspect).
    pub(super) async fn heartbeat(&self) -> Result<bool, AdapterError> {
        let key = self.names.heartbeat(self.names.node());
        let value = Bytes::from(format!("{{\"beat_ms\":{}}}", unix_ms()));
        let previous = self.heartbeat_revision.load(Ordering::Acquire);
        let kv = &self.kv;
        let written = self
            .run(async {
                match kv.update(&key, value.clone(), previous).await {
                    Ok(revision) => Ok(Some(revision)),
                    Err(e) if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        let (revision, gone) = match written {
            Some(revision) => (revision, false),
            None => (self.put(&key, value).await?, previous != 0),
        };
        self.heartbeat_revision.store(revision, Ordering::Release);
        for (app, count) in self.local.connection_counts() {
            self.write_connections(self.names.node(), &app, count).await?;
        }
        Ok(gone)
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
                    tracing::warn!("this node's heartbeat was taken over or lost in nats: reconciling");
                    self.recover.notify_one();
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
            }
        }
    }

    pub(super) async fn probe(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = interval(self.timing.probe);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.reconnected.notified() => {}
            }
            if self.breaker.allows() {
                continue;
            }
            if self.client.connection_state() != async_nats::connection::State::Connected {
                continue;
            }
            let opened = self.run_unguarded(self.timing.command * 2, open_bucket(&self.js, &self.names.bucket())).await;
            if opened.is_ok() {
                // A server that lost its store lost the history stream too: make it again.
                let (stream, subjects) = (self.names.history_stream(), self.names.history_subjects());
                let history = open_history(&self.js, &stream, subjects);
                if let Err(error) = self.run_unguarded(self.timing.command * 2, history).await {
                    tracing::warn!(%error, "no JetStream history stream yet");
                }
            }
            if opened.is_ok() && self.breaker.close() {
                tracing::info!("nats answers again: circuit breaker closed");
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
            self.seen.lock().clear();
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
                if attempt == RECOVERY_ATTEMPTS {
                    // The bucket still holds what this node had before the outage: try again
                    // (JetStream may still be loading its streams after a restart).
                    self.recover.notify_one();
                }
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
            if !self.breaker.allows() {
                continue;
            }
            if let Err(e) = self.reap_sweep(&shutdown).await {
                tracing::debug!(error = %e, "reaper sweep failed");
            }
        }
    }

    /// The other nodes whose heartbeat revision has stood still for a node timeout, with it.
    async fn silent_nodes(&self) -> Result<Vec<(String, u64)>, AdapterError> {
        let beats = self.scan(ALL_NODES).await?;
        let now = Instant::now();
        let mut seen = self.seen.lock();
        seen.retain(|key, _| beats.iter().any(|b| &b.key == key));
        let mut silent = Vec::new();
        for beat in beats {
            let Some(Key::Node { node }) = parse_key(&beat.key) else { continue };
            if node == self.names.node() {
                continue;
            }
            match seen.get(&beat.key) {
                Some((revision, since)) if *revision == beat.revision => {
                    if now.duration_since(*since) >= self.timing.node_timeout {
                        silent.push((node, beat.revision));
                    }
                }
                _ => {
                    seen.insert(beat.key, (beat.revision, now));
                }
            }
        }
        Ok(silent)
    }

    async fn reap_sweep(&self, shutdown: &CancellationToken) -> Result<(), AdapterError> {
        for (node, revision) in self.silent_nodes().await? {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let key = self.names.heartbeat(&node);
            let claim = Bytes::from(format!("{{\"reaped_by\":\"{}\"}}", self.names.node()));
            let kv = &self.kv;
            let claimed = self
                .run(async {
                    match kv.update(&key, claim, revision).await {
                        Ok(revision) => Ok(Some(revision)),
                        Err(e) if e.kind() == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            let Some(claim) = claimed else { continue };
            tracing::info!(dead = %node, "reaping a dead node's subscriptions");
            self.reap_node(&node).await?;
            // Not when the node beat again meanwhile (its heartbeat has another revision now).
            let _ = self.run(self.kv.delete_expect_revision(&key, Some(claim))).await;
        }
        Ok(())
    }

    /// Drops `node`'s shares, sign-ins and connection counts everywhere.
    pub(super) async fn reap_node(&self, node: &str) -> Result<(), AdapterError> {
        for entry in self.scan(ALL_CHANNELS).await? {
            let Some(Key::Channel { app, channel }) = parse_key(&entry.key) else { continue };
            let holds = decode::<ChannelDoc>(&entry.key, Some(&entry.value)).is_ok_and(|d| d.nodes.contains_key(node));
            if holds {
                self.drop_share(node, &app, &channel).await?;
            }
        }
        for entry in self.scan(ALL_SIGN_INS).await? {
            let Some(Key::SignIn { app, user }) = parse_key(&entry.key) else { continue };
            if !decode::<PerNode>(&entry.key, Some(&entry.value)).is_ok_and(|d| d.contains_key(node)) {
                continue;
            }
            if self.rewrite_sign_ins(node, &app, &user, 0).await? == Some(false) {
                let user = herald_protocol::UserId::new(&user);
                self.report_extra(RemoteExtra::Presence { app, user, online: false });
            }
        }
        for entry in self.scan(ALL_CONNS).await? {
            let Some(Key::Conns { app }) = parse_key(&entry.key) else { continue };
            if decode::<PerNode>(&entry.key, Some(&entry.value)).is_ok_and(|d| d.contains_key(node)) {
                self.write_connections(node, &app, 0).await?;
            }
        }
        Ok(())
    }

    /// Removes `node`'s share of one channel, reporting the transitions as `Remote::Reaped`.
    async fn drop_share(&self, node: &str, app: &str, channel: &str) -> Result<(), AdapterError> {
        let key = self.names.channel(app, channel);
        let rewrite = self
            .transact(&key, |doc: &mut ChannelDoc| doc.rewrite(node, None, &Default::default(), self.now()))
            .await?;
        bump(&self.counters.reaped, rewrite.sockets_removed);
        for remote in reaped(app, channel, &rewrite) {
            self.sink.receive(remote);
        }
        Ok(())
    }
}

/// The `Remote::Reaped` reports of a rewrite that removed sockets: one per removed user (the
/// last one carries `vacated`), or one without a user when no user was removed.
pub(super) fn reaped(app: &str, channel: &str, rewrite: &super::doc::Rewrite) -> Vec<Remote> {
    if rewrite.removed.is_empty() && !rewrite.vacated && rewrite.sockets_removed == 0 {
        return Vec::new();
    }
    let outcome = |member_removed: bool, vacated: bool| LeaveOutcome {
        not_found: false,
        vacated,
        member_removed,
        subscription_count: rewrite.counts.subscription_count,
        user_count: rewrite.counts.user_count,
    };
    let (app, channel) = (app.to_owned(), channel.to_owned());
    if rewrite.removed.is_empty() {
        let outcome = outcome(false, rewrite.vacated);
        return vec![Remote::Reaped { app, channel, user: None, outcome }];
    }
    let last = rewrite.removed.len() - 1;
    rewrite
        .removed
        .iter()
        .enumerate()
        .map(|(i, user)| Remote::Reaped {
            app: app.clone(),
            channel: channel.clone(),
            user: Some(herald_protocol::UserId::new(user)),
            outcome: outcome(true, rewrite.vacated && i == last),
        })
        .collect()
}
