//! The paced trigger loop: event `i` is due at `start + i / rate` and carries that intended time.
//!
//! Requests go one after another on one keep-alive connection: `POST /events` with up to 100
//! channels each, or (`batch`) `POST /batch_events` with up to 10 single-channel events each.
//! If the server answers slower than the rate, sends fall behind schedule; the stamps still
//! carry the intended times, so the delay is charged to latency, and the lateness is reported.

use std::time::Duration;

use tokio::time::Instant;

use crate::api::{ApiClient, MAX_CHANNELS_PER_TRIGGER, MAX_EVENTS_PER_BATCH};
use crate::clock::Clock;
use crate::payload;
use crate::report::TriggerStats;

/// The event name every bench event uses.
pub const EVENT_NAME: &str = "bench";
/// Head start between deciding to trigger and the first event's intended time.
const LEAD: Duration = Duration::from_millis(20);

/// What the loop is asked to send.
#[derive(Debug)]
pub struct Schedule<'a> {
    pub channels: &'a [String],
    /// Sequence number of the first event (a run of several schedules continues the count).
    pub first_seq: u64,
    pub events: u64,
    pub rate: f64,
    pub payload_bytes: usize,
    /// Trigger through `batch_events`, one event per channel.
    pub batch: bool,
}

/// Sends the schedule, stopping early at `deadline`.
pub async fn run(api: &ApiClient, schedule: &Schedule<'_>, clock: &Clock, deadline: Instant) -> TriggerStats {
    let interval_ns = (1e9 / schedule.rate) as u64;
    let start_ns = clock.now_ns() + LEAD.as_nanos() as u64;
    let mut stats = TriggerStats::default();
    let (mut request_ns_total, mut request_ns_max, mut late_ns_max) = (0u64, 0u64, 0u64);
    let chunk_size = if schedule.batch { MAX_EVENTS_PER_BATCH } else { MAX_CHANNELS_PER_TRIGGER };
    for index in 0..schedule.events {
        let seq = schedule.first_seq + index;
        let intended_ns = start_ns + index * interval_ns;
        let due = Instant::from_std(clock.instant_at(intended_ns));
        if due >= deadline {
            break;
        }
        tokio::time::sleep_until(due).await;
        late_ns_max = late_ns_max.max(clock.now_ns().saturating_sub(intended_ns));
        let data = payload::event_data(seq, intended_ns, schedule.payload_bytes);
        let mut all_ok = true;
        for chunk in schedule.channels.chunks(chunk_size) {
            let sent_at = clock.now_ns();
            let result = tokio::time::timeout_at(deadline, send(api, chunk, &data, schedule.batch))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
            let took = clock.now_ns().saturating_sub(sent_at);
            request_ns_total += took;
            request_ns_max = request_ns_max.max(took);
            match result {
                Ok(()) => stats.requests_ok += 1,
                Err(error) => {
                    all_ok = false;
                    stats.requests_failed += 1;
                    stats.first_error.get_or_insert_with(|| format!("{error:#}"));
                }
            }
        }
        stats.events_sent += u64::from(all_ok);
    }
    let requests = (stats.requests_ok + stats.requests_failed).max(1);
    stats.mean_request_ms = request_ns_total as f64 / requests as f64 / 1e6;
    stats.max_request_ms = request_ns_max as f64 / 1e6;
    stats.max_lateness_ms = late_ns_max as f64 / 1e6;
    stats
}

/// One request carrying the event to `channels`.
async fn send(api: &ApiClient, channels: &[String], data: &str, batch: bool) -> anyhow::Result<()> {
    if batch {
        api.trigger_batch(payload::batch_body(EVENT_NAME, channels, data)?).await
    } else {
        api.trigger(payload::trigger_body(EVENT_NAME, channels, data)?).await
    }
}
