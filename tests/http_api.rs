//! The signed HTTP API: triggering, queries, authentication and every error status
//! (contract: "HTTP API").

mod common;

use common::*;
use herald_protocol::http::sign_request;
use serde_json::{json, Value};

const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

fn sorted_user_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["users"]
        .as_array()
        .unwrap_or_else(|| panic!("users must be an array: {body}"))
        .iter()
        .map(|u| u["id"].as_str().unwrap_or_else(|| panic!("user ids must be strings: {body}")).to_string())
        .collect();
    ids.sort();
    ids
}

// ---- triggering -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_delivers_the_event_to_channel_subscribers() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("orders").await;
    b.subscribe("orders").await;
    let response =
        server.api().trigger(json!({"name": "order.created", "channels": ["orders"], "data": "{\"id\":1}"})).await;
    assert_eq!(response, json!({}));
    for client in [&mut a, &mut b] {
        assert_eq!(client.next_frame().await, event_frame("orders", "order.created", "{\"id\":1}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_accepts_a_single_channel_field() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe_private("private-orders").await;
    let response = server.api().trigger(json!({"name": "e", "channel": "private-orders", "data": "hi"})).await;
    assert_eq!(response, json!({}));
    assert_eq!(client.next_frame().await, event_frame("private-orders", "e", "hi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_to_several_channels_delivers_once_per_channel() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut both = server.connect().await;
    let mut only_b = server.connect().await;
    both.subscribe("a").await;
    both.subscribe("b").await;
    only_b.subscribe("b").await;
    api.trigger(json!({"name": "multi", "channels": ["a", "b", "c"], "data": "{}"})).await;
    let mut got = vec![both.next_frame().await, both.next_frame().await];
    got.sort_by_key(|f| f["channel"].to_string());
    assert_eq!(got, [event_frame("a", "multi", "{}"), event_frame("b", "multi", "{}")]);
    assert_eq!(only_b.next_frame().await, event_frame("b", "multi", "{}"));
    api.trigger_one("b", "sentinel", "{}").await;
    assert_eq!(both.next_frame().await, event_frame("b", "sentinel", "{}"));
    assert_eq!(only_b.next_frame().await, event_frame("b", "sentinel", "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_with_socket_id_skips_that_connection() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut sender = server.connect().await;
    let mut other = server.connect().await;
    sender.subscribe("orders").await;
    other.subscribe("orders").await;
    api.trigger(json!({"name": "e", "channels": ["orders"], "data": "{}", "socket_id": sender.socket_id})).await;
    assert_eq!(other.next_frame().await, event_frame("orders", "e", "{}"));
    api.trigger_one("orders", "sentinel", "{}").await;
    assert_eq!(sender.next_frame().await, event_frame("orders", "sentinel", "{}"));
    assert_eq!(other.next_frame().await, event_frame("orders", "sentinel", "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_to_an_empty_channel_succeeds() {
    let server = TestServer::start().await;
    server.api().trigger_one("nobody-here", "e", "{}").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_name_of_200_characters_is_accepted() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe("orders").await;
    let name = "E".repeat(200);
    server.api().trigger_one("orders", &name, "{}").await;
    assert_eq!(client.next_frame().await, event_frame("orders", &name, "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn laravel_style_event_names_and_escaped_data_are_delivered_verbatim() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe("orders").await;
    let data = r#"{"url":"https:\/\/example.com\/a","text":"caf\u00e9"}"#;
    server.api().trigger_one("orders", r"App\Events\OrderShipped", data).await;
    assert_eq!(client.next_frame().await, event_frame("orders", r"App\Events\OrderShipped", data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_with_info_reports_subscription_count() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("orders").await;
    b.subscribe("orders").await;
    let response = server
        .api()
        .trigger(json!({"name": "e", "channels": ["orders"], "data": "{}", "info": "subscription_count"}))
        .await;
    assert_eq!(response, json!({"channels": {"orders": {"subscription_count": 2}}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_with_info_reports_user_count_of_presence_channels() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut a2 = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    a2.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    b.subscribe_presence("presence-room", r#"{"user_id":"2"}"#).await;
    let response = server
        .api()
        .trigger(json!({"name": "e", "channels": ["presence-room", "orders"], "data": "{}", "info": "user_count"}))
        .await;
    assert_eq!(response["channels"]["presence-room"], json!({"user_count": 2}), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_with_info_lists_every_channel_even_when_empty() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    a.subscribe("orders").await;
    let response = server
        .api()
        .trigger(json!({"name": "e", "channels": ["orders", "empty"], "data": "{}", "info": "subscription_count"}))
        .await;
    assert_eq!(
        response,
        json!({"channels": {"orders": {"subscription_count": 1}, "empty": {"subscription_count": 0}}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_events_delivers_every_item() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe("orders").await;
    client.subscribe_private("private-audit").await;
    let (status, body) = server
        .api()
        .post(
            "/batch_events",
            &json!({"batch": [
                {"channel": "orders", "name": "order.created", "data": "{\"id\":1}"},
                {"channel": "private-audit", "name": "logged", "data": "{}"},
            ]}),
        )
        .await;
    assert_eq!((status, body), (200, json!({})));
    assert_eq!(client.next_frame().await, event_frame("orders", "order.created", "{\"id\":1}"));
    assert_eq!(client.next_frame().await, event_frame("private-audit", "logged", "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_events_with_info_answers_index_aligned_attributes() {
    let server = TestServer::start().await;
    let mut member = server.connect().await;
    member.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    let (status, body) = server
        .api()
        .post(
            "/batch_events",
            &json!({"batch": [
                {"channel": "presence-room", "name": "tick", "data": "{}", "info": "user_count"},
                {"channel": "orders", "name": "order.created", "data": "{}"},
            ]}),
        )
        .await;
    assert_eq!((status, body), (200, json!({"batch": [{"user_count": 1}, {}]})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_events_honours_socket_id_per_item() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut sender = server.connect().await;
    sender.subscribe("orders").await;
    let (status, _) = api
        .post(
            "/batch_events",
            &json!({"batch": [{"channel": "orders", "name": "skip-me", "data": "{}", "socket_id": sender.socket_id}]}),
        )
        .await;
    assert_eq!(status, 200);
    api.trigger_one("orders", "sentinel", "{}").await;
    assert_eq!(sender.next_frame().await, event_frame("orders", "sentinel", "{}"));
}

// ---- queries ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_lists_occupied_channels_only() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.subscribe("orders").await;
    client.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    server.api().trigger_one("empty", "e", "{}").await;
    let (status, body) = server.api().get("/channels", &[]).await;
    assert_eq!((status, body), (200, json!({"channels": {"orders": {}, "presence-room": {}}})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_with_no_occupied_channel_is_an_empty_object() {
    let server = TestServer::start().await;
    let (status, body) = server.api().get("/channels", &[]).await;
    assert_eq!((status, body), (200, json!({"channels": {}})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_filter_by_prefix_with_user_count() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("orders").await;
    a.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    b.subscribe_presence("presence-room", r#"{"user_id":"2"}"#).await;
    b.subscribe_presence("presence-other", r#"{"user_id":"2"}"#).await;
    let (status, body) =
        server.api().get("/channels", &[("filter_by_prefix", "presence-"), ("info", "user_count")]).await;
    assert_eq!(
        (status, body),
        (200, json!({"channels": {"presence-room": {"user_count": 2}, "presence-other": {"user_count": 1}}}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_user_count_without_presence_prefix_is_400() {
    let server = TestServer::start().await;
    let response = server.api().get("/channels", &[("info", "user_count")]).await;
    assert_api_error(&response, 400, "info=user_count without filter");
    let response = server.api().get("/channels", &[("filter_by_prefix", "private-"), ("info", "user_count")]).await;
    assert_api_error(&response, 400, "info=user_count with a private- filter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_accepts_info_subscription_count() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("orders").await;
    b.subscribe("orders").await;
    let (status, body) = server.api().get("/channels", &[("info", "subscription_count")]).await;
    assert_eq!((status, body), (200, json!({"channels": {"orders": {"subscription_count": 2}}})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_reports_occupied_and_subscription_count() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe("orders").await;
    b.subscribe("orders").await;
    let (status, body) = server.api().get("/channels/orders", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["occupied"], json!(true), "{body}");
    let (status, body) = server.api().get("/channels/orders", &[("info", "subscription_count")]).await;
    assert_eq!((status, body), (200, json!({"occupied": true, "subscription_count": 2})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_channel_is_not_occupied() {
    let server = TestServer::start().await;
    let (status, body) = server.api().get("/channels/nobody-here", &[]).await;
    assert_eq!((status, body), (200, json!({"occupied": false})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_channel_reports_user_count() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut a2 = server.connect().await;
    a.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    a2.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    let (status, body) = server.api().get("/channels/presence-room", &[("info", "user_count")]).await;
    assert_eq!((status, body), (200, json!({"occupied": true, "user_count": 1})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_user_count_on_a_non_presence_channel_is_400() {
    let server = TestServer::start().await;
    let response = server.api().get("/channels/orders", &[("info", "user_count")]).await;
    assert_api_error(&response, 400, "info=user_count on a public channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_lists_distinct_presence_user_ids() {
    let server = TestServer::start().await;
    let mut a = server.connect().await;
    let mut a2 = server.connect().await;
    let mut b = server.connect().await;
    a.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    a2.subscribe_presence("presence-room", r#"{"user_id":"1"}"#).await;
    b.subscribe_presence("presence-room", r#"{"user_id":2}"#).await;
    let (status, body) = server.api().get("/channels/presence-room/users", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sorted_user_ids(&body), ["1", "2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_an_empty_presence_channel_is_an_empty_list() {
    let server = TestServer::start().await;
    let (status, body) = server.api().get("/channels/presence-empty/users", &[]).await;
    assert_eq!((status, body), (200, json!({"users": []})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_of_a_non_presence_channel_is_400() {
    let server = TestServer::start().await;
    let response = server.api().get("/channels/orders/users", &[]).await;
    assert_api_error(&response, 400, "users of a public channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_counts_open_connections_of_the_app() {
    let server = TestServer::start().await;
    let _a = server.connect().await;
    let _b = server.connect().await;
    let (status, body) = server.api().get("/connections", &[]).await;
    assert_eq!((status, body), (200, json!({"connections": 2})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_is_unsigned() {
    let server = TestServer::start().await;
    let (status, body) = server.api().raw("GET", "/up", "").await;
    assert_eq!((status, body), (200, json!({"health": "OK"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_style_body_md5_on_get_is_accepted() {
    let server = TestServer::start().await;
    let (status, body) = server.api().get("/channels", &[("body_md5", EMPTY_MD5)]).await;
    assert_eq!((status, body), (200, json!({"channels": {}})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_body_md5_on_get_is_401() {
    let server = TestServer::start().await;
    let response = server.api().get("/channels", &[("body_md5", "99914b932bd37a50b983c5e7c90ae93b")]).await;
    assert_api_error(&response, 401, "body_md5 of {} on an empty GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_is_served_under_the_path_prefix_and_signed_without_it() {
    let mut config = config_with(vec![app()]);
    config.server.path_prefix = "/ws".into();
    let server = TestServer::with_config(config).await;
    let api = server.api();
    let path = api.path("/channels");
    let query = api.signed_query("GET", &path, b"", &[]);
    let (status, body) = api.raw("GET", &format!("{path}?{query}"), "").await;
    assert_eq!((status, body), (200, json!({"channels": {}})), "base {} is prefixed", api.base);
}

// ---- errors: 400 ------------------------------------------------------------------------

async fn assert_trigger_rejected(api: &Api, body: Value, status: u16, what: &str) {
    let response = api.post("/events", &body).await;
    assert_api_error(&response, status, what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_validation_failures_are_400() {
    let server = TestServer::start().await;
    let api = server.api();
    let many: Vec<String> = (0..101).map(|i| format!("ch-{i}")).collect();
    let cases = [
        (json!({"channels": ["a"], "data": "{}"}), "missing name"),
        (json!({"name": "e", "channels": ["a"]}), "missing data"),
        (json!({"name": "e", "data": "{}"}), "missing channels"),
        (json!({"name": "e", "channels": [], "data": "{}"}), "empty channels"),
        (json!({"name": "e", "channels": many, "data": "{}"}), "101 channels"),
        (json!({"name": "e", "channels": ["a"], "data": "{}", "socket_id": "abc"}), "socket_id not digits.digits"),
        (json!({"name": "e", "channels": ["a"], "data": "{}", "socket_id": "123"}), "socket_id without dot"),
        (json!({"name": "pusher:e", "channels": ["a"], "data": "{}"}), "reserved pusher: name"),
        (json!({"name": "pusher_internal:member_added", "channels": ["a"], "data": "{}"}), "reserved internal name"),
        (json!({"name": "E".repeat(201), "channels": ["a"], "data": "{}"}), "name over 200 chars"),
        (json!({"name": "e", "channels": ["bad name"], "data": "{}"}), "invalid channel name"),
        (json!({"name": "e", "channels": ["a".repeat(165)], "data": "{}"}), "channel name too long"),
        (json!({"name": "e", "channels": ["private-encrypted-a", "b"], "data": "{}"}), "encrypted with others"),
    ];
    for (body, what) in cases {
        assert_trigger_rejected(&api, body, 400, what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_body_that_is_not_json_is_400() {
    let server = TestServer::start().await;
    let response = server.api().post_raw("/events", "{not json").await;
    assert_api_error(&response, 400, "invalid JSON body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_100_channels_are_accepted() {
    let server = TestServer::start().await;
    let channels: Vec<String> = (0..100).map(|i| format!("ch-{i}")).collect();
    server.api().trigger(json!({"name": "e", "channels": channels, "data": "{}"})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_of_more_than_10_events_is_400() {
    let server = TestServer::start().await;
    let item = json!({"channel": "orders", "name": "e", "data": "{}"});
    let response = server.api().post("/batch_events", &json!({"batch": vec![item.clone(); 11]})).await;
    assert_api_error(&response, 400, "11 batch items");
    let (status, body) = server.api().post("/batch_events", &json!({"batch": vec![item; 10]})).await;
    assert_eq!((status, body), (200, json!({})), "10 batch items are fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_item_validation_failures_are_400() {
    let server = TestServer::start().await;
    let api = server.api();
    for (item, what) in [
        (json!({"name": "e", "data": "{}"}), "item without channel"),
        (json!({"channel": "orders", "data": "{}"}), "item without name"),
        (json!({"channel": "orders", "name": "pusher:e", "data": "{}"}), "item with reserved name"),
        (json!({"channel": "bad name", "name": "e", "data": "{}"}), "item with invalid channel"),
    ] {
        let response = api.post("/batch_events", &json!({"batch": [item]})).await;
        assert_api_error(&response, 400, what);
    }
}

// ---- errors: 401 ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_request_is_401() {
    let server = TestServer::start().await;
    let response = server.api().raw("POST", "/apps/app1/events", r#"{"name":"e","channels":["a"],"data":"{}"}"#).await;
    assert_api_error(&response, 401, "no auth params");
    let response = server.api().raw("GET", "/apps/app1/channels", "").await;
    assert_api_error(&response, 401, "unsigned GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_signed_with_another_key_is_401() {
    let server = TestServer::start().await;
    let response = server.api_for(APP_ID, "otherkey", APP_SECRET).get("/channels", &[]).await;
    assert_api_error(&response, 401, "wrong auth_key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_signed_with_another_secret_is_401() {
    let server = TestServer::start().await;
    let api = server.api_for(APP_ID, APP_KEY, "not-the-secret");
    assert_api_error(&api.get("/channels", &[]).await, 401, "bad GET signature");
    let response = api.post("/events", &json!({"name": "e", "channels": ["a"], "data": "{}"})).await;
    assert_api_error(&response, 401, "bad POST signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_query_parameter_is_401() {
    let server = TestServer::start().await;
    let api = server.api();
    let path = api.path("/channels");
    let query = api.signed_query("GET", &path, b"", &[("filter_by_prefix", "presence-")]);
    let tampered = query.replace("filter_by_prefix=presence-", "filter_by_prefix=private-");
    assert_api_error(&api.raw("GET", &format!("{path}?{tampered}"), "").await, 401, "tampered query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_timestamp_is_401() {
    let server = TestServer::start().await;
    let api = server.api();
    let path = api.path("/channels");
    for timestamp in [now_unix() - 700, now_unix() + 700] {
        let query = sign_request("GET", &path, APP_KEY, APP_SECRET, timestamp, b"", &[]);
        let response = api.raw("GET", &format!("{path}?{query}"), "").await;
        assert_api_error(&response, 401, &format!("timestamp {timestamp}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_within_the_skew_is_accepted() {
    let server = TestServer::start().await;
    let api = server.api();
    let path = api.path("/channels");
    let query = sign_request("GET", &path, APP_KEY, APP_SECRET, now_unix() - 500, b"", &[]);
    let (status, body) = api.raw("GET", &format!("{path}?{query}"), "").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_that_does_not_match_body_md5_is_401() {
    let server = TestServer::start().await;
    let api = server.api();
    let path = api.path("/events");
    let signed = br#"{"name":"e","channels":["a"],"data":"{}"}"#;
    let query = api.signed_query("POST", &path, signed, &[]);
    let sent = r#"{"name":"e","channels":["b"],"data":"{}"}"#;
    assert_api_error(&api.raw("POST", &format!("{path}?{query}"), sent).await, 401, "body_md5 mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_without_body_md5_is_401() {
    let server = TestServer::start().await;
    let api = server.api();
    let path = api.path("/events");
    let query = api.signed_query("POST", &path, b"", &[]);
    let sent = r#"{"name":"e","channels":["a"],"data":"{}"}"#;
    assert_api_error(&api.raw("POST", &format!("{path}?{query}"), sent).await, 401, "missing body_md5");
}

// ---- errors: 403, 404, 405, 413 ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_to_a_disabled_app_is_403() {
    let mut disabled = herald::config::AppConfig::new("app2", "key2", "secret2");
    disabled.enabled = false;
    let server = TestServer::with_config(config_with(vec![app(), disabled])).await;
    let api = server.api_for("app2", "key2", "secret2");
    let response = api.post("/events", &json!({"name": "e", "channels": ["a"], "data": "{}"})).await;
    assert_api_error(&response, 403, "trigger on a disabled app");
    assert_api_error(&api.get("/channels", &[]).await, 403, "query on a disabled app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_app_id_is_404() {
    let server = TestServer::start().await;
    let api = server.api_for("no-such-app", APP_KEY, APP_SECRET);
    let response = api.post("/events", &json!({"name": "e", "channels": ["a"], "data": "{}"})).await;
    assert_api_error(&response, 404, "unknown app id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_path_is_404() {
    let server = TestServer::start().await;
    let api = server.api();
    assert_api_error(&api.get("/nonsense", &[]).await, 404, "signed unknown path under /apps/{id}");
    assert_api_error(&api.raw("GET", "/nothing-here", "").await, 404, "unknown path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_is_405() {
    let server = TestServer::start().await;
    let api = server.api();
    assert_api_error(&api.get("/events", &[]).await, 405, "GET /events");
    assert_api_error(&api.get("/batch_events", &[]).await, 405, "GET /batch_events");
    assert_api_error(&api.post("/channels", &json!({})).await, 405, "POST /channels");
    let path = api.path("/channels/orders");
    let query = api.signed_query("DELETE", &path, b"", &[]);
    assert_api_error(&api.raw("DELETE", &format!("{path}?{query}"), "").await, 405, "DELETE /channels/orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_over_max_event_payload_bytes_is_413() {
    let server = TestServer::start().await;
    let api = server.api();
    let response = api.post("/events", &json!({"name": "e", "channels": ["a"], "data": "x".repeat(10_241)})).await;
    assert_api_error(&response, 413, "10241-byte data");
    let response =
        api.post("/batch_events", &json!({"batch": [{"channel": "a", "name": "e", "data": "x".repeat(10_241)}]})).await;
    assert_api_error(&response, 413, "10241-byte data in a batch item");
    api.trigger_one("a", "e", &"x".repeat(10_240)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_over_max_request_body_bytes_is_413() {
    let mut config = config_with(vec![app()]);
    config.server.max_request_body_bytes = 2_000;
    let server = TestServer::with_config(config).await;
    let response =
        server.api().post("/events", &json!({"name": "e", "channels": ["a"], "data": "x".repeat(2_500)})).await;
    assert_api_error(&response, 413, "2.5 kB body over a 2 kB limit");
}
