//! Mapping of database rows to domain types, shared by both stores: each
//! store's row type implements `Columns`, so a column is read the same way
//! whichever database holds it. A value orch cannot read is a `Corrupt` error
//! naming it, never a panic.

use crate::error::{StoreError, StoreResult};
use crate::model::{
    Leadership, Marker, MarkerState, MarkerStep, MergeLease, Node, Notification, TrackerComment,
    TrackerItem, WorktreeDisk,
};
use orch_core::run::{Run, Usage, counts_as_agent_time};
use orch_core::{AgentKind, Job, JobId, RunId, Task, TaskEvent, TaskId, Timestamp, WorkerId};

/// Typed access to a row's columns by name. Integers are read as `i64`
/// whatever their width in the schema (PostgreSQL's are all BIGINT) and
/// narrowed here with a range check.
pub(crate) trait Columns {
    fn int(&self, col: &str) -> StoreResult<i64>;
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>>;
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn real(&self, col: &str) -> StoreResult<f64>;
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp)
}

fn u32_of(v: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} = {v} is out of range")))
}

fn i32_of(v: i64, what: &str) -> StoreResult<i32> {
    i32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} = {v} is out of range")))
}

fn opt_i32(r: &impl Columns, col: &str, what: &str) -> StoreResult<Option<i32>> {
    r.opt_int(col)?.map(|v| i32_of(v, what)).transpose()
}

// The columns each mapping below reads, named by the stores' queries instead
// of `*`: a column a later migration adds (or a newer node sharing the
// database) is then neither fetched nor described, and cannot break or slow
// the mapping; sqlx cannot even describe some types (a multirange), so a
// `SELECT *` over a table holding one fails. One list per table, beside the
// mapping that reads it. Macros, not consts, so that `concat!` builds each
// query as a `&'static str` at compile time: both drivers cache a prepared
// statement by its text, and nothing is formatted per call.
macro_rules! task_columns {
    () => {
        "id, tracker_id, work_item_id, repo, branch, stage, title, body, created_at, \
         updated_at, cancel_requested_at, cancelled_at"
    };
}
macro_rules! event_columns {
    () => {
        "id, task_id, at, actor, kind, from_stage, to_stage, message"
    };
}
macro_rules! job_columns {
    () => {
        "id, task_id, agent, repo, status, priority, attempts, max_attempts, run_after, \
         run_id, worker_id, lease_expires_at, last_error, payload, created_at, updated_at"
    };
}
macro_rules! run_columns {
    () => {
        "run_id, job_id, task_id, agent, attempt, worker_id, pid, pgid, proc_start_ticks, \
         log_path, started_at, finished_at, exit_code, signal, outcome, input_tokens, \
         output_tokens, cost_usd, session_id, error, final_text"
    };
}
macro_rules! lease_columns {
    () => {
        "repo, holder_task_id, holder_branch, epoch, acquired_at"
    };
}
macro_rules! marker_columns {
    () => {
        "id, task_id, repo, step, state, detail, created_at, completed_at"
    };
}
macro_rules! item_columns {
    () => {
        "id, project, title, body, state, labels, created_at, updated_at"
    };
}
macro_rules! comment_columns {
    () => {
        "id, item_id, author, body, external_id, created_at"
    };
}
macro_rules! node_columns {
    () => {
        "name, boot_id, started_at, heartbeat_at, draining, claims_stopped, api_url, machine"
    };
}
macro_rules! leader_columns {
    () => {
        "node, epoch, expires_at"
    };
}
macro_rules! notification_columns {
    () => {
        "id, sink, task_id, payload, attempts, next_at, created_at, last_error, failed_at"
    };
}
#[allow(unused_imports)]
pub(crate) use {
    comment_columns, event_columns, item_columns, job_columns, leader_columns, lease_columns,
    marker_columns, node_columns, notification_columns, run_columns, task_columns,
};

pub fn task(r: &impl Columns) -> StoreResult<Task> {
    Ok(Task {
        id: TaskId(r.int("id")?),
        tracker_id: r.opt_text("tracker_id")?,
        work_item_id: r.text("work_item_id")?,
        repo: r.text("repo")?,
        branch: r.text("branch")?,
        stage: r.text("stage")?.parse()?,
        title: r.text("title")?,
        body: r.text("body")?,
        created_at: Timestamp(r.int("created_at")?),
        updated_at: Timestamp(r.int("updated_at")?),
        cancel_requested_at: ts(r.opt_int("cancel_requested_at")?),
        cancelled_at: ts(r.opt_int("cancelled_at")?),
    })
}

pub fn job(r: &impl Columns) -> StoreResult<Job> {
    let payload: String = r.text("payload")?;
    Ok(Job {
        id: JobId(r.int("id")?),
        task_id: TaskId(r.int("task_id")?),
        agent: r.text("agent")?.parse()?,
        repo: r.text("repo")?,
        status: r.text("status")?.parse()?,
        priority: i32_of(r.int("priority")?, "jobs.priority")?,
        attempts: u32_of(r.int("attempts")?, "jobs.attempts")?,
        max_attempts: u32_of(r.int("max_attempts")?, "jobs.max_attempts")?,
        run_after: Timestamp(r.int("run_after")?),
        run_id: r.opt_text("run_id")?.map(RunId),
        worker_id: r.opt_text("worker_id")?.map(WorkerId),
        lease_expires_at: ts(r.opt_int("lease_expires_at")?),
        last_error: r.opt_text("last_error")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("jobs.payload: {e}")))?,
        created_at: Timestamp(r.int("created_at")?),
        updated_at: Timestamp(r.int("updated_at")?),
    })
}

pub fn event(r: &impl Columns) -> StoreResult<TaskEvent> {
    let stage = |col: &str| -> StoreResult<Option<orch_core::Stage>> {
        Ok(match r.opt_text(col)? {
            Some(s) => Some(s.parse()?),
            None => None,
        })
    };
    Ok(TaskEvent {
        id: r.int("id")?,
        task_id: TaskId(r.int("task_id")?),
        at: Timestamp(r.int("at")?),
        actor: r.text("actor")?,
        kind: orch_core::EventKind::from_stored(&r.text("kind")?),
        from_stage: stage("from_stage")?,
        to_stage: stage("to_stage")?,
        message: r.text("message")?,
    })
}

pub fn run(r: &impl Columns) -> StoreResult<Run> {
    let tokens = |col: &str| -> StoreResult<u64> {
        let v = r.int(col)?;
        u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("runs.{col} = {v}")))
    };
    let agent: AgentKind = r.text("agent")?.parse()?;
    let started_at = Timestamp(r.int("started_at")?);
    let finished_at = ts(r.opt_int("finished_at")?);
    Ok(Run {
        run_id: RunId(r.text("run_id")?),
        job_id: JobId(r.int("job_id")?),
        task_id: TaskId(r.int("task_id")?),
        agent,
        attempt: u32_of(r.int("attempt")?, "runs.attempt")?,
        worker_id: WorkerId(r.text("worker_id")?),
        pid: opt_i32(r, "pid", "runs.pid")?,
        pgid: opt_i32(r, "pgid", "runs.pgid")?,
        proc_start_ticks: r.opt_int("proc_start_ticks")?.map(|v| v as u64),
        log_path: r.opt_text("log_path")?,
        started_at,
        finished_at,
        exit_code: opt_i32(r, "exit_code", "runs.exit_code")?,
        signal: opt_i32(r, "signal", "runs.signal")?,
        outcome: match r.opt_text("outcome")? {
            Some(s) => Some(s.parse()?),
            None => None,
        },
        usage: Usage {
            input_tokens: tokens("input_tokens")?,
            output_tokens: tokens("output_tokens")?,
            cost_usd: r.real("cost_usd")?,
            agent_wall_ms: if counts_as_agent_time(agent) {
                finished_at.map_or(0, |f: Timestamp| f.since(started_at).as_millis() as u64)
            } else {
                0
            },
            agent_running_since: (counts_as_agent_time(agent) && finished_at.is_none())
                .then_some(started_at),
        },
        session_id: r.opt_text("session_id")?,
        error: r.opt_text("error")?,
        final_text: r.opt_text("final_text")?,
    })
}

pub fn lease(r: &impl Columns) -> StoreResult<MergeLease> {
    Ok(MergeLease {
        repo: r.text("repo")?,
        holder_task: TaskId(r.int("holder_task_id")?),
        holder_branch: r.text("holder_branch")?,
        epoch: r.int("epoch")?,
        acquired_at: Timestamp(r.opt_int("acquired_at")?.unwrap_or(0)),
    })
}

pub fn marker(r: &impl Columns) -> StoreResult<Marker> {
    let step = match r.text("step")?.as_str() {
        "merge" => MarkerStep::Merge,
        "deploy" => MarkerStep::Deploy,
        other => return Err(StoreError::Corrupt(format!("markers.step = {other:?}"))),
    };
    let state = match r.text("state")?.as_str() {
        "INITIATED" => MarkerState::Initiated,
        "COMPLETED" => MarkerState::Completed,
        "ABANDONED" => MarkerState::Abandoned,
        other => return Err(StoreError::Corrupt(format!("markers.state = {other:?}"))),
    };
    Ok(Marker {
        id: r.int("id")?,
        task_id: TaskId(r.int("task_id")?),
        repo: r.text("repo")?,
        step,
        state,
        detail: r.text("detail")?,
        created_at: Timestamp(r.int("created_at")?),
        completed_at: ts(r.opt_int("completed_at")?),
    })
}

pub fn item(r: &impl Columns) -> StoreResult<TrackerItem> {
    let labels: String = r.text("labels")?;
    Ok(TrackerItem {
        id: r.text("id")?,
        project: r.text("project")?,
        title: r.text("title")?,
        body: r.text("body")?,
        state: r.text("state")?,
        labels: serde_json::from_str(&labels)
            .map_err(|e| StoreError::Corrupt(format!("tracker_items.labels: {e}")))?,
        created_at: Timestamp(r.int("created_at")?),
        updated_at: Timestamp(r.int("updated_at")?),
    })
}

pub fn comment(r: &impl Columns) -> StoreResult<TrackerComment> {
    Ok(TrackerComment {
        id: r.int("id")?,
        item_id: r.text("item_id")?,
        author: r.text("author")?,
        body: r.text("body")?,
        external_id: r.opt_text("external_id")?,
        created_at: Timestamp(r.int("created_at")?),
    })
}

pub fn notification(r: &impl Columns) -> StoreResult<Notification> {
    let payload: String = r.text("payload")?;
    Ok(Notification {
        id: r.int("id")?,
        sink: r.text("sink")?,
        task_id: r.opt_int("task_id")?.map(TaskId),
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("notifications.payload: {e}")))?,
        attempts: u32_of(r.int("attempts")?, "notifications.attempts")?,
        next_at: Timestamp(r.int("next_at")?),
        created_at: Timestamp(r.int("created_at")?),
        last_error: r.opt_text("last_error")?,
        failed_at: r.opt_int("failed_at")?.map(Timestamp),
    })
}

pub fn node(r: &impl Columns) -> StoreResult<Node> {
    Ok(Node {
        name: r.text("name")?,
        boot_id: r.text("boot_id")?,
        started_at: Timestamp(r.int("started_at")?),
        heartbeat_at: Timestamp(r.int("heartbeat_at")?),
        draining: r.int("draining")? != 0,
        claims_stopped: r.int("claims_stopped")? != 0,
        api_url: r.opt_text("api_url")?,
        machine: r.opt_text("machine")?,
    })
}

pub fn leadership(r: &impl Columns) -> StoreResult<Leadership> {
    Ok(Leadership {
        node: r.text("node")?,
        epoch: r.int("epoch")?,
        expires_at: Timestamp(r.int("expires_at")?),
    })
}

/// A `worktree_disk` row joined with its task (`repo`, `branch`,
/// `work_item_id`, `stage`).
pub fn worktree_disk(r: &impl Columns) -> StoreResult<WorktreeDisk> {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(WorktreeDisk {
        task: TaskId(r.int("task_id")?),
        repo: r.text("repo")?,
        branch: r.text("branch")?,
        work_item_id: r.text("work_item_id")?,
        stage: r.text("stage")?.parse()?,
        size: orch_core::disk::WorktreeSize {
            bytes: n(r.int("bytes")?),
            complete: r.int("complete")? != 0,
        },
        measured_at: Timestamp(r.int("measured_at")?),
        cleaned_at: ts(r.opt_int("cleaned_at")?),
        freed_bytes: n(r.int("freed_bytes")?),
    })
}

#[cfg(test)]
mod tests {
    use crate::copy::table;

    /// Every column a list names is one its table has (the copy's
    /// description of the schema, itself checked against both databases).
    #[test]
    fn the_column_lists_name_columns_of_their_tables() {
        for (name, list) in [
            ("tasks", task_columns!()),
            ("task_events", event_columns!()),
            ("jobs", job_columns!()),
            ("runs", run_columns!()),
            ("merge_leases", lease_columns!()),
            ("markers", marker_columns!()),
            ("tracker_items", item_columns!()),
            ("tracker_comments", comment_columns!()),
            ("notifications", notification_columns!()),
            ("nodes", node_columns!()),
            ("leader", leader_columns!()),
        ] {
            let t = table(name).expect("a table of the schema");
            for col in list.split(',').map(str::trim) {
                assert!(
                    t.columns.iter().any(|(c, _)| *c == col),
                    "{name} has no column {col}"
                );
            }
        }
    }
}
