//! Runs: one attempt of a job as a process, with its outcome and usage.

use crate::ParseError;
use crate::ids::{JobId, RunId, TaskId, WorkerId};
use crate::job::AgentKind;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// How a run ended. Distinct reasons, because retries and logs differ for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    TimedOut,
    Stalled,
    Cancelled,
    /// The process ended without the agent's final message (signal, crash).
    Interrupted,
    BudgetExceeded,
    /// Nobody saw it end (the worker died); decided by the reaper.
    Unknown,
}

impl RunOutcome {
    pub const ALL: [RunOutcome; 8] = [
        RunOutcome::Succeeded,
        RunOutcome::Failed,
        RunOutcome::TimedOut,
        RunOutcome::Stalled,
        RunOutcome::Cancelled,
        RunOutcome::Interrupted,
        RunOutcome::BudgetExceeded,
        RunOutcome::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::TimedOut => "timed_out",
            RunOutcome::Stalled => "stalled",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Interrupted => "interrupted",
            RunOutcome::BudgetExceeded => "budget_exceeded",
            RunOutcome::Unknown => "unknown",
        }
    }
}

impl FromStr for RunOutcome {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunOutcome::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError {
                kind: "run outcome",
                value: s.to_owned(),
                expected: "succeeded, failed, timed_out, stalled, cancelled, interrupted, budget_exceeded, unknown",
            })
    }
}

/// Token, cost and time usage of a run (or the sum over a task's runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Wall-clock time of agent work, in ms: the finished runs of the
    /// analyst, developer and reviewer, from claim to end. The merger's and
    /// the deployer's runs (the repo's own verify and deploy commands,
    /// bounded by their timeouts) are not agent work and count zero. This is
    /// what `budget.max_wall_secs` bounds.
    #[serde(default)]
    pub agent_wall_ms: u64,
    /// The start of an agent run still in progress: its time counts up to
    /// the reader's now ([`Usage::agent_wall_ms_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_running_since: Option<Timestamp>,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Agent wall time at `now`: the finished runs plus the one in progress.
    pub fn agent_wall_ms_at(&self, now: Timestamp) -> u64 {
        let running = self
            .agent_running_since
            .map_or(0, |since| now.since(since).as_millis());
        self.agent_wall_ms
            .saturating_add(u64::try_from(running).unwrap_or(u64::MAX))
    }
}

/// Whether a run of `agent` is agent work that the wall-time budget counts.
pub fn counts_as_agent_time(agent: AgentKind) -> bool {
    !agent.is_serial()
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cost_usd += o.cost_usd;
        self.agent_wall_ms = self.agent_wall_ms.saturating_add(o.agent_wall_ms);
        self.agent_running_since = match (self.agent_running_since, o.agent_running_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: RunId,
    pub job_id: JobId,
    pub task_id: TaskId,
    pub agent: AgentKind,
    pub attempt: u32,
    pub worker_id: WorkerId,
    pub pid: Option<i32>,
    pub pgid: Option<i32>,
    /// Process start time (clock ticks since boot, from /proc/<pid>/stat field 22):
    /// with the pid it names one process, so a reused pid is never signalled.
    pub proc_start_ticks: Option<u64>,
    pub log_path: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub outcome: Option<RunOutcome>,
    pub usage: Usage,
    pub session_id: Option<String>,
    pub error: Option<String>,
    /// The agent's final message (a reviewer's verdict is read from it).
    pub final_text: Option<String>,
}
