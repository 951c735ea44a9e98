//! Jobs: queued units of agent work for one task, and their small state machine.
//!
//! ```text
//! queued ──claim──▶ running ──complete──▶ succeeded
//!   ▲                 │ fail / unknown outcome (attempts < max)
//!   └─────────────────┘
//! running ──fail (attempts = max)──▶ failed      queued|running ──cancel──▶ cancelled
//! ```

use crate::ParseError;
use crate::ids::{JobId, RunId, TaskId, WorkerId};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    Analyst,
    Developer,
    Reviewer,
    Merger,
    Deployer,
}

impl AgentKind {
    pub const ALL: [AgentKind; 5] = [
        AgentKind::Analyst,
        AgentKind::Developer,
        AgentKind::Reviewer,
        AgentKind::Merger,
        AgentKind::Deployer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AgentKind::Analyst => "analyst",
            AgentKind::Developer => "developer",
            AgentKind::Reviewer => "reviewer",
            AgentKind::Merger => "merger",
            AgentKind::Deployer => "deployer",
        }
    }

    /// Merge and deploy work runs only for the holder of the repo's merge lease.
    pub fn is_serial(self) -> bool {
        matches!(self, AgentKind::Merger | AgentKind::Deployer)
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError {
                kind: "agent kind",
                value: s.to_owned(),
                expected: "analyst, developer, reviewer, merger, deployer",
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Legal moves of the job state machine; every store operation stays inside it.
    pub fn can_transition_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Queued, Running)
                | (Queued, Cancelled)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Running, Queued)
                | (Running, Cancelled)
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError {
                kind: "job status",
                value: s.to_owned(),
                expected: "queued, running, succeeded, failed, cancelled",
            })
    }
}

/// A job as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub task_id: TaskId,
    pub agent: AgentKind,
    pub repo: String,
    pub status: JobStatus,
    pub priority: i32,
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_after: Timestamp,
    /// Fencing token of the current (or last) attempt; `None` before the first claim.
    pub run_id: Option<RunId>,
    pub worker_id: Option<WorkerId>,
    /// Until when the worker's heartbeat keeps the running job; past it the outcome is unknown.
    pub lease_expires_at: Option<Timestamp>,
    pub last_error: Option<String>,
    /// Free-form input for the stage (e.g. the person's gate comment), JSON.
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Job {
    /// When the job became due: queued, and its `run_after` passed. Jobs are
    /// queued with `run_after` zero ("at once"), and a retry's `run_after` is
    /// after its creation, so this is the later of the two.
    pub fn due_at(&self) -> Timestamp {
        self.created_at.max(self.run_after)
    }
}

/// What a caller supplies to enqueue a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    pub task_id: TaskId,
    pub agent: AgentKind,
    pub repo: String,
    pub priority: i32,
    pub max_attempts: u32,
    pub run_after: Timestamp,
    pub payload: serde_json::Value,
}

impl NewJob {
    pub fn new(task_id: TaskId, agent: AgentKind, repo: impl Into<String>, now: Timestamp) -> Self {
        NewJob {
            task_id,
            agent,
            repo: repo.into(),
            priority: 0,
            max_attempts: 3,
            run_after: now,
            payload: serde_json::Value::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(created: i64, run_after: i64) -> Job {
        Job {
            id: JobId(1),
            task_id: TaskId(1),
            agent: AgentKind::Analyst,
            repo: "demo".into(),
            status: JobStatus::Queued,
            priority: 0,
            attempts: 0,
            max_attempts: 3,
            run_after: Timestamp(run_after),
            run_id: None,
            worker_id: None,
            lease_expires_at: None,
            last_error: None,
            payload: serde_json::Value::Null,
            created_at: Timestamp(created),
            updated_at: Timestamp(created),
        }
    }

    #[test]
    fn a_job_queued_at_once_is_due_from_its_creation_not_from_the_epoch() {
        // The pipeline queues with `run_after = 0`: the claim latency must not
        // count from 1970.
        let j = job(1_700_000_000_000, 0);
        assert_eq!(j.due_at(), Timestamp(1_700_000_000_000));
    }

    #[test]
    fn a_retried_job_is_due_after_its_backoff() {
        let j = job(1_000, 61_000);
        assert_eq!(j.due_at(), Timestamp(61_000));
    }
}
