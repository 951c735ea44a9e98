//! Mapping of SQLite rows to domain types. A value orch cannot read is a
//! `Corrupt` error naming it, never a panic.

use crate::error::{StoreError, StoreResult};
use crate::model::{
    Marker, MarkerState, MarkerStep, MergeLease, Notification, TrackerComment, TrackerItem,
};
use orch_core::run::{Run, Usage};
use orch_core::{Job, JobId, RunId, Task, TaskEvent, TaskId, Timestamp, WorkerId};

/// Columns by name, with a failed decode as a `StoreError` (not a panic).
pub trait Columns {
    fn col<T: rusqlite::types::FromSql>(&self, name: &str) -> StoreResult<T>;
}

impl Columns for rusqlite::Row<'_> {
    fn col<T: rusqlite::types::FromSql>(&self, name: &str) -> StoreResult<T> {
        Ok(self.get(name)?)
    }
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

fn u32_of(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} = {v} is out of range")))
}

pub fn task(r: &impl Columns) -> StoreResult<Task> {
    Ok(Task {
        id: TaskId(r.col("id")?),
        tracker_id: r.col("tracker_id")?,
        work_item_id: r.col("work_item_id")?,
        repo: r.col("repo")?,
        branch: r.col("branch")?,
        stage: r.col::<String>("stage")?.parse()?,
        title: r.col("title")?,
        body: r.col("body")?,
        created_at: Timestamp(r.col("created_at")?),
        updated_at: Timestamp(r.col("updated_at")?),
        cancel_requested_at: ts(r.col("cancel_requested_at")?),
        cancelled_at: ts(r.col("cancelled_at")?),
    })
}

pub fn job(r: &impl Columns) -> StoreResult<Job> {
    let payload: String = r.col("payload")?;
    Ok(Job {
        id: JobId(r.col("id")?),
        task_id: TaskId(r.col("task_id")?),
        agent: r.col::<String>("agent")?.parse()?,
        repo: r.col("repo")?,
        status: r.col::<String>("status")?.parse()?,
        priority: r.col("priority")?,
        attempts: u32_of(r.col("attempts")?, "jobs.attempts")?,
        max_attempts: u32_of(r.col("max_attempts")?, "jobs.max_attempts")?,
        run_after: Timestamp(r.col("run_after")?),
        run_id: r.col::<Option<String>>("run_id")?.map(RunId),
        worker_id: r.col::<Option<String>>("worker_id")?.map(WorkerId),
        lease_expires_at: ts(r.col("lease_expires_at")?),
        last_error: r.col("last_error")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("jobs.payload: {e}")))?,
        created_at: Timestamp(r.col("created_at")?),
        updated_at: Timestamp(r.col("updated_at")?),
    })
}

pub fn event(r: &impl Columns) -> StoreResult<TaskEvent> {
    let stage = |col: &str| -> StoreResult<Option<orch_core::Stage>> {
        Ok(match r.col::<Option<String>>(col)? {
            Some(s) => Some(s.parse()?),
            None => None,
        })
    };
    Ok(TaskEvent {
        id: r.col("id")?,
        task_id: TaskId(r.col("task_id")?),
        at: Timestamp(r.col("at")?),
        actor: r.col("actor")?,
        kind: r.col("kind")?,
        from_stage: stage("from_stage")?,
        to_stage: stage("to_stage")?,
        message: r.col("message")?,
    })
}

pub fn run(r: &impl Columns) -> StoreResult<Run> {
    let tokens = |col: &str| -> StoreResult<u64> {
        let v: i64 = r.col(col)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("runs.{col} = {v}")))
    };
    Ok(Run {
        run_id: RunId(r.col("run_id")?),
        job_id: JobId(r.col("job_id")?),
        task_id: TaskId(r.col("task_id")?),
        agent: r.col::<String>("agent")?.parse()?,
        attempt: u32_of(r.col("attempt")?, "runs.attempt")?,
        worker_id: WorkerId(r.col("worker_id")?),
        pid: r.col("pid")?,
        pgid: r.col("pgid")?,
        proc_start_ticks: r.col::<Option<i64>>("proc_start_ticks")?.map(|v| v as u64),
        log_path: r.col("log_path")?,
        started_at: Timestamp(r.col("started_at")?),
        finished_at: ts(r.col("finished_at")?),
        exit_code: r.col("exit_code")?,
        signal: r.col("signal")?,
        outcome: match r.col::<Option<String>>("outcome")? {
            Some(s) => Some(s.parse()?),
            None => None,
        },
        usage: Usage {
            input_tokens: tokens("input_tokens")?,
            output_tokens: tokens("output_tokens")?,
            cost_usd: r.col("cost_usd")?,
        },
        session_id: r.col("session_id")?,
        error: r.col("error")?,
        final_text: r.col("final_text")?,
    })
}

pub fn lease(r: &impl Columns) -> StoreResult<MergeLease> {
    Ok(MergeLease {
        repo: r.col("repo")?,
        holder_task: TaskId(r.col("holder_task_id")?),
        holder_branch: r.col("holder_branch")?,
        epoch: r.col("epoch")?,
        acquired_at: Timestamp(r.col::<Option<i64>>("acquired_at")?.unwrap_or(0)),
    })
}

pub fn marker(r: &impl Columns) -> StoreResult<Marker> {
    let step = match r.col::<String>("step")?.as_str() {
        "merge" => MarkerStep::Merge,
        "deploy" => MarkerStep::Deploy,
        other => return Err(StoreError::Corrupt(format!("markers.step = {other:?}"))),
    };
    let state = match r.col::<String>("state")?.as_str() {
        "INITIATED" => MarkerState::Initiated,
        "COMPLETED" => MarkerState::Completed,
        "ABANDONED" => MarkerState::Abandoned,
        other => return Err(StoreError::Corrupt(format!("markers.state = {other:?}"))),
    };
    Ok(Marker {
        id: r.col("id")?,
        task_id: TaskId(r.col("task_id")?),
        repo: r.col("repo")?,
        step,
        state,
        detail: r.col("detail")?,
        created_at: Timestamp(r.col("created_at")?),
        completed_at: ts(r.col("completed_at")?),
    })
}

pub fn item(r: &impl Columns) -> StoreResult<TrackerItem> {
    let labels: String = r.col("labels")?;
    Ok(TrackerItem {
        id: r.col("id")?,
        project: r.col("project")?,
        title: r.col("title")?,
        body: r.col("body")?,
        state: r.col("state")?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| StoreError::Corrupt(format!("tracker_items.labels: {e}")))?,
        created_at: Timestamp(r.col("created_at")?),
        updated_at: Timestamp(r.col("updated_at")?),
    })
}

pub fn comment(r: &impl Columns) -> StoreResult<TrackerComment> {
    Ok(TrackerComment {
        id: r.col("id")?,
        item_id: r.col("item_id")?,
        author: r.col("author")?,
        body: r.col("body")?,
        external_id: r.col("external_id")?,
        created_at: Timestamp(r.col("created_at")?),
    })
}

pub fn notification(r: &impl Columns) -> StoreResult<Notification> {
    let payload: String = r.col("payload")?;
    Ok(Notification {
        id: r.col("id")?,
        sink: r.col("sink")?,
        task_id: r.col::<Option<i64>>("task_id")?.map(TaskId),
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("notifications.payload: {e}")))?,
        attempts: u32_of(r.col("attempts")?, "notifications.attempts")?,
        next_at: Timestamp(r.col("next_at")?),
        created_at: Timestamp(r.col("created_at")?),
    })
}
