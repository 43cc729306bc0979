//! The signature test vectors of PROTOCOL.md §14, checked byte for byte.

use herald_protocol::http::{parse_query, string_to_sign, verify_request, ApiRequest};
use herald_protocol::signature::{
    auth_token, body_md5, channel_string_to_sign, sign, user_string_to_sign, verify_auth, AuthError,
};

const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const SOCKET: &str = "1234.1234";

#[test]
fn v1_private_channel() {
    let s = channel_string_to_sign(SOCKET, "private-foobar", None);
    assert_eq!(s, "1234.1234:private-foobar");
    assert_eq!(
        auth_token(KEY, SECRET, &s),
        "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    );
}

#[test]
fn v2_presence_signature_depends_on_the_exact_channel_data_bytes() {
    let cases = [
        (
            r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#,
            "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
        ),
        (
            r#"{"user_id":"10","user_info":{"name":"Mr. Channels"}}"#,
            "4c6d8fc42a207ba96a0779844171b0bb819d96ffceef9609f5cce596ab17a800",
        ),
        (
            r#"{"user_id": 10, "user_info": {"name": "Mr. Channels"}}"#,
            "5b8808f3035fec2e4157c6b430a06d5b0de16d174e1a779e0e2b64d9983bde27",
        ),
        (
            r#"{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#,
            "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c",
        ),
    ];
    for (data, hex) in cases {
        let s = channel_string_to_sign(SOCKET, "presence-foobar", Some(data));
        assert_eq!(sign(SECRET, s.as_bytes()), hex, "{data}");
        assert_eq!(verify_auth(KEY, SECRET, &[&s], &format!("{KEY}:{hex}")), Ok(()));
    }
}

#[test]
fn v3_user_signin() {
    let cases = [
        (r#"{"id":"12345"}"#, "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"),
        (
            r#"{"id":"42","user_info":{"name":"Ada"},"watchlist":["7","8"]}"#,
            "69835f5323ef4afd64968ecd4fb27f57634166c034472302924f0c3caa412f8b",
        ),
        (r#"{"id": "12345"}"#, "d06dc389319077f890321aeac54e04868921e1601686928f61fc9bf702e92830"),
    ];
    for (data, hex) in cases {
        let s = user_string_to_sign(SOCKET, data);
        assert_eq!(auth_token(KEY, SECRET, &s), format!("{KEY}:{hex}"), "{data}");
    }
}

fn check_request(method: &str, path: &str, query: &str, body: &[u8], expected_string: &str, sig: &str, ts: u64) {
    let q = parse_query(query);
    assert_eq!(string_to_sign(method, path, &q), expected_string);
    assert_eq!(sign(SECRET, expected_string.as_bytes()), sig);
    let mut signed = q.clone();
    signed.push(("auth_signature".into(), sig.into()));
    let req = ApiRequest { method, path, query: &signed, body };
    assert_eq!(verify_request(req, KEY, SECRET, ts, 600), Ok(()));
}

#[test]
fn v4_signed_post_events() {
    let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
    assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
    check_request(
        "POST",
        "/apps/3/events",
        "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f",
        body,
        "POST\n/apps/3/events\nauth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f",
        "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
        1353088179,
    );
}

#[test]
fn v4b_php_single_channel_body() {
    let body =
        br#"{"name":"my-event","data":"{\"message\":\"hello\"}","channel":"private-orders","socket_id":"123.456"}"#;
    assert_eq!(body_md5(body), "00b0358f5c886ee8ffdec8f1a2eea668");
    let q = "auth_key=278d425bdf160c739803&auth_timestamp=1700000000&auth_version=1.0&body_md5=00b0358f5c886ee8ffdec8f1a2eea668";
    check_request(
        "POST",
        "/apps/3/events",
        q,
        body,
        &format!("POST\n/apps/3/events\n{q}"),
        "e2ebc781b730a1254965349f656b9aea60ff618a458953c885e1c70fa43116b0",
        1700000000,
    );
}

#[test]
fn v5_signed_get_with_query_parameters_in_any_order() {
    check_request(
        "GET",
        "/apps/3/channels",
        "info=user_count&auth_timestamp=1700000000&filter_by_prefix=presence-&auth_version=1.0&auth_key=278d425bdf160c739803",
        b"",
        "GET\n/apps/3/channels\nauth_key=278d425bdf160c739803&auth_timestamp=1700000000&auth_version=1.0&filter_by_prefix=presence-&info=user_count",
        "5142c71a4248ef5f3ec45e8793d8997773f1d19ce69ee6f6b1d75131d8aa0a6a",
        1700000000,
    );
}

#[test]
fn v5_python_get_with_the_md5_of_an_empty_body() {
    check_request(
        "GET",
        "/apps/3/channels",
        "auth_key=278d425bdf160c739803&auth_timestamp=1700000000&auth_version=1.0&body_md5=d41d8cd98f00b204e9800998ecf8427e&filter_by_prefix=presence-&info=user_count",
        b"",
        "GET\n/apps/3/channels\nauth_key=278d425bdf160c739803&auth_timestamp=1700000000&auth_version=1.0&body_md5=d41d8cd98f00b204e9800998ecf8427e&filter_by_prefix=presence-&info=user_count",
        "3fc9da7cb4e6d626b1c5a1b1f0179acebb2b238818aab773b9aa682659ddfe10",
        1700000000,
    );
}

#[test]
fn v5_comma_values_are_signed_unescaped() {
    check_request(
        "GET",
        "/apps/3/channels/presence-room",
        "auth_key=278d425bdf160c739803&auth_timestamp=1700000000&auth_version=1.0&info=user_count%2Csubscription_count",
        b"",
        "GET\n/apps/3/channels/presence-room\nauth_key=278d425bdf160c739803&auth_timestamp=1700000000&auth_version=1.0&info=user_count,subscription_count",
        "58d0677b51da0e4c8d9f0ae2bbf4ffb2abf76cc54a537ae0471c5168e869a89c",
        1700000000,
    );
}

#[test]
fn v6_batch_events() {
    let body = br#"{"batch":[{"channel":"orders","name":"order.created","data":"{\"id\":1}"},{"channel":"presence-room","name":"tick","data":"{}","info":"user_count"}]}"#;
    assert_eq!(body_md5(body), "a75575678b9b60d30bbddd6a99ca3e4b");
    let q = "auth_key=278d425bdf160c739803&auth_timestamp=1700000000&auth_version=1.0&body_md5=a75575678b9b60d30bbddd6a99ca3e4b";
    check_request(
        "POST",
        "/apps/3/batch_events",
        q,
        body,
        &format!("POST\n/apps/3/batch_events\n{q}"),
        "545879f9f21e11a057e39a90c4c1c198bc0a1817d20c6c353fdfb0acc2acae66",
        1700000000,
    );
}

#[test]
fn v7_terminate_connections() {
    assert_eq!(body_md5(b"{}"), "99914b932bd37a50b983c5e7c90ae93b");
    let q = "auth_key=278d425bdf160c739803&auth_timestamp=1700000000&auth_version=1.0&body_md5=99914b932bd37a50b983c5e7c90ae93b";
    check_request(
        "POST",
        "/apps/3/users/42/terminate_connections",
        q,
        b"{}",
        &format!("POST\n/apps/3/users/42/terminate_connections\n{q}"),
        "1aaa870f66697b14779b4f5d36bbea0e4d9f2190a17bd7b16fc46b6bd373690e",
        1700000000,
    );
}

#[test]
fn v8_webhook_signatures() {
    let body = br#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"my-channel"}]}"#;
    assert_eq!(sign(SECRET, body), "c19001ae3963ccb13bf618e5b16ba9848e7e74df0993aa0689168e341c6833cf");
    let body = br#"{"time_ms":1700000000123,"events":[{"name":"member_added","channel":"presence-room","user_id":"42"},{"name":"client_event","channel":"private-chat","event":"client-typing","data":"{\"typing\":true}","socket_id":"123.456"}]}"#;
    assert_eq!(sign(SECRET, body), "6bd542a5daf386732017e370a2d702fc0008f3344be69138b8da7c172bcff921");
}

#[test]
fn v9_encrypted_channel_auth_is_the_private_form() {
    let s = channel_string_to_sign(SOCKET, "private-encrypted-foo", None);
    assert_eq!(
        auth_token(KEY, SECRET, &s),
        "278d425bdf160c739803:e85caab4331194145d44feae15aea9539ea50631afacbc593a9555ceadc42357"
    );
}

#[test]
fn a_signature_made_with_another_secret_names_the_expected_string() {
    let s = channel_string_to_sign(SOCKET, "private-foobar", None);
    let wrong = auth_token(KEY, "other-secret", &s);
    match verify_auth(KEY, SECRET, &[&s], &wrong) {
        Err(AuthError::BadSignature { expected, .. }) => assert_eq!(expected, s),
        other => panic!("expected a bad signature, got {other:?}"),
    }
}
