//! When a failed webhook request is tried again: exponential backoff with jitter (1 s, 2 s,
//! 4 s … capped at 60 s, each drawn from the upper half of its step), within a budget counted
//! from the moment the webhook was created (`retry_for_seconds`, Pusher: 5 minutes). Pure.
//!
//! The budget starts at creation, not at the first attempt, so `time_ms` in the body (which
//! is never rewritten) is at most `retry_for_seconds` old when the receiver sees it:
//! pusher-http-python's `validate_webhook` rejects bodies more than 300 s old.

use std::time::Duration;

use crate::config::WebhooksConfig;

/// The backoff of one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RetryPolicy {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
    /// How long after its creation a webhook may still be attempted.
    pub budget: Duration,
}

impl RetryPolicy {
    pub(super) fn from_config(config: &WebhooksConfig) -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            budget: Duration::from_secs(config.retry_for_seconds),
        }
    }

    /// The wait after the `failures`-th failure (1-based). `jitter` in `[0, 1]` picks a point
    /// in the upper half of the step, so endpoints that failed together do not retry together.
    pub(super) fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let step = self.first.saturating_mul(1 << doublings).min(self.max);
        step / 2 + step.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// A jittered backoff with the thread's random generator.
    pub(super) fn backoff_jittered(&self, failures: u32) -> Duration {
        self.backoff(failures, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::from_config(&WebhooksConfig::default())
    }

    #[test]
    fn backoff_doubles_from_one_second_within_the_jitter_band() {
        let p = policy();
        for (failures, step) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 32)] {
            let step = Duration::from_secs(step);
            assert_eq!(p.backoff(failures, 0.0), step / 2, "lowest wait after {failures} failures");
            assert_eq!(p.backoff(failures, 1.0), step, "highest wait after {failures} failures");
            let mid = p.backoff_jittered(failures);
            assert!(mid >= step / 2 && mid <= step, "{mid:?} outside [{:?}, {step:?}]", step / 2);
        }
    }

    #[test]
    fn backoff_is_capped_at_a_minute_even_after_many_failures() {
        let p = policy();
        assert_eq!(p.backoff(7, 1.0), Duration::from_secs(60));
        assert_eq!(p.backoff(u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(p.backoff(u32::MAX, 0.0), Duration::from_secs(30));
    }

    #[test]
    fn the_whole_schedule_fits_pushers_five_minutes() {
        let p = policy();
        assert_eq!(p.budget, Duration::from_secs(300));
        // Even with the shortest waits, the attempts within the budget are few and bounded.
        let (mut elapsed, mut attempts) = (Duration::ZERO, 1);
        while elapsed + p.backoff(attempts, 0.0) <= p.budget {
            elapsed += p.backoff(attempts, 0.0);
            attempts += 1;
        }
        assert!((8..=15).contains(&attempts), "{attempts} attempts in 5 minutes");
    }
}
