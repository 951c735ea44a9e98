//! Mapping of SQLite rows to domain types. A value orch cannot read is a
//! `Corrupt` error naming it, never a panic.

use crate::error::{StoreError, StoreResult};
use crate::model::{
    Marker, MarkerState, MarkerStep, MergeLease, Notification, TrackerComment, TrackerItem,
};
use orch_core::run::{Run, Usage, counts_as_agent_time};
use orch_core::{AgentKind, Job, JobId, RunId, Task, TaskEvent, TaskId, Timestamp, WorkerId};
use rusqlite::Row;

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

fn u32_of(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} = {v} is out of range")))
}

pub fn task(r: &Row<'_>) -> StoreResult<Task> {
    Ok(Task {
        id: TaskId(r.get("id")?),
        tracker_id: r.get("tracker_id")?,
        work_item_id: r.get("work_item_id")?,
        repo: r.get("repo")?,
        branch: r.get("branch")?,
        stage: r.get::<_, String>("stage")?.parse()?,
        title: r.get("title")?,
        body: r.get("body")?,
        created_at: Timestamp(r.get("created_at")?),
        updated_at: Timestamp(r.get("updated_at")?),
        cancel_requested_at: ts(r.get("cancel_requested_at")?),
        cancelled_at: ts(r.get("cancelled_at")?),
    })
}

pub fn job(r: &Row<'_>) -> StoreResult<Job> {
    let payload: String = r.get("payload")?;
    Ok(Job {
        id: JobId(r.get("id")?),
        task_id: TaskId(r.get("task_id")?),
        agent: r.get::<_, String>("agent")?.parse()?,
        repo: r.get("repo")?,
        status: r.get::<_, String>("status")?.parse()?,
        priority: r.get("priority")?,
        attempts: u32_of(r.get("attempts")?, "jobs.attempts")?,
        max_attempts: u32_of(r.get("max_attempts")?, "jobs.max_attempts")?,
        run_after: Timestamp(r.get("run_after")?),
        run_id: r.get::<_, Option<String>>("run_id")?.map(RunId),
        worker_id: r.get::<_, Option<String>>("worker_id")?.map(WorkerId),
        lease_expires_at: ts(r.get("lease_expires_at")?),
        last_error: r.get("last_error")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("jobs.payload: {e}")))?,
        created_at: Timestamp(r.get("created_at")?),
        updated_at: Timestamp(r.get("updated_at")?),
    })
}

pub fn event(r: &Row<'_>) -> StoreResult<TaskEvent> {
    let stage = |col: &str| -> StoreResult<Option<orch_core::Stage>> {
        Ok(match r.get::<_, Option<String>>(col)? {
            Some(s) => Some(s.parse()?),
            None => None,
        })
    };
    Ok(TaskEvent {
        id: r.get("id")?,
        task_id: TaskId(r.get("task_id")?),
        at: Timestamp(r.get("at")?),
        actor: r.get("actor")?,
        kind: r.get("kind")?,
        from_stage: stage("from_stage")?,
        to_stage: stage("to_stage")?,
        message: r.get("message")?,
    })
}

pub fn run(r: &Row<'_>) -> StoreResult<Run> {
    let tokens = |col: &str| -> StoreResult<u64> {
        let v: i64 = r.get(col)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("runs.{col} = {v}")))
    };
    let agent: AgentKind = r.get::<_, String>("agent")?.parse()?;
    let started_at = Timestamp(r.get("started_at")?);
    let finished_at = ts(r.get("finished_at")?);
    Ok(Run {
        run_id: RunId(r.get("run_id")?),
        job_id: JobId(r.get("job_id")?),
        task_id: TaskId(r.get("task_id")?),
        agent,
        attempt: u32_of(r.get("attempt")?, "runs.attempt")?,
        worker_id: WorkerId(r.get("worker_id")?),
        pid: r.get("pid")?,
        pgid: r.get("pgid")?,
        proc_start_ticks: r
            .get::<_, Option<i64>>("proc_start_ticks")?
            .map(|v| v as u64),
        log_path: r.get("log_path")?,
        started_at,
        finished_at,
        exit_code: r.get("exit_code")?,
        signal: r.get("signal")?,
        outcome: match r.get::<_, Option<String>>("outcome")? {
            Some(s) => Some(s.parse()?),
            None => None,
        },
        usage: Usage {
            input_tokens: tokens("input_tokens")?,
            output_tokens: tokens("output_tokens")?,
            cost_usd: r.get("cost_usd")?,
            agent_wall_ms: if counts_as_agent_time(agent) {
                finished_at.map_or(0, |f: Timestamp| f.since(started_at).as_millis() as u64)
            } else {
                0
            },
            agent_running_since: (counts_as_agent_time(agent) && finished_at.is_none())
                .then_some(started_at),
        },
        session_id: r.get("session_id")?,
        error: r.get("error")?,
        final_text: r.get("final_text")?,
    })
}

pub fn lease(r: &Row<'_>) -> StoreResult<MergeLease> {
    Ok(MergeLease {
        repo: r.get("repo")?,
        holder_task: TaskId(r.get("holder_task_id")?),
        holder_branch: r.get("holder_branch")?,
        epoch: r.get("epoch")?,
        acquired_at: Timestamp(r.get::<_, Option<i64>>("acquired_at")?.unwrap_or(0)),
    })
}

pub fn marker(r: &Row<'_>) -> StoreResult<Marker> {
    let step = match r.get::<_, String>("step")?.as_str() {
        "merge" => MarkerStep::Merge,
        "deploy" => MarkerStep::Deploy,
        other => return Err(StoreError::Corrupt(format!("markers.step = {other:?}"))),
    };
    let state = match r.get::<_, String>("state")?.as_str() {
        "INITIATED" => MarkerState::Initiated,
        "COMPLETED" => MarkerState::Completed,
        "ABANDONED" => MarkerState::Abandoned,
        other => return Err(StoreError::Corrupt(format!("markers.state = {other:?}"))),
    };
    Ok(Marker {
        id: r.get("id")?,
        task_id: TaskId(r.get("task_id")?),
        repo: r.get("repo")?,
        step,
        state,
        detail: r.get("detail")?,
        created_at: Timestamp(r.get("created_at")?),
        completed_at: ts(r.get("completed_at")?),
    })
}

pub fn item(r: &Row<'_>) -> StoreResult<TrackerItem> {
    let labels: String = r.get("labels")?;
    Ok(TrackerItem {
        id: r.get("id")?,
        project: r.get("project")?,
        title: r.get("title")?,
        body: r.get("body")?,
        state: r.get("state")?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| StoreError::Corrupt(format!("tracker_items.labels: {e}")))?,
        created_at: Timestamp(r.get("created_at")?),
        updated_at: Timestamp(r.get("updated_at")?),
    })
}

pub fn comment(r: &Row<'_>) -> StoreResult<TrackerComment> {
    Ok(TrackerComment {
        id: r.get("id")?,
        item_id: r.get("item_id")?,
        author: r.get("author")?,
        body: r.get("body")?,
        external_id: r.get("external_id")?,
        created_at: Timestamp(r.get("created_at")?),
    })
}

pub fn notification(r: &Row<'_>) -> StoreResult<Notification> {
    let payload: String = r.get("payload")?;
    Ok(Notification {
        id: r.get("id")?,
        sink: r.get("sink")?,
        task_id: r.get::<_, Option<i64>>("task_id")?.map(TaskId),
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("notifications.payload: {e}")))?,
        attempts: u32_of(r.get("attempts")?, "notifications.attempts")?,
        next_at: Timestamp(r.get("next_at")?),
        created_at: Timestamp(r.get("created_at")?),
    })
}
