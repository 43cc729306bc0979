//! What an event-stream request asks for, read from its query string and `Last-Event-ID`
//! header: the channels with their auth, the client's socket id, where to resume. Pure: no
//! app, no signature checks (those are the session's, `mod.rs` runs them).
//!
//! Query parameters (docs/sse.md): `channels=a,b` and/or repeated `channel=a`; `socket_id`;
//! `auth[<channel>]` (or `auth` when one channel needs it); `channel_data[<channel>]` (or
//! `channel_data` when one presence channel is asked for); `lastEventId`. Keys are taken as
//! sent (channel names are case-sensitive); unknown keys are ignored.

use herald_protocol::{ChannelName, SocketId};

use super::resume::LastEventId;

/// One channel the stream subscribes to, with what its subscription carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRequest {
    pub name: String,
    pub auth: Option<String>,
    pub channel_data: Option<String>,
}

/// A parsed event-stream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// In the order asked, without duplicates.
    pub channels: Vec<ChannelRequest>,
    /// The client's own socket id, when it chose one.
    pub socket_id: Option<SocketId>,
    pub last_event_id: Option<LastEventId>,
}

/// What is wrong with the request itself; each is answered 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("No channels: name them with ?channels=a,b or ?channel=a&channel=b")]
    NoChannels,
    #[error("Too many channels: at most {0} per connection")]
    TooManyChannels(usize),
    #[error("Invalid socket_id {0:?}: expected <digits>.<digits> as Pusher socket ids are, without leading zeros")]
    InvalidSocketId(String),
    #[error("A bare `{0}` is only accepted when exactly one channel needs it: send {0}[<channel>]")]
    AmbiguousParameter(&'static str),
    #[error("{0}[{1}] names a channel that is not requested")]
    UnrequestedChannel(&'static str, String),
    #[error("Last-Event-ID is longer than {0} bytes")]
    LastEventIdTooLong(usize),
}

/// Reads `query` (raw, percent-encoded) and the `Last-Event-ID` header. At most
/// `max_channels` channels.
pub fn parse(query: &str, last_event_id: Option<&str>, max_channels: usize) -> Result<StreamRequest, RequestError> {
    let mut names: Vec<String> = Vec::new();
    let (mut auth, mut data) = (Keyed::default(), Keyed::default());
    let (mut socket_id, mut query_last_id) = (None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "channels" => names.extend(value.split(',').filter(|n| !n.is_empty()).map(str::to_owned)),
            "channel" if !value.is_empty() => names.push(value.into_owned()),
            "socket_id" => socket_id = Some(parse_socket_id(&value)?),
            "lastEventId" => query_last_id = Some(value.into_owned()),
            key => {
                if let Some(channel) = bracketed(key, "auth") {
                    auth.set(channel, value.into_owned());
                } else if let Some(channel) = bracketed(key, "channel_data") {
                    data.set(channel, value.into_owned());
                }
            }
        }
        if names.len() > max_channels.saturating_mul(2) {
            return Err(RequestError::TooManyChannels(max_channels));
        }
    }
    let mut channels: Vec<ChannelRequest> = Vec::with_capacity(names.len());
    for name in names {
        if !channels.iter().any(|c| c.name == name) {
            channels.push(ChannelRequest { name, auth: None, channel_data: None });
        }
    }
    if channels.is_empty() {
        return Err(RequestError::NoChannels);
    }
    if channels.len() > max_channels {
        return Err(RequestError::TooManyChannels(max_channels));
    }
    auth.assign("auth", &mut channels, needs_auth, |c, v| c.auth = Some(v))?;
    data.assign("channel_data", &mut channels, is_presence, |c, v| c.channel_data = Some(v))?;
    let last_event_id = LastEventId::parse(last_event_id.map(str::to_owned).or(query_last_id))?;
    Ok(StreamRequest { channels, socket_id, last_event_id })
}

/// `auth`/`channel_data` values: one bare value, or one per channel (`key[channel]`).
#[derive(Debug, Default)]
struct Keyed {
    bare: Option<String>,
    per_channel: Vec<(String, String)>,
}

impl Keyed {
    /// `channel` is `None` for the bare key. The last value for a key wins.
    fn set(&mut self, channel: Option<&str>, value: String) {
        match channel {
            None => self.bare = Some(value),
            Some(channel) => {
                self.per_channel.retain(|(c, _)| c != channel);
                self.per_channel.push((channel.to_owned(), value));
            }
        }
    }

    /// Gives each value to its channel; a bare value to the one channel that `wants` it.
    fn assign(
        self,
        key: &'static str,
        channels: &mut [ChannelRequest],
        wants: fn(&str) -> bool,
        put: fn(&mut ChannelRequest, String),
    ) -> Result<(), RequestError> {
        for (channel, value) in self.per_channel {
            let target = channels.iter_mut().find(|c| c.name == channel);
            put(target.ok_or(RequestError::UnrequestedChannel(key, channel))?, value);
        }
        let Some(value) = self.bare else { return Ok(()) };
        let mut wanting = channels.iter_mut().filter(|c| wants(&c.name));
        match (wanting.next(), wanting.next()) {
            (Some(target), None) => {
                put(target, value);
                Ok(())
            }
            _ => Err(RequestError::AmbiguousParameter(key)),
        }
    }
}

/// `auth[private-x]` → `Some(Some("private-x"))`, `auth` → `Some(None)`, other keys → `None`.
fn bracketed<'a>(key: &'a str, name: &str) -> Option<Option<&'a str>> {
    let rest = key.strip_prefix(name)?;
    if rest.is_empty() {
        return Some(None);
    }
    rest.strip_prefix('[')?.strip_suffix(']').map(Some)
}

/// A socket id in its canonical form: the signature covers its text, so `01.2` is refused
/// rather than silently read as `1.2`.
fn parse_socket_id(text: &str) -> Result<SocketId, RequestError> {
    let invalid = || RequestError::InvalidSocketId(text.chars().take(64).collect());
    let id: SocketId = text.parse().map_err(|_| invalid())?;
    if id.to_string() != text {
        return Err(invalid());
    }
    Ok(id)
}

fn needs_auth(name: &str) -> bool {
    ChannelName::parse(name, usize::MAX).is_ok_and(|n| n.kind().needs_auth())
}

fn is_presence(name: &str) -> bool {
    ChannelName::parse(name, usize::MAX).is_ok_and(|n| n.kind() == herald_protocol::ChannelKind::Presence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(r: &StreamRequest) -> Vec<&str> {
        r.channels.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn channels_come_from_both_forms_in_order_without_duplicates() {
        let r = parse("channels=a,b&channel=c&channel=a&channels=,d", None, 10).unwrap();
        assert_eq!(names(&r), ["a", "b", "c", "d"]);
        assert_eq!(r.socket_id, None);
        assert_eq!(r.last_event_id, None);
    }

    #[test]
    fn a_channel_with_a_comma_in_its_name_goes_in_channel() {
        let r = parse("channel=a%2Cb", None, 10).unwrap();
        assert_eq!(names(&r), ["a,b"]);
    }

    #[test]
    fn auth_per_channel_keeps_the_case_of_the_name() {
        let q =
            "channels=private-Orders,private-b&socket_id=12.34&auth%5Bprivate-Orders%5D=k%3As1&auth[private-b]=k:s2";
        let r = parse(q, None, 10).unwrap();
        assert_eq!(r.socket_id, Some(SocketId::new(12, 34)));
        assert_eq!(r.channels[0].auth.as_deref(), Some("k:s1"));
        assert_eq!(r.channels[1].auth.as_deref(), Some("k:s2"));
    }

    #[test]
    fn a_bare_auth_goes_to_the_one_channel_that_needs_it() {
        let r = parse("channels=news,private-x&auth=k:s&socket_id=1.2", None, 10).unwrap();
        assert_eq!(r.channels[0].auth, None);
        assert_eq!(r.channels[1].auth.as_deref(), Some("k:s"));
        let two = parse("channels=private-x,private-y&auth=k:s", None, 10);
        assert_eq!(two, Err(RequestError::AmbiguousParameter("auth")));
    }

    #[test]
    fn presence_channel_data_is_read_like_auth() {
        let q = "channel=presence-room&auth=k:s&channel_data=%7B%22user_id%22%3A%221%22%7D";
        let r = parse(q, None, 10).unwrap();
        assert_eq!(r.channels[0].channel_data.as_deref(), Some(r#"{"user_id":"1"}"#));
    }

    #[test]
    fn auth_for_a_channel_not_requested_is_refused() {
        let r = parse("channel=private-a&auth[private-b]=k:s", None, 10);
        assert_eq!(r, Err(RequestError::UnrequestedChannel("auth", "private-b".into())));
    }

    #[test]
    fn socket_ids_must_be_canonical_pusher_ids() {
        for bad in ["abc", "1.", ".1", "01.2", "1.2.3", "99999999999.1", "-1.2"] {
            let r = parse(&format!("channel=a&socket_id={bad}"), None, 10);
            assert!(matches!(r, Err(RequestError::InvalidSocketId(_))), "{bad}: {r:?}");
        }
    }

    #[test]
    fn no_channels_and_too_many_channels_are_refused() {
        assert_eq!(parse("channels=", None, 10), Err(RequestError::NoChannels));
        assert_eq!(parse("channels=a,b,c", None, 2), Err(RequestError::TooManyChannels(2)));
        let many = format!("channels={}", (0..10_000).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert_eq!(parse(&many, None, 3), Err(RequestError::TooManyChannels(3)));
    }

    #[test]
    fn the_last_event_id_header_wins_over_the_query() {
        let r = parse("channel=a&lastEventId=7", Some("9"), 10).unwrap();
        assert_eq!(r.last_event_id.map(|id| id.as_str().to_owned()).as_deref(), Some("9"));
        let r = parse("channel=a&lastEventId=7", None, 10).unwrap();
        assert_eq!(r.last_event_id.map(|id| id.as_str().to_owned()).as_deref(), Some("7"));
    }
}
