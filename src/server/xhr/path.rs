//! The URLs of pusher-js's HTTP transports, apart from any request handling:
//! `{path_prefix}/pusher/app/{key}/{server}/{session}/{xhr_streaming|xhr|xhr_send}`.
//!
//! pusher-js picks `{server}` (a number below 1000) and `{session}` (8 base-32 characters) at
//! random per connection attempt; together with the app key they name one session.

/// Where every HTTP transport URL starts, after the server's `path_prefix` (pusher-js's
/// `httpPath` default, followed by its `/app/` segment).
pub const ROOT: &str = "/pusher/app/";

/// Longest `{server}` or `{session}` segment accepted.
const MAX_SEGMENT: usize = 64;
/// Longest app key accepted in the path.
const MAX_KEY: usize = 256;

/// What a request to a session asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `xhr_streaming`: a response that stays open and carries every message.
    Streaming,
    /// `xhr`: a long poll, answered with what is queued (or a heartbeat) and ended.
    Polling,
    /// `xhr_send`: messages from the client.
    Send,
}

/// A parsed session URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPath {
    pub app_key: String,
    /// `{key}/{server}/{session}`: the session's name in the session table.
    pub id: String,
    pub kind: Kind,
}

impl SessionPath {
    /// Parses what follows [`ROOT`]; `None` for anything that is not a session URL.
    pub fn parse(rest: &str) -> Option<Self> {
        let mut parts = rest.split('/');
        let (key, server, session, kind) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || key.is_empty() || key.len() > MAX_KEY {
            return None;
        }
        if !is_segment(server) || !is_segment(session) {
            return None;
        }
        let kind = match kind {
            "xhr_streaming" => Kind::Streaming,
            "xhr" => Kind::Polling,
            "xhr_send" => Kind::Send,
            _ => return None,
        };
        Some(Self { app_key: key.to_string(), id: format!("{key}/{server}/{session}"), kind })
    }
}

/// 1 to 64 ASCII letters, digits, `-` or `_`.
fn is_segment(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_SEGMENT && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_kinds() {
        let p = SessionPath::parse("key1/123/abcdefgh/xhr_streaming").unwrap();
        assert_eq!((p.app_key.as_str(), p.id.as_str(), p.kind), ("key1", "key1/123/abcdefgh", Kind::Streaming));
        assert_eq!(SessionPath::parse("key1/1/s/xhr").unwrap().kind, Kind::Polling);
        assert_eq!(SessionPath::parse("key1/1/s/xhr_send").unwrap().kind, Kind::Send);
    }

    #[test]
    fn refuses_other_shapes() {
        for bad in ["key1/1/s", "key1/1/s/jsonp", "key1/1/s/xhr/more", "/1/s/xhr", "key1//s/xhr", "key1/1/s.x/xhr"] {
            assert_eq!(SessionPath::parse(bad), None, "{bad}");
        }
        let long = "x".repeat(65);
        assert_eq!(SessionPath::parse(&format!("key1/1/{long}/xhr")), None);
    }
}
