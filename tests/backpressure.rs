//! A consumer that does not read: its outbound queue is bounded by `max_outbox_bytes` and the
//! server closes it with 4100 when the queue is full, while other clients are unaffected.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_is_closed_with_4100_when_its_outbox_is_full() {
    let mut config = config_with(vec![app()]);
    config.server.max_outbox_bytes = 64 * 1024;
    let server = TestServer::with_config(config).await;
    let api = server.api();
    let mut stalled = server.connect().await;
    stalled.subscribe("firehose").await;

    // 300 batches of 10 × 10 KB: ~30 MB, far more than the kernel's socket buffers plus the
    // 64 KB outbox can hold while `stalled` reads nothing.
    let item = json!({"channel": "firehose", "name": "chunk", "data": "x".repeat(10_000)});
    let batch = json!({"batch": vec![item; 10]});
    for _ in 0..300 {
        let (status, body) = api.post("/batch_events", &batch).await;
        assert_eq!(status, 200, "{body}");
    }

    // Now drain: events, possibly a pusher:error 4100, then the close.
    let mut events = 0usize;
    loop {
        match stalled.next_incoming().await {
            Incoming::Frame(frame) if frame["event"] == "chunk" => events += 1,
            Incoming::Frame(frame) => {
                assert_eq!(frame["event"], "pusher:error", "{frame}");
                assert_eq!(frame["data"]["code"], json!(4100), "{frame}");
            }
            Incoming::Close(code) => {
                assert_eq!(code, Some(4100), "close code after {events} events");
                break;
            }
            other => panic!("expected events then close 4100, got {other:?} after {events} events"),
        }
    }
    assert!(events < 3_000, "the stalled client must not receive everything ({events} events)");

    let mut healthy = server.connect().await;
    healthy.subscribe("firehose").await;
    api.trigger_one("firehose", "after", "{}").await;
    assert_eq!(healthy.next_frame().await, event_frame("firehose", "after", "{}"));
}
