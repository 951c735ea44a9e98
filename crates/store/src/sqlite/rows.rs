//! Mapping of SQLite rows to domain types. A value orch cannot read is a
//! `Corrupt` error naming it, never a panic.

use crate::error::{StoreError, StoreResult};
use crate::model::{Marker, MarkerState, MarkerStep, MergeLease, TrackerComment, TrackerItem};
use orch_core::run::{Run, Usage};
use orch_core::{Job, JobId, RunId, Task, TaskEvent, TaskId, Timestamp, WorkerId};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

fn u32_of(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} = {v} is out of range")))
}

pub fn task(r: &SqliteRow) -> StoreResult<Task> {
    Ok(Task {
        id: TaskId(r.try_get("id")?),
        tracker_id: r.try_get("tracker_id")?,
        work_item_id: r.try_get("work_item_id")?,
        repo: r.try_get("repo")?,
        branch: r.try_get("branch")?,
        stage: r.try_get::<String, _>("stage")?.parse()?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        created_at: Timestamp(r.try_get("created_at")?),
        updated_at: Timestamp(r.try_get("updated_at")?),
        cancel_requested_at: ts(r.try_get("cancel_requested_at")?),
        cancelled_at: ts(r.try_get("cancelled_at")?),
    })
}

pub fn job(r: &SqliteRow) -> StoreResult<Job> {
    let payload: String = r.try_get("payload")?;
    Ok(Job {
        id: JobId(r.try_get("id")?),
        task_id: TaskId(r.try_get("task_id")?),
        agent: r.try_get::<String, _>("agent")?.parse()?,
        repo: r.try_get("repo")?,
        status: r.try_get::<String, _>("status")?.parse()?,
        priority: r.try_get("priority")?,
        attempts: u32_of(r.try_get("attempts")?, "jobs.attempts")?,
        max_attempts: u32_of(r.try_get("max_attempts")?, "jobs.max_attempts")?,
        run_after: Timestamp(r.try_get("run_after")?),
        run_id: r.try_get::<Option<String>, _>("run_id")?.map(RunId),
        worker_id: r.try_get::<Option<String>, _>("worker_id")?.map(WorkerId),
        lease_expires_at: ts(r.try_get("lease_expires_at")?),
        last_error: r.try_get("last_error")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("jobs.payload: {e}")))?,
        created_at: Timestamp(r.try_get("created_at")?),
        updated_at: Timestamp(r.try_get("updated_at")?),
    })
}

pub fn event(r: &SqliteRow) -> StoreResult<TaskEvent> {
    let stage = |col: &str| -> StoreResult<Option<orch_core::Stage>> {
        Ok(match r.try_get::<Option<String>, _>(col)? {
            Some(s) => Some(s.parse()?),
            None => None,
        })
    };
    Ok(TaskEvent {
        id: r.try_get("id")?,
        task_id: TaskId(r.try_get("task_id")?),
        at: Timestamp(r.try_get("at")?),
        actor: r.try_get("actor")?,
        kind: r.try_get("kind")?,
        from_stage: stage("from_stage")?,
        to_stage: stage("to_stage")?,
        message: r.try_get("message")?,
    })
}

pub fn run(r: &SqliteRow) -> StoreResult<Run> {
    let tokens = |col: &str| -> StoreResult<u64> {
        let v: i64 = r.try_get(col)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("runs.{col} = {v}")))
    };
    Ok(Run {
        run_id: RunId(r.try_get("run_id")?),
        job_id: JobId(r.try_get("job_id")?),
        task_id: TaskId(r.try_get("task_id")?),
        agent: r.try_get::<String, _>("agent")?.parse()?,
        attempt: u32_of(r.try_get("attempt")?, "runs.attempt")?,
        worker_id: WorkerId(r.try_get("worker_id")?),
        pid: r.try_get("pid")?,
        pgid: r.try_get("pgid")?,
        proc_start_ticks: r
            .try_get::<Option<i64>, _>("proc_start_ticks")?
            .map(|v| v as u64),
        log_path: r.try_get("log_path")?,
        started_at: Timestamp(r.try_get("started_at")?),
        finished_at: ts(r.try_get("finished_at")?),
        exit_code: r.try_get("exit_code")?,
        signal: r.try_get("signal")?,
        outcome: match r.try_get::<Option<String>, _>("outcome")? {
            Some(s) => Some(s.parse()?),
            None => None,
        },
        usage: Usage {
            input_tokens: tokens("input_tokens")?,
            output_tokens: tokens("output_tokens")?,
            cost_usd: r.try_get("cost_usd")?,
        },
        session_id: r.try_get("session_id")?,
        error: r.try_get("error")?,
        final_text: r.try_get("final_text")?,
    })
}

pub fn lease(r: &SqliteRow) -> StoreResult<MergeLease> {
    Ok(MergeLease {
        repo: r.try_get("repo")?,
        holder_task: TaskId(r.try_get("holder_task_id")?),
        holder_branch: r.try_get("holder_branch")?,
        epoch: r.try_get("epoch")?,
        acquired_at: Timestamp(r.try_get::<Option<i64>, _>("acquired_at")?.unwrap_or(0)),
    })
}

pub fn marker(r: &SqliteRow) -> StoreResult<Marker> {
    let step = match r.try_get::<String, _>("step")?.as_str() {
        "merge" => MarkerStep::Merge,
        "deploy" => MarkerStep::Deploy,
        other => return Err(StoreError::Corrupt(format!("markers.step = {other:?}"))),
    };
    let state = match r.try_get::<String, _>("state")?.as_str() {
        "INITIATED" => MarkerState::Initiated,
        "COMPLETED" => MarkerState::Completed,
        "ABANDONED" => MarkerState::Abandoned,
        other => return Err(StoreError::Corrupt(format!("markers.state = {other:?}"))),
    };
    Ok(Marker {
        id: r.try_get("id")?,
        task_id: TaskId(r.try_get("task_id")?),
        repo: r.try_get("repo")?,
        step,
        state,
        detail: r.try_get("detail")?,
        created_at: Timestamp(r.try_get("created_at")?),
        completed_at: ts(r.try_get("completed_at")?),
    })
}

pub fn item(r: &SqliteRow) -> StoreResult<TrackerItem> {
    let labels: String = r.try_get("labels")?;
    Ok(TrackerItem {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        state: r.try_get("state")?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| StoreError::Corrupt(format!("tracker_items.labels: {e}")))?,
        created_at: Timestamp(r.try_get("created_at")?),
        updated_at: Timestamp(r.try_get("updated_at")?),
    })
}

pub fn comment(r: &SqliteRow) -> StoreResult<TrackerComment> {
    Ok(TrackerComment {
        id: r.try_get("id")?,
        item_id: r.try_get("item_id")?,
        author: r.try_get("author")?,
        body: r.try_get("body")?,
        external_id: r.try_get("external_id")?,
        created_at: Timestamp(r.try_get("created_at")?),
    })
}
