//! Channel membership and the queries on it: `join`/`leave` through the channel document's
//! compare-and-set (`doc.rs`, `store.rs`), held leaves, rosters, counts, the channel listing
//! and the cache channel's last event.
//!
//! A join or leave first updates this node's record (`local.rs`: is the socket counted, with
//! which user), then, inside the document's gate, writes the change; a failed write is undone
//! in the record, so the record and the bucket agree on what this node counted.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use herald_protocol::UserId;

use super::doc::{ChannelDoc, Now};
use super::names::{parse_key, Key};
use super::store::decode;
use super::NatsAdapter;
use crate::adapter::{AdapterError, ChannelCounts, JoinOutcome, LeaveOutcome, Membership};

/// How long a held leave outlives the leave delay when its node never confirms it.
const HOLD_MARGIN: Duration = Duration::from_secs(30);
/// The most channels `channels` lists.
const MAX_LISTED_CHANNELS: usize = 100_000;

pub(super) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl NatsAdapter {
    /// The clock and hold a transition is applied with.
    pub(super) fn now(&self) -> Now {
        Now { ms: unix_ms(), hold_ms: self.leave_hold_ms.load(Ordering::Relaxed) }
    }

    /// Records the subscription cluster-wide; idempotent per socket (`duplicate` on a repeat).
    pub async fn join(&self, m: Membership<'_>) -> Result<JoinOutcome, AdapterError> {
        let _gate = self.gates.enter(m.app, m.channel).await;
        if !self.local.add_subscription(m.app, m.channel, m.socket, m.user) {
            let counts = self.counts(m.app, m.channel).await?;
            return Ok(JoinOutcome {
                duplicate: true,
                subscription_count: counts.subscription_count,
                user_count: counts.user_count,
                ..JoinOutcome::default()
            });
        }
        let (node, user) = (self.names.node(), m.user.map(UserId::as_str));
        let result = self
            .transact(&self.names.channel(m.app, m.channel), |doc: &mut ChannelDoc| {
                doc.join(node, user, m.user_info, self.now())
            })
            .await;
        if result.is_err() {
            self.local.remove_subscription(m.app, m.channel, m.socket);
        }
        result
    }

    /// Removes the subscription cluster-wide (`not_found` if it was not recorded).
    pub async fn leave(&self, m: Membership<'_>) -> Result<LeaveOutcome, AdapterError> {
        let _gate = self.gates.enter(m.app, m.channel).await;
        let Some(user) = self.local.remove_subscription(m.app, m.channel, m.socket) else {
            let counts = self.counts(m.app, m.channel).await?;
            return Ok(LeaveOutcome {
                not_found: true,
                subscription_count: counts.subscription_count,
                user_count: counts.user_count,
                ..LeaveOutcome::default()
            });
        };
        let node = self.names.node();
        let result = self
            .transact(&self.names.channel(m.app, m.channel), |doc: &mut ChannelDoc| {
                doc.leave(node, user.as_ref().map(UserId::as_str), self.now())
            })
            .await;
        if result.is_err() {
            self.local.add_subscription(m.app, m.channel, m.socket, user.as_ref());
        }
        result
    }

    /// The leave delay this node's webhooks apply. From now on a vacancy or a member's removal
    /// is recorded as held until [`Self::confirm_leave`] (or a join that takes it back), and is
    /// forgotten after `delay` plus [`HOLD_MARGIN`] if nobody confirms it (a node that died).
    pub fn set_leave_delay(&self, delay: Duration) {
        let ms = if delay.is_zero() { 0 } else { (delay + HOLD_MARGIN).as_millis() as u64 };
        self.leave_hold_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether vacancies and removals are recorded as held ([`Self::set_leave_delay`]).
    pub fn holds_leaves(&self) -> bool {
        self.leave_hold_ms.load(Ordering::Relaxed) > 0
    }

    /// At the end of the leave delay: true when the held vacancy (`user` `None`) or removal is
    /// still to be sent, false when a join anywhere took it back (or another node confirmed it).
    pub async fn confirm_leave(&self, app: &str, channel: &str, user: Option<&UserId>) -> Result<bool, AdapterError> {
        let user = user.map(UserId::as_str);
        self.transact(&self.names.channel(app, channel), |doc: &mut ChannelDoc| doc.confirm(user, self.now())).await
    }

    /// The presence roster: every user in the channel with their `user_info` JSON.
    pub async fn roster(&self, app: &str, channel: &str) -> Result<Vec<(UserId, Option<String>)>, AdapterError> {
        let (doc, _) = self.read::<ChannelDoc>(&self.names.channel(app, channel)).await?;
        Ok(doc.roster().into_iter().map(|(u, info)| (UserId::new(&u), info)).collect())
    }

    pub async fn counts(&self, app: &str, channel: &str) -> Result<ChannelCounts, AdapterError> {
        let (doc, _) = self.read::<ChannelDoc>(&self.names.channel(app, channel)).await?;
        Ok(doc.counts())
    }

    pub async fn users(&self, app: &str, channel: &str) -> Result<Vec<UserId>, AdapterError> {
        let (doc, _) = self.read::<ChannelDoc>(&self.names.channel(app, channel)).await?;
        Ok(doc.roster().into_iter().map(|(u, _)| UserId::new(&u)).collect())
    }

    /// Occupied channels whose name starts with `prefix`, with their counts (at most
    /// [`MAX_LISTED_CHANNELS`]): one scan of the app's channel documents.
    pub async fn channels(&self, app: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, AdapterError> {
        let mut out = Vec::new();
        for entry in self.scan(&self.names.app_channels(app)).await? {
            let Some(Key::Channel { channel, .. }) = parse_key(&entry.key) else { continue };
            if !channel.starts_with(prefix) {
                continue;
            }
            let Ok(doc) = decode::<ChannelDoc>(&entry.key, Some(&entry.value)) else { continue };
            let counts = doc.counts();
            if counts.subscription_count > 0 {
                out.push((channel, counts));
            }
            if out.len() >= MAX_LISTED_CHANNELS {
                break;
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Stores a cache channel's last event (`frame` as sent, `data` as given) for `ttl`:
    /// `expiry ms (u64 BE) · len(frame) (u32 BE) · frame · data`.
    pub async fn cache_set(
        &self,
        app: &str,
        channel: &str,
        frame: Bytes,
        data: &str,
        ttl: Duration,
    ) -> Result<(), AdapterError> {
        let expires = unix_ms().saturating_add(ttl.as_millis().min(u64::MAX as u128) as u64);
        let mut value = Vec::with_capacity(12 + frame.len() + data.len());
        value.extend_from_slice(&expires.to_be_bytes());
        value.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        value.extend_from_slice(&frame);
        value.extend_from_slice(data.as_bytes());
        self.put(&self.names.cache(app, channel), Bytes::from(value)).await.map(drop)
    }

    /// The cache channel's last event: frame, data and the time it has left. An expired one
    /// is deleted (against its revision, so a newer event is never lost).
    pub async fn cache_get(&self, app: &str, channel: &str) -> Result<Option<(Bytes, String, Duration)>, AdapterError> {
        let key = self.names.cache(app, channel);
        let (Some(value), revision) = self.read_raw(&key).await? else { return Ok(None) };
        let Some(event) = parse_cached(&value) else { return Ok(None) };
        let left = event.expires.saturating_sub(unix_ms());
        if left == 0 {
            let _ = self.run(self.kv.delete_expect_revision(&key, Some(revision))).await;
            return Ok(None);
        }
        Ok(Some((event.frame, event.data, Duration::from_millis(left))))
    }
}

struct Cached {
    expires: u64,
    frame: Bytes,
    data: String,
}

fn parse_cached(value: &Bytes) -> Option<Cached> {
    let expires = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let len = u32::from_be_bytes(value.get(8..12)?.try_into().ok()?) as usize;
    let frame = value.slice(12..12usize.checked_add(len).filter(|end| *end <= value.len())?);
    let data = String::from_utf8_lossy(&value[12 + len..]).into_owned();
    Some(Cached { expires, frame, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_values_parse_and_short_ones_are_rejected() {
        let mut value = 5u64.to_be_bytes().to_vec();
        value.extend_from_slice(&3u32.to_be_bytes());
        value.extend_from_slice(b"abc{\"d\":1}");
        let cached = parse_cached(&Bytes::from(value.clone())).unwrap();
        assert_eq!((cached.expires, &cached.frame[..], cached.data.as_str()), (5, &b"abc"[..], "{\"d\":1}"));
        value.truncate(13);
        assert!(parse_cached(&Bytes::from(value)).is_none());
        assert!(parse_cached(&Bytes::from_static(b"short")).is_none());
    }
}
