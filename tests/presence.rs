//! Presence channels: roster, member events, limits (contract: "Subscribe", "Presence").

mod common;

use common::*;
use serde_json::{json, Value};

const ROOM: &str = "presence-room";

fn member(user_id: &str, name: &str) -> String {
    json!({"user_id": user_id, "user_info": {"name": name}}).to_string()
}

fn member_added(user_id: &str, name: &str) -> Value {
    json!({"user_id": user_id, "user_info": {"name": name}})
}

async fn expect_member_added(client: &mut Client) -> Value {
    let frame = client.expect_event("pusher_internal:member_added").await;
    assert_eq!(frame["channel"], ROOM, "{frame}");
    assert!(frame["data"].is_string(), "member_added data must be a JSON string: {frame}");
    data_of(&frame)
}

async fn expect_member_removed(client: &mut Client) -> Value {
    let frame = client.expect_event("pusher_internal:member_removed").await;
    assert_eq!(frame["channel"], ROOM, "{frame}");
    assert!(frame["data"].is_string(), "member_removed data must be a JSON string: {frame}");
    data_of(&frame)
}

fn sorted_ids(roster: &Value) -> Vec<String> {
    let mut ids: Vec<String> = roster["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("roster ids must be an array: {roster}"))
        .iter()
        .map(|id| id.as_str().unwrap_or_else(|| panic!("roster ids must be strings: {roster}")).to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_member_gets_a_roster_of_itself() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let roster = alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    assert_eq!(roster, json!({"ids": ["1"], "hash": {"1": {"name": "Alice"}}, "count": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_lists_every_member_with_info_and_count() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    let roster = bob.subscribe_presence(ROOM, &member("2", "Bob")).await;
    assert_eq!(sorted_ids(&roster), ["1", "2"]);
    assert_eq!(roster["hash"], json!({"1": {"name": "Alice"}, "2": {"name": "Bob"}}));
    assert_eq!(roster["count"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_without_user_info_has_null_in_the_roster_hash() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let roster = alice.subscribe_presence(ROOM, r#"{"user_id":"1"}"#).await;
    assert_eq!(roster, json!({"ids": ["1"], "hash": {"1": null}, "count": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_notifies_other_members_with_member_added() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob.subscribe_presence(ROOM, &member("2", "Bob")).await;
    assert_eq!(expect_member_added(&mut alice).await, member_added("2", "Bob"));
    // The joiner itself gets no member_added about itself.
    bob.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_socket_of_the_same_user_does_not_announce_member_added() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut bob_tab1 = server.connect().await;
    let mut bob_tab2 = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob_tab1.subscribe_presence(ROOM, &member("2", "Bob")).await;
    assert_eq!(expect_member_added(&mut alice).await, member_added("2", "Bob"));
    let roster = bob_tab2.subscribe_presence(ROOM, &member("2", "Bob")).await;
    assert_eq!(sorted_ids(&roster), ["1", "2"], "ids are distinct users");
    assert_eq!(roster["count"], json!(2));
    alice.ping_pong().await;
    bob_tab1.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_removed_is_sent_only_when_the_users_last_socket_leaves() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut bob_tab1 = server.connect().await;
    let mut bob_tab2 = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob_tab1.subscribe_presence(ROOM, &member("2", "Bob")).await;
    expect_member_added(&mut alice).await;
    bob_tab2.subscribe_presence(ROOM, &member("2", "Bob")).await;

    bob_tab1.unsubscribe(ROOM).await;
    bob_tab1.ping_pong().await;
    alice.ping_pong().await;

    bob_tab2.unsubscribe(ROOM).await;
    assert_eq!(expect_member_removed(&mut alice).await, json!({"user_id": "2"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_removes_the_member() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob.subscribe_presence(ROOM, &member("2", "Bob")).await;
    expect_member_added(&mut alice).await;
    bob.close().await;
    assert_eq!(expect_member_removed(&mut alice).await, json!({"user_id": "2"}));

    let mut carol = server.connect().await;
    let roster = carol.subscribe_presence(ROOM, &member("3", "Carol")).await;
    assert_eq!(sorted_ids(&roster), ["1", "3"]);
    assert_eq!(roster["count"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_tcp_connection_removes_the_member() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob.subscribe_presence(ROOM, &member("2", "Bob")).await;
    expect_member_added(&mut alice).await;
    drop(bob);
    assert_eq!(expect_member_removed(&mut alice).await, json!({"user_id": "2"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_user_id_is_emitted_as_a_string() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    alice.subscribe_presence(ROOM, r#"{"user_id":"1"}"#).await;
    let roster = bob.subscribe_presence(ROOM, r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#).await;
    assert_eq!(sorted_ids(&roster), ["1", "10"]);
    assert_eq!(roster["hash"]["10"], json!({"name": "Mr. Channels"}));
    assert_eq!(expect_member_added(&mut alice).await, member_added("10", "Mr. Channels"));
    bob.close().await;
    assert_eq!(expect_member_removed(&mut alice).await, json!({"user_id": "10"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_and_string_forms_of_a_user_id_are_the_same_member() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut tab1 = server.connect().await;
    let mut tab2 = server.connect().await;
    alice.subscribe_presence(ROOM, r#"{"user_id":"1"}"#).await;
    tab1.subscribe_presence(ROOM, r#"{"user_id":10}"#).await;
    expect_member_added(&mut alice).await;
    let roster = tab2.subscribe_presence(ROOM, r#"{"user_id":"10"}"#).await;
    assert_eq!(roster["count"], json!(2), "{roster}");
    alice.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_data_is_verified_byte_for_byte_as_sent() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    // Python-style spacing: the signature covers exactly these bytes.
    let roster = alice.subscribe_presence(ROOM, r#"{"user_id": "1", "user_info": {"name": "Alice"}}"#).await;
    assert_eq!(roster["hash"]["1"], json!({"name": "Alice"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_signature_over_other_channel_data_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let auth = alice.auth_for(ROOM, Some(&member("1", "Alice")));
    alice.send_subscribe(ROOM, Some(&auth), Some(&member("1", "Admin"))).await;
    alice.expect_error_code(Some(4009)).await;
    alice.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_subscribe_without_channel_data_is_rejected_with_4009() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let auth = alice.auth_for(ROOM, None);
    alice.send_subscribe(ROOM, Some(&auth), None).await;
    alice.expect_error_code(Some(4009)).await;
    alice.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_data_without_user_id_is_rejected_with_null_code() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    alice.send_presence_subscribe(ROOM, r#"{"user_info":{"name":"Nobody"}}"#).await;
    alice.expect_error_code(None).await;
    alice.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_id_longer_than_the_limit_is_rejected_with_null_code() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    alice.send_presence_subscribe(ROOM, &json!({"user_id": "u".repeat(129)}).to_string()).await;
    alice.expect_error_code(None).await;
    alice.subscribe_presence(ROOM, &json!({"user_id": "u".repeat(128)}).to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_channel_full_rejects_a_new_user_with_null_code() {
    let mut app = app();
    app.max_presence_members = 2;
    let server = TestServer::with_app(app).await;
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    let mut carol = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob.subscribe_presence(ROOM, &member("2", "Bob")).await;
    carol.send_presence_subscribe(ROOM, &member("3", "Carol")).await;
    carol.expect_error_code(None).await;
    carol.ping_pong().await;
    // Nobody was told about Carol.
    expect_member_added(&mut alice).await; // Bob
    alice.ping_pong().await;
    bob.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_presence_channel_still_admits_another_socket_of_an_existing_member() {
    let mut app = app();
    app.max_presence_members = 2;
    let server = TestServer::with_app(app).await;
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    let mut bob_tab2 = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob.subscribe_presence(ROOM, &member("2", "Bob")).await;
    let roster = bob_tab2.subscribe_presence(ROOM, &member("2", "Bob")).await;
    assert_eq!(roster["count"], json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_over_the_size_limit_is_rejected_with_null_code() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let big = json!({"user_id": "1", "user_info": {"bio": "x".repeat(1100)}}).to_string();
    alice.send_presence_subscribe(ROOM, &big).await;
    alice.expect_error_code(None).await;
    let fits = json!({"user_id": "1", "user_info": {"bio": "x".repeat(900)}}).to_string();
    alice.subscribe_presence(ROOM, &fits).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_to_a_presence_channel_sends_no_duplicate_member_events() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob.subscribe_presence(ROOM, &member("2", "Bob")).await;
    expect_member_added(&mut alice).await;
    let roster = bob.subscribe_presence(ROOM, &member("2", "Bob")).await;
    assert_eq!(roster["count"], json!(2));
    alice.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_added_reaches_others_before_the_joiner_is_told_it_succeeded() {
    let server = TestServer::start().await;
    let api = server.api();
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob.subscribe_presence(ROOM, &member("2", "Bob")).await;
    // An event triggered after Bob's success must queue behind the member_added for Alice.
    api.trigger_one(ROOM, "after-join", "{}").await;
    expect_member_added(&mut alice).await;
    assert_eq!(alice.next_frame().await, event_frame(ROOM, "after-join", "{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_added_omits_user_info_when_the_member_has_none() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    let mut bob = server.connect().await;
    alice.subscribe_presence(ROOM, &member("1", "Alice")).await;
    bob.subscribe_presence(ROOM, r#"{"user_id":"2"}"#).await;
    assert_eq!(expect_member_added(&mut alice).await, json!({"user_id": "2"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_user_id_is_rejected_with_null_code() {
    let server = TestServer::start().await;
    let mut alice = server.connect().await;
    alice.send_presence_subscribe(ROOM, r#"{"user_id":""}"#).await;
    alice.expect_error_code(None).await;
    alice.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_first_user_info_is_kept_while_they_stay() {
    let server = TestServer::start().await;
    let mut tab1 = server.connect().await;
    let mut tab2 = server.connect().await;
    let mut carol = server.connect().await;
    tab1.subscribe_presence(ROOM, &member("1", "First")).await;
    tab2.subscribe_presence(ROOM, &member("1", "Second")).await;
    let roster = carol.subscribe_presence(ROOM, &member("3", "Carol")).await;
    assert_eq!(roster["hash"]["1"], json!({"name": "First"}), "{roster}");
}
