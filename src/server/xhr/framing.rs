//! The framing of pusher-js's HTTP transports (SockJS-style), apart from any socket: the lines
//! herald writes into a streaming or polling response, and the body a client POSTs to
//! `xhr_send`.
//!
//! Each line ends with `\n` and starts with its type:
//! - `o` the session is open (once, first line of the first response);
//! - `h` a heartbeat (pusher-js answers it with an empty send on the streaming transport);
//! - `a[...]` messages: a JSON array of strings, each the JSON text of one Pusher message;
//! - `c[code,"reason"]` the session is closed, with a Pusher close code.
//!
//! A send body is a JSON array of strings, each the JSON text of one Pusher message; `[]` is
//! pusher-js's transport-level ping.

/// `o`: the session is open.
pub const OPEN: &[u8] = b"o\n";
/// `h`: a heartbeat.
pub const HEARTBEAT: &[u8] = b"h\n";

/// A send body that is not a JSON array of strings.
#[derive(Debug, thiserror::Error)]
#[error("xhr_send body must be a JSON array of strings: {0}")]
pub struct BadSendBody(#[from] serde_json::Error);

/// `a[...]\n` carrying `messages` (each the JSON text of one message), as JSON strings.
pub fn messages<'a>(messages: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::from("a[");
    for (i, message) in messages.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        // Serializing a `&str` into a `String` cannot fail.
        line.push_str(&serde_json::to_string(message).unwrap_or_default());
    }
    line.push_str("]\n");
    line
}

/// `c[code,"reason"]\n`.
pub fn close(code: u16, reason: &str) -> String {
    format!("c[{code},{}]\n", serde_json::to_string(reason).unwrap_or_default())
}

/// The messages of a send body, in order.
pub fn parse_send(body: &[u8]) -> Result<Vec<String>, BadSendBody> {
    Ok(serde_json::from_slice(body)?)
}

/// The length of `text` in UTF-16 code units: how pusher-js measures a streaming response
/// (`responseText.length`) to decide when to open a new one.
pub fn utf16_len(text: &[u8]) -> usize {
    match std::str::from_utf8(text) {
        Ok(s) if s.is_ascii() => s.len(),
        Ok(s) => s.chars().map(char::len_utf16).sum(),
        Err(_) => text.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_json_strings_in_an_array() {
        let line = messages([r#"{"event":"e","data":"{\"a\":1}"}"#, "{}"]);
        assert_eq!(line, "a[\"{\\\"event\\\":\\\"e\\\",\\\"data\\\":\\\"{\\\\\\\"a\\\\\\\":1}\\\"}\",\"{}\"]\n");
        let back: Vec<String> = serde_json::from_str(&line[1..]).unwrap();
        assert_eq!(back, vec![r#"{"event":"e","data":"{\"a\":1}"}"#.to_string(), "{}".to_string()]);
    }

    #[test]
    fn a_newline_inside_a_message_never_ends_the_line() {
        let line = messages(["{\"data\":\"x\ny\"}"]);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
    }

    #[test]
    fn close_line_has_code_and_quoted_reason() {
        assert_eq!(close(4001, "App key \"k\" not found"), "c[4001,\"App key \\\"k\\\" not found\"]\n");
    }

    #[test]
    fn send_body_is_an_array_of_strings() {
        assert_eq!(parse_send(br#"["{\"event\":\"pusher:ping\"}"]"#).unwrap(), vec![r#"{"event":"pusher:ping"}"#]);
        assert!(parse_send(b"[]").unwrap().is_empty());
        assert!(parse_send(b"").is_err());
        assert!(parse_send(b"[1]").is_err());
        assert!(parse_send(br#"{"event":"x"}"#).is_err());
    }

    #[test]
    fn utf16_length_counts_code_units() {
        assert_eq!(utf16_len(b"abc"), 3);
        assert_eq!(utf16_len("é".as_bytes()), 1);
        assert_eq!(utf16_len("😀".as_bytes()), 2);
    }
}
