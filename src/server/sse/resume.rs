//! `Last-Event-ID` recovery on history channels (docs/sse.md, docs/history.md).
//!
//! A stream's messages that change what it has seen of a history channel carry an `id:` line
//! naming the newest position of *every* history channel of the stream, form-encoded
//! (`orders-1=1733600000000-4&orders-2=1733600000000-9`): a browser sends back only the last
//! id it saw. When the client reconnects with it (`Last-Event-ID`, or `?lastEventId=` for
//! curl), the stream asks its session for a recovery of each history channel before
//! subscribing, so each subscription starts with what was missed, in order, then
//! `herald:recovered`. A history channel the id does not name is anchored (`since: latest`),
//! so even a stream that saw no event yet has an id to come back with.

use herald_protocol::history::{position_of, RECOVERED_EVENT, RECOVERY_FAILED_EVENT};
use serde::Deserialize;

use super::request::{ChannelRequest, RequestError};
use crate::history::Position;
use crate::server::ws::session::Session;

/// The longest `Last-Event-ID` accepted: one position per history channel of the stream.
const MAX_LAST_EVENT_ID_BYTES: usize = 4096;

/// The id the client saw last, as it sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEventId(String);

impl LastEventId {
    /// `None` for an absent or empty id (the spec's way to say "start afresh").
    pub fn parse(value: Option<String>) -> Result<Option<Self>, RequestError> {
        match value {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) if v.len() > MAX_LAST_EVENT_ID_BYTES => {
                Err(RequestError::LastEventIdTooLong(MAX_LAST_EVENT_ID_BYTES))
            }
            Some(v) => Ok(Some(Self(v))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The newest position the stream has sent per history channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions(Vec<(String, Position)>);

impl Positions {
    /// The positions an id names; entries that are not `channel=position` are ignored.
    pub fn parse(id: &LastEventId) -> Self {
        let entries = form_urlencoded::parse(id.as_str().as_bytes())
            .filter_map(|(channel, position)| Some((channel.into_owned(), position.parse().ok()?)));
        Self(entries.collect())
    }

    pub fn get(&self, channel: &str) -> Option<Position> {
        self.0.iter().find(|(c, _)| c == channel).map(|(_, p)| *p)
    }

    /// Notes what a frame tells of a history channel: an event's position, the position a
    /// recovery reached, or a failed recovery (the channel is forgotten). True when the id
    /// changed.
    pub fn observe(&mut self, payload: &[u8]) -> bool {
        if let Some(position) = position_of(payload) {
            return channel_of(payload).is_some_and(|channel| self.set(channel, position));
        }
        if payload.starts_with(br#"{"event":"herald:recover"#) {
            let Ok(frame) = serde_json::from_slice::<Outcome>(payload) else { return false };
            return match frame.event.as_str() {
                RECOVERED_EVENT => recovered_position(&frame.data).is_some_and(|p| self.set(frame.channel, p)),
                RECOVERY_FAILED_EVENT => self.forget(&frame.channel),
                _ => false,
            };
        }
        false
    }

    /// The `id:` value: every channel's position, form-encoded.
    pub fn id(&self) -> String {
        let mut id = form_urlencoded::Serializer::new(String::new());
        for (channel, position) in &self.0 {
            id.append_pair(channel, &position.to_string());
        }
        id.finish()
    }

    fn set(&mut self, channel: String, position: Position) -> bool {
        match self.0.iter_mut().find(|(c, _)| *c == channel) {
            Some((_, p)) if *p >= position => false,
            Some((_, p)) => {
                *p = position;
                true
            }
            None => {
                self.0.push((channel, position));
                true
            }
        }
    }

    fn forget(&mut self, channel: &str) -> bool {
        let before = self.0.len();
        self.0.retain(|(c, _)| c != channel);
        self.0.len() != before
    }
}

#[derive(Deserialize)]
struct Outcome {
    event: String,
    channel: String,
    data: String,
}

fn channel_of(payload: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Channel {
        channel: String,
    }
    serde_json::from_slice::<Channel>(payload).ok().map(|c| c.channel)
}

fn recovered_position(data: &str) -> Option<Position> {
    #[derive(Deserialize)]
    struct Recovered {
        position: Option<String>,
    }
    serde_json::from_str::<Recovered>(data).ok()?.position?.parse().ok()
}

/// Before the subscriptions: asks for a recovery of every history channel of the stream,
/// from the position `last_event_id` names, or from now. Returns the positions the stream
/// starts from.
pub async fn resume(
    session: &mut Session,
    channels: &[ChannelRequest],
    last_event_id: Option<&LastEventId>,
) -> Positions {
    let positions = last_event_id.map(Positions::parse).unwrap_or_default();
    for c in channels {
        if session.app().channels.policy().history.for_channel(&c.name).is_none() {
            continue;
        }
        let since = positions.get(&c.name).map_or_else(|| "latest".to_string(), |p| p.to_string());
        session.recover(&c.name, &since).await;
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> LastEventId {
        LastEventId::parse(Some(s.into())).unwrap().unwrap()
    }

    #[test]
    fn ids_name_every_channel_and_round_trip() {
        let mut positions = Positions::default();
        assert!(positions.observe(br#"{"event":"e","channel":"orders=1&x","data":"1","position":"5-1"}"#));
        assert!(positions.observe(br#"{"event":"e","channel":"orders-2","data":"1","position":"5-2"}"#));
        assert!(!positions.observe(br#"{"event":"e","channel":"orders-2","data":"1","position":"5-2"}"#));
        assert_eq!(positions.id(), "orders%3D1%26x=5-1&orders-2=5-2");
        assert_eq!(Positions::parse(&id(&positions.id())), positions);
    }

    #[test]
    fn recovery_outcomes_move_or_forget_a_channel() {
        let mut positions = Positions::default();
        let recovered = br#"{"event":"herald:recovered","channel":"a","data":"{\"since\":\"1-1\",\"replayed\":0,\"position\":\"1-3\"}"}"#;
        assert!(positions.observe(recovered));
        assert_eq!(positions.get("a"), Some(Position::new(1, 3)));
        let failed = br#"{"event":"herald:recovery_failed","channel":"a","data":"{\"since\":null,\"reason\":\"x\"}"}"#;
        assert!(positions.observe(failed));
        assert_eq!(positions.get("a"), None);
        assert!(!positions.observe(br#"{"event":"e","channel":"a","data":"1"}"#), "no position, no id");
    }

    #[test]
    fn malformed_entries_are_ignored() {
        assert_eq!(Positions::parse(&id("a=1-1&b=soon&=&c")).0, vec![("a".to_string(), Position::new(1, 1))]);
    }
}
