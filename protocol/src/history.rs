//! herald's history extension (not in Pusher): event positions and the recovery exchange.
//!
//! On a channel that keeps history every event frame carries its position as the last field,
//! `"position":"<a>-<b>"`; clients that do not know it ignore it. Positions of one channel
//! are ordered: a later event has a greater position. A client that reconnects sends
//! `{"event":"herald:recover","data":{"channel":…,"since":…}}` and gets the events after
//! `since` in order, then `herald:recovered` — or `herald:recovery_failed` when they are no
//! longer kept. See protocol/README.md, "History and recovery".

use std::fmt;
use std::str::FromStr;

/// The client event that asks for missed events.
pub const RECOVER_EVENT: &str = "herald:recover";
/// Sent on the channel when the replay is complete.
pub const RECOVERED_EVENT: &str = "herald:recovered";
/// Sent on the channel when the events after `since` are not all kept any more.
pub const RECOVERY_FAILED_EVENT: &str = "herald:recovery_failed";

/// Where an event sits in its channel's history: two numbers, ordered as a pair. A Redis
/// stream id (`<milliseconds>-<sequence>`) is one; a single node uses `<epoch>-<counter>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    pub major: u64,
    pub minor: u64,
}

impl Position {
    pub const fn new(major: u64, minor: u64) -> Self {
        Self { major, minor }
    }

    /// The position right after this one, in the same major.
    pub fn next(self) -> Self {
        Self { major: self.major, minor: self.minor.saturating_add(1) }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.major, self.minor)
    }
}

/// A position that is not `<number>-<number>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a history position is two numbers joined by '-', like 1733600000000-0")]
pub struct BadPosition;

impl FromStr for Position {
    type Err = BadPosition;

    fn from_str(s: &str) -> Result<Self, BadPosition> {
        let (major, minor) = s.split_once('-').ok_or(BadPosition)?;
        let number = |t: &str| {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadPosition);
            }
            t.parse::<u64>().map_err(|_| BadPosition)
        };
        Ok(Self { major: number(major)?, minor: number(minor)? })
    }
}

/// `json` (an encoded event frame, a JSON object) with `"position":"<position>"` as its last
/// field. The frame is encoded once without it and stamped once, so stored events can be
/// stamped again identically on replay.
pub fn stamp(json: &str, position: Position) -> String {
    let body = json.strip_suffix('}').unwrap_or(json);
    let mut out = String::with_capacity(json.len() + 40);
    out.push_str(body);
    if body.len() > 1 {
        out.push(',');
    }
    out.push_str("\"position\":\"");
    out.push_str(&position.to_string());
    out.push_str("\"}");
    out
}

/// The position a [`stamp`]ed frame carries, read from its end; `None` for any other frame.
pub fn position_of(json: &[u8]) -> Option<Position> {
    let body = json.strip_suffix(b"\"}")?;
    let start = body.iter().rposition(|&b| b == b'"')?;
    if !body[..start].ends_with(b"\"position\":") {
        return None;
    }
    std::str::from_utf8(&body[start + 1..]).ok()?.parse().ok()
}

/// The `data` of `herald:recovered`: what was asked, how many events were replayed, and the
/// channel's latest position (the one to remember when nothing was missed).
pub fn recovered_data(since: Position, replayed: usize, latest: Option<Position>) -> String {
    match latest {
        Some(p) => format!(r#"{{"since":"{since}","replayed":{replayed},"position":"{p}"}}"#),
        None => format!(r#"{{"since":"{since}","replayed":{replayed},"position":null}}"#),
    }
}

/// The `data` of `herald:recovery_failed`.
pub fn recovery_failed_data(since: Option<&str>, reason: &str) -> String {
    let mut out = String::from("{\"since\":");
    out.push_str(&serde_json::to_string(&since).unwrap_or_else(|_| "null".into()));
    out.push_str(",\"reason\":");
    out.push_str(&serde_json::to_string(reason).unwrap_or_else(|_| "\"\"".into()));
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_print_and_order_as_pairs() {
        let p: Position = "1733600000000-7".parse().unwrap();
        assert_eq!(p, Position::new(1_733_600_000_000, 7));
        assert_eq!(p.to_string(), "1733600000000-7");
        assert!(Position::new(1, 10) > Position::new(1, 9));
        assert!(Position::new(2, 0) > Position::new(1, 99));
        for bad in ["", "1", "-1", "1-", "a-1", "1-2-3", "+1-2", "1 -2", "99999999999999999999-0"] {
            assert_eq!(bad.parse::<Position>(), Err(BadPosition), "{bad:?}");
        }
    }

    #[test]
    fn a_stamped_frame_ends_with_its_position() {
        let json = r#"{"event":"e","channel":"orders-1","data":"{}"}"#;
        let stamped = stamp(json, Position::new(5, 2));
        assert_eq!(stamped, r#"{"event":"e","channel":"orders-1","data":"{}","position":"5-2"}"#);
        assert_eq!(position_of(stamped.as_bytes()), Some(Position::new(5, 2)));
        let value: serde_json::Value = serde_json::from_str(&stamped).unwrap();
        assert_eq!(value["position"], "5-2");
    }

    #[test]
    fn frames_without_a_position_have_none() {
        assert_eq!(position_of(br#"{"event":"e","channel":"c","data":"x"}"#), None);
        assert_eq!(position_of(br#"{"event":"e","channel":"c","data":"\"position\":\"1-1"}"#), None);
        assert_eq!(position_of(b""), None);
    }

    #[test]
    fn recovery_replies_are_json_objects() {
        let ok: serde_json::Value =
            serde_json::from_str(&recovered_data(Position::new(1, 1), 3, Some(Position::new(1, 4)))).unwrap();
        assert_eq!(ok, serde_json::json!({"since":"1-1","replayed":3,"position":"1-4"}));
        let failed: serde_json::Value =
            serde_json::from_str(&recovery_failed_data(Some("1-\"1"), "gone \"now\"")).unwrap();
        assert_eq!(failed, serde_json::json!({"since":"1-\"1","reason":"gone \"now\""}));
    }
}
