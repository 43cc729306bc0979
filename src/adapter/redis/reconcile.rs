//! Reconciliation after an outage: make what Redis holds under this node's id equal to what
//! the node holds (the snapshots), emitting the transitions that result.
//!
//! 1. `join` every snapshot membership (idempotent): a non-duplicate answer means Redis had
//!    lost it → [`RemoteExtra::Rejoined`]. Likewise `sign_in` every snapshot sign-in; a first
//!    socket → [`RemoteExtra::Presence`] online.
//! 2. List this node's records in Redis, *then* take a fresh snapshot, and `leave` every record
//!    the fresh snapshot lacks → `Remote::Reaped` (sign-ins: `sign_out`, last → offline).
//!    Taking the snapshot after the listing means a join that completes meanwhile is kept; the
//!    core must put a membership in its snapshot before it calls `join`.

use std::collections::HashSet;

use super::keys::{parse_sign_in_record, parse_sub_record, sign_in_record, sub_record};
use super::{RedisAdapter, RemoteExtra};
use crate::adapter::stats::bump;
use crate::adapter::{AdapterError, Remote};

/// `SSCAN` page size, and the most records one reconciliation looks at.
const SCAN_COUNT: usize = 1_000;
const MAX_RECORDS: usize = 1_000_000;

impl RedisAdapter {
    pub(super) async fn reconcile(&self) -> Result<(), AdapterError> {
        bump(&self.counters.reconciliations, 1);
        self.reconcile_subscriptions().await?;
        self.reconcile_sign_ins().await
    }

    async fn reconcile_subscriptions(&self) -> Result<(), AdapterError> {
        let Some(snapshot) = self.snapshot.read().clone() else { return Ok(()) };
        for m in snapshot() {
            let outcome = self.join(m.as_membership()).await?;
            if !outcome.duplicate {
                self.report_extra(RemoteExtra::Rejoined { app: m.app, channel: m.channel, user: m.user, outcome });
            }
        }
        let node = self.keys.node().to_owned();
        let held = self.scan_set(&self.keys.node_subs(&node)).await?;
        let kept: HashSet<String> =
            snapshot().iter().map(|m| sub_record(&m.app, &m.channel, m.socket, m.user.as_ref())).collect();
        for record in held.into_iter().filter(|r| !kept.contains(r)) {
            let Some(r) = parse_sub_record(&record) else { continue };
            let (outcome, user) = self.leave_as(&node, &r.app, &r.channel, r.socket, &record).await?;
            if !outcome.not_found {
                self.sink.receive(Remote::Reaped { app: r.app, channel: r.channel, user, outcome });
            }
        }
        Ok(())
    }

    async fn reconcile_sign_ins(&self) -> Result<(), AdapterError> {
        let Some(snapshot) = self.sign_in_snapshot.read().clone() else { return Ok(()) };
        for s in snapshot() {
            if self.sign_in(&s.app, &s.user, s.socket).await? {
                self.report_extra(RemoteExtra::Presence { app: s.app, user: s.user, online: true });
            }
        }
        let node = self.keys.node().to_owned();
        let held = self.scan_set(&self.keys.node_sign_ins(&node)).await?;
        let kept: HashSet<String> = snapshot().iter().map(|s| sign_in_record(&s.app, &s.user, s.socket)).collect();
        for record in held.into_iter().filter(|r| !kept.contains(r)) {
            let Some((app, socket, user)) = parse_sign_in_record(&record) else { continue };
            if self.sign_out_as(&node, &app, &user, socket).await? {
                self.report_extra(RemoteExtra::Presence { app, user, online: false });
            }
        }
        Ok(())
    }

    /// Every member of a set, by `SSCAN` (at most [`MAX_RECORDS`]).
    async fn scan_set(&self, key: &str) -> Result<Vec<String>, AdapterError> {
        let mut conn = self.link.cmd();
        let mut out = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = self
                .run(redis::cmd("SSCAN").arg(key).arg(cursor).arg("COUNT").arg(SCAN_COUNT).query_async(&mut conn))
                .await?;
            out.extend(page);
            cursor = next;
            if cursor == 0 || out.len() >= MAX_RECORDS {
                break;
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}
