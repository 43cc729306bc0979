//! Reconciliation after an outage: make what the bucket holds under this node's id equal to
//! what the node holds (the snapshots), emitting the transitions that result.
//!
//! 1. Scan the documents that hold a share (a sign-in count) of this node, *then* take the
//!    snapshot: a join that completes meanwhile is in it (the core puts a membership in its
//!    snapshot before it calls `join`).
//! 2. Replace this node's record (`local.rs`) with the snapshot.
//! 3. For every channel in either, inside its gate, rewrite this node's share from the record
//!    (an absolute write, so a join that raced the rewrite cannot be counted twice). Users and
//!    occupancy it brings back → [`RemoteExtra::Rejoined`]; what it takes away →
//!    `Remote::Reaped`. The same for sign-ins (online/offline → [`RemoteExtra::Presence`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use herald_protocol::UserId;

use super::doc::{ChannelDoc, Rewrite};
use super::liveness::reaped;
use super::names::{parse_key, Key, ALL_CHANNELS, ALL_SIGN_INS};
use super::store::{decode, PerNode};
use super::NatsAdapter;
use crate::adapter::stats::bump;
use crate::adapter::{AdapterError, JoinOutcome, RemoteExtra};

impl NatsAdapter {
    pub(super) async fn reconcile(&self) -> Result<(), AdapterError> {
        bump(&self.counters.reconciliations, 1);
        self.reconcile_subscriptions().await?;
        self.reconcile_sign_ins().await
    }

    async fn reconcile_subscriptions(&self) -> Result<(), AdapterError> {
        let Some(snapshot) = self.snapshot.read().clone() else { return Ok(()) };
        let node = self.names.node().to_owned();
        let mut channels = BTreeSet::new();
        for entry in self.scan(ALL_CHANNELS).await? {
            let Some(Key::Channel { app, channel }) = parse_key(&entry.key) else { continue };
            if decode::<ChannelDoc>(&entry.key, Some(&entry.value)).is_ok_and(|d| d.nodes.contains_key(&node)) {
                channels.insert((app, channel));
            }
        }
        let memberships = snapshot();
        self.local.replace_subscriptions(&memberships);
        let mut infos: HashMap<(String, String), BTreeMap<String, String>> = HashMap::new();
        for m in &memberships {
            if let (Some(user), Some(info)) = (&m.user, &m.user_info) {
                let channel_infos = infos.entry((m.app.clone(), m.channel.clone())).or_default();
                channel_infos.entry(user.as_str().to_owned()).or_insert_with(|| info.clone());
            }
        }
        channels.extend(self.local.channels());
        for (app, channel) in channels {
            let _gate = self.gates.enter(&app, &channel).await;
            let share = self.local.share(&app, &channel);
            let info = infos.remove(&(app.clone(), channel.clone())).unwrap_or_default();
            let rewrite = self
                .transact(&self.names.channel(&app, &channel), |doc: &mut ChannelDoc| {
                    doc.rewrite(&node, share.clone(), &info, self.now())
                })
                .await?;
            for extra in rejoined(&app, &channel, &rewrite) {
                self.report_extra(extra);
            }
            for remote in reaped(&app, &channel, &rewrite) {
                self.sink.receive(remote);
            }
        }
        Ok(())
    }

    async fn reconcile_sign_ins(&self) -> Result<(), AdapterError> {
        let Some(snapshot) = self.sign_in_snapshot.read().clone() else { return Ok(()) };
        let node = self.names.node().to_owned();
        let mut users = BTreeSet::new();
        for entry in self.scan(ALL_SIGN_INS).await? {
            let Some(Key::SignIn { app, user }) = parse_key(&entry.key) else { continue };
            if decode::<PerNode>(&entry.key, Some(&entry.value)).is_ok_and(|d| d.contains_key(&node)) {
                users.insert((app, UserId::new(&user)));
            }
        }
        self.local.replace_sign_ins(&snapshot());
        users.extend(self.local.signed_in_users());
        for (app, user) in users {
            let _gate = self.gates.enter(&app, user.as_str()).await;
            let count = self.local.sign_in_count(&app, &user);
            if let Some(online) = self.rewrite_sign_ins(&node, &app, user.as_str(), count).await? {
                self.report_extra(RemoteExtra::Presence { app, user, online });
            }
        }
        Ok(())
    }
}

/// The [`RemoteExtra::Rejoined`] reports of a rewrite that brought users or occupancy back:
/// one per added user (the first carries `occupied`), or one without a user.
fn rejoined(app: &str, channel: &str, rewrite: &Rewrite) -> Vec<RemoteExtra> {
    let outcome = |first: bool, member_added: bool, membership_resumed: bool| JoinOutcome {
        duplicate: false,
        occupied: rewrite.occupied && first,
        member_added,
        occupancy_resumed: rewrite.occupancy_resumed && first,
        membership_resumed,
        subscription_count: rewrite.counts.subscription_count,
        user_count: rewrite.counts.user_count,
    };
    let (app, channel) = (app.to_owned(), channel.to_owned());
    if rewrite.added.is_empty() {
        return match rewrite.occupied {
            true => vec![RemoteExtra::Rejoined { app, channel, user: None, outcome: outcome(true, false, false) }],
            false => Vec::new(),
        };
    }
    rewrite
        .added
        .iter()
        .enumerate()
        .map(|(i, (user, resumed))| RemoteExtra::Rejoined {
            app: app.clone(),
            channel: channel.clone(),
            user: Some(UserId::new(user)),
            outcome: outcome(i == 0, true, *resumed),
        })
        .collect()
}
