//! History channels' events in Redis: one stream per channel (`…:{A:C}:history`), capped at
//! `max_events` and expiring after `max_age_seconds` without events, so any node can replay
//! any channel. The stream id is the event's position. An entry holds the event's frame JSON
//! without its position (field `e`), stamped again on replay; an anchor (field `a`) is
//! written only to give an empty channel a position to start from.

use std::time::SystemTime;

use herald_protocol::history::stamp;
use redis::streams::{StreamId, StreamRangeReply};

use super::RedisAdapter;
use crate::adapter::AdapterError;
use crate::config::HistoryRule;
use crate::frame::Frame;
use crate::history::{unix_ms, Gap, Position, Replay, Since};

/// The field of an event entry.
const EVENT: &str = "e";
/// The field of an anchor entry.
const ANCHOR: &str = "a";
/// The field of a gap entry: events of the channel around here were delivered but not recorded.
const GAP: &str = "g";

impl RedisAdapter {
    /// Appends the event `json` (encoded without a position) to the channel's stream and
    /// returns its position.
    pub async fn history_append(
        &self,
        app: &str,
        channel: &str,
        json: &str,
        rule: &HistoryRule,
    ) -> Result<Position, AdapterError> {
        self.append_entry(app, channel, EVENT, json, rule).await
    }

    /// Records that events of the channel were delivered without being recorded (Redis was
    /// unreachable): a recovery across this point fails instead of silently missing them.
    pub async fn history_mark_gap(&self, app: &str, channel: &str, rule: &HistoryRule) -> Result<(), AdapterError> {
        self.append_entry(app, channel, GAP, "", rule).await.map(drop)
    }

    /// The channel's events after `since`, or why they are not all kept.
    pub async fn history_read(
        &self,
        app: &str,
        channel: &str,
        rule: &HistoryRule,
        since: Since,
    ) -> Result<Replay, Gap> {
        let key = self.keys.history(app, channel);
        let Since::Position(from) = since else {
            return self.latest(app, channel, rule).await.map(|latest| Replay { events: Vec::new(), latest });
        };
        let cmd = redis::cmd("XRANGE")
            .arg(&key)
            .arg(from.to_string())
            .arg("+")
            .arg("COUNT")
            .arg(rule.max_events + 1)
            .to_owned();
        let reply: StreamRangeReply =
            self.run(cmd.query_async(&mut self.link.cmd())).await.map_err(|_| Gap::Unavailable)?;
        let entries: Vec<(Position, &StreamId)> =
            reply.ids.iter().filter_map(|e| Some((e.id.parse::<Position>().ok()?, e))).collect();
        let Some(((first, _), after)) = entries.split_first() else { return Err(Gap::Unknown) };
        if *first != from {
            return Err(Gap::NotKept);
        }
        let oldest_kept = unix_ms(SystemTime::now()).saturating_sub(rule.max_age_seconds.saturating_mul(1000));
        if after.iter().any(|(p, _)| p.major < oldest_kept) {
            return Err(Gap::NotKept);
        }
        if after.iter().any(|(_, e)| e.map.contains_key(GAP)) {
            return Err(Gap::Unrecorded);
        }
        let latest = entries.last().map_or(from, |(p, _)| *p);
        let events = after.iter().filter_map(|(position, entry)| event_frame(*position, entry)).collect();
        Ok(Replay { events, latest })
    }

    /// Every event the channel keeps, oldest first; `None` when it has none.
    pub async fn history_kept(&self, app: &str, channel: &str, rule: &HistoryRule) -> Result<Option<Replay>, Gap> {
        let key = self.keys.history(app, channel);
        let cmd = redis::cmd("XRANGE").arg(&key).arg("-").arg("+").arg("COUNT").arg(rule.max_events + 1).to_owned();
        let reply: StreamRangeReply =
            self.run(cmd.query_async(&mut self.link.cmd())).await.map_err(|_| Gap::Unavailable)?;
        let oldest_kept = unix_ms(SystemTime::now()).saturating_sub(rule.max_age_seconds.saturating_mul(1000));
        let entries: Vec<(Position, &StreamId)> =
            reply.ids.iter().filter_map(|e| Some((e.id.parse::<Position>().ok()?, e))).collect();
        let Some((latest, _)) = entries.last() else { return Ok(None) };
        let events =
            entries.iter().filter(|(p, _)| p.major >= oldest_kept).filter_map(|(p, e)| event_frame(*p, e)).collect();
        Ok(Some(Replay { events, latest: *latest }))
    }

    /// The channel's newest position; an empty channel gets an anchor to have one.
    async fn latest(&self, app: &str, channel: &str, rule: &HistoryRule) -> Result<Position, Gap> {
        let key = self.keys.history(app, channel);
        let cmd = redis::cmd("XREVRANGE").arg(&key).arg("+").arg("-").arg("COUNT").arg(1).to_owned();
        let reply: StreamRangeReply =
            self.run(cmd.query_async(&mut self.link.cmd())).await.map_err(|_| Gap::Unavailable)?;
        if let Some(position) = reply.ids.first().and_then(|e| e.id.parse().ok()) {
            return Ok(position);
        }
        self.append_entry(app, channel, ANCHOR, "", rule).await.map_err(|_| Gap::Unavailable)
    }

    async fn append_entry(
        &self,
        app: &str,
        channel: &str,
        field: &str,
        value: &str,
        rule: &HistoryRule,
    ) -> Result<Position, AdapterError> {
        let key = self.keys.history(app, channel);
        let ttl_ms = rule.max_age_seconds.saturating_mul(1000).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("XADD").arg(&key).arg("MAXLEN").arg(rule.max_events).arg("*").arg(field).arg(value);
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms).ignore();
        let (id,): (String,) = self.run(pipe.query_async(&mut self.link.cmd())).await?;
        id.parse().map_err(|_| AdapterError::Redis(format!("XADD answered {id:?}, not a stream id")))
    }
}

/// An event entry's frame, stamped with its position; `None` for an anchor.
fn event_frame(position: Position, entry: &StreamId) -> Option<(Position, Frame)> {
    let json: String = entry.get(EVENT)?;
    Some((position, Frame::text(&stamp(&json, position))))
}
