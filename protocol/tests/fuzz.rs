//! Property tests ("fuzzing") of everything herald parses from the network: client frames,
//! channel names, presence `channel_data`, sign-in `user_data`, socket ids, HTTP API request
//! authentication and channel-auth signatures, plus the encoder of server frames.
//!
//! Why proptest and not `cargo fuzz`: cargo-fuzz needs a nightly toolchain (libFuzzer's
//! sanitizer flags), and herald's machines and CI have stable Rust only. proptest runs on
//! stable, inside `cargo test`, and shrinks a failure to a minimal input.
//!
//! Each property runs a bounded number of cases so this file takes a few seconds in the
//! ordinary test run (256 per property, proptest's default). For a longer run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test --release -p herald-protocol --test fuzz
//! ```
//!
//! A failure is shrunk and written to a `proptest-regressions` file (proptest prints where);
//! commit it, so the case is replayed first on every later run.

use herald_protocol::http::{self, parse_query, query_get, sign_request, string_to_sign, verify_request, ApiRequest};
use herald_protocol::presence::{PresenceLimits, PresenceMember};
use herald_protocol::signature::{auth_token, verify_auth};
use herald_protocol::user::{SignedInUser, MAX_WATCHLIST_LENGTH};
use herald_protocol::{ChannelName, ClientMessage, ServerMessage, SocketId};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Cases per property: `PROPTEST_CASES` when set, else `default`.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Every character a channel name may contain (PROTOCOL.md §4), written out independently
/// of `herald_protocol::channel::is_channel_byte`.
const CHANNEL_CHARS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-=@,.;";

/// `^(#server-to-user-)?[A-Za-z0-9_\-=@,.;]+$`, as an oracle.
fn matches_channel_grammar(name: &str) -> bool {
    let body = name.strip_prefix("#server-to-user-").unwrap_or(name);
    !body.is_empty() && body.chars().all(|c| CHANNEL_CHARS.contains(c))
}

/// A user id as sign-in accepts it: channel-name characters only, no `#` prefix.
fn is_user_id_text(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| CHANNEL_CHARS.contains(c))
}

/// Arbitrary JSON values, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
        "[a-z:_-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,10}|user_id|user_info|channel|auth|channel_data|data", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Event names that reach every branch of the decoder, and some that reach none.
fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("pusher:ping".to_string()),
        Just("pusher:pong".to_string()),
        Just("pusher:subscribe".to_string()),
        Just("pusher:unsubscribe".to_string()),
        Just("pusher:signin".to_string()),
        "client-.{0,20}",
        any::<String>(),
    ]
}

/// A client frame with a plausible envelope and arbitrary contents; `data` sometimes as a
/// JSON string holding JSON, as non-pusher-js clients send it.
fn client_frame() -> impl Strategy<Value = String> {
    (event_name(), prop::option::of(json_value()), prop::option::of(json_value()), any::<bool>()).prop_map(
        |(event, channel, data, data_as_string)| {
            let mut frame = json!({ "event": event });
            if let Some(channel) = channel {
                frame["channel"] = channel;
            }
            if let Some(data) = data {
                frame["data"] = if data_as_string { Value::String(data.to_string()) } else { data };
            }
            frame.to_string()
        },
    )
}

/// The client frames of `tests/golden/client/`, as pusher-js and others send them.
const GOLDEN_CLIENT_FRAMES: [&str; 9] = [
    include_str!("golden/client/client_event.json"),
    include_str!("golden/client/ping.json"),
    include_str!("golden/client/pong.json"),
    include_str!("golden/client/signin.json"),
    include_str!("golden/client/subscribe_presence.json"),
    include_str!("golden/client/subscribe_private.json"),
    include_str!("golden/client/subscribe_public.json"),
    include_str!("golden/client/subscribe_string_data.json"),
    include_str!("golden/client/unsubscribe.json"),
];

/// One edit of a frame's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
    Truncate { at: usize },
    Duplicate { from: usize, len: usize, at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (at, prop::sample::select(b"{}[]\":,\\ 0an-".to_vec())).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        (at, any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        at.prop_map(|at| Mutation::Delete { at }),
        at.prop_map(|at| Mutation::Truncate { at }),
        (at, 0usize..32, at).prop_map(|(from, len, at)| Mutation::Duplicate { from, len, at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let n = bytes.len().max(1);
    match *mutation {
        Mutation::Flip { at, mask } if !bytes.is_empty() => bytes[at % n] ^= mask,
        Mutation::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
        Mutation::Delete { at } if !bytes.is_empty() => {
            bytes.remove(at % n);
        }
        Mutation::Truncate { at } => bytes.truncate(at % (bytes.len() + 1)),
        Mutation::Duplicate { from, len, at } if !bytes.is_empty() => {
            let from = from % n;
            let end = (from + len).min(bytes.len());
            let piece = bytes[from..end].to_vec();
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, piece);
        }
        _ => {}
    }
}

// --- The client frame decoder -------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn decode_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = ClientMessage::decode(&text);
    }

    #[test]
    fn decode_never_panics_on_json_shaped_text(text in r#"[{}\[\]":,\\a-z0-9 .:-]{0,80}"#) {
        let _ = ClientMessage::decode(&text);
    }

    #[test]
    fn decode_never_panics_on_arbitrary_json_values(value in json_value()) {
        let _ = ClientMessage::decode(&value.to_string());
    }

    #[test]
    fn decode_never_panics_on_arbitrary_frame_contents(frame in client_frame()) {
        let _ = ClientMessage::decode(&frame);
    }

    #[test]
    fn decode_never_panics_on_mutated_valid_frames(
        seed in prop::sample::select(GOLDEN_CLIENT_FRAMES.to_vec()),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut bytes = seed.trim_end().as_bytes().to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        // A text frame is UTF-8 by the time it reaches the decoder (the socket checks it).
        let _ = ClientMessage::decode(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn a_decoded_subscribe_carries_the_channel_auth_and_channel_data_as_sent(
        channel in any::<String>(),
        auth in prop::option::of(any::<String>()),
        channel_data in prop::option::of(any::<String>()),
        data_as_string in any::<bool>(),
    ) {
        let mut data = json!({ "channel": channel });
        if let Some(auth) = &auth {
            data["auth"] = json!(auth);
        }
        if let Some(channel_data) = &channel_data {
            data["channel_data"] = json!(channel_data);
        }
        let data = if data_as_string { Value::String(data.to_string()) } else { data };
        let text = json!({ "event": "pusher:subscribe", "data": data }).to_string();
        prop_assert_eq!(ClientMessage::decode(&text), Ok(ClientMessage::Subscribe { channel: channel.clone(), auth, channel_data }));
        let text = json!({ "event": "pusher:unsubscribe", "data": { "channel": channel } }).to_string();
        prop_assert_eq!(ClientMessage::decode(&text), Ok(ClientMessage::Unsubscribe { channel }));
    }

    #[test]
    fn a_decoded_client_event_carries_event_channel_and_data_text_as_sent(
        suffix in any::<String>(),
        channel in any::<String>(),
        data in json_value(),
    ) {
        let event = format!("client-{suffix}");
        let text = json!({ "event": event, "channel": channel, "data": data }).to_string();
        prop_assert_eq!(ClientMessage::decode(&text), Ok(ClientMessage::ClientEvent { event, channel, data: relayed_text(&data) }));
    }
}

/// What a client event's `data` is relayed as: a string as its text, `null` as no data,
/// anything else as the JSON it was sent as.
fn relayed_text(data: &Value) -> Option<String> {
    match data {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

// --- Channel names ------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn channel_name_parse_never_panics_and_accepts_only_the_grammar(name in any::<String>(), max in 0usize..300) {
        if let Ok(parsed) = ChannelName::parse(&name, max) {
            prop_assert!(matches_channel_grammar(&name), "accepted {:?}", name);
            prop_assert!(name.chars().count() <= max, "accepted {:?} over the limit {}", name, max);
            prop_assert_eq!(parsed.as_str(), name.as_str());
        }
    }

    #[test]
    fn channel_names_near_the_grammar_are_accepted_exactly_when_they_match(
        name in r"(#server-to-user-|private-|presence-|#)?[A-Za-z0-9_\-=@,.;# :/é]{0,170}",
        max in prop_oneof![Just(164usize), 1usize..200],
    ) {
        let expected = matches_channel_grammar(&name) && name.chars().count() <= max;
        prop_assert_eq!(ChannelName::parse(&name, max).is_ok(), expected, "{:?} (limit {})", name, max);
    }

    #[test]
    fn every_name_in_the_grammar_within_the_limit_is_accepted(
        name in r"(#server-to-user-)?[A-Za-z0-9_\-=@,.;]{1,164}",
    ) {
        let within = name.chars().count() <= 164;
        prop_assert_eq!(ChannelName::parse(&name, 164).is_ok(), within, "{:?}", name);
    }
}

// --- Presence channel_data and sign-in user_data ------------------------------------------

/// A JSON text of `value` with arbitrary (legal) whitespace, so "verbatim" is tested.
fn spaced_json() -> impl Strategy<Value = String> {
    (json_value(), any::<bool>()).prop_map(|(v, pretty)| {
        if pretty {
            serde_json::to_string_pretty(&v).unwrap_or_default()
        } else {
            v.to_string()
        }
    })
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn presence_parse_never_panics_on_arbitrary_text(text in any::<String>(), id_max in 0usize..200, info_max in 0usize..2000) {
        let limits = PresenceLimits { max_user_id_length: id_max, max_user_info_bytes: info_max };
        if let Ok(member) = PresenceMember::parse(&text, limits) {
            prop_assert!(!member.user_id.as_str().is_empty());
            prop_assert!(member.user_id.as_str().chars().count() <= id_max);
        }
    }

    #[test]
    fn presence_members_are_within_limits_and_keep_user_info_verbatim(
        user_id in prop_oneof![json_value(), any::<String>().prop_map(Value::String), any::<i64>().prop_map(|n| json!(n))],
        user_info in prop::option::of(spaced_json()),
        id_max in 1usize..200,
        info_max in 0usize..2000,
    ) {
        let mut text = format!("{{\"user_id\": {user_id}");
        if let Some(info) = &user_info {
            text.push_str(",\n  \"user_info\": ");
            text.push_str(info);
        }
        text.push('}');
        let limits = PresenceLimits { max_user_id_length: id_max, max_user_info_bytes: info_max };
        let parsed = PresenceMember::parse(&text, limits);
        let id_text = match &user_id {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match parsed {
            Ok(member) => {
                let id = member.user_id.as_str();
                prop_assert!(!id.is_empty() && id.chars().count() <= id_max, "user id {:?}", id);
                prop_assert_eq!(Some(id.to_string()), id_text);
                let kept = user_info.filter(|i| i != "null");
                prop_assert_eq!(member.user_info.as_deref(), kept.as_deref());
                prop_assert!(kept.map_or(0, |k| k.len()) <= info_max);
            }
            Err(_) => {
                let id_ok = id_text.as_ref().is_some_and(|s| !s.is_empty() && s.chars().count() <= id_max);
                let info_ok = user_info.as_ref().is_none_or(|i| i == "null" || i.len() <= info_max);
                prop_assert!(!(id_ok && info_ok), "refused valid channel_data {:?}", text);
            }
        }
    }

    #[test]
    fn signin_user_data_parse_never_panics_on_arbitrary_input(text in any::<String>(), value in json_value(), max in 0usize..200) {
        for input in [text, value.to_string()] {
            if let Ok(user) = SignedInUser::parse(&input, max) {
                let id = user.id.as_str();
                prop_assert!(!id.is_empty() && id.chars().count() <= max);
                prop_assert!(is_user_id_text(id), "accepted user id {:?}", id);
                prop_assert!(user.watchlist.len() <= MAX_WATCHLIST_LENGTH);
            }
        }
    }

    #[test]
    fn signed_in_users_keep_user_info_verbatim_and_cap_the_watchlist(
        id in prop_oneof![r"[A-Za-z0-9_\-=@,.;]{1,140}", any::<String>()],
        user_info in prop::option::of(spaced_json()),
        watchlist in prop::option::of(prop::collection::vec("[0-9]{1,4}", 0..130)),
    ) {
        let mut text = format!("{{\"id\":{}", json!(id));
        if let Some(info) = &user_info {
            text.push_str(", \"user_info\" :");
            text.push_str(info);
        }
        if let Some(list) = &watchlist {
            text.push_str(&format!(",\"watchlist\":{}", json!(list)));
        }
        text.push('}');
        let valid_id = is_user_id_text(&id) && id.chars().count() <= 128;
        match SignedInUser::parse(&text, 128) {
            Ok(user) => {
                prop_assert!(valid_id, "accepted id {:?}", id);
                prop_assert_eq!(user.id.as_str(), id.as_str());
                let kept = user_info.filter(|i| i != "null");
                prop_assert_eq!(user.user_info.as_deref(), kept.as_deref());
                let given = watchlist.map_or(0, |l| l.len());
                prop_assert_eq!(user.watchlist.len(), given.min(MAX_WATCHLIST_LENGTH));
                prop_assert_eq!(user.watchlist_truncated, given > MAX_WATCHLIST_LENGTH);
            }
            Err(_) => prop_assert!(!valid_id, "refused valid user_data {:?}", text),
        }
    }

    #[test]
    fn socket_id_parse_never_panics_and_round_trips(text in r"[0-9.a ]{0,24}|.{0,24}", high in any::<u32>(), low in any::<u32>()) {
        let _ = text.parse::<SocketId>();
        let id = SocketId::new(high, low);
        prop_assert_eq!(id.to_string().parse::<SocketId>(), Ok(id));
    }
}

// --- HTTP API authentication --------------------------------------------------------------

/// Query parameter names an SDK may add (lower case, as the SDKs sign them), never the
/// authentication parameters themselves.
fn param_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,10}".prop_filter("not an auth parameter", |k| !k.starts_with("auth_") && k != "body_md5")
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((param_name(), any::<String>()), 0..5)
}

fn as_refs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn verify_request_never_panics(
        method in "[A-Za-z]{0,7}|.{0,8}",
        path in any::<String>(),
        raw_query in any::<String>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        key in any::<String>(),
        secret in any::<String>(),
        now in any::<u64>(),
        skew in any::<u64>(),
    ) {
        let query = parse_query(&raw_query);
        let req = ApiRequest { method: &method, path: &path, query: &query, body: &body };
        let _ = verify_request(req, &key, &secret, now, skew);
    }

    #[test]
    fn verify_request_never_panics_past_the_parameter_checks(
        timestamp in prop_oneof![any::<u64>().prop_map(|t| t.to_string()), any::<String>()],
        signature in prop_oneof!["[0-9a-f]{64}", "[0-9a-fA-F]{0,70}", any::<String>()],
        body_md5 in prop::option::of(prop_oneof!["[0-9a-f]{32}", any::<String>()]),
        body in prop::collection::vec(any::<u8>(), 0..256),
        now in any::<u64>(),
        skew in any::<u64>(),
    ) {
        let mut query = vec![
            ("auth_key".to_string(), "key".to_string()),
            ("auth_timestamp".to_string(), timestamp),
            ("auth_version".to_string(), "1.0".to_string()),
            ("auth_signature".to_string(), signature),
        ];
        if let Some(md5) = body_md5 {
            query.push(("body_md5".into(), md5));
        }
        let req = ApiRequest { method: "POST", path: "/apps/1/events", query: &query, body: &body };
        let _ = verify_request(req, "key", "secret", now, skew);
    }

    #[test]
    fn a_signed_request_verifies_and_any_one_byte_change_fails(
        method in prop::sample::select(vec!["GET", "POST"]),
        path in "/apps/[A-Za-z0-9_-]{1,12}/(events|batch_events|channels|channels/[a-z-]{1,10}/users)",
        key in "[A-Za-z0-9]{1,24}",
        secret in any::<String>(),
        timestamp in 0u64..4_000_000_000,
        drift in -600i64..=600,
        body in prop::collection::vec(any::<u8>(), 0..300),
        params in params(),
        which in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..0x40,
    ) {
        let now = timestamp.saturating_add_signed(drift);
        let signed = sign_request(method, &path, &key, &secret, timestamp, &body, &as_refs(&params));
        let query = parse_query(&signed);
        let req = ApiRequest { method, path: &path, query: &query, body: &body };
        prop_assert_eq!(verify_request(req, &key, &secret, now, 600), Ok(()));

        // One byte of the body changed (or one added to an empty body).
        let mut tampered_body = body.clone();
        if tampered_body.is_empty() {
            tampered_body.push(b'x');
        } else {
            let i = at.index(tampered_body.len());
            tampered_body[i] ^= mask;
        }
        let tampered = ApiRequest { body: &tampered_body, ..req };
        prop_assert!(verify_request(tampered, &key, &secret, now, 600).is_err());

        // One byte of one signed parameter's value changed (or one added to an empty value).
        let signed_params: Vec<usize> = (0..query.len()).filter(|&i| query[i].0 != "auth_signature").collect();
        let j = signed_params[which.index(signed_params.len())];
        let mut tampered_query = query.clone();
        let mut value = tampered_query[j].1.clone().into_bytes();
        if value.is_empty() {
            value.push(b'x');
        } else {
            let i = at.index(value.len());
            value[i] ^= mask;
        }
        // A decoded query holds text: where the flip breaks UTF-8, insert one byte instead.
        tampered_query[j].1 = String::from_utf8(value).unwrap_or_else(|_| format!("{}x", tampered_query[j].1));
        let tampered = ApiRequest { query: &tampered_query, ..req };
        let result = verify_request(tampered, &key, &secret, now, 600);
        // Pusher's string to sign joins `key=value` pairs with `&` unescaped, so a value
        // holding `&` or `=` can in principle spell the same string another way; only an
        // identical string to sign may pass (an HMAC cannot tell), nothing else.
        if result.is_ok() {
            prop_assert_eq!(string_to_sign(method, &path, &tampered_query), string_to_sign(method, &path, &query));
            prop_assert!(params.iter().any(|(_, v)| v.contains('&') || v.contains('=')));
        }
    }

    #[test]
    fn requests_outside_the_timestamp_window_fail(
        timestamp in 1_000u64..4_000_000_000,
        late in 601u64..100_000,
        early in any::<bool>(),
    ) {
        let signed = sign_request("GET", "/apps/1/channels", "key", "secret", timestamp, b"", &[]);
        let query = parse_query(&signed);
        let req = ApiRequest { method: "GET", path: "/apps/1/channels", query: &query, body: b"" };
        let now = if early { timestamp.saturating_sub(late) } else { timestamp + late };
        let result = verify_request(req, "key", "secret", now, 600);
        prop_assert!(matches!(result, Err(http::ApiAuthError::TimestampExpired { .. })), "{:?}", result);
        let given = timestamp.to_string();
        prop_assert_eq!(query_get(&query, "auth_timestamp"), Some(given.as_str()));
    }
}

// --- Channel and sign-in signatures -------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn verify_auth_never_panics(
        key in any::<String>(),
        secret in any::<String>(),
        candidates in prop::collection::vec(any::<String>(), 0..3),
        auth in prop_oneof![any::<String>(), "[a-z0-9]{0,8}:[0-9a-fA-F]{0,70}", ".{0,10}:.{0,10}"],
    ) {
        let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
        let _ = verify_auth(&key, &secret, &candidates, &auth);
    }

    #[test]
    fn an_auth_token_always_verifies_and_only_for_its_own_string(
        key in "[A-Za-z0-9]{1,24}",
        secret in any::<String>(),
        signed in any::<String>(),
        other in any::<String>(),
    ) {
        let token = auth_token(&key, &secret, &signed);
        prop_assert_eq!(verify_auth(&key, &secret, &[signed.as_str()], &token), Ok(()));
        prop_assert_eq!(verify_auth(&key, &secret, &[other.as_str(), signed.as_str()], &token), Ok(()));
        if other != signed {
            prop_assert!(verify_auth(&key, &secret, &[other.as_str()], &token).is_err());
        }
        let wrong_secret = format!("{secret}x");
        prop_assert!(verify_auth(&key, &wrong_secret, &[signed.as_str()], &token).is_err());
    }
}

// --- Server frames ------------------------------------------------------------------------

fn parse_frame(text: &str) -> Result<Value, TestCaseError> {
    serde_json::from_str(text).map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {text}")))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn an_event_frame_is_json_whose_fields_round_trip(
        event in any::<String>(),
        channel in any::<String>(),
        data in prop::option::of(any::<String>()),
        user_id in prop::option::of(any::<String>()),
    ) {
        let text = ServerMessage::Event { event: &event, channel: &channel, data: data.as_deref(), user_id: user_id.as_deref() }
            .to_json();
        let frame = parse_frame(&text)?;
        prop_assert_eq!(&frame["event"], &json!(event));
        prop_assert_eq!(&frame["channel"], &json!(channel));
        let (data, user_id) = (data.map(Value::String), user_id.map(Value::String));
        prop_assert_eq!(frame.get("data"), data.as_ref());
        prop_assert_eq!(frame.get("user_id"), user_id.as_ref());
    }

    #[test]
    fn every_server_frame_is_json_whose_fields_round_trip(
        text in any::<String>(),
        other in any::<String>(),
        code in prop::option::of(any::<u16>()),
        count in any::<u64>(),
        high in any::<u32>(),
        low in any::<u32>(),
        info in prop::option::of(json_value()),
    ) {
        let error = parse_frame(&ServerMessage::Error { code, message: &text }.to_json())?;
        prop_assert_eq!(&error["data"], &json!({ "code": code, "message": text }));

        let socket_id = SocketId::new(high, low);
        let established = parse_frame(&ServerMessage::ConnectionEstablished { socket_id, activity_timeout_seconds: count }.to_json())?;
        let data = parse_frame(established["data"].as_str().unwrap_or_default())?;
        prop_assert_eq!(data, json!({ "socket_id": socket_id.to_string(), "activity_timeout": count }));

        let succeeded = parse_frame(&ServerMessage::SubscriptionSucceeded { channel: &text, data_json: &other }.to_json())?;
        prop_assert_eq!(succeeded, json!({ "event": "pusher_internal:subscription_succeeded", "channel": text, "data": other }));

        // user_info is raw JSON text, carried byte for byte inside the data string.
        let info_text = info.as_ref().map(Value::to_string);
        let added = parse_frame(&ServerMessage::MemberAdded { channel: &text, user_id: &other, user_info: info_text.as_deref() }.to_json())?;
        prop_assert_eq!(&added["channel"], &json!(text));
        let mut expected = format!("{{\"user_id\":{}", json!(other));
        if let Some(info) = &info_text {
            expected.push_str(&format!(",\"user_info\":{info}"));
        }
        expected.push('}');
        prop_assert_eq!(&added["data"], &json!(expected));
        parse_frame(&expected)?;

        let removed = parse_frame(&ServerMessage::MemberRemoved { channel: &text, user_id: &other }.to_json())?;
        prop_assert_eq!(parse_frame(removed["data"].as_str().unwrap_or_default())?, json!({ "user_id": other }));

        let signin = parse_frame(&ServerMessage::SigninSuccess { user_data: &text }.to_json())?;
        prop_assert_eq!(signin, json!({ "event": "pusher:signin_success", "data": { "user_data": text } }));

        let miss = parse_frame(&ServerMessage::CacheMiss { channel: &text }.to_json())?;
        prop_assert_eq!(miss, json!({ "event": "pusher:cache_miss", "channel": text }));

        let counted = parse_frame(&ServerMessage::SubscriptionCount { channel: &text, count }.to_json())?;
        prop_assert_eq!(parse_frame(counted["data"].as_str().unwrap_or_default())?, json!({ "subscription_count": count }));
    }

    #[test]
    fn a_client_event_relayed_by_the_server_carries_the_same_data(
        suffix in any::<String>(),
        channel in any::<String>(),
        data in json_value(),
        user_id in prop::option::of(any::<String>()),
    ) {
        let event = format!("client-{suffix}");
        let inbound = json!({ "event": event, "channel": channel, "data": data }).to_string();
        let Ok(ClientMessage::ClientEvent { event, channel, data: relayed }) = ClientMessage::decode(&inbound) else {
            return Err(TestCaseError::fail(format!("not decoded as a client event: {inbound}")));
        };
        let out = ServerMessage::Event { event: &event, channel: &channel, data: relayed.as_deref(), user_id: user_id.as_deref() }.to_json();
        let frame = parse_frame(&out)?;
        // A string arrives as that string; anything else as a string holding its JSON.
        let expected = relayed_text(&data).map(Value::String);
        prop_assert_eq!(frame.get("data"), expected.as_ref());
        prop_assert_eq!(&frame["event"], &json!(event));
    }
}
