//! The gates of R-11 as a pure function: may this queued job be claimed now?
//!
//! The store evaluates the same rules inside its claim query (a check after the
//! claim would race); this module is the specification the store's property tests
//! compare the query against.

use crate::ids::TaskId;
use crate::job::{AgentKind, Job, JobStatus};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Concurrency limits; `None` / a missing key means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Running jobs across all repos.
    pub global: Option<u32>,
    /// Running jobs per repo, unless `per_repo_overrides` names the repo.
    pub per_repo: Option<u32>,
    pub per_repo_overrides: BTreeMap<String, u32>,
    /// Running jobs per agent kind.
    pub per_agent: BTreeMap<AgentKind, u32>,
}

impl Limits {
    pub fn repo_limit(&self, repo: &str) -> Option<u32> {
        self.per_repo_overrides.get(repo).copied().or(self.per_repo)
    }
}

/// Feature switches of the gates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gates {
    /// Only the holder of a repo's merge lease may run merge/deploy work there.
    pub serial: bool,
    /// A task waits until every task it depends on is `done`.
    pub task_deps: bool,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            serial: true,
            task_deps: true,
        }
    }
}

/// Why a queued job may not be claimed now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "block", rename_all = "snake_case")]
pub enum Block {
    NotQueued,
    NotYetDue,
    /// Its task is done, cancelled or failed.
    TaskTerminal,
    /// A task it depends on is not `done`.
    Dependency,
    /// Another task's branch holds the repo's merge lease.
    SerialGate {
        holder: TaskId,
    },
    GlobalLimit,
    RepoLimit,
    AgentLimit,
}

/// The state of the world the gates look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GateContext {
    pub running_total: u32,
    pub running_by_repo: BTreeMap<String, u32>,
    pub running_by_agent: BTreeMap<AgentKind, u32>,
    /// repo → task holding its merge lease.
    pub lease_holders: BTreeMap<String, TaskId>,
    /// Tasks with at least one dependency that is not `done`.
    pub waiting_on_deps: BTreeSet<TaskId>,
    /// Tasks in a terminal stage.
    pub terminal_tasks: BTreeSet<TaskId>,
}

impl GateContext {
    /// Counts derived from a list of jobs (those `running` count).
    pub fn count_running<'a>(&mut self, jobs: impl IntoIterator<Item = &'a Job>) {
        for j in jobs.into_iter().filter(|j| j.status == JobStatus::Running) {
            self.running_total += 1;
            *self.running_by_repo.entry(j.repo.clone()).or_default() += 1;
            *self.running_by_agent.entry(j.agent).or_default() += 1;
        }
    }
}

/// The fields of a job the gates read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimCandidate<'a> {
    pub task_id: TaskId,
    pub agent: AgentKind,
    pub repo: &'a str,
    pub status: JobStatus,
    pub run_after: Timestamp,
}

impl<'a> From<&'a Job> for ClaimCandidate<'a> {
    fn from(j: &'a Job) -> Self {
        ClaimCandidate {
            task_id: j.task_id,
            agent: j.agent,
            repo: &j.repo,
            status: j.status,
            run_after: j.run_after,
        }
    }
}

/// The first rule that blocks the candidate, or `None` if it may be claimed.
pub fn blocked_by(
    c: &ClaimCandidate<'_>,
    ctx: &GateContext,
    limits: &Limits,
    gates: Gates,
    now: Timestamp,
) -> Option<Block> {
    if c.status != JobStatus::Queued {
        return Some(Block::NotQueued);
    }
    if c.run_after > now {
        return Some(Block::NotYetDue);
    }
    if ctx.terminal_tasks.contains(&c.task_id) {
        return Some(Block::TaskTerminal);
    }
    if gates.task_deps && ctx.waiting_on_deps.contains(&c.task_id) {
        return Some(Block::Dependency);
    }
    if gates.serial
        && c.agent.is_serial()
        && let Some(&holder) = ctx.lease_holders.get(c.repo)
        && holder != c.task_id
    {
        return Some(Block::SerialGate { holder });
    }
    if limits.global.is_some_and(|max| ctx.running_total >= max) {
        return Some(Block::GlobalLimit);
    }
    let repo_running = ctx.running_by_repo.get(c.repo).copied().unwrap_or(0);
    if limits
        .repo_limit(c.repo)
        .is_some_and(|max| repo_running >= max)
    {
        return Some(Block::RepoLimit);
    }
    let agent_running = ctx.running_by_agent.get(&c.agent).copied().unwrap_or(0);
    if limits
        .per_agent
        .get(&c.agent)
        .is_some_and(|&max| agent_running >= max)
    {
        return Some(Block::AgentLimit);
    }
    None
}

/// Claim order: higher priority first, then the longest due, then the oldest.
pub fn claim_order(a: &Job, b: &Job) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.run_after.cmp(&b.run_after))
        .then(a.id.cmp(&b.id))
}

/// The job a claim must return from `jobs`, by the rules above.
pub fn next_claimable<'a>(
    jobs: &'a [Job],
    ctx: &GateContext,
    limits: &Limits,
    gates: Gates,
    now: Timestamp,
) -> Option<&'a Job> {
    jobs.iter()
        .filter(|j| blocked_by(&ClaimCandidate::from(*j), ctx, limits, gates, now).is_none())
        .min_by(|a, b| claim_order(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::JobId;

    fn job(id: i64, task: i64, agent: AgentKind, repo: &str) -> Job {
        Job {
            id: JobId(id),
            task_id: TaskId(task),
            agent,
            repo: repo.into(),
            status: JobStatus::Queued,
            priority: 0,
            attempts: 0,
            max_attempts: 3,
            run_after: Timestamp(0),
            run_id: None,
            worker_id: None,
            lease_expires_at: None,
            last_error: None,
            payload: serde_json::Value::Null,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn check(j: &Job, ctx: &GateContext, limits: &Limits) -> Option<Block> {
        blocked_by(&j.into(), ctx, limits, Gates::default(), Timestamp(10))
    }

    #[test]
    fn each_rule_blocks_and_lifts() {
        let j = job(1, 1, AgentKind::Merger, "r");
        let mut ctx = GateContext::default();
        let none = Limits::default();
        assert_eq!(check(&j, &ctx, &none), None);

        ctx.lease_holders.insert("r".into(), TaskId(2));
        assert_eq!(
            check(&j, &ctx, &none),
            Some(Block::SerialGate { holder: TaskId(2) })
        );
        ctx.lease_holders.insert("r".into(), TaskId(1));
        assert_eq!(check(&j, &ctx, &none), None, "the holder itself may merge");

        ctx.waiting_on_deps.insert(TaskId(1));
        assert_eq!(check(&j, &ctx, &none), Some(Block::Dependency));
        ctx.waiting_on_deps.clear();

        ctx.count_running([&Job {
            status: JobStatus::Running,
            ..job(9, 9, AgentKind::Merger, "r")
        }]);
        let global = Limits {
            global: Some(1),
            ..Limits::default()
        };
        assert_eq!(check(&j, &ctx, &global), Some(Block::GlobalLimit));
        let repo = Limits {
            per_repo: Some(1),
            ..Limits::default()
        };
        assert_eq!(check(&j, &ctx, &repo), Some(Block::RepoLimit));
        let other_repo = Limits {
            per_repo: Some(1),
            per_repo_overrides: [("r".to_string(), 2)].into(),
            ..Limits::default()
        };
        assert_eq!(
            check(&j, &ctx, &other_repo),
            None,
            "override raises the repo limit"
        );
        let agent = Limits {
            per_agent: [(AgentKind::Merger, 1)].into(),
            ..Limits::default()
        };
        assert_eq!(check(&j, &ctx, &agent), Some(Block::AgentLimit));
        let other_agent = Limits {
            per_agent: [(AgentKind::Developer, 1)].into(),
            ..Limits::default()
        };
        assert_eq!(check(&j, &ctx, &other_agent), None);
    }

    #[test]
    fn not_due_and_terminal_block() {
        let mut j = job(1, 1, AgentKind::Developer, "r");
        j.run_after = Timestamp(11);
        assert_eq!(
            check(&j, &GateContext::default(), &Limits::default()),
            Some(Block::NotYetDue)
        );
        j.run_after = Timestamp(10);
        let ctx = GateContext {
            terminal_tasks: [TaskId(1)].into(),
            ..Default::default()
        };
        assert_eq!(
            check(&j, &ctx, &Limits::default()),
            Some(Block::TaskTerminal)
        );
    }

    #[test]
    fn disabled_gates_do_not_block() {
        let j = job(1, 1, AgentKind::Deployer, "r");
        let ctx = GateContext {
            lease_holders: [("r".to_string(), TaskId(2))].into(),
            waiting_on_deps: [TaskId(1)].into(),
            ..Default::default()
        };
        let off = Gates {
            serial: false,
            task_deps: false,
        };
        assert_eq!(
            blocked_by(&(&j).into(), &ctx, &Limits::default(), off, Timestamp(0)),
            None
        );
    }

    #[test]
    fn order_prefers_priority_then_due_then_age() {
        let mut a = job(1, 1, AgentKind::Developer, "r");
        let mut b = job(2, 2, AgentKind::Developer, "r");
        assert_eq!(
            next_claimable(
                &[b.clone(), a.clone()],
                &Default::default(),
                &Default::default(),
                Gates::default(),
                Timestamp(5)
            )
            .unwrap()
            .id,
            JobId(1)
        );
        b.priority = 1;
        assert_eq!(
            next_claimable(
                &[a.clone(), b.clone()],
                &Default::default(),
                &Default::default(),
                Gates::default(),
                Timestamp(5)
            )
            .unwrap()
            .id,
            JobId(2)
        );
        b.priority = 0;
        a.run_after = Timestamp(3);
        assert_eq!(
            next_claimable(
                &[a, b],
                &Default::default(),
                &Default::default(),
                Gates::default(),
                Timestamp(5)
            )
            .unwrap()
            .id,
            JobId(2)
        );
    }
}
