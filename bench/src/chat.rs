//! The chat run: `rooms` private channels of `members` members each; every member sends
//! `messages` client events at `rate` per second and every other member of its room receives
//! them (the sender is excluded), so a room of m members expects m × K × (m − 1) deliveries.
//!
//! Phases, bounded by the run's deadline: join (connect, sign, subscribe; at most
//! `connect_concurrency` in flight) → start signal (send times spread evenly over one
//! interval across all members) → send → drain → stop, collect every member's counts.

mod member;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::member::{Chat, Received, Seat};
use crate::cli::ChatArgs;
use crate::clock::Clock;
use crate::connect;
use crate::process;
use crate::recorder::{self, Recorder};
use crate::report::{ConnectStats, Latency, Summary, Table};
use crate::usage::{Moment, Usage};
use crate::Run;

/// Between the start signal and the first intended send.
const LEAD: Duration = Duration::from_millis(100);

#[derive(Debug, Serialize)]
pub struct ChatReport {
    pub scenario: &'static str,
    pub load_average: Option<f64>,
    pub params: ChatParams,
    pub connect: ConnectStats,
    pub messages_sent: u64,
    pub send_failures: u64,
    /// `pusher:error` frames members received (client events the server refused).
    pub server_errors: u64,
    pub first_server_error: Option<String>,
    pub delivery: ChatDelivery,
    pub latency_us: Option<Latency>,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub generator_cpu_us_per_delivery: Option<f64>,
    /// From the start signal to the end of the drain.
    pub server: Option<Usage>,
    pub generator: Usage,
}

#[derive(Debug, Serialize)]
pub struct ChatParams {
    pub ws_url: String,
    pub rooms: usize,
    pub members: usize,
    pub messages: u64,
    pub rate_per_second: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct ChatDelivery {
    /// rooms × members × messages × (members − 1).
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Messages delivered back to their own sender.
    pub echoes: u64,
    pub foreign: u64,
    /// Received over the time from the first intended send to the end of the drain.
    pub per_second: f64,
    /// Members whose socket failed or closed after joining, before the run ended.
    pub dropped_members: usize,
    pub first_drop_error: Option<String>,
}

pub async fn run(run: &Run, args: &ChatArgs) -> anyhow::Result<ChatReport> {
    let load_average = process::load_average();
    let total = args.rooms * args.members;
    let (start_tx, start_rx) = watch::channel(0u64);
    let chat = Arc::new(Chat {
        target: run.target.clone(),
        clock: Clock::start(),
        recorder: Recorder::new()?,
        members: args.members,
        messages: args.messages,
        interval_ns: args.interval().as_nanos() as u64,
        total_members: total,
        start: start_rx,
        sent: AtomicU64::new(0),
        send_failures: AtomicU64::new(0),
        stop: CancellationToken::new(),
        deadline: run.deadline,
    });
    let (handles, connect) =
        connect::open_gated(total, args.connect_concurrency, run.deadline, |index, permit, ready| {
            let seat = Seat { index, room: index / args.members, slot: index % args.members };
            member::run(seat, chat.clone(), permit, ready)
        })
        .await;
    if connect.opened == 0 {
        chat.stop.cancel();
        let why = connect.first_error.as_deref().unwrap_or("the deadline passed");
        anyhow::bail!("no member joined ({} failed): {why}", connect.failed);
    }

    let start = Moment::now(run.server);
    let expected = (total * (args.members - 1)) as u64 * args.messages;
    let (start_ns, end_ns) = converse(&chat, start_tx, args, expected).await;
    let end = Moment::now(run.server);

    chat.stop.cancel();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(handle.await.unwrap_or_else(|e| Received { error: Some(e.to_string()), ..Received::default() }));
    }
    let mut delivery = delivery(&outcomes, expected);
    delivery.per_second = delivery.received as f64 / ((end_ns.saturating_sub(start_ns)) as f64 / 1e9).max(1e-9);
    let server = Usage::server(run.server, &start, &end);
    let generator = Usage::generator(&start, &end);
    let errors = outcomes.iter().map(|o| o.server_errors).sum();
    Ok(ChatReport {
        scenario: "chat",
        load_average,
        params: ChatParams {
            ws_url: run.ws_url.clone(),
            rooms: args.rooms,
            members: args.members,
            messages: args.messages,
            rate_per_second: args.rate,
        },
        connect,
        messages_sent: chat.sent.load(Ordering::Relaxed),
        send_failures: chat.send_failures.load(Ordering::Relaxed),
        server_errors: errors,
        first_server_error: outcomes.iter().find_map(|o| o.first_server_error.clone()),
        latency_us: Latency::from_histogram(&chat.recorder.merged()?),
        server_cpu_us_per_delivery: server.as_ref().and_then(|s| s.cpu_us_per(delivery.received)),
        generator_cpu_us_per_delivery: generator.cpu_us_per(delivery.received),
        delivery,
        server,
        generator,
    })
}

/// Gives the start, waits out the sends and drains; returns the first intended send and the
/// end of the drain (clock nanoseconds).
async fn converse(chat: &Chat, start_tx: watch::Sender<u64>, args: &ChatArgs, expected: u64) -> (u64, u64) {
    let start_ns = chat.clock.now_ns() + LEAD.as_nanos() as u64;
    // Members that already ended hold no receiver; the others all see the value.
    let _ = start_tx.send(start_ns);
    // The last member's offset is under one interval, so every send is due by then.
    let last_send_ns = start_ns + chat.interval_ns * args.messages;
    tokio::time::sleep_until(Instant::from_std(chat.clock.instant_at(last_send_ns)).min(chat.deadline)).await;
    let quiet = Duration::from_secs(args.drain_seconds);
    recorder::drain(&chat.recorder, expected, quiet, false, chat.deadline).await;
    (start_ns, chat.clock.now_ns())
}

fn delivery(outcomes: &[Received], expected: u64) -> ChatDelivery {
    let mut d = ChatDelivery { expected, ..ChatDelivery::default() };
    for o in outcomes {
        d.received += o.unique;
        d.duplicates += o.duplicates;
        d.echoes += o.echoes;
        d.foreign += o.foreign;
        if o.joined && o.error.is_some() {
            d.dropped_members += 1;
            d.first_drop_error.get_or_insert_with(|| o.error.clone().unwrap_or_default());
        }
    }
    d.lost = expected.saturating_sub(d.received);
    d
}

impl Summary for ChatReport {
    fn table(&self) -> String {
        let p = &self.params;
        let load = self.load_average.map_or("-".to_string(), |l| format!("{l:.2}"));
        let mut t = Table::new(format!(
            "chat against {} ({} rooms × {} members, load average {load})",
            p.ws_url, p.rooms, p.members
        ));
        let c = &self.connect;
        t.row("members joined", format!("{} of {} ({} failed)", c.opened, p.rooms * p.members, c.failed));
        t.row("connect time", format!("{:.2} s ({:.0} conn/s)", c.seconds, c.per_second));
        t.row(
            "messages sent",
            format!("{} at {}/s per member ({} failed)", self.messages_sent, p.rate_per_second, self.send_failures),
        );
        t.row("pusher:error received", self.server_errors);
        let d = &self.delivery;
        t.row("deliveries expected", d.expected);
        t.row("deliveries received", format!("{} (lost {}, duplicate {})", d.received, d.lost, d.duplicates));
        t.row("echoes to the sender", d.echoes);
        t.row("deliveries/s", format!("{:.0}", d.per_second));
        t.latency(self.latency_us.as_ref());
        t.usage("server", self.server.as_ref(), Some((d.received, "delivery")));
        t.usage("generator", Some(&self.generator), Some((d.received, "delivery")));
        t.finish()
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.connect.failed > 0 {
            let why = self.connect.first_error.as_deref().unwrap_or("deadline");
            out.push(format!("{} members failed to join: {why}", self.connect.failed));
        }
        let d = &self.delivery;
        if d.lost > 0 || d.duplicates > 0 || d.echoes > 0 {
            out.push(format!("{} deliveries lost, {} duplicated, {} echoed", d.lost, d.duplicates, d.echoes));
        }
        if let Some(error) = &self.first_server_error {
            out.push(format!("{} client events refused: {error}", self.server_errors));
        }
        if d.dropped_members > 0 {
            let why = d.first_drop_error.as_deref().unwrap_or("");
            out.push(format!("{} members dropped: {why}", d.dropped_members));
        }
        out
    }
}
