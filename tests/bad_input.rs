//! Malformed and unexpected input from clients: the offending connection is answered or closed
//! as the contract says, and the server keeps serving everyone else.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// The server still accepts and serves a fresh client.
async fn assert_server_still_serves(server: &TestServer) {
    let mut fresh = server.connect().await;
    fresh.subscribe("still-alive").await;
    fresh.ping_pong().await;
}

async fn expect_invalid_message_format(client: &mut Client) {
    let data = client.expect_error_code(None).await;
    let message = data["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Invalid message format"), "message: {message:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_json_gets_invalid_message_format_error_and_connection_is_kept() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_text("{not json").await;
    expect_invalid_message_format(&mut client).await;
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_without_event_gets_invalid_message_format_error() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"data": {"channel": "x"}})).await;
    expect_invalid_message_format(&mut client).await;
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_that_is_not_an_object_gets_invalid_message_format_error() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    for text in ["[1,2,3]", "\"pusher:ping\"", "42", "null"] {
        client.send_text(text).await;
        expect_invalid_message_format(&mut client).await;
    }
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frames_are_ignored() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let ping = json!({"event": "pusher:ping", "data": {}}).to_string();
    client.ws.send(Message::binary(ping.into_bytes())).await.expect("send binary");
    client.ws.send(Message::binary(vec![0xff, 0x00, 0x13])).await.expect("send binary");
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_max_message_bytes_closes_with_1009() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    let padding = "x".repeat(10_001);
    client.send_json(json!({"event": "client-big", "channel": "private-x", "data": padding})).await;
    client.expect_close(1009).await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_just_under_max_message_bytes_is_accepted() {
    let mut config = config_with(vec![app()]);
    config.server.max_message_bytes = 2_000;
    let server = TestServer::with_config(config).await;
    let mut client = server.connect().await;
    let head = json!({"event": "pusher:ping", "data": {"pad": ""}}).to_string();
    let padded = json!({"event": "pusher:ping", "data": {"pad": "p".repeat(2_000 - head.len())}}).to_string();
    assert_eq!(padded.len(), 2_000);
    client.send_text(padded).await;
    assert_eq!(client.next_frame().await, json!({"event": "pusher:pong", "data": "{}"}));
    client.send_text(format!("{}{}", " ".repeat(1_001), " ".repeat(1_000))).await;
    client.expect_close(1009).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pusher_events_are_ignored() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"event": "pusher:made_up", "data": {}})).await;
    client.send_json(json!({"event": "pusher:subscribe_all", "data": "nonsense"})).await;
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_client_events_from_clients_are_ignored() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"event": "my-event", "channel": "news", "data": {}})).await;
    client.send_json(json!({"event": "my-event"})).await;
    client.ping_pong().await;
    assert_server_still_serves(&server).await;
}

/// The contract leaves the reply open (an error frame or nothing); the connection must survive.
async fn assert_connection_kept_allowing_errors(client: &mut Client) {
    client.send_json(json!({"event": "pusher:ping", "data": {}})).await;
    loop {
        let frame = client.next_frame().await;
        if frame == json!({"event": "pusher:pong", "data": "{}"}) {
            return;
        }
        assert_eq!(frame["event"], "pusher:error", "only an error may precede the pong: {frame}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_without_a_channel_keeps_the_connection() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"event": "pusher:subscribe", "data": {}})).await;
    client.send_json(json!({"event": "pusher:subscribe"})).await;
    client.send_json(json!({"event": "pusher:subscribe", "data": {"channel": 42}})).await;
    assert_connection_kept_allowing_errors(&mut client).await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_without_a_channel_keeps_the_connection() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_json(json!({"event": "client-orphan", "data": {}})).await;
    assert_connection_kept_allowing_errors(&mut client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abrupt_disconnects_mid_handshake_do_not_disturb_the_server() {
    let server = TestServer::start().await;
    let raw = tokio::net::TcpStream::connect(server.addr).await.expect("tcp connect");
    drop(raw);
    let half = tokio::net::TcpStream::connect(server.addr).await.expect("tcp connect");
    {
        use tokio::io::AsyncWriteExt;
        let mut half = half;
        half.write_all(b"GET /app/key1?protocol=7 HTTP/1.1\r\nHost: x\r\n").await.expect("write half a request");
    }
    assert_server_still_serves(&server).await;
}

// --- Issue 5's bad-input table (docs/bad-input.md): the rows not covered elsewhere ---------

use herald_protocol::signature::{auth_token, user_string_to_sign};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

/// A client connected before the bad input, subscribed to `bystanders`.
async fn bystander(server: &TestServer) -> Client {
    let mut client = server.connect().await;
    client.subscribe("bystanders").await;
    client
}

/// The bystander still gets events and pongs, and a fresh client is served.
async fn assert_others_unaffected(server: &TestServer, mut bystander: Client) {
    server.api().trigger_one("bystanders", "still-here", "{}").await;
    assert_eq!(bystander.next_frame().await, event_frame("bystanders", "still-here", "{}"));
    bystander.ping_pong().await;
    assert_server_still_serves(server).await;
}

/// Sends one WebSocket frame exactly as given (tungstenite only masks it).
async fn send_frame(client: &mut Client, frame: Frame) {
    client.ws.send(Message::Frame(frame)).await.expect("send raw frame");
}

/// A data frame: the first of a message (`Text`/`Binary`) or a continuation.
fn data_frame(opcode: Data, payload: &[u8], fin: bool) -> Frame {
    Frame::message(payload.to_vec(), OpCode::Data(opcode), fin)
}

/// Sends `text` as a text message split into fragments at `cuts` (byte offsets).
async fn send_fragmented(client: &mut Client, text: &[u8], cuts: &[usize]) {
    let mut start = 0;
    for (i, &end) in cuts.iter().chain(std::iter::once(&text.len())).enumerate() {
        let opcode = if i == 0 { Data::Text } else { Data::Continue };
        send_frame(client, data_frame(opcode, &text[start..end], end == text.len())).await;
        start = end;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_text_message_is_reassembled_even_around_a_ping() {
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    let mut client = server.connect().await;
    let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": "fragments"}}).to_string();
    let (a, b) = subscribe.as_bytes().split_at(10);
    send_frame(&mut client, data_frame(Data::Text, a, false)).await;
    // Control frames may arrive between the fragments of a message (RFC 6455 §5.4).
    send_frame(&mut client, Frame::ping(&b"between"[..])).await;
    send_frame(&mut client, data_frame(Data::Continue, &b[..5], false)).await;
    send_frame(&mut client, data_frame(Data::Continue, &b[5..], true)).await;
    match client.next_incoming().await {
        Incoming::Pong(payload) => assert_eq!(&payload[..], b"between"),
        other => panic!("expected the pong of the interleaved ping, got {other:?}"),
    }
    client.expect_subscribed("fragments").await;
    // A character split between two fragments is valid UTF-8 once reassembled.
    let ping = json!({"event": "pusher:ping", "data": {"name": "Zoë"}}).to_string();
    let split = ping.find('ë').expect("ë in the frame") + 1;
    send_fragmented(&mut client, ping.as_bytes(), &[split]).await;
    assert_eq!(client.next_frame().await, json!({"event": "pusher:pong", "data": "{}"}));
    server.api().trigger_one("fragments", "whole", "{}").await;
    assert_eq!(client.next_frame().await, event_frame("fragments", "whole", "{}"));
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_adding_up_to_more_than_max_message_bytes_close_with_1009() {
    let mut config = config_with(vec![app()]);
    config.server.max_message_bytes = 2_000;
    let server = TestServer::with_config(config).await;
    let others = bystander(&server).await;
    let mut client = server.connect().await;
    // Exactly the limit, in three fragments: accepted.
    let head = json!({"event": "pusher:ping", "data": {"pad": ""}}).to_string();
    let exact = json!({"event": "pusher:ping", "data": {"pad": "p".repeat(2_000 - head.len())}}).to_string();
    assert_eq!(exact.len(), 2_000);
    send_fragmented(&mut client, exact.as_bytes(), &[700, 1_400]).await;
    assert_eq!(client.next_frame().await, json!({"event": "pusher:pong", "data": "{}"}));
    // Three fragments of 700 bytes, each under the limit, 2,100 together: 1009.
    let chunk = vec![b' '; 700];
    send_frame(&mut client, data_frame(Data::Text, &chunk, false)).await;
    send_frame(&mut client, data_frame(Data::Continue, &chunk, false)).await;
    send_frame(&mut client, data_frame(Data::Continue, &chunk, true)).await;
    client.expect_close(1009).await;
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragmented_binary_message_is_ignored_like_a_whole_one() {
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    let mut client = server.connect().await;
    let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": "binary"}}).to_string();
    let (a, b) = subscribe.as_bytes().split_at(12);
    send_frame(&mut client, data_frame(Data::Binary, a, false)).await;
    send_frame(&mut client, data_frame(Data::Continue, b, true)).await;
    // Ignored: the next frame is the pong, not a subscription_succeeded.
    client.ping_pong().await;
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_of_125_bytes_is_answered_and_one_over_closes_with_1002() {
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    let mut client = server.connect().await;
    send_frame(&mut client, Frame::ping(vec![b'p'; 125])).await;
    match client.next_incoming().await {
        Incoming::Pong(payload) => assert_eq!(payload.len(), 125),
        other => panic!("expected a pong carrying the ping's 125 bytes, got {other:?}"),
    }
    send_frame(&mut client, Frame::ping(vec![b'p'; 126])).await;
    client.expect_close(1002).await;
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_break_rfc_6455_close_with_1002() {
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    let mut fragmented_ping = Frame::ping(&b"x"[..]);
    fragmented_ping.header_mut().is_final = false;
    let mut reserved_bit = data_frame(Data::Text, br#"{"event":"pusher:ping"}"#, true);
    reserved_bit.header_mut().rsv1 = true;
    let reserved_control = FrameHeader { opcode: OpCode::Control(Control::Reserved(0xb)), ..FrameHeader::default() };
    let cases = [
        ("a fragmented control frame", vec![fragmented_ping]),
        ("a continuation with no message started", vec![data_frame(Data::Continue, b"{}", true)]),
        ("a reserved data opcode", vec![data_frame(Data::Reserved(3), b"{}", true)]),
        ("a reserved control opcode", vec![Frame::from_payload(reserved_control, Default::default())]),
        ("a reserved bit without an extension", vec![reserved_bit]),
    ];
    for (what, frames) in cases {
        let mut client = server.connect().await;
        for frame in frames {
            send_frame(&mut client, frame).await;
        }
        match client.next_incoming().await {
            Incoming::Close(code) => assert_eq!(code, Some(1002), "{what}"),
            other => panic!("{what}: expected close 1002, got {other:?}"),
        }
    }
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_message_started_inside_an_unfinished_one_closes_with_1002() {
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    let mut client = server.connect().await;
    send_frame(&mut client, data_frame(Data::Text, b"{", false)).await;
    send_frame(&mut client, data_frame(Data::Text, br#"{"event":"pusher:ping"}"#, true)).await;
    client.expect_close(1002).await;
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_a_text_message_closes_with_1007() {
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    let bad = [&br#"{"event":"pusher:ping","data":""#[..], &[0xff, 0xfe], &br#""}"#[..]].concat();
    let mut whole = server.connect().await;
    send_frame(&mut whole, data_frame(Data::Text, &bad, true)).await;
    whole.expect_close(1007).await;
    // The same bytes split over fragments: found once the message is whole.
    let mut fragmented = server.connect().await;
    send_fragmented(&mut fragmented, &bad, &[31, 32]).await;
    fragmented.expect_close(1007).await;
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_event_names_over_the_limit_are_rejected_with_null_code() {
    let server = TestServer::start().await;
    let mut sender = server.connect().await;
    let mut receiver = server.connect().await;
    sender.subscribe_private("private-chat").await;
    receiver.subscribe_private("private-chat").await;
    let name = format!("client-{}", "e".repeat(200 - "client-".len()));
    sender.send_client_event("private-chat", &format!("{name}x"), json!({})).await;
    let error = sender.expect_error_code(None).await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("200")), "{error}");
    sender.send_client_event("private-chat", &name, json!({})).await;
    assert_eq!(receiver.next_frame().await["event"], json!(name), "the 200-character name is delivered");
    sender.ping_pong().await;
    receiver.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signin_with_a_bad_or_replayed_signature_is_rejected_with_4009_and_the_connection_kept() {
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    let mut client = server.connect().await;
    let victim = server.connect().await;
    let user_data = json!({"id": "42", "user_info": {"name": "Ada"}}).to_string();
    let signin = |auth: String| json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}});
    let replayed = auth_token(APP_KEY, APP_SECRET, &user_string_to_sign(&victim.socket_id, &user_data));
    let own = auth_token(APP_KEY, APP_SECRET, &user_string_to_sign(&client.socket_id, &user_data));
    let bad = [
        format!("{APP_KEY}:{}", "0".repeat(64)),
        replayed,
        format!("wrong-key:{}", own.split_once(':').expect("key:signature").1),
        "no colon".to_string(),
    ];
    for auth in bad {
        client.send_json(signin(auth)).await;
        client.expect_error_code(Some(4009)).await;
    }
    client.ping_pong().await;
    client.send_json(signin(own)).await;
    let success = client.expect_event("pusher:signin_success").await;
    assert_eq!(success["data"]["user_data"], json!(user_data));
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_channel_data_that_is_not_json_is_rejected_with_null_code() {
    let server = TestServer::start().await;
    let mut member = server.connect().await;
    member.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    let mut client = server.connect().await;
    for not_json in ["not json", r#"{"user_id":"2""#, "", "[]"] {
        // Correctly signed, so only the parse can refuse it.
        client.send_presence_subscribe("presence-room", not_json).await;
        client.expect_error_code(None).await;
    }
    client.ping_pong().await;
    // The member saw no member_added: the next frame it gets is its own pong.
    member.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_subscribes_from_one_socket_are_answered_within_the_subscription_limit() {
    use futures_util::StreamExt;

    const SUBSCRIBES: usize = 10_000;
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    let limit = app().max_subscriptions_per_connection;
    assert_eq!(limit, 1_000, "Pusher's default");
    let client = server.connect().await;
    let (mut sink, mut stream) = client.ws.split();
    // Read while writing, as a real client does, so the replies never pile up unread.
    let reader = tokio::spawn(async move {
        let (mut succeeded, mut refused) = (0usize, 0usize);
        while succeeded + refused < SUBSCRIBES {
            let next = tokio::time::timeout(FRAME_TIMEOUT, stream.next()).await.expect("a reply within the timeout");
            let Some(Ok(Message::Text(text))) = next else { panic!("expected a reply, got {next:?}") };
            let frame: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON reply");
            match frame["event"].as_str() {
                Some("pusher_internal:subscription_succeeded") => succeeded += 1,
                Some("pusher:error") if frame["data"]["code"].is_null() => refused += 1,
                _ => panic!("unexpected reply {frame}"),
            }
        }
        (succeeded, refused, stream)
    });
    for i in 0..SUBSCRIBES {
        let frame = json!({"event": "pusher:subscribe", "data": {"channel": format!("flood-{i}")}});
        sink.feed(Message::text(frame.to_string())).await.expect("send subscribe");
    }
    sink.flush().await.expect("flush");
    let (succeeded, refused, stream) = reader.await.expect("reader task");
    assert_eq!((succeeded, refused), (limit, SUBSCRIBES - limit));
    let mut client = Client {
        ws: sink.reunite(stream).expect("halves of one socket"),
        socket_id: String::new(),
        key: APP_KEY.into(),
        secret: APP_SECRET.into(),
    };
    client.ping_pong().await;
    server.api().trigger_one("flood-999", "last", "{}").await;
    assert_eq!(client.next_frame().await, event_frame("flood-999", "last", "{}"));
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_query_strings_that_are_not_well_formed_are_read_leniently_or_refused_with_4007() {
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    // The first `protocol` counts; bytes that do not decode are replaced, not fatal.
    let accepted = ["protocol=7&&&=&%zz&protocol=abc", "protocol=%37", "%ff%fe=%ff&protocol=7", "&&protocol=8&"];
    for query in accepted {
        let mut client = server.open(&server.ws_url_with_query(APP_KEY, query), None).await;
        client.await_established().await;
        client.ping_pong().await;
    }
    let refused = [
        "protocol=7%00",
        "protocol=7;x=1",
        "protocol=-1",
        "protocol=99999999999999999999",
        "protocol=",
        "protocol=%ff",
    ];
    for query in refused {
        let mut client = server.open(&server.ws_url_with_query(APP_KEY, query), None).await;
        client.expect_refusal(4007).await;
    }
    let mut unknown = server.open(&server.ws_url_with_query("%ff%00key", "protocol=7"), None).await;
    unknown.expect_refusal(4001).await;
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_query_strings_that_are_not_well_formed_are_401_with_a_json_error() {
    let server = TestServer::start().await;
    let others = bystander(&server).await;
    let api = server.api();
    let path = api.path("/channels");
    let signed = api.signed_query("GET", &path, b"", &[]);
    let queries = [
        "%zz%&&==&auth_key".to_string(),
        "auth_key=key1&auth_timestamp=soon&auth_version=1.0&auth_signature=x".to_string(),
        format!("auth_key=key1&auth_timestamp={}&auth_version=2.0&auth_signature=00", now_unix()),
        format!("{signed}&extra=added-after-signing"),
        signed.replace("auth_signature=", "auth_signature=%ff%fe"),
        signed.replace("auth_key=key1", "auth_key=key1&auth_key=key1"),
    ];
    for query in &queries {
        let response = api.raw("GET", &format!("{path}?{query}"), "").await;
        assert_api_error(&response, 401, query);
    }
    assert_eq!(api.raw("GET", &format!("{path}?{signed}"), "").await.0, 200);
    assert_others_unaffected(&server, others).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_api_request_replayed_within_the_timestamp_window_is_accepted_as_pusher_does() {
    // Pusher's request signature has no nonce: a replay is refused only once auth_timestamp is
    // more than 600 s away (http_api::expired_timestamp_is_401).
    let server = TestServer::start().await;
    let mut client = bystander(&server).await;
    let api = server.api();
    let path = api.path("/events");
    let body = json!({"name": "again", "channels": ["bystanders"], "data": "{}"}).to_string();
    let query = api.signed_query("POST", &path, body.as_bytes(), &[]);
    for _ in 0..2 {
        assert_eq!(api.raw("POST", &format!("{path}?{query}"), body.clone()).await.0, 200);
        assert_eq!(client.next_frame().await, event_frame("bystanders", "again", "{}"));
    }
}

/// Polls `GET /connections` until it reports `expected` (bounded: 50 × 100 ms).
async fn await_connection_count(server: &TestServer, expected: u64) {
    let mut last = serde_json::Value::Null;
    for _ in 0..50 {
        let (status, body) = server.api().get("/connections", &[]).await;
        assert_eq!(status, 200, "{body}");
        if body["connections"] == json!(expected) {
            return;
        }
        last = body;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("expected {expected} connections within 5 s, last answer {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_is_disconnected_and_leaves_its_channels() {
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::MaybeTlsStream;

    let server = TestServer::start().await;
    let mut member = server.connect().await;
    member.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    let mut half = server.connect().await;
    half.subscribe_presence("presence-room", r#"{"user_id":"2"}"#).await;
    member.expect_event("pusher_internal:member_added").await;
    await_connection_count(&server, 2).await;
    // The client sends FIN (no close frame) but keeps its socket open for reading.
    let MaybeTlsStream::Plain(tcp) = half.ws.get_mut() else { panic!("plain TCP expected") };
    tcp.shutdown().await.expect("shutdown the write side");
    let removed = member.expect_event("pusher_internal:member_removed").await;
    assert_eq!(data_of(&removed), json!({"user_id": "2"}));
    await_connection_count(&server, 1).await;
    member.ping_pong().await;
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_is_dropped_once_the_server_ping_goes_unanswered() {
    let mut quick = app();
    quick.activity_timeout_seconds = 1;
    let mut config = config_with(vec![quick]);
    config.server.pong_timeout_seconds = 1;
    let server = TestServer::with_config(config).await;
    // Connected, then never read from nor written to again: what a peer behind a dead NAT
    // or a pulled cable looks like from the server (no FIN, no RST).
    let silent = server.connect().await;
    await_connection_count(&server, 1).await;
    // activity timeout 1 s + pong timeout 1 s, polled for up to 5 s.
    await_connection_count(&server, 0).await;
    drop(silent);
    assert_server_still_serves(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_connection_that_never_sends_a_request_is_closed_after_the_header_timeout() {
    use tokio::io::AsyncReadExt;

    let mut config = config_with(vec![app()]);
    config.server.header_read_timeout_seconds = 1;
    let server = TestServer::with_config(config).await;
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.expect("tcp connect");
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), silent.read(&mut buf)).await;
    match read {
        Ok(Ok(n)) => assert!(n == 0 || buf.starts_with(b"HTTP/1.1 408"), "got {:?}", &buf[..n]),
        Ok(Err(_)) => {}
        Err(_) => panic!("a connection that sent nothing was kept open for 10 s (header timeout 1 s)"),
    }
    assert_server_still_serves(&server).await;
}
