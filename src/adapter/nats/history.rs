//! History channels' events in NATS (docs/history.md, docs/nats.md): one JetStream stream per
//! cluster, `<prefix>_history`, one subject per channel (`<prefix>.hist.<app>.<channel>`), so
//! any node can replay any channel. The stream sequence is the position (`<seq>-0`). An entry
//! holds the event's frame JSON without its position, stamped again on replay; the header
//! `Herald-Entry` marks an anchor (a position for an empty channel) or a gap (events delivered
//! while NATS could not record them). The stream keeps at most
//! [`HISTORY_MAX_EVENTS_LIMIT`] entries per channel for a day; each channel's own
//! `max_events` and `max_age_seconds` apply when it is read, with the Redis adapter's meaning.

use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{push, DeliverPolicy, ReplayPolicy};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::Context;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use herald_protocol::history::stamp;

use super::names::escape;
use super::NatsAdapter;
use crate::adapter::AdapterError;
use crate::config::{HistoryRule, HISTORY_MAX_EVENTS_LIMIT};
use crate::frame::Frame;
use crate::history::{unix_ms, Gap, Position, Replay, Since};

/// The header that marks an entry that is not an event.
const ENTRY: &str = "Herald-Entry";
const ANCHOR: &str = "anchor";
const GAP: &str = "gap";
/// How long the stream keeps anything (channels' `max_age_seconds` are shorter in practice).
const STREAM_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// A read gets this many command timeouts.
const READ_TIMEOUTS: u32 = 10;

/// Creates the cluster's history stream unless it exists.
pub(super) async fn open_history(js: &Context, name: &str, subjects: String) -> Result<(), async_nats::Error> {
    if js.get_stream(name).await.is_ok() {
        return Ok(());
    }
    let config = stream::Config {
        name: name.to_owned(),
        description: Some("herald channel history (docs/history.md)".to_owned()),
        subjects: vec![subjects],
        max_messages_per_subject: HISTORY_MAX_EVENTS_LIMIT as i64,
        max_age: STREAM_MAX_AGE,
        storage: StorageType::File,
        num_replicas: 1,
        discard: DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    };
    if let Err(e) = js.create_stream(config).await {
        // A peer may have created it meanwhile.
        tracing::debug!(error = %e, name, "history stream not created");
    }
    js.get_stream(name).await.map(drop).map_err(Into::into)
}

/// One entry of a channel's history as read.
struct Entry {
    position: Position,
    at_ms: u64,
    kind: Kind,
    payload: Bytes,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Event,
    Anchor,
    Gap,
}

fn kind_of(headers: Option<&HeaderMap>) -> Kind {
    match headers.and_then(|h| h.get(ENTRY)).map(|v| v.as_str()) {
        Some(ANCHOR) => Kind::Anchor,
        Some(GAP) => Kind::Gap,
        _ => Kind::Event,
    }
}

impl NatsAdapter {
    fn history_subject(&self, app: &str, channel: &str) -> String {
        format!("{}.hist.{}.{}", self.names.prefix(), escape(app), escape(channel))
    }

    pub async fn history_append(
        &self,
        app: &str,
        channel: &str,
        json: &str,
        _rule: &HistoryRule,
    ) -> Result<Position, AdapterError> {
        self.append(app, channel, None, Bytes::copy_from_slice(json.as_bytes())).await
    }

    pub async fn history_mark_gap(&self, app: &str, channel: &str, _rule: &HistoryRule) -> Result<(), AdapterError> {
        self.append(app, channel, Some(GAP), Bytes::new()).await.map(drop)
    }

    async fn append(
        &self,
        app: &str,
        channel: &str,
        kind: Option<&str>,
        payload: Bytes,
    ) -> Result<Position, AdapterError> {
        let subject = self.history_subject(app, channel);
        let js = &self.js;
        let ack = self
            .run(async move {
                let ack = match kind {
                    Some(kind) => {
                        let mut headers = HeaderMap::new();
                        headers.insert(ENTRY, kind);
                        js.publish_with_headers(subject, headers, payload).await?
                    }
                    None => js.publish(subject, payload).await?,
                };
                ack.await.map_err(async_nats::Error::from)
            })
            .await?;
        Ok(Position::new(ack.sequence, 0))
    }

    pub async fn history_read(
        &self,
        app: &str,
        channel: &str,
        rule: &HistoryRule,
        since: Since,
    ) -> Result<Replay, Gap> {
        let Since::Position(from) = since else {
            return self.latest(app, channel).await.map(|latest| Replay { events: Vec::new(), latest });
        };
        let subject = self.history_subject(app, channel);
        let stream = self.history_stream().await?;
        let kept = self.run(stream.get_raw_message(from.major)).await;
        match kept {
            Ok(message) if message.subject.as_str() == subject && from.minor == 0 => {}
            Ok(_) => return Err(Gap::Unknown),
            Err(_) => return Err(Gap::NotKept),
        }
        let after =
            self.entries(&stream, &subject, DeliverPolicy::ByStartSequence { start_sequence: from.major + 1 }).await?;
        if after.len() >= rule.max_events {
            return Err(Gap::NotKept);
        }
        let oldest_kept = unix_ms(SystemTime::now()).saturating_sub(rule.max_age_seconds.saturating_mul(1000));
        if after.iter().any(|e| e.kind == Kind::Event && e.at_ms < oldest_kept) {
            return Err(Gap::NotKept);
        }
        if after.iter().any(|e| e.kind == Kind::Gap) {
            return Err(Gap::Unrecorded);
        }
        let latest = after.last().map_or(from, |e| e.position);
        Ok(Replay { events: events(&after), latest })
    }

    pub async fn history_kept(&self, app: &str, channel: &str, rule: &HistoryRule) -> Result<Option<Replay>, Gap> {
        let subject = self.history_subject(app, channel);
        let stream = self.history_stream().await?;
        let mut all = self.entries(&stream, &subject, DeliverPolicy::All).await?;
        let Some(latest) = all.last().map(|e| e.position) else { return Ok(None) };
        let keep_from = all.len().saturating_sub(rule.max_events);
        let oldest_kept = unix_ms(SystemTime::now()).saturating_sub(rule.max_age_seconds.saturating_mul(1000));
        all.drain(..keep_from);
        all.retain(|e| e.at_ms >= oldest_kept);
        Ok(Some(Replay { events: events(&all), latest }))
    }

    /// The channel's newest position; an empty channel gets an anchor to have one.
    async fn latest(&self, app: &str, channel: &str) -> Result<Position, Gap> {
        let subject = self.history_subject(app, channel);
        let stream = self.history_stream().await?;
        if let Ok(message) = self.run(stream.get_last_raw_message_by_subject(subject.as_str())).await {
            return Ok(Position::new(message.sequence, 0));
        }
        self.append(app, channel, Some(ANCHOR), Bytes::new()).await.map_err(|_| Gap::Unavailable)
    }

    async fn history_stream(&self) -> Result<stream::Stream, Gap> {
        self.run(self.js.get_stream(self.names.history_stream())).await.map_err(|_| Gap::Unavailable)
    }

    /// The channel's entries from `deliver`, oldest first, through one ordered consumer. It
    /// ends at the consumer's last pending entry or at the stream's last sequence when the
    /// read began (the same rule as the bucket's scans).
    async fn entries(&self, stream: &stream::Stream, subject: &str, deliver: DeliverPolicy) -> Result<Vec<Entry>, Gap> {
        let config = push::OrderedConfig {
            deliver_subject: self.client.new_inbox(),
            filter_subject: subject.to_owned(),
            deliver_policy: deliver,
            replay_policy: ReplayPolicy::Instant,
            ..Default::default()
        };
        let gap = self.timing.command;
        let read = async move {
            let last = stream.get_info().await?.state.last_sequence;
            let consumer = stream.create_consumer(config).await?;
            let mut out = Vec::new();
            if consumer.cached_info().num_pending == 0 {
                return Ok::<_, async_nats::Error>(out);
            }
            let mut messages = consumer.messages().await?;
            loop {
                let Some(message) = tokio::time::timeout(gap, messages.next()).await? else { break };
                let message = message?;
                let info = message.info()?;
                let (pending, sequence) = (info.pending, info.stream_sequence);
                let at_ms = (info.published.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
                out.push(Entry {
                    position: Position::new(sequence, 0),
                    at_ms,
                    kind: kind_of(message.headers.as_ref()),
                    payload: message.payload.clone(),
                });
                if pending == 0 || sequence >= last || out.len() > HISTORY_MAX_EVENTS_LIMIT {
                    break;
                }
            }
            Ok(out)
        };
        self.run_for(self.timing.command * READ_TIMEOUTS, read).await.map_err(|_| Gap::Unavailable)
    }
}

/// The event entries' frames, stamped with their positions.
fn events(entries: &[Entry]) -> Vec<(Position, Frame)> {
    entries
        .iter()
        .filter(|e| e.kind == Kind::Event)
        .map(|e| (e.position, Frame::text(&stamp(&String::from_utf8_lossy(&e.payload), e.position))))
        .collect()
}
