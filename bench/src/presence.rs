//! The presence run: M members join one presence channel, then leave one after another, and
//! every `member_added` / `member_removed` frame is counted.
//!
//! Join: all members connect and subscribe (at most `connect_concurrency` in flight); each pair
//! of members yields exactly one `member_added` (to the earlier one), so J joined members
//! should see J(J−1)/2. Leave: members close in index order, member `i` only after it saw every
//! earlier leave, so each pair yields exactly one `member_removed`: J(J−1)/2 again. The server's
//! RSS is sampled every 50 ms throughout for its peak.

mod member;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use self::member::{MemberOutcome, Roster};
use crate::cli::PresenceArgs;
use crate::clock::Clock;
use crate::connect;
use crate::process;
use crate::report::{Summary, Table};
use crate::usage::{Moment, RssPeak, Usage};
use crate::Run;

#[derive(Debug, Serialize)]
pub struct PresenceReport {
    pub scenario: &'static str,
    pub load_average: Option<f64>,
    pub params: PresenceParams,
    pub join: Phase,
    pub leave: Phase,
    /// Leaves sent before the leaver had seen every earlier leave (its wait timed out).
    pub leave_order_timeouts: u64,
    pub server_cpu_us_per_member_event: Option<f64>,
    pub generator_cpu_us_per_member_event: Option<f64>,
    /// Join and leave together; the RSS peak is sampled every 50 ms.
    pub server: Option<Usage>,
    pub generator: Usage,
    /// Members whose socket failed or closed before they were told to leave.
    pub dropped_members: usize,
    pub first_drop_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PresenceParams {
    pub ws_url: String,
    pub members: usize,
    pub channel: String,
    pub connect_concurrency: usize,
}

/// One phase: how many members took part, how long until the last member frame, and the
/// member frames expected and received.
#[derive(Debug, Default, Serialize)]
pub struct Phase {
    pub members: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Join: until every member was subscribed. Leave: until the last close was sent.
    pub sockets_seconds: f64,
    /// Until the last member frame of the phase arrived (or the sockets, if later).
    pub seconds: f64,
    pub member_events_expected: u64,
    pub member_events_received: u64,
}

pub async fn run(run: &Run, args: &PresenceArgs) -> anyhow::Result<PresenceReport> {
    let load_average = process::load_average();
    let quiet = Duration::from_secs(args.drain_seconds);
    let roster = Arc::new(Roster {
        target: run.target.clone(),
        channel: args.channel.clone(),
        clock: Clock::start(),
        added: AtomicU64::new(0),
        removed: AtomicU64::new(0),
        removed_seen: (0..args.members).map(|_| AtomicU64::new(0)).collect(),
        last_event_ns: AtomicU64::new(0),
        progress: Notify::new(),
        stop: CancellationToken::new(),
        deadline: run.deadline,
    });
    let peak = RssPeak::start(run.server);
    let start = Moment::now(run.server);

    let (handles, leaves, join) = join_all(&roster, args, quiet).await;
    if join.members == 0 {
        roster.stop.cancel();
        let why = join.first_error.as_deref().unwrap_or("the deadline passed");
        anyhow::bail!("no member joined ({} failed): {why}", join.failed);
    }
    let (leave, leave_order_timeouts) = leave_all(&roster, leaves, join.members, quiet).await;
    let end = Moment::now(run.server);
    let rss_peak = peak.finish().await;

    roster.stop.cancel();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(handle.await.unwrap_or_else(|e| MemberOutcome { joined: false, error: Some(e.to_string()) }));
    }
    let dropped: Vec<_> = outcomes.iter().filter(|o| o.joined && o.error.is_some()).collect();
    let mut server = Usage::server(run.server, &start, &end);
    if let Some(server) = server.as_mut() {
        server.rss_peak_bytes = rss_peak;
    }
    let generator = Usage::generator(&start, &end);
    let events = join.member_events_received + leave.member_events_received;
    Ok(PresenceReport {
        scenario: "presence",
        load_average,
        params: PresenceParams {
            ws_url: run.ws_url.clone(),
            members: args.members,
            channel: args.channel.clone(),
            connect_concurrency: args.connect_concurrency,
        },
        join,
        leave,
        leave_order_timeouts,
        server_cpu_us_per_member_event: server.as_ref().and_then(|s| s.cpu_us_per(events)),
        generator_cpu_us_per_member_event: generator.cpu_us_per(events),
        server,
        generator,
        dropped_members: dropped.len(),
        first_drop_error: dropped.first().and_then(|o| o.error.clone()),
    })
}

/// Every member joins; waits for all `member_added` frames (or `quiet` without one).
async fn join_all(
    roster: &Arc<Roster>,
    args: &PresenceArgs,
    quiet: Duration,
) -> (Vec<JoinHandle<MemberOutcome>>, Vec<oneshot::Sender<()>>, Phase) {
    let started_ns = roster.clock.now_ns();
    let mut leaves = Vec::with_capacity(args.members);
    let (handles, stats) =
        connect::open_gated(args.members, args.connect_concurrency, roster.deadline, |i, permit, ready| {
            let (leave_tx, leave_rx) = oneshot::channel();
            leaves.push(leave_tx);
            member::run(i, roster.clone(), permit, ready, leave_rx)
        })
        .await;
    let joined = stats.opened as u64;
    let expected = joined * joined.saturating_sub(1) / 2;
    wait_for(&roster.added, expected, quiet, roster.deadline).await;
    let phase = Phase {
        members: stats.opened,
        failed: stats.failed,
        first_error: stats.first_error,
        sockets_seconds: stats.seconds,
        seconds: stats.seconds.max(seconds_since(roster, started_ns)),
        member_events_expected: expected,
        member_events_received: roster.added.load(Ordering::Relaxed),
    };
    (handles, leaves, phase)
}

/// Members leave in index order, each once it has seen every earlier leave; then waits for
/// the remaining `member_removed` frames. Returns the phase and how many order waits timed out.
async fn leave_all(roster: &Roster, leaves: Vec<oneshot::Sender<()>>, joined: usize, quiet: Duration) -> (Phase, u64) {
    let started = Instant::now();
    let started_ns = roster.clock.now_ns();
    let (mut left, mut timeouts) = (0u64, 0u64);
    for (index, leave) in leaves.into_iter().enumerate() {
        if leave.is_closed() {
            continue; // this member never joined (or is already gone)
        }
        if !seen_removals(roster, index, left, quiet).await {
            timeouts += 1;
        }
        if Instant::now() >= roster.deadline {
            break;
        }
        if leave.send(()).is_ok() {
            left += 1;
        }
    }
    let sockets_seconds = started.elapsed().as_secs_f64();
    let expected = (joined as u64) * (joined as u64).saturating_sub(1) / 2;
    wait_for(&roster.removed, expected, quiet, roster.deadline).await;
    let phase = Phase {
        members: left as usize,
        failed: joined.saturating_sub(left as usize),
        first_error: None,
        sockets_seconds,
        seconds: sockets_seconds.max(seconds_since(roster, started_ns)),
        member_events_expected: expected,
        member_events_received: roster.removed.load(Ordering::Relaxed),
    };
    (phase, timeouts)
}

/// Waits until member `index` has seen `count` removals; false if `quiet` passed first.
async fn seen_removals(roster: &Roster, index: usize, count: u64, quiet: Duration) -> bool {
    let give_up = (Instant::now() + quiet).min(roster.deadline);
    loop {
        let notified = roster.progress.notified();
        tokio::pin!(notified);
        // Registered before the check, so a removal between the check and the wait still wakes.
        notified.as_mut().enable();
        if roster.removed_seen[index].load(Ordering::Acquire) >= count {
            return true;
        }
        if tokio::time::timeout_at(give_up, notified).await.is_err() {
            return false;
        }
    }
}

/// Waits until `counter` reaches `target`, or it did not move for `quiet`, or the deadline.
async fn wait_for(counter: &AtomicU64, target: u64, quiet: Duration, deadline: Instant) {
    let mut last = counter.load(Ordering::Relaxed);
    let mut last_progress = Instant::now();
    while last < target && Instant::now() < deadline && last_progress.elapsed() < quiet {
        tokio::time::sleep_until((Instant::now() + Duration::from_millis(10)).min(deadline)).await;
        let now = counter.load(Ordering::Relaxed);
        if now != last {
            last = now;
            last_progress = Instant::now();
        }
    }
}

/// Seconds from `started_ns` to the last member frame (0 if none came after it).
fn seconds_since(roster: &Roster, started_ns: u64) -> f64 {
    roster.last_event_ns.load(Ordering::Relaxed).saturating_sub(started_ns) as f64 / 1e9
}

impl Summary for PresenceReport {
    fn table(&self) -> String {
        let p = &self.params;
        let load = self.load_average.map_or("-".to_string(), |l| format!("{l:.2}"));
        let mut t = Table::new(format!("presence against {} ({}, load average {load})", p.ws_url, p.channel));
        let (j, l) = (&self.join, &self.leave);
        t.row("members joined", format!("{} of {} ({} failed)", j.members, p.members, j.failed));
        t.row("join: subscribed / all added", format!("{:.2} s / {:.2} s", j.sockets_seconds, j.seconds));
        t.row("member_added expected / recv", format!("{} / {}", j.member_events_expected, j.member_events_received));
        t.row("members left", format!("{} (order waits timed out: {})", l.members, self.leave_order_timeouts));
        t.row("leave: closed / all removed", format!("{:.2} s / {:.2} s", l.sockets_seconds, l.seconds));
        t.row("member_removed expected / recv", format!("{} / {}", l.member_events_expected, l.member_events_received));
        let events = j.member_events_received + l.member_events_received;
        t.usage("server", self.server.as_ref(), Some((events, "member event")));
        t.usage("generator", Some(&self.generator), Some((events, "member event")));
        t.finish()
    }

    fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.join.failed > 0 {
            let why = self.join.first_error.as_deref().unwrap_or("deadline");
            out.push(format!("{} members failed to join: {why}", self.join.failed));
        }
        for (name, phase) in [("member_added", &self.join), ("member_removed", &self.leave)] {
            if phase.member_events_received != phase.member_events_expected {
                let (got, want) = (phase.member_events_received, phase.member_events_expected);
                out.push(format!("{name}: received {got} of {want}"));
            }
        }
        if self.dropped_members > 0 {
            let why = self.first_drop_error.as_deref().unwrap_or("");
            out.push(format!("{} members dropped: {why}", self.dropped_members));
        }
        out
    }
}
