//! The `Store` trait, split by concern. Implementations must behave identically;
//! `crate::conformance` checks that they do.

use crate::error::StoreResult;
use crate::model::*;
use async_trait::async_trait;
use orch_core::disk::WorktreeSize;
use orch_core::retry::{FailureDecision, RetryPolicy};
use orch_core::run::{Run, Usage};
use orch_core::{
    EventInput, Job, JobId, JobStatus, NewJob, NewTask, RunId, Stage, Task, TaskEvent, TaskId,
    Timestamp, WorkerId,
};
use std::collections::BTreeMap;
use std::time::Duration;

#[async_trait]
pub trait TaskStore {
    /// Create a task (and its dependencies) and log a `created` event. A live
    /// task with the same tracker id or work item id is a `Duplicate` error.
    /// With `new.replaces` (a terminal task of the same item), in the same
    /// transaction: a done or failed one's keys are retired and it logs
    /// `retired`; if it failed or was cancelled, its live dependents depend
    /// on the new task instead (each logs `dependency_moved`).
    async fn create_task(&self, new: NewTask, actor: &str) -> StoreResult<Task>;
    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>>;
    async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>>;
    /// The task currently holding this tracker id (cancelled ones have freed theirs).
    async fn find_live_task_by_tracker_id(&self, tracker_id: &str) -> StoreResult<Option<Task>>;
    async fn find_live_task_by_work_item(&self, work_item_id: &str) -> StoreResult<Option<Task>>;
    /// The task a person means by a work item key: the live one, else the
    /// newest that had the key before it was released (cancelled, or its item
    /// started afresh).
    async fn find_task_by_key(&self, work_item_id: &str) -> StoreResult<Option<Task>>;
    /// The newest task of a tracker item, live or with released keys.
    async fn latest_task_of_item(&self, tracker_id: &str) -> StoreResult<Option<Task>>;
    /// Move a task to `to`, appending the event in the same transaction. With
    /// `expected`, the move happens only from that stage (`StageConflict` otherwise).
    async fn set_stage(
        &self,
        id: TaskId,
        to: Stage,
        expected: Option<Stage>,
        event: EventInput,
    ) -> StoreResult<Task>;
    /// One pipeline step in one transaction: move the task from
    /// `expected` to `to` (`to == expected`: no move), append `event`, and
    /// enqueue `job`. `StageConflict` when the task is no longer in `expected`;
    /// `ActiveJob` when a job is given while the task has a queued or running
    /// one, so a task never has two active jobs.
    async fn advance(
        &self,
        id: TaskId,
        expected: Stage,
        to: Stage,
        event: EventInput,
        job: Option<NewJob>,
    ) -> StoreResult<(Task, Option<Job>)>;
    /// A person retries a failed task: move it back to `to` (a pipeline
    /// stage, `Stage::can_retry_to`), log `event` and queue `job`, in one
    /// transaction. `StageConflict` unless the task is failed;
    /// `IllegalTransition` for another target or a task whose keys were
    /// retired (a newer task runs its item).
    async fn reopen(
        &self,
        id: TaskId,
        to: Stage,
        event: EventInput,
        job: Option<NewJob>,
    ) -> StoreResult<(Task, Option<Job>)>;
    async fn append_event(&self, id: TaskId, event: EventInput) -> StoreResult<TaskEvent>;
    async fn events(&self, id: TaskId) -> StoreResult<Vec<TaskEvent>>;
    async fn recent_events(&self, limit: u32) -> StoreResult<Vec<TaskEvent>>;
    /// Stamp `cancel_requested_at`; `true` only for the first stamp (D7: only
    /// it notifies). The first stamp appends `event` (a `cancel_requested`
    /// one) with its tracker comment, in the stamp's transaction; a later one
    /// writes nothing.
    async fn set_cancel_requested(&self, id: TaskId, event: EventInput) -> StoreResult<bool>;
    /// Stage `cancelled`, `cancelled_at` set, tracker keys tombstoned so the same
    /// item can start afresh (TC-13). Idempotent on an already cancelled task.
    async fn mark_cancelled(&self, id: TaskId, event: EventInput) -> StoreResult<Task>;
    /// `task` waits until `on` is done. Refuses self-dependencies and cycles.
    async fn add_dependency(&self, task: TaskId, on: TaskId) -> StoreResult<()>;
    async fn dependencies(&self, task: TaskId) -> StoreResult<Vec<TaskId>>;
    /// Live tasks with unfinished dependencies, and those dependencies.
    async fn waiting_on_dependencies(&self) -> StoreResult<Vec<(TaskId, Vec<TaskId>)>>;
    async fn task_counts_by_stage(&self) -> StoreResult<BTreeMap<Stage, u64>>;
    async fn cancelled_snapshot(&self, limit: u32) -> StoreResult<CancelledSnapshot>;
}

#[async_trait]
pub trait JobQueue {
    async fn enqueue(&self, job: NewJob) -> StoreResult<Job>;
    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>>;
    async fn jobs_for_task(&self, task: TaskId) -> StoreResult<Vec<Job>>;
    async fn list_jobs(&self, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>>;
    /// Atomically take the next queued, due job that no gate blocks; mints a new
    /// `run_id` (the fencing token) and inserts its run row.
    async fn claim(&self, req: &ClaimRequest) -> StoreResult<Option<Job>>;
    /// Extend a running job's lease. `false`: the caller's run is stale (fenced).
    async fn heartbeat(&self, job: JobId, run: &RunId, lease: Duration) -> StoreResult<bool>;
    /// Running → succeeded. `false`: stale run.
    async fn complete(&self, job: JobId, run: &RunId) -> StoreResult<bool>;
    /// A run that succeeded: record its end and complete its job, in one
    /// transaction. The run counts as a success only when its job was still
    /// its own (`true`); a run whose job was taken from it meanwhile (a lease
    /// that expired and was reaped, a STOP) is recorded as
    /// [`RunFinish::fenced`], so a job never has two successful runs.
    async fn complete_run(&self, job: JobId, run: &RunId, finish: &RunFinish) -> StoreResult<bool>;
    /// A failed attempt: retry with backoff, give up, or cancel (terminal task).
    /// `None`: stale run, nothing changed.
    async fn fail(
        &self,
        job: JobId,
        run: &RunId,
        error: &str,
        policy: &RetryPolicy,
    ) -> StoreResult<Option<FailureDecision>>;
    /// Running → failed for good, no retry (e.g. the task's budget is spent).
    /// `false`: stale run, nothing changed.
    async fn give_up(&self, job: JobId, run: &RunId, error: &str) -> StoreResult<bool>;
    /// Cancel the task's queued jobs, and its running ones unless `only_queued`.
    async fn cancel_jobs_for_task(&self, task: TaskId, only_queued: bool) -> StoreResult<u64>;
    /// Running jobs, all or of one worker.
    async fn running_jobs(&self, worker: Option<&WorkerId>) -> StoreResult<Vec<Job>>;
    /// Running jobs whose lease has expired: their outcome is unknown.
    async fn expired_jobs(&self) -> StoreResult<Vec<Job>>;
    /// Decide an unknown outcome: requeue with backoff while attempts
    /// remain, else failed; a job of a terminal task becomes cancelled (TC-04).
    async fn reap_unknown_outcome(
        &self,
        job: JobId,
        run: &RunId,
        reason: &str,
        policy: &RetryPolicy,
    ) -> StoreResult<Option<FailureDecision>>;
    /// Start-up recovery of running jobs not re-adopted: each is reaped as
    /// an unknown outcome. Cancelled jobs are never revived (TC-12).
    async fn requeue_running_jobs(
        &self,
        worker: Option<&WorkerId>,
        policy: &RetryPolicy,
    ) -> StoreResult<ReapSummary>;
    async fn job_counts(&self) -> StoreResult<BTreeMap<JobStatus, u64>>;
}

#[async_trait]
pub trait RunStore {
    async fn record_run_process(&self, run: &RunId, process: &RunProcess) -> StoreResult<bool>;
    /// Record how a run ended; only the first finish counts.
    async fn finish_run(&self, run: &RunId, finish: &RunFinish) -> StoreResult<bool>;
    async fn get_run(&self, run: &RunId) -> StoreResult<Option<Run>>;
    async fn runs_for_task(&self, task: TaskId) -> StoreResult<Vec<Run>>;
    async fn task_usage(&self, task: TaskId) -> StoreResult<Usage>;
    /// Runs and usage summed per repo (the dashboard's totals): all runs, and
    /// how many of them started at or after `since`. Repos without runs are absent.
    async fn usage_by_repo(&self, since: Timestamp) -> StoreResult<Vec<RepoUsage>>;
    /// Tokens and cost summed per task, for the tasks whose id is at least
    /// `from` (the dashboard's board: its newest tasks). Tasks without runs
    /// are absent; agent wall time is not summed (zero).
    async fn usage_by_task(&self, from: TaskId) -> StoreResult<BTreeMap<TaskId, Usage>>;
}

#[async_trait]
pub trait LeaseStore {
    /// Take the repo's merge lease for `task`, or learn who holds it. Taken
    /// (or held by `task` already, keeping its epoch), the answer carries
    /// the [`crate::MergeLeaseProof`] that merging and deploying require.
    async fn acquire_merge_lease(
        &self,
        repo: &str,
        task: TaskId,
        branch: &str,
    ) -> StoreResult<LeaseAcquire>;
    async fn merge_lease(&self, repo: &str) -> StoreResult<Option<MergeLease>>;
    async fn merge_leases(&self) -> StoreResult<Vec<MergeLease>>;
    /// Release only if `task` holds it; `true` if it did.
    async fn release_merge_lease(&self, repo: &str, task: TaskId) -> StoreResult<bool>;
}

#[async_trait]
pub trait MarkerStore {
    /// Write an INITIATED marker before an irreversible step.
    async fn write_marker(
        &self,
        task: TaskId,
        repo: &str,
        step: MarkerStep,
        detail: &str,
    ) -> StoreResult<Marker>;
    /// INITIATED → `state` (Completed or Abandoned). `false` if it was not INITIATED.
    async fn finish_marker(&self, id: i64, state: MarkerState) -> StoreResult<bool>;
    async fn initiated_markers(&self, task: Option<TaskId>) -> StoreResult<Vec<Marker>>;
    /// Every marker of `task`, whatever its state, oldest first: a finished
    /// one proves its step was done (or given up) before a crash that came
    /// between the marker's end and the stage move.
    async fn task_markers(&self, task: TaskId) -> StoreResult<Vec<Marker>>;
    /// Remember a webhook delivery; `false` if it was seen before (a replay).
    async fn record_delivery(&self, provider: &str, delivery_id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait TrackerStore {
    async fn create_item(&self, item: &TrackerItem) -> StoreResult<()>;
    async fn get_item(&self, id: &str) -> StoreResult<Option<TrackerItem>>;
    async fn list_items(&self, project: Option<&str>) -> StoreResult<Vec<TrackerItem>>;
    async fn set_item_state(&self, id: &str, state: &str) -> StoreResult<bool>;
    async fn set_item_labels(&self, id: &str, labels: &[String]) -> StoreResult<bool>;
    /// Add a comment; with `external_id` a repeated comment is a no-op (`false`).
    async fn add_item_comment(
        &self,
        item: &str,
        author: &str,
        body: &str,
        external_id: Option<&str>,
    ) -> StoreResult<bool>;
    async fn item_comments(&self, item: &str) -> StoreResult<Vec<TrackerComment>>;
}

/// The outbox of outgoing notifications.
#[async_trait]
pub trait NotificationStore {
    /// Write a notification, due now. `false` when its sink and dedupe key
    /// were written before (nothing is written).
    async fn enqueue_notification(&self, n: &NewNotification) -> StoreResult<bool>;
    /// Notifications due by now, oldest first, neither sent nor given up;
    /// the tracker's writes ([`crate::TRACKER_SINK`]) are not among them.
    async fn due_notifications(&self, limit: u32) -> StoreResult<Vec<Notification>>;
    /// Every notification of `sink` neither sent nor given up, due or not,
    /// in the order written: for a sender that keeps an order (a later
    /// write to an item waits for an earlier one being retried).
    async fn pending_notifications(&self, sink: &str, limit: u32)
    -> StoreResult<Vec<Notification>>;
    /// How `sink`'s outbox stands: waiting, retrying, given up.
    async fn outbox_counts(&self, sink: &str) -> StoreResult<OutboxCounts>;
    /// `sink`'s given-up notifications, the newest first.
    async fn given_up_notifications(
        &self,
        sink: &str,
        limit: u32,
    ) -> StoreResult<Vec<Notification>>;
    /// Send a given-up notification again: due now, attempts counted
    /// afresh. `false` if it is not given up (sent, waiting, or unknown).
    async fn resend_notification(&self, id: i64) -> StoreResult<bool>;
    /// Mark it sent. `false` if it was already sent or given up.
    async fn notification_sent(&self, id: i64) -> StoreResult<bool>;
    /// Count a failed attempt: due again `retry_in` from now, or given up for
    /// good with `None`. `false` if it was already sent or given up.
    async fn notification_failed(
        &self,
        id: i64,
        error: &str,
        retry_in: Option<Duration>,
    ) -> StoreResult<bool>;
}

/// Disk care (issue 12): each task's worktree size and cleanups.
#[async_trait]
pub trait DiskStore {
    /// A run of `task` ended and its worktree was measured: the size, and
    /// now as its idle clock.
    async fn record_worktree_size(&self, task: TaskId, size: WorktreeSize) -> StoreResult<()>;
    /// The task's build outputs were removed now: `freed` bytes, `size`
    /// left. Its idle clock stays. `false`: the task was never measured.
    async fn record_worktree_cleanup(
        &self,
        task: TaskId,
        freed: u64,
        size: WorktreeSize,
    ) -> StoreResult<bool>;
    /// Every measured worktree with its task's repo, branch and stage, by task id.
    async fn worktree_disks(&self) -> StoreResult<Vec<WorktreeDisk>>;
    /// Worktrees due for cleanup: measured at or before `idle_since`, not
    /// cleaned since, of a task that is not terminal and has no queued or
    /// running job.
    async fn idle_worktrees(&self, idle_since: Timestamp) -> StoreResult<Vec<WorktreeDisk>>;
}

/// The engines sharing the store (issue 11): who is alive, who drains, who
/// leads.
#[async_trait]
pub trait NodeStore {
    /// The node is alive as it reports itself: its row written or
    /// refreshed (a new `boot_id` restarts its `started_at`). Returns the
    /// row, with the `draining` a person set.
    async fn node_heartbeat(&self, report: NodeReport<'_>) -> StoreResult<Node>;
    /// Every node that ever reported, by name.
    async fn nodes(&self) -> StoreResult<Vec<Node>>;
    /// Ask node `name` to drain (or to claim again). `false`: no such node.
    async fn set_node_draining(&self, name: &str, draining: bool) -> StoreResult<bool>;
    /// Take or keep the leader lease for `ttl`: `Some(epoch)` when `name`
    /// leads now (the epoch rises each time the lease changes hands),
    /// `None` while another node holds an unexpired lease.
    async fn lead(&self, name: &str, ttl: Duration) -> StoreResult<Option<i64>>;
    /// Node `name` stops leading (a graceful shutdown): its lease expires
    /// now, so another node takes over at its next heartbeat instead of
    /// after `ttl`. `false`: it did not hold the lease.
    async fn resign(&self, name: &str) -> StoreResult<bool>;
    /// Who holds the leader lease (expired or not), if anyone ever did.
    async fn leader(&self) -> StoreResult<Option<Leadership>>;
    /// Take task `task`'s step lock unless another node holds it: a node
    /// carries out a step of a task only while it holds the lock, so two
    /// nodes (each ticks every task) never take the same step at once.
    /// `None`: another node holds it now. A store one process uses
    /// (SQLite) always gives it: the task's owner there serialises steps.
    async fn try_lock_task(&self, task: TaskId) -> StoreResult<Option<TaskLock>>;
}

/// Everything orch keeps durably.
#[async_trait]
pub trait Store:
    TaskStore
    + JobQueue
    + RunStore
    + LeaseStore
    + MarkerStore
    + TrackerStore
    + NotificationStore
    + DiskStore
    + NodeStore
    + Send
    + Sync
{
    /// Apply pending migrations; running it again is a no-op.
    async fn migrate(&self) -> StoreResult<()>;
    /// Cheap liveness probe for `/healthz` and `orch doctor`.
    async fn ping(&self) -> StoreResult<()>;
    /// Subscribe to "the queue changed" signals written by any process
    /// sharing this store (see `crate::signals`). `None`: this store has none
    /// (SQLite), and polling is the only cross-process wake-up.
    async fn queue_signals(&self) -> StoreResult<Option<crate::signals::QueueSignals>> {
        Ok(None)
    }
    /// This handle's "something committed" counter (`crate::Changes`): it
    /// rises after each committed write made through this store (or a
    /// clone), never before the commit. Writes of other processes do not
    /// move it.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
}
