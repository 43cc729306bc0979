//! A connection's side of history recovery (protocol/README.md, "History and recovery"):
//! checking a `herald:recover` request, and remembering the ones that name a channel the
//! connection has not subscribed to yet, so the subscription starts with the replay.

use std::num::NonZeroU32;

use governor::{Quota, RateLimiter};
use herald_protocol::history::{recovery_failed_data, RECOVERY_FAILED_EVENT};
use herald_protocol::{ChannelName, ServerMessage};

use super::Session;
use crate::apps::App;
use crate::channels::RecoveryStart;
use crate::frame::Frame;
use crate::history::{Gap, Since};

/// Requests one connection may hold for channels it has not subscribed to yet.
pub const MAX_PENDING: usize = 100;

/// `herald:recover` requests one connection may send at once (one per channel on a
/// reconnect), then per second: each may read a channel's whole history.
const RECOVERY_BURST: u32 = 100;
const RECOVERIES_PER_SECOND: u32 = 10;

/// Recoveries waiting for their subscription. Empty (one null pointer, where a `Vec` is three
/// words) on nearly every connection.
#[derive(Debug, Default)]
#[allow(clippy::box_collection)]
pub struct PendingRecoveries(Option<Box<Vec<(ChannelName, Since)>>>);

impl PendingRecoveries {
    /// Remembers a request; the newest for a channel wins. Refused when [`MAX_PENDING`]
    /// channels are waiting already.
    pub fn add(&mut self, name: ChannelName, since: Since) -> Result<(), Frame> {
        let list = self.0.get_or_insert_with(Default::default);
        if let Some(entry) = list.iter_mut().find(|(n, _)| *n == name) {
            entry.1 = since;
            return Ok(());
        }
        if list.len() >= MAX_PENDING {
            let reason = format!("at most {MAX_PENDING} recoveries may wait for their subscription");
            return Err(failed(name.as_str(), Some(since), &reason));
        }
        list.push((name, since));
        Ok(())
    }

    /// The request waiting for `name`, taken.
    pub fn take(&mut self, name: &str) -> Option<Since> {
        let list = self.0.as_mut()?;
        let at = list.iter().position(|(n, _)| n.as_str() == name)?;
        let (_, since) = list.swap_remove(at);
        if list.is_empty() {
            self.0 = None;
        }
        Some(since)
    }
}

impl Session {
    /// `herald:recover`: replays now on a subscribed channel, or when the subscription comes.
    pub async fn recover(&mut self, channel: &str, since: &str) {
        if !self.recovery_allowed() {
            self.app.metrics.recoveries_failed.inc();
            let reason = format!(
                "too many recovery requests: at most {RECOVERY_BURST} at once, then {RECOVERIES_PER_SECOND} per second"
            );
            let _ = self.me.outbox.push(failed(channel, None, &reason));
            return;
        }
        let (name, since) = match check(&self.app, channel, since, self.limits.max_channel_name_length) {
            Ok(checked) => checked,
            Err(failed) => {
                self.app.metrics.recoveries_failed.inc();
                let _ = self.me.outbox.push(failed);
                return;
            }
        };
        if !self.channels.contains(name.as_str()) {
            if let Err(failed) = self.pending.add(name, since) {
                self.app.metrics.recoveries_failed.inc();
                let _ = self.me.outbox.push(failed);
            }
            return;
        }
        if let Some(start) = self.app.channels.begin_recovery(&name, self.me.socket_id) {
            self.app.recover(&name, self.me.socket_id, since, start).await;
        }
    }

    fn recovery_allowed(&mut self) -> bool {
        let limiter = self.recoveries.get_or_insert_with(|| {
            let burst = NonZeroU32::new(RECOVERY_BURST).unwrap_or(NonZeroU32::MIN);
            let rate = NonZeroU32::new(RECOVERIES_PER_SECOND).unwrap_or(NonZeroU32::MIN);
            Box::new(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)))
        });
        limiter.check().is_ok()
    }

    /// Starts the recovery a pending request asked for, right after its subscription:
    /// `already` when the socket was subscribed before (it may have had events live).
    pub(super) async fn recover_joined(&mut self, name: &ChannelName, since: Since, already: bool) {
        let start = match already {
            true => self.app.channels.begin_recovery(name, self.me.socket_id),
            false => Some(RecoveryStart { had_from: None }),
        };
        if let Some(start) = start {
            self.app.recover(name, self.me.socket_id, since, start).await;
        }
    }
}

/// Checks a request: the channel name, the position, and that the channel keeps history.
/// `Err` is the `herald:recovery_failed` frame to send.
pub fn check(
    app: &App,
    channel: &str,
    since: &str,
    max_channel_name_length: usize,
) -> Result<(ChannelName, Since), Frame> {
    let name =
        ChannelName::parse(channel, max_channel_name_length).map_err(|e| failed(channel, None, &e.to_string()))?;
    let Some(since) = Since::parse(since) else {
        return Err(failed(channel, None, "since must be a position like \"1733600000000-0\" or \"latest\""));
    };
    if app.channels.policy().history.for_channel(name.as_str()).is_none() {
        return Err(failed(channel, Some(since), &Gap::NoHistory.to_string()));
    }
    Ok((name, since))
}

fn failed(channel: &str, since: Option<Since>, reason: &str) -> Frame {
    let since = match since {
        Some(Since::Position(p)) => Some(p.to_string()),
        _ => None,
    };
    let data = recovery_failed_data(since.as_deref(), reason);
    Frame::message(&ServerMessage::Event { event: RECOVERY_FAILED_EVENT, channel, data: Some(&data), user_id: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Position;

    fn name(s: &str) -> ChannelName {
        ChannelName::parse(s, 200).unwrap()
    }

    #[test]
    fn the_newest_request_for_a_channel_wins_and_is_taken_once() {
        let mut pending = PendingRecoveries::default();
        pending.add(name("a"), Since::Latest).unwrap();
        pending.add(name("a"), Since::Position(Position::new(1, 2))).unwrap();
        assert_eq!(pending.take("b"), None);
        assert_eq!(pending.take("a"), Some(Since::Position(Position::new(1, 2))));
        assert_eq!(pending.take("a"), None);
        assert!(pending.0.is_none(), "an emptied list is freed");
    }

    #[test]
    fn requests_past_the_limit_are_refused() {
        let mut pending = PendingRecoveries::default();
        for i in 0..MAX_PENDING {
            pending.add(name(&format!("c{i}")), Since::Latest).unwrap();
        }
        let refused = pending.add(name("one-more"), Since::Latest).unwrap_err();
        assert!(std::str::from_utf8(refused.payload()).unwrap().contains(RECOVERY_FAILED_EVENT));
    }
}
