//! The circuit breaker of one endpoint (one URL): after `threshold` consecutive failures it
//! opens and no request is attempted for `cooldown`; then one trial request goes through
//! (half-open). A success closes it, a failure opens it again. Pure: the caller passes the time.

use std::time::Duration;

use tokio::time::Instant;

/// What a breaker lets through, as the metrics layer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// The endpoint failed too often; nothing is attempted until the cooldown ends.
    Open,
    /// The cooldown ended; one trial request decides.
    HalfOpen,
}

impl BreakerState {
    pub(super) fn to_u8(self) -> u8 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }

    pub(super) fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Open,
            2 => Self::HalfOpen,
            _ => Self::Closed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// One endpoint's breaker.
#[derive(Debug)]
pub(super) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: State,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self { threshold: threshold.max(1), cooldown, state: State::Closed { failures: 0 } }
    }

    /// The state as of `now` (an open breaker whose cooldown is over reports half-open).
    pub(super) fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if now < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether [`Breaker::permit`] would let a request through at `now`.
    pub(super) fn would_permit(&self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } => now >= until,
            State::HalfOpen { trial_in_flight } => !trial_in_flight,
        }
    }

    /// Takes permission to send one request at `now`; in half-open state only one at a time.
    pub(super) fn permit(&mut self, now: Instant) -> bool {
        if !self.would_permit(now) {
            return false;
        }
        if !matches!(self.state, State::Closed { .. }) {
            self.state = State::HalfOpen { trial_in_flight: true };
        }
        true
    }

    /// The earliest time a request could be permitted: `now` when closed or waiting for a
    /// trial, the end of the cooldown when open, `None` while the trial is in flight.
    pub(super) fn next_permit(&self, now: Instant) -> Option<Instant> {
        match self.state {
            State::Closed { .. } | State::HalfOpen { trial_in_flight: false } => Some(now),
            State::Open { until } => Some(until.max(now)),
            State::HalfOpen { trial_in_flight: true } => None,
        }
    }

    /// When an open breaker lets its trial through; `None` unless open.
    pub(super) fn opens_at(&self) -> Option<Instant> {
        match self.state {
            State::Open { until } => Some(until),
            _ => None,
        }
    }

    /// A request succeeded: the endpoint works.
    pub(super) fn on_success(&mut self) {
        self.state = State::Closed { failures: 0 };
    }

    /// A request failed at `now`. Returns true when this failure opened the breaker.
    pub(super) fn on_failure(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed { failures } if failures + 1 < self.threshold => {
                self.state = State::Closed { failures: failures + 1 };
                false
            }
            State::Closed { .. } | State::HalfOpen { .. } => {
                self.state = State::Open { until: now + self.cooldown };
                true
            }
            // A request sent before the breaker opened; the cooldown already runs.
            State::Open { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let now = Instant::now();
        let mut breaker = Breaker::new(3, COOLDOWN);
        assert!(!breaker.on_failure(now));
        assert!(!breaker.on_failure(now));
        breaker.on_success();
        assert!(!breaker.on_failure(now));
        assert!(!breaker.on_failure(now));
        assert_eq!(breaker.state(now), BreakerState::Closed);
        assert!(breaker.on_failure(now));
        assert_eq!(breaker.state(now), BreakerState::Open);
        assert!(!breaker.would_permit(now + COOLDOWN - Duration::from_millis(1)));
        assert!(!breaker.permit(now));
    }

    #[test]
    fn half_open_lets_exactly_one_trial_through_and_success_closes() {
        let now = Instant::now();
        let mut breaker = Breaker::new(1, COOLDOWN);
        breaker.on_failure(now);
        let later = now + COOLDOWN;
        assert_eq!(breaker.opens_at(), Some(later));
        assert_eq!(breaker.state(later), BreakerState::HalfOpen);
        assert!(breaker.permit(later));
        assert!(!breaker.permit(later), "only one trial at a time");
        breaker.on_success();
        assert_eq!(breaker.state(later), BreakerState::Closed);
        assert!(breaker.permit(later) && breaker.permit(later));
    }

    #[test]
    fn failed_trial_reopens_for_another_cooldown() {
        let now = Instant::now();
        let mut breaker = Breaker::new(2, COOLDOWN);
        breaker.on_failure(now);
        breaker.on_failure(now);
        let trial = now + COOLDOWN;
        assert!(breaker.permit(trial));
        assert!(breaker.on_failure(trial));
        assert_eq!(breaker.state(trial), BreakerState::Open);
        assert_eq!(breaker.opens_at(), Some(trial + COOLDOWN));
    }

    #[test]
    fn state_round_trips_through_its_metric_encoding() {
        for state in [BreakerState::Closed, BreakerState::Open, BreakerState::HalfOpen] {
            assert_eq!(BreakerState::from_u8(state.to_u8()), state);
        }
    }
}
