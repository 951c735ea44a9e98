//! Store logic both implementations share: pure functions over values the
//! databases hand back or take, so the SQLite and PostgreSQL stores differ
//! only in their SQL and connections.

use crate::error::{StoreError, StoreResult};
use crate::model::{ClaimRequest, Leadership, LeaseAcquire, MergeLease, MergeLeaseProof};
use orch_core::retry::FailureDecision;
use orch_core::{Job, JobStatus, Stage, Task, TaskId, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A token count as the database's signed integer.
pub(crate) fn tokens(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The agent kinds whose runs count as agent wall time, as an SQL list.
pub(crate) fn agent_work_kinds() -> String {
    orch_core::AgentKind::ALL
        .into_iter()
        .filter(|a| orch_core::run::counts_as_agent_time(*a))
        .map(|a| format!("'{}'", a.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The prefix of a key minted for a task created without one: the repo's
/// name, upper case, anything but letters and digits as `-`.
pub(crate) fn minted_key_base(repo: &str, id: TaskId) -> String {
    format!("{}-{id}", orch_core::keys::repo_key_prefix(repo))
}

/// The `n`th candidate for a minted key (the first is the base itself).
pub(crate) fn minted_key(base: &str, n: u32) -> String {
    if n <= 1 {
        base.to_owned()
    } else {
        format!("{base}-{n}")
    }
}

/// The limit maps of a claim as JSON objects (repo → limit, agent → limit),
/// which the claim statements read per candidate job. Maps of strings to
/// integers always serialise, so the fallback is unreachable in practice.
pub(crate) fn limit_maps(req: &ClaimRequest) -> (String, String) {
    let per_agent: BTreeMap<&str, u32> = req
        .limits
        .per_agent
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    (to_json(&req.limits.per_repo_overrides), to_json(&per_agent))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".to_owned())
}

pub(crate) fn json_text(v: &serde_json::Value, what: &str) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn labels_json(labels: &[String]) -> StoreResult<String> {
    serde_json::to_string(labels).map_err(|e| StoreError::Corrupt(format!("labels: {e}")))
}

/// What a failure decision writes on the job: its new status and, for a
/// retry, when it is due again.
pub(crate) fn decision_row(decision: FailureDecision) -> (JobStatus, Option<i64>) {
    match decision {
        FailureDecision::Retry { run_after } => (JobStatus::Queued, Some(run_after.0)),
        FailureDecision::GiveUp => (JobStatus::Failed, None),
        FailureDecision::Cancel => (JobStatus::Cancelled, None),
    }
}

/// The decision's line in a recovery summary.
pub(crate) fn count_decision(
    summary: &mut crate::model::ReapSummary,
    decision: Option<FailureDecision>,
) {
    match decision {
        Some(FailureDecision::Retry { .. }) => summary.requeued += 1,
        Some(FailureDecision::GiveUp) => summary.failed += 1,
        Some(FailureDecision::Cancel) => summary.cancelled += 1,
        None => {}
    }
}

/// Sorted by id. The queries leave ORDER BY out so the database walks the
/// small partial index of running jobs instead of the whole table.
pub(crate) fn by_id(mut jobs: Vec<Job>) -> Vec<Job> {
    jobs.sort_by_key(|j| j.id);
    jobs
}

/// Job counts for every status, zero where the database had none.
pub(crate) fn job_counts(rows: Vec<(String, i64)>) -> StoreResult<BTreeMap<JobStatus, u64>> {
    let mut out: BTreeMap<JobStatus, u64> = JobStatus::ALL.iter().map(|s| (*s, 0)).collect();
    for (s, n) in rows {
        out.insert(s.parse()?, n.max(0) as u64);
    }
    Ok(out)
}

pub(crate) fn stage_counts(rows: Vec<(String, i64)>) -> StoreResult<BTreeMap<Stage, u64>> {
    rows.into_iter()
        .map(|(s, n)| Ok((s.parse()?, n.max(0) as u64)))
        .collect()
}

/// (task, dependency) pairs ordered by task, grouped per task.
pub(crate) fn group_dependencies(pairs: Vec<(i64, i64)>) -> Vec<(TaskId, Vec<TaskId>)> {
    let mut out: Vec<(TaskId, Vec<TaskId>)> = Vec::new();
    for (t, on) in pairs {
        match out.last_mut() {
            Some((last, deps)) if last.0 == t => deps.push(TaskId(on)),
            _ => out.push((TaskId(t), vec![TaskId(on)])),
        }
    }
    out
}

/// The answer to an acquisition: the epoch the upsert returned, else who
/// holds the lease.
pub(crate) fn lease_answer(
    repo: &str,
    epoch: Option<i64>,
    current: Option<MergeLease>,
    task: TaskId,
    branch: &str,
) -> LeaseAcquire {
    match (epoch, current) {
        (Some(epoch), current) => {
            // Held already by this task: the branch is the one recorded.
            let branch = current
                .filter(|l| l.holder_task == task)
                .map_or_else(|| branch.to_owned(), |l| l.holder_branch);
            LeaseAcquire::Acquired {
                proof: MergeLeaseProof::new(repo, task, &branch, epoch),
            }
        }
        (None, Some(l)) => LeaseAcquire::HeldBy {
            task: l.holder_task,
            branch: l.holder_branch,
        },
        // Unreachable: with no holder the upsert always succeeds. Treat a
        // surprise as "held" so the caller waits rather than merging.
        (None, None) => LeaseAcquire::HeldBy {
            task,
            branch: branch.to_owned(),
        },
    }
}

/// `StageConflict` unless the task, as read inside the write, is (still) in
/// `expected`.
pub(crate) fn expect_stage(task: &Task, expected: Stage) -> StoreResult<()> {
    if task.stage == expected {
        Ok(())
    } else {
        Err(StoreError::StageConflict {
            task: task.id,
            expected,
            found: task.stage,
        })
    }
}

/// `IllegalTransition` unless the task may move to `to`.
pub(crate) fn may_move(task: &Task, to: Stage) -> StoreResult<()> {
    if task.stage.can_transition_to(to) {
        Ok(())
    } else {
        Err(StoreError::IllegalTransition {
            task: task.id,
            from: task.stage,
            to,
        })
    }
}

/// A person's retry: only a failed task, only to a stage it may retry to,
/// and not one whose keys were retired (a newer task runs its item).
pub(crate) fn may_reopen(task: &Task, to: Stage) -> StoreResult<()> {
    expect_stage(task, Stage::Failed)?;
    if !task.stage.can_retry_to(to) || orch_core::keys::is_tombstoned(&task.work_item_id) {
        return Err(StoreError::IllegalTransition {
            task: task.id,
            from: task.stage,
            to,
        });
    }
    Ok(())
}

/// Whether `mark_cancelled` has anything to do: `false` for a task already
/// cancelled (idempotent), an error for one that ended otherwise.
pub(crate) fn needs_cancel(task: &Task) -> StoreResult<bool> {
    if task.stage == Stage::Cancelled {
        return Ok(false);
    }
    if task.stage.is_terminal() {
        return Err(StoreError::IllegalTransition {
            task: task.id,
            from: task.stage,
            to: Stage::Cancelled,
        });
    }
    Ok(true)
}

/// The tracker's write for a task entering `to` (its item's state, and
/// orch's labels), as the outbox row the stage move writes in its own
/// transaction: `{"item": …, "op": "stage", "stage": …}`, which
/// `orch_engine::tracker_outbox` reads and maps to the configured state
/// name. `None` for a task without a tracker item.
pub(crate) fn stage_write(tracker_id: Option<&str>, to: Stage) -> Option<String> {
    let item = orch_core::keys::original_key(tracker_id?);
    Some(serde_json::json!({ "item": item, "op": "stage", "stage": to }).to_string())
}

/// A comment on the task's tracker item, as the outbox row its event writes
/// in its own transaction: `{"item": …, "op": "comment", "body": …, "key":
/// …}` (`orch_engine::tracker_outbox::TrackerWrite::Comment`). The key is the
/// event's id, unique in the store, so a retry after a lost answer posts it
/// once. `None` for a task without a tracker item.
pub(crate) fn comment_write(tracker_id: Option<&str>, event: i64, body: &str) -> Option<String> {
    let item = orch_core::keys::original_key(tracker_id?);
    let key = format!("orch-event-{event}");
    Some(serde_json::json!({ "item": item, "op": "comment", "body": body, "key": key }).to_string())
}

/// The leader lease after node `me` asked for it at `now`, from its row
/// (`holder`, `epoch`, `expires_at`; a fresh row is `("", 0, 0)`): the new
/// row, or `None` while another node holds it. Both stores write what this
/// says inside the transaction that read the row.
pub(crate) fn lead(
    holder: &str,
    epoch: i64,
    expires_at: i64,
    me: &str,
    now: i64,
    ttl: Duration,
) -> Option<Leadership> {
    let expires_at_new = now.saturating_add(millis(ttl));
    if holder == me {
        return Some(Leadership {
            node: me.to_owned(),
            epoch,
            expires_at: Timestamp(expires_at_new),
        });
    }
    (expires_at <= now).then(|| Leadership {
        node: me.to_owned(),
        epoch: epoch + 1,
        expires_at: Timestamp(expires_at_new),
    })
}
