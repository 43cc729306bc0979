//! What an event carries and how a receiver finds it again.
//!
//! The trigger puts `{"hb_seq":N,"hb_sent_ns":T}` (plus optional padding) in the event's `data`
//! string; `T` is the *intended* send time, so a late trigger shows up as latency instead of
//! hiding it (no coordinated omission). Receivers do not parse the frame as JSON: they search
//! for the two keys and read the digits that follow, whatever escaping the server applied.

use memchr::memmem;

const SEQ_KEY: &[u8] = b"hb_seq";
const SENT_KEY: &[u8] = b"hb_sent_ns";

/// The `data` string of event `seq` intended for `sent_ns`, padded with `pad` bytes.
pub fn event_data(seq: u64, sent_ns: u64, pad: usize) -> String {
    if pad == 0 {
        format!("{{\"hb_seq\":{seq},\"hb_sent_ns\":{sent_ns}}}")
    } else {
        format!("{{\"hb_seq\":{seq},\"hb_sent_ns\":{sent_ns},\"pad\":\"{}\"}}", "x".repeat(pad))
    }
}

/// The JSON body of `POST /apps/{id}/events`.
pub fn trigger_body(name: &str, channels: &[String], data: &str) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&serde_json::json!({ "name": name, "channels": channels, "data": data }))
}

/// The JSON body of `POST /apps/{id}/batch_events`: the same event once per channel.
pub fn batch_body(name: &str, channels: &[String], data: &str) -> serde_json::Result<Vec<u8>> {
    let batch: Vec<_> =
        channels.iter().map(|c| serde_json::json!({ "name": name, "channel": c, "data": data })).collect();
    serde_json::to_vec(&serde_json::json!({ "batch": batch }))
}

/// The stamp of a bench event frame: `(seq, intended_send_ns)`, or `None` for other frames.
pub fn scan(frame: &[u8]) -> Option<(u64, u64)> {
    Some((number_after(frame, SEQ_KEY)?, number_after(frame, SENT_KEY)?))
}

/// The decimal number following `key`, skipping the quotes, backslashes and colon between them.
fn number_after(frame: &[u8], key: &[u8]) -> Option<u64> {
    let start = memmem::find(frame, key)? + key.len();
    let rest = &frame[start..];
    let skip = rest.iter().take(8).position(u8::is_ascii_digit)?;
    if !rest[..skip].iter().all(|b| matches!(b, b'"' | b'\\' | b':' | b' ')) {
        return None;
    }
    let mut value: u64 = 0;
    for &b in rest[skip..].iter().take_while(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_found_in_a_server_frame() {
        let data = event_data(42, 1_700_000_000_123_456_789, 3);
        let frame = serde_json::json!({"event": "bench", "channel": "bench-0", "data": data}).to_string();
        assert_eq!(scan(frame.as_bytes()), Some((42, 1_700_000_000_123_456_789)));
    }

    #[test]
    fn stamps_are_found_when_data_is_an_object() {
        let frame = br#"{"event":"bench","channel":"c","data":{"hb_seq": 7,"hb_sent_ns":9}}"#;
        assert_eq!(scan(frame), Some((7, 9)));
    }

    #[test]
    fn other_frames_have_no_stamp() {
        assert_eq!(scan(br#"{"event":"pusher:ping","data":"{}"}"#), None);
        assert_eq!(scan(br#"{"event":"x","data":"hb_seq=abc hb_sent_ns"}"#), None);
    }

    #[test]
    fn batch_body_has_one_event_per_channel() {
        let body = batch_body("bench", &["a".into(), "b".into()], "{}").expect("json");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("parse");
        assert_eq!(value["batch"][1]["channel"], "b");
        assert_eq!(value["batch"][0]["data"], "{}");
    }

    #[test]
    fn trigger_body_carries_data_as_a_string() {
        let body = trigger_body("bench", &["a".into()], &event_data(1, 2, 0)).expect("json");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("parse");
        assert_eq!(value["data"], r#"{"hb_seq":1,"hb_sent_ns":2}"#);
    }
}
