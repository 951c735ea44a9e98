//! Per-task budgets: tokens, cost and agent wall time. Exceeding one
//! stops the agent and parks the task for a person (fail closed).
//!
//! Wall time is the time agents worked on the task: the runs of the analyst,
//! developer and reviewer, each from its claim to its end, summed, the run in
//! progress included ([`Usage::agent_wall_ms_at`]). Time in the queue, in a
//! retry's backoff or waiting for a person does not count, nor do the merge
//! and deploy steps (the repo's own verify and deploy commands: they have
//! their own timeouts, and deploy phase B must never be cut short).

use crate::run::Usage;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The limits of `[budget]`; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskBudget {
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
    pub max_wall_secs: Option<u64>,
}

impl TaskBudget {
    /// What `used` exceeds at `now`, if anything, as a sentence with the
    /// figures for the task's log and the tracker.
    pub fn exceeded(&self, used: &Usage, now: Timestamp) -> Option<String> {
        if let Some(max) = self.max_tokens.filter(|m| used.total_tokens() > *m) {
            return Some(format!(
                "token budget exceeded: {} > {max}",
                used.total_tokens()
            ));
        }
        if let Some(max) = self.max_cost_usd.filter(|m| used.cost_usd > *m) {
            return Some(format!(
                "cost budget exceeded: ${:.4} > ${max:.4}",
                used.cost_usd
            ));
        }
        let wall = used.agent_wall_ms_at(now);
        if let Some(max) = self.max_wall_secs.filter(|m| wall > m.saturating_mul(1000)) {
            return Some(format!(
                "wall-time budget exceeded: the agents ran {} > {} (budget.max_wall_secs = {max})",
                duration_text(wall),
                duration_text(max.saturating_mul(1000))
            ));
        }
        None
    }
}

/// `2.5 s`, `3m 20s`, `4h 0m 3s`.
pub fn duration_text(ms: u64) -> String {
    let secs = ms / 1000;
    if secs < 60 {
        return format!("{:.1} s", ms as f64 / 1000.0);
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h {m}m {s}s")
    } else {
        format!("{m}m {s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(finished_ms: u64, running_since: Option<i64>) -> Usage {
        Usage {
            agent_wall_ms: finished_ms,
            agent_running_since: running_since.map(Timestamp),
            ..Usage::default()
        }
    }

    #[test]
    fn wall_time_counts_finished_runs_and_the_one_in_progress() {
        let b = TaskBudget {
            max_wall_secs: Some(10),
            ..TaskBudget::default()
        };
        let now = Timestamp(100_000);
        assert_eq!(
            b.exceeded(&wall(6_000, Some(96_000)), now),
            None,
            "10 s is not more than 10 s"
        );
        let why = b
            .exceeded(&wall(6_000, Some(95_000)), now)
            .expect("11 s is over");
        assert_eq!(
            why,
            "wall-time budget exceeded: the agents ran 11.0 s > 10.0 s (budget.max_wall_secs = 10)"
        );
        assert!(b.exceeded(&wall(10_001, None), now).is_some());
        assert_eq!(
            TaskBudget::default().exceeded(&wall(u64::MAX, Some(0)), now),
            None
        );
    }

    #[test]
    fn tokens_and_cost_keep_their_messages() {
        let b = TaskBudget {
            max_tokens: Some(100),
            max_cost_usd: Some(1.0),
            max_wall_secs: None,
        };
        let used = Usage {
            input_tokens: 90,
            output_tokens: 20,
            ..Usage::default()
        };
        assert_eq!(
            b.exceeded(&used, Timestamp(0)).as_deref(),
            Some("token budget exceeded: 110 > 100")
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(2_500), "2.5 s");
        assert_eq!(duration_text(200_000), "3m 20s");
        assert_eq!(duration_text(14_403_000), "4h 0m 3s");
    }

    #[test]
    fn usage_sums_keep_the_earliest_run_in_progress() {
        let mut u = wall(1_000, None);
        u += wall(2_000, Some(50));
        u += wall(0, Some(70));
        assert_eq!(u.agent_wall_ms, 3_000);
        assert_eq!(u.agent_running_since, Some(Timestamp(50)));
        assert_eq!(u.agent_wall_ms_at(Timestamp(1_050)), 4_000);
    }
}
