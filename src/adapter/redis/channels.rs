//! Channel membership and the queries on it: `join`/`leave` through the scripts, the channel
//! index, rosters, counts and the cache channel's last event.
//!
//! Order of the separate (cross-slot) commands, and the windows they leave:
//! * join writes the node's record (`P:node:N:subs`) *before* the script and leave removes it
//!   *after*: the record set is a superset of what the node holds in Redis, so the reaper and
//!   reconciliation never miss an entry (a spare record just leaves "not found").
//! * the channel index (`P:A:channels`) is written after the script: `SADD` on occupied, `SREM`
//!   on vacated followed by a re-check of the channel's count, which re-adds a channel that a
//!   join on another node occupied in between. [`RedisAdapter::channels`] also skips empty ones.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::{SocketId, UserId};

use super::keys::{glob_prefix, socket_field, sub_record};
use super::scripts;
use super::RedisAdapter;
use crate::adapter::{AdapterError, ChannelCounts, JoinOutcome, LeaveOutcome, Membership};

/// How long a held leave outlives the leave delay when its node never confirms it.
const HOLD_MARGIN: Duration = Duration::from_secs(30);

/// `SSCAN` page size, and the most channels `channels` lists.
const SCAN_COUNT: usize = 500;
const MAX_LISTED_CHANNELS: usize = 100_000;

impl RedisAdapter {
    /// Records the subscription cluster-wide; idempotent per socket (`duplicate` on a repeat).
    pub async fn join(&self, m: Membership<'_>) -> Result<JoinOutcome, AdapterError> {
        let node = self.keys.node().to_owned();
        self.join_as(&node, m).await
    }

    pub(super) async fn join_as(&self, node: &str, m: Membership<'_>) -> Result<JoinOutcome, AdapterError> {
        let record = sub_record(m.app, m.channel, m.socket, m.user);
        let mut conn = self.link.cmd();
        self.run(redis::cmd("SADD").arg(self.keys.node_subs(node)).arg(&record).exec_async(&mut conn)).await?;
        let k = self.keys.channel(m.app, m.channel);
        let mut invocation = self.scripts.join.key(&k.socks);
        invocation
            .key(&k.users)
            .key(&k.info)
            .key(&k.leaves)
            .arg(socket_field(node, m.socket))
            .arg(m.user.map(UserId::as_str).unwrap_or(""))
            .arg(m.user_info.unwrap_or(""));
        let outcome = scripts::join_outcome(self.run(invocation.invoke_async(&mut conn)).await?);
        if outcome.occupied {
            let index = self.keys.channel_index(m.app);
            self.run(redis::cmd("SADD").arg(index).arg(m.channel).exec_async(&mut conn)).await?;
        }
        Ok(outcome)
    }

    /// Removes the subscription cluster-wide (`not_found` if it was not recorded).
    pub async fn leave(&self, m: Membership<'_>) -> Result<LeaveOutcome, AdapterError> {
        let node = self.keys.node().to_owned();
        let record = sub_record(m.app, m.channel, m.socket, m.user);
        Ok(self.leave_as(&node, m.app, m.channel, m.socket, &record).await?.0)
    }

    /// Runs the leave script for `node`'s socket, keeps the index, then drops the node's
    /// record. Also returns the user the socket was recorded with.
    pub(super) async fn leave_as(
        &self,
        node: &str,
        app: &str,
        channel: &str,
        socket: SocketId,
        record: &str,
    ) -> Result<(LeaveOutcome, Option<UserId>), AdapterError> {
        let mut conn = self.link.cmd();
        let k = self.keys.channel(app, channel);
        let mut invocation = self.scripts.leave.key(&k.socks);
        let hold = self.leave_hold_ms.load(Ordering::Relaxed);
        invocation.key(&k.users).key(&k.info).key(&k.leaves).arg(socket_field(node, socket)).arg(hold);
        let (outcome, user) = scripts::leave_outcome(self.run(invocation.invoke_async(&mut conn)).await?);
        if outcome.vacated {
            let index = self.keys.channel_index(app);
            self.run(redis::cmd("SREM").arg(&index).arg(channel).exec_async(&mut conn)).await?;
            let subs: u64 = self.run(redis::cmd("HLEN").arg(&k.socks).query_async(&mut conn)).await?;
            if subs > 0 {
                self.run(redis::cmd("SADD").arg(&index).arg(channel).exec_async(&mut conn)).await?;
            }
        }
        self.run(redis::cmd("SREM").arg(self.keys.node_subs(node)).arg(record).exec_async(&mut conn)).await?;
        Ok((outcome, user.map(|u| UserId::new(&u))))
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
        let k = self.keys.channel(app, channel);
        let field = match user {
            Some(user) => format!("u:{user}"),
            None => "c".to_owned(),
        };
        let removed: u64 =
            self.run(redis::cmd("HDEL").arg(&k.leaves).arg(field).query_async(&mut self.link.cmd())).await?;
        Ok(removed == 1)
    }

    /// The presence roster: every user in the channel with their `user_info` JSON.
    pub async fn roster(&self, app: &str, channel: &str) -> Result<Vec<(UserId, Option<String>)>, AdapterError> {
        let k = self.keys.channel(app, channel);
        let mut invocation = self.scripts.roster.key(&k.users);
        invocation.key(&k.info);
        let flat: Vec<String> = self.run(invocation.invoke_async(&mut self.link.cmd())).await?;
        Ok(flat
            .chunks_exact(2)
            .map(|pair| (UserId::new(&pair[0]), (!pair[1].is_empty()).then(|| pair[1].clone())))
            .collect())
    }

    pub async fn counts(&self, app: &str, channel: &str) -> Result<ChannelCounts, AdapterError> {
        let k = self.keys.channel(app, channel);
        let mut invocation = self.scripts.counts.key(&k.socks);
        invocation.key(&k.users);
        Ok(scripts::counts(self.run(invocation.invoke_async(&mut self.link.cmd())).await?))
    }

    pub async fn users(&self, app: &str, channel: &str) -> Result<Vec<UserId>, AdapterError> {
        let k = self.keys.channel(app, channel);
        let users: Vec<String> = self.run(redis::cmd("HKEYS").arg(&k.users).query_async(&mut self.link.cmd())).await?;
        Ok(users.iter().map(|u| UserId::new(u)).collect())
    }

    /// Occupied channels whose name starts with `prefix`, with their counts (at most
    /// [`MAX_LISTED_CHANNELS`]).
    pub async fn channels(&self, app: &str, prefix: &str) -> Result<Vec<(String, ChannelCounts)>, AdapterError> {
        let index = self.keys.channel_index(app);
        let pattern = glob_prefix(prefix);
        let mut conn = self.link.cmd();
        let mut names = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = self
                .run(
                    redis::cmd("SSCAN")
                        .arg(&index)
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut conn),
                )
                .await?;
            names.extend(page);
            cursor = next;
            if cursor == 0 || names.len() >= MAX_LISTED_CHANNELS {
                break;
            }
        }
        names.sort();
        names.dedup();
        names.truncate(MAX_LISTED_CHANNELS);
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(SCAN_COUNT) {
            let cmds: Vec<redis::Cmd> = chunk
                .iter()
                .flat_map(|name| {
                    let k = self.keys.channel(app, name);
                    [redis::cmd("HLEN").arg(k.socks).to_owned(), redis::cmd("HLEN").arg(k.users).to_owned()]
                })
                .collect();
            let values = self.run(self.link.cmd().batch(&cmds)).await?;
            for (name, pair) in chunk.iter().zip(values.chunks_exact(2)) {
                let subs: u64 = redis::from_redis_value_ref(&pair[0]).unwrap_or(0);
                let users: u64 = redis::from_redis_value_ref(&pair[1]).unwrap_or(0);
                if subs > 0 {
                    out.push((name.clone(), ChannelCounts { subscription_count: subs, user_count: users }));
                }
            }
        }
        Ok(out)
    }

    /// Stores a cache channel's last event (`frame` as sent, `data` as given) for `ttl`.
    pub async fn cache_set(
        &self,
        app: &str,
        channel: &str,
        frame: Bytes,
        data: &str,
        ttl: Duration,
    ) -> Result<(), AdapterError> {
        let mut value = Vec::with_capacity(4 + frame.len() + data.len());
        value.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        value.extend_from_slice(&frame);
        value.extend_from_slice(data.as_bytes());
        let ttl_ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let cmd = redis::cmd("SET").arg(self.keys.cache(app, channel)).arg(value).arg("PX").arg(ttl_ms).to_owned();
        self.run(cmd.exec_async(&mut self.link.cmd())).await
    }

    /// The cache channel's last event: frame, data and the time it has left.
    pub async fn cache_get(&self, app: &str, channel: &str) -> Result<Option<(Bytes, String, Duration)>, AdapterError> {
        let invocation = self.scripts.cache_get.key(self.keys.cache(app, channel));
        let (value, ttl_ms): (Option<Vec<u8>>, i64) = self.run(invocation.invoke_async(&mut self.link.cmd())).await?;
        let Some(value) = value else { return Ok(None) };
        let Some(len) = value.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize) else {
            return Ok(None);
        };
        let Some(frame) = value.get(4..4 + len) else { return Ok(None) };
        let data = String::from_utf8_lossy(&value[4 + len..]).into_owned();
        Ok(Some((Bytes::copy_from_slice(frame), data, Duration::from_millis(ttl_ms.max(0) as u64))))
    }
}
