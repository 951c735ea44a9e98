//! Store-level records and requests that are not pure domain types: claim
//! requests, leases, markers, tracker items, recovery summaries.

use orch_core::gates::{Gates, Limits};
use orch_core::run::{RunOutcome, Usage};
use orch_core::{Stage, TaskId, Timestamp, WorkerId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a worker asks for when it claims a job. The gates are evaluated inside
/// the claim itself, so two workers can never both pass a limit of one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    pub worker: WorkerId,
    /// How long the claim holds without a heartbeat.
    pub lease: Duration,
    pub limits: Limits,
    pub gates: Gates,
}

impl ClaimRequest {
    pub fn new(worker: impl Into<String>) -> Self {
        ClaimRequest {
            worker: WorkerId(worker.into()),
            lease: Duration::from_secs(60),
            limits: Limits::default(),
            gates: Gates::default(),
        }
    }
}

/// One repo's runs and usage ([`crate::RunStore::usage_by_repo`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepoUsage {
    pub repo: String,
    pub runs: u64,
    /// Runs started at or after the `since` asked for.
    pub runs_since: u64,
    pub usage: Usage,
}

/// Filter for listing tasks; the default lists everything, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFilter {
    pub repo: Option<String>,
    pub stage: Option<Stage>,
    pub limit: Option<u32>,
}

/// A repo's merge lease and who holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeLease {
    pub repo: String,
    pub holder_task: TaskId,
    pub holder_branch: String,
    pub epoch: i64,
    pub acquired_at: Timestamp,
}

/// Result of trying to take a repo's merge lease. Not deserializable: the
/// proof inside comes from the store's acquisition only.
#[derive(Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LeaseAcquire {
    /// Taken (or already held by the same task).
    Acquired { proof: MergeLeaseProof },
    /// Someone else holds it; wait.
    HeldBy { task: TaskId, branch: String },
}

/// Proof that `task` held `repo`'s merge lease for `branch` when the store
/// answered [`crate::LeaseStore::acquire_merge_lease`]. Its fields are
/// private and it has no public constructor (nor `Deserialize`, nor
/// `Clone`), so only that acquisition makes one: the engine's merge, the
/// finish of an interrupted merge, the deploy steps and `Forge::merge` take
/// a `&MergeLeaseProof`, and code that merges without asking for the lease
/// first does not compile. It proves the holding at that moment; the epoch
/// tells one holding from the next.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct MergeLeaseProof {
    repo: String,
    task: TaskId,
    branch: String,
    epoch: i64,
}

impl MergeLeaseProof {
    /// Only the stores' acquisition calls this (`common::lease_answer`).
    pub(crate) fn new(repo: &str, task: TaskId, branch: &str, epoch: i64) -> MergeLeaseProof {
        MergeLeaseProof {
            repo: repo.to_owned(),
            task,
            branch: branch.to_owned(),
            epoch,
        }
    }

    /// The repo whose lease is held.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The task that holds it.
    pub fn task(&self) -> TaskId {
        self.task
    }

    /// The task's branch, the one the lease lets merge.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The lease's epoch: bumped by every new holder.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Whether this is `task`'s lease of `repo`.
    pub fn covers(&self, repo: &str, task: TaskId) -> bool {
        self.repo == repo && self.task == task
    }
}

/// The irreversible steps guarded by markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerStep {
    Merge,
    Deploy,
}

impl MarkerStep {
    pub fn as_str(self) -> &'static str {
        match self {
            MarkerStep::Merge => "merge",
            MarkerStep::Deploy => "deploy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MarkerState {
    Initiated,
    Completed,
    /// Proven not done (e.g. the merge never reached the forge).
    Abandoned,
}

impl MarkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            MarkerState::Initiated => "INITIATED",
            MarkerState::Completed => "COMPLETED",
            MarkerState::Abandoned => "ABANDONED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub id: i64,
    pub task_id: TaskId,
    pub repo: String,
    pub step: MarkerStep,
    pub state: MarkerState,
    /// What exactly is being done, e.g. the verified head commit of a merge.
    pub detail: String,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

/// A run's process facts, recorded once the launcher has started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProcess {
    pub pid: i32,
    pub pgid: i32,
    pub proc_start_ticks: u64,
    pub log_path: String,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFinish {
    pub outcome: RunOutcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub usage: Usage,
    pub session_id: Option<String>,
    pub error: Option<String>,
    /// The agent's final message; `None` for a run that gave none.
    pub final_text: Option<String>,
}

impl RunFinish {
    /// How a run that succeeded is recorded when its job was no longer its
    /// own: its work is another run's, or nobody's (a STOP).
    pub fn fenced(&self) -> RunFinish {
        RunFinish {
            outcome: RunOutcome::Cancelled,
            error: Some(FENCED.to_owned()),
            ..self.clone()
        }
    }
}

/// The error of a run recorded by [`RunFinish::fenced`].
pub const FENCED: &str = "the run ended after its job was taken from it (cancelled, or its lease expired and it was reaped)";

/// What start-up recovery or a reaper pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReapSummary {
    pub requeued: u32,
    pub failed: u32,
    pub cancelled: u32,
}

/// An item of the builtin tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerItem {
    pub id: String,
    pub project: String,
    pub title: String,
    pub body: String,
    pub state: String,
    pub labels: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackerComment {
    pub id: i64,
    pub item_id: String,
    pub author: String,
    pub body: String,
    pub external_id: Option<String>,
    pub created_at: Timestamp,
}

/// The outbox sink of orch's writes to the tracker (state, labels,
/// comments), which `orch_engine::tracker_outbox` delivers in order per item;
/// the `[[notify]]` sender never takes its rows, and no `[[notify]]` may
/// have this name.
pub const TRACKER_SINK: &str = "tracker";

/// An outgoing notification to write to the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewNotification {
    /// The configured webhook's name.
    pub sink: String,
    pub task_id: Option<TaskId>,
    pub payload: serde_json::Value,
    /// With a key, a second notice with the same sink and key is not written.
    pub dedupe_key: Option<String>,
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: i64,
    pub sink: String,
    pub task_id: Option<TaskId>,
    pub payload: serde_json::Value,
    /// Failed attempts so far.
    pub attempts: u32,
    pub next_at: Timestamp,
    pub created_at: Timestamp,
    /// What the last failed attempt said.
    pub last_error: Option<String>,
    /// When it was given up for good (after its last attempt).
    pub failed_at: Option<Timestamp>,
}

/// How one sink's outbox stands (`/queue`, `orch status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxCounts {
    /// Not sent yet and never failed.
    pub waiting: u64,
    /// Not sent yet, failed at least once, retried later.
    pub retrying: u64,
    /// Given up after the last attempt (`orch outbox retry` sends them again).
    pub given_up: u64,
}

/// Cancelled tasks for the `/queue` stop block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelledSnapshot {
    pub count: u64,
    pub recent: Vec<orch_core::Task>,
}

/// A task's worktree as disk care last saw it ([`crate::DiskStore`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeDisk {
    pub task: TaskId,
    pub repo: String,
    pub branch: String,
    pub work_item_id: String,
    pub stage: Stage,
    /// The size after the task's last run (or after its last cleanup).
    pub size: orch_core::disk::WorktreeSize,
    /// When a run of the task last ended and the size was measured: the
    /// worktree's idle clock.
    pub measured_at: Timestamp,
    /// When its build outputs were last removed, and how much that freed.
    pub cleaned_at: Option<Timestamp>,
    pub freed_bytes: u64,
}

/// An orch engine sharing the store, as it last reported itself
/// ([`crate::NodeStore`], issue 11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    /// Changes at each start of the engine.
    pub boot_id: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    /// A person asked it to drain: finish running work, claim nothing new.
    pub draining: bool,
    /// It reported that it claims nothing new (it saw `draining`).
    pub claims_stopped: bool,
    /// Where the other nodes reach its HTTP API (they stream its run logs
    /// from there); `None`: not known.
    pub api_url: Option<String>,
    /// The machine it runs on (its kernel's boot id, or `ORCH_MACHINE_ID`):
    /// the process ids of its runs mean something only there.
    pub machine: Option<String>,
}

/// What a node says of itself at each heartbeat ([`crate::NodeStore::node_heartbeat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeReport<'a> {
    pub name: &'a str,
    /// New at each start of its engine.
    pub boot_id: &'a str,
    /// It claims nothing new (it follows a drain).
    pub claims_stopped: bool,
    /// Where the other nodes reach its API; `None`: it serves none.
    pub api_url: Option<&'a str>,
    /// The machine it runs on; `None`: not known.
    pub machine: Option<&'a str>,
}

/// A task's step lock among the nodes sharing a store
/// ([`crate::NodeStore::try_lock_task`]): held while a node carries out a
/// step of the task. Released by [`TaskLock::release`], when dropped, or
/// when the node's connection to the store ends (a node that dies holds
/// nothing).
pub struct TaskLock {
    /// PostgreSQL: the transaction holding the advisory lock. SQLite (one
    /// process): nothing to hold.
    pub(crate) held: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

impl TaskLock {
    /// The lock of a store only one process uses.
    pub(crate) fn uncontended() -> TaskLock {
        TaskLock { held: None }
    }

    /// Let another node take the task's steps.
    pub async fn release(self) {
        if let Some(tx) = self.held
            && let Err(e) = tx.commit().await
        {
            // The connection is gone: so is the lock.
            tracing::debug!(error = %e, "releasing a task lock failed");
        }
    }
}

impl std::fmt::Debug for TaskLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskLock")
            .field("held", &self.held.is_some())
            .finish()
    }
}

/// Who holds the leader lease ([`crate::NodeStore::lead`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leadership {
    pub node: String,
    /// Raised each time the lease passes to another node.
    pub epoch: i64,
    pub expires_at: Timestamp,
}
