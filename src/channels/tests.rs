//! Registry behaviour, checked on outboxes without any socket.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::presence::PresenceLimits;
use herald_protocol::{ChannelName, PresenceMember, SocketId, UserId};

use super::{ChannelPolicy, ChannelRegistry, JoinError, Subscriber};
use crate::frame::Frame;
use crate::outbox::{Next, Outbox};
use crate::webhooks::AppWebhooks;

fn registry(max_members: usize, counting: bool) -> ChannelRegistry {
    let policy = ChannelPolicy {
        history: Default::default(),
        max_presence_members: max_members,
        subscription_count: counting,
        cache_ttl: Duration::from_secs(60),
    };
    ChannelRegistry::new(policy, AppWebhooks::disabled(), None)
}

fn socket(n: u32) -> Subscriber {
    Subscriber { socket_id: SocketId::new(1, n), outbox: Arc::new(Outbox::new(1 << 20)) }
}

fn drained(s: &Subscriber) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(Next::Write(frames)) = s.outbox.take(100) {
        out.extend(frames.iter().map(|f| String::from_utf8_lossy(&f.bytes()[2..]).into_owned()));
    }
    out
}

fn name(s: &str) -> ChannelName {
    ChannelName::parse(s, 164).unwrap()
}

fn member(id: &str) -> PresenceMember {
    PresenceMember::parse(&format!(r#"{{"user_id":"{id}"}}"#), PresenceLimits::default()).unwrap()
}

#[test]
fn publish_reaches_everyone_but_the_excluded_socket() {
    let reg = registry(100, false);
    let news = name("news");
    let (a, b) = (socket(1), socket(2));
    reg.subscribe(&news, &a, None, None).unwrap();
    reg.subscribe(&news, &b, None, None).unwrap();
    drained(&a);
    drained(&b);
    assert_eq!(reg.publish(&news, &Frame::text("{}"), Some(a.socket_id), None), 1);
    assert!(drained(&a).is_empty());
    assert_eq!(drained(&b), vec!["{}"]);
}

#[test]
fn the_last_unsubscribe_forgets_the_channel() {
    let reg = registry(100, false);
    let news = name("news");
    let a = socket(1);
    reg.subscribe(&news, &a, None, None).unwrap();
    assert!(reg.unsubscribe(&news, a.socket_id, None).is_some_and(|l| l.locally_vacated));
    assert!(reg.is_empty());
    assert!(reg.unsubscribe(&news, a.socket_id, None).is_none());
}

#[test]
fn member_events_follow_a_users_first_and_last_socket() {
    let reg = registry(100, false);
    let room = name("presence-room");
    let (a, b1, b2) = (socket(1), socket(2), socket(3));
    reg.subscribe(&room, &a, Some(&member("a")), None).unwrap();
    drained(&a);
    reg.subscribe(&room, &b1, Some(&member("b")), None).unwrap();
    reg.subscribe(&room, &b2, Some(&member("b")), None).unwrap();
    let seen = drained(&a);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("member_added"));
    reg.unsubscribe(&room, b1.socket_id, None);
    assert!(drained(&a).is_empty());
    reg.unsubscribe(&room, b2.socket_id, None);
    assert!(drained(&a)[0].contains("member_removed"));
    assert_eq!(reg.users("presence-room"), vec![UserId::new("a")]);
}

#[test]
fn a_full_presence_channel_refuses_new_users_but_not_known_ones() {
    let reg = registry(1, false);
    let room = name("presence-room");
    reg.subscribe(&room, &socket(1), Some(&member("a")), None).unwrap();
    assert_eq!(reg.subscribe(&room, &socket(2), Some(&member("b")), None), Err(JoinError::PresenceFull { max: 1 }));
    assert!(reg.subscribe(&room, &socket(3), Some(&member("a")), None).is_ok());
}

#[test]
fn a_cache_channel_replays_the_last_event_or_reports_a_miss() {
    let reg = registry(100, false);
    let cache = name("cache-prices");
    let a = socket(1);
    reg.subscribe(&cache, &a, None, None).unwrap();
    let seen = drained(&a);
    assert!(seen[1].contains("pusher:cache_miss"), "{seen:?}");
    reg.publish(&cache, &Frame::text(r#"{"event":"p"}"#), None, Some("42"));
    reg.unsubscribe(&cache, a.socket_id, None);
    let b = socket(2);
    reg.subscribe(&cache, &b, None, None).unwrap();
    let seen = drained(&b);
    assert_eq!(seen[1], r#"{"event":"p"}"#, "{seen:?}");
    assert_eq!(reg.cached("cache-prices").map(|(d, _)| d.to_string()), Some("42".into()));
}

#[test]
fn subscription_counts_go_to_every_subscriber_including_the_new_one() {
    let reg = registry(100, true);
    let news = name("news");
    let (a, b) = (socket(1), socket(2));
    reg.subscribe(&news, &a, None, None).unwrap();
    reg.subscribe(&news, &b, None, None).unwrap();
    assert!(drained(&a).iter().any(|f| f.contains(r#"{\"subscription_count\":2}"#)));
    assert!(drained(&b).iter().any(|f| f.contains(r#"{\"subscription_count\":2}"#)));
    reg.unsubscribe(&news, b.socket_id, None);
    assert!(drained(&a).iter().any(|f| f.contains(r#"{\"subscription_count\":1}"#)));
}
