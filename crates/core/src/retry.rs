//! Retry policy: exponential backoff with jitter and a cap, and what happens
//! to a job whose attempt failed or whose outcome is unknown.

use crate::stage::Stage;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub base: Duration,
    /// No delay is ever longer than this.
    pub cap: Duration,
    /// Multiplier per further attempt.
    pub factor: f64,
    /// Fraction of the delay that is randomised (0 = none, 0.5 = ±50 %), so that
    /// jobs failing together do not retry together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(600),
            factor: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Delay before retrying after the `attempt`-th attempt failed (1-based).
    /// `unit` is a random number in `[0, 1)` supplied by the caller, which keeps
    /// this function pure and its tests deterministic.
    pub fn backoff(&self, attempt: u32, unit: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(63) as i32;
        let raw = self.base.as_secs_f64() * self.factor.max(1.0).powi(exp);
        let capped = raw.min(self.cap.as_secs_f64());
        let jitter = self.jitter.clamp(0.0, 1.0);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let secs = capped * (1.0 + jitter * (2.0 * unit - 1.0));
        Duration::from_secs_f64(secs.clamp(0.0, self.cap.as_secs_f64()))
    }
}

/// What to do with a running job whose attempt ended badly or whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FailureDecision {
    /// Queue it again, due at `run_after`.
    Retry { run_after: Timestamp },
    /// No attempts left: the job is `failed`.
    GiveUp,
    /// The task is already terminal (cancelled or done): the job becomes `cancelled`
    /// and is never requeued (TC-04).
    Cancel,
}

/// Decide the fate of a failed (or lost) attempt. `attempts` counts the attempt
/// that just ended (claims increment it).
pub fn after_failure(
    attempts: u32,
    max_attempts: u32,
    task_stage: Stage,
    now: Timestamp,
    policy: &RetryPolicy,
    unit: f64,
) -> FailureDecision {
    if task_stage.is_terminal() {
        FailureDecision::Cancel
    } else if attempts < max_attempts {
        FailureDecision::Retry {
            run_after: now.plus(policy.backoff(attempts, unit)),
        }
    } else {
        FailureDecision::GiveUp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn no_jitter() -> RetryPolicy {
        RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn doubles_until_the_cap() {
        let p = no_jitter();
        assert_eq!(p.backoff(1, 0.5), Duration::from_secs(10));
        assert_eq!(p.backoff(2, 0.5), Duration::from_secs(20));
        assert_eq!(p.backoff(3, 0.5), Duration::from_secs(40));
        assert_eq!(p.backoff(20, 0.5), Duration::from_secs(600));
        assert_eq!(p.backoff(u32::MAX, 0.5), Duration::from_secs(600));
    }

    #[test]
    fn terminal_task_is_never_retried() {
        let p = RetryPolicy::default();
        for st in [Stage::Cancelled, Stage::Done, Stage::Failed] {
            assert_eq!(
                after_failure(1, 5, st, Timestamp(0), &p, 0.1),
                FailureDecision::Cancel
            );
        }
        assert_eq!(
            after_failure(3, 3, Stage::Development, Timestamp(0), &p, 0.1),
            FailureDecision::GiveUp
        );
        assert!(matches!(
            after_failure(1, 3, Stage::Development, Timestamp(0), &p, 0.1),
            FailureDecision::Retry { .. }
        ));
    }

    proptest! {
        #[test]
        fn backoff_stays_within_jitter_and_cap(attempt in 1u32..100, unit in 0.0f64..1.0, jitter in 0.0f64..1.0) {
            let p = RetryPolicy { jitter, ..RetryPolicy::default() };
            let d = p.backoff(attempt, unit);
            prop_assert!(d <= p.cap);
            let nominal = (p.base.as_secs_f64() * 2f64.powi((attempt - 1).min(63) as i32)).min(p.cap.as_secs_f64());
            prop_assert!(d.as_secs_f64() >= nominal * (1.0 - jitter) - 1e-6);
        }

        #[test]
        fn retry_is_never_in_the_past(attempt in 1u32..10, now in 0i64..1_000_000_000_000, unit in 0.0f64..1.0) {
            if let FailureDecision::Retry { run_after } =
                after_failure(attempt, 10, Stage::Review, Timestamp(now), &RetryPolicy::default(), unit)
            {
                prop_assert!(run_after >= Timestamp(now));
            }
        }
    }
}
