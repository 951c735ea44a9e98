//! `orch task add|list|show|wait|start|approve|reject|confirm-deploy|stop|retry`.
//!
//! A task is named by its id or its work item key. A key names its live task;
//! once that task's keys are released (a STOP, or its done or failed item
//! started afresh) the key still finds the newest task that had it, so
//! `orch task show KEY` shows what `orch task list` lists under KEY. Older
//! tasks of the key are found by id.

use crate::args::{
    TaskAction, TaskActionArgs, TaskAddArgs, TaskListArgs, TaskShowArgs, TaskWaitArgs,
};
use crate::error::{CliError, CliResult};
use crate::output::{out, outln};
use crate::render::{ago, clip, now, print_json, table};
use orch_config::Config;
use orch_core::pipeline::Gate;
use orch_core::{Stage, Task, TaskId};
use orch_engine::pipeline::intake::NewWorkItem;
use orch_engine::pipeline::{GateResult, PipelineError};
use orch_store::{Store, TaskFilter, TrackerItem};
use serde::Serialize;
use std::time::{Duration, Instant};

/// `orch task add`: `Pipeline::add_work_item`, the rule `POST /api/tasks`
/// follows too — through the running engine's API when one runs for the
/// data folder (its dispatcher claims the analyst at once), else in-process.
pub async fn add(cfg: &Config, a: TaskAddArgs) -> CliResult {
    if a.title.trim().is_empty() {
        return Err(CliError::Usage("--title must not be empty".into()));
    }
    let req = NewWorkItem {
        repo: a.repo,
        title: a.title,
        body: a.body,
        key: a.key,
        hold: a.hold,
        depends_on: a.depends_on.into_iter().map(TaskId).collect(),
    };
    let store = super::open_store(cfg).await?;
    let (item, started) = match crate::engine_link::running(cfg)? {
        Some(engine) => {
            let body = serde_json::to_value(&req).map_err(|e| CliError::Runtime(e.into()))?;
            let answer = crate::engine_link::post(&engine, "/api/tasks", &body).await?;
            if !answer.ok() {
                return Err(answer.into_error());
            }
            let item: TrackerItem = serde_json::from_value(answer.body["item"].clone())
                .map_err(|e| CliError::Runtime(anyhow::anyhow!("the engine's answer: {e}")))?;
            let task = answer.body["result"]["task"].as_i64().map(TaskId);
            (item, task)
        }
        None => {
            let pipeline = super::pipeline(cfg, store.clone(), "cli");
            let added = pipeline.add_work_item(req).await.map_err(pipeline_err)?;
            (added.item, added.result.map(|r| r.task))
        }
    };
    let Some(task) = started else {
        if a.json {
            print_json(&item)?;
        } else {
            outln!(
                "created item {}; start it with `orch task start {}`",
                item.id,
                item.id
            );
        }
        return Ok(());
    };
    let task = store
        .get_task(task)
        .await?
        .ok_or_else(|| CliError::Runtime(anyhow::anyhow!("task {task} vanished")))?;
    if a.json {
        print_json(&task)?;
    } else {
        outln!(
            "created task {} ({}) on branch {}; the analyst is queued (`orch serve` runs it)",
            task.id,
            task.work_item_id,
            task.branch
        );
    }
    Ok(())
}

pub fn pipeline_err(e: PipelineError) -> CliError {
    match e {
        PipelineError::Store(s) => CliError::Store(s),
        PipelineError::Invalid(m) => CliError::Usage(m),
        PipelineError::Port(p) => crate::error::port_failure(p.kind(), &p.to_string()),
        other => CliError::Runtime(anyhow::anyhow!("{other}")),
    }
}

/// `orch task start|approve|reject|confirm-deploy|stop|retry|answer`. While an
/// engine runs for the data folder the change is that engine's to make
/// (its per-task order, its supervisor's agents): it is sent to its API.
/// Otherwise the CLI carries it out itself.
pub async fn action(cfg: &Config, a: &TaskActionArgs, action: TaskAction) -> CliResult {
    let comment = a
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if action == TaskAction::Reject && comment.is_none() {
        return Err(CliError::Usage(
            "reject needs --comment: say what the analyst should change".into(),
        ));
    }
    if action == TaskAction::Answer && comment.is_none() {
        return Err(CliError::Usage(
            "answer needs the answer's text: orch task answer ID \"...\"".into(),
        ));
    }
    if let Some(engine) = crate::engine_link::running(cfg)? {
        return through_engine(&engine, a, action, comment).await;
    }
    let store = super::open_store(cfg).await?;
    let pipeline = super::pipeline(cfg, store.clone(), "cli");
    // `start` takes an item key too: the only way to begin a pipeline.
    if action == TaskAction::Start {
        let task = match a.task.parse::<i64>() {
            Ok(id) => store.get_task(TaskId(id)).await?,
            Err(_) => store.find_live_task_by_work_item(&a.task).await?,
        };
        let result = match task {
            Some(t) => pipeline.gate(t.id, Gate::Start, comment).await,
            None => pipeline.start_item(&a.task).await,
        }
        .map_err(pipeline_err)?;
        return render_gate(&result, a.json);
    }
    let task = find(store.as_ref(), &a.task).await?;
    let gate = match action {
        TaskAction::Approve => Gate::Approve,
        // Its comment was checked above.
        TaskAction::Reject => Gate::Reject,
        TaskAction::ConfirmDeploy => Gate::ConfirmDeploy,
        TaskAction::Retry => Gate::Retry,
        TaskAction::Answer => Gate::Answer,
        TaskAction::Stop => {
            let r = pipeline.stop_task(task.id, "cli").await;
            if a.json {
                print_json(&r)?;
            }
            if let Some(e) = &r.error {
                // The store (or another step) failed: the STOP did not happen.
                return Err(CliError::Runtime(anyhow::anyhow!(
                    "task {}: STOP failed ({}): {e}",
                    task.id,
                    r.note
                )));
            }
            if !a.json {
                outln!(
                    "task {}: {} (stopped {} run(s){})",
                    task.id,
                    r.note,
                    r.stopped,
                    if r.deferred {
                        ", deferred until the merge/deploy step ends"
                    } else {
                        ""
                    }
                );
            }
            return Ok(());
        }
        TaskAction::Start => unreachable!("handled above"),
    };
    let result = pipeline
        .gate(task.id, gate, comment)
        .await
        .map_err(pipeline_err)?;
    render_gate(&result, a.json)
}

/// The action's name in the API (`POST /api/tasks/{id}/{action}`).
fn api_action(action: TaskAction) -> &'static str {
    match action {
        TaskAction::Start => "start",
        TaskAction::Approve => "approve",
        TaskAction::Reject => "reject",
        TaskAction::ConfirmDeploy => "confirm-deploy",
        TaskAction::Stop => "stop",
        TaskAction::Retry => "retry",
        TaskAction::Answer => "answer",
    }
}

/// A task id or key as one URL path segment.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The action sent to the running engine; its answer printed as the CLI
/// prints its own (the same JSON with `--json`), and its refusals as errors
/// with the engine's words.
async fn through_engine(
    engine: &crate::engine_link::Control,
    a: &TaskActionArgs,
    action: TaskAction,
    comment: Option<&str>,
) -> CliResult {
    let path = format!(
        "/api/tasks/{}/{}",
        path_segment(&a.task),
        api_action(action)
    );
    let body = match comment {
        Some(c) => serde_json::json!({ "comment": c }),
        None => serde_json::json!({}),
    };
    let answer = crate::engine_link::post(engine, &path, &body).await?;
    // 409: a refused gate answers its result, which says why (below).
    if !answer.ok() && answer.status != 409 {
        return Err(answer.into_error());
    }
    let r = &answer.body;
    if a.json {
        print_json(r)?;
    }
    if action == TaskAction::Stop {
        if let Some(e) = r["error"].as_str() {
            return Err(CliError::Runtime(anyhow::anyhow!(
                "task {}: STOP failed ({}): {e}",
                a.task,
                r["note"].as_str().unwrap_or("error")
            )));
        }
        if !a.json {
            outln!(
                "task {}: {} (stopped {} run(s){})",
                a.task,
                r["note"].as_str().unwrap_or(""),
                r["stopped"].as_u64().unwrap_or(0),
                if r["deferred"].as_bool() == Some(true) {
                    ", deferred until the merge/deploy step ends"
                } else {
                    ""
                }
            );
        }
        return Ok(());
    }
    let (task, stage, note) = (
        &r["task"],
        r["stage"].as_str().unwrap_or("?"),
        r["note"].as_str().unwrap_or(""),
    );
    if r["applied"].as_bool() == Some(true) {
        if !a.json {
            outln!("task {task} [{stage}]: {note}");
        }
        Ok(())
    } else {
        Err(CliError::Runtime(anyhow::anyhow!(
            "task {task} [{stage}]: not applied: {note}"
        )))
    }
}

/// Prints the result; a refused gate (nothing moved) is a runtime error so
/// scripts notice, with the reason on stderr.
fn render_gate(r: &GateResult, json: bool) -> CliResult {
    if json {
        print_json(r)?;
    } else if r.applied {
        outln!("task {} [{}]: {}", r.task, r.stage, r.note);
    }
    if r.applied {
        Ok(())
    } else {
        Err(CliError::Runtime(anyhow::anyhow!(
            "task {} [{}]: not applied: {}",
            r.task,
            r.stage,
            r.note
        )))
    }
}

pub async fn list(cfg: &Config, a: &TaskListArgs) -> CliResult {
    let stage = match &a.stage {
        Some(s) => Some(
            s.parse::<Stage>()
                .map_err(|e| CliError::Usage(format!("--stage: {e}")))?,
        ),
        None => None,
    };
    let store = super::open_store(cfg).await?;
    let filter = TaskFilter {
        repo: a.repo.clone(),
        stage,
        limit: Some(a.limit),
    };
    let tasks = store.list_tasks(&filter).await?;
    if a.json {
        print_json(&tasks)?;
    } else if tasks.is_empty() {
        outln!("no tasks yet; create one with `orch task add --repo REPO --title TITLE`");
    } else {
        let rows: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    key_shown(t),
                    t.repo.clone(),
                    t.stage.to_string(),
                    ago(t.updated_at),
                    clip(&t.title, 50),
                ]
            })
            .collect();
        out!(
            "{}",
            table(&["ID", "KEY", "REPO", "STAGE", "UPDATED", "TITLE"], &rows)
        );
    }
    Ok(())
}

/// The key as `orch task list` shows it: a released key (the task was
/// cancelled, or its item runs again as a newer task) is marked, since the
/// key now belongs to that newer task, if any.
fn key_shown(t: &Task) -> String {
    if orch_core::keys::is_tombstoned(&t.work_item_id) {
        format!("{} (released)", t.original_work_item_id())
    } else {
        t.original_work_item_id().to_owned()
    }
}

/// A task by numeric id, or by work item key: the key's live task, else the
/// newest task that had the key before it was released.
pub(super) async fn find(store: &dyn Store, what: &str) -> CliResult<Task> {
    let found = match what.parse::<i64>() {
        Ok(id) => store.get_task(TaskId(id)).await?,
        Err(_) => store.find_task_by_key(what).await?,
    };
    found.ok_or_else(|| {
        CliError::Runtime(anyhow::anyhow!(
            "no task with id or key {what:?}; `orch task list` shows the tasks"
        ))
    })
}

/// How often `orch task wait` looks again when no engine runs for the data
/// folder: without one nothing signals a change (the CLI's own commands
/// and another node's write move no counter here).
const WAIT_WITHOUT_ENGINE: Duration = Duration::from_millis(250);

/// `orch task wait TASK [--stage S]… [--timeout SECS]`: until the task is in
/// one of the stages (by default a terminal one). With an engine running
/// for the data folder, each look follows a change the engine signals
/// (`GET /api/changes`, a long poll); with none, the store is read again
/// every 250 ms.
pub async fn wait(cfg: &Config, a: &TaskWaitArgs) -> CliResult {
    let stages = a
        .stage
        .iter()
        .map(|s| {
            s.parse::<Stage>()
                .map_err(|e| CliError::Usage(format!("--stage: {e}")))
        })
        .collect::<CliResult<Vec<Stage>>>()?;
    let wanted = |s: Stage| {
        if stages.is_empty() {
            s.is_terminal()
        } else {
            stages.contains(&s)
        }
    };
    let end = Instant::now() + Duration::from_secs(a.timeout);
    let store = super::open_store(cfg).await?;
    let mut engine = crate::engine_link::running(cfg)?;
    loop {
        // The counter is read before the look, so a change made in between
        // ends the wait below at once.
        let seen = match &engine {
            Some(e) => crate::engine_link::changes(e, 0, Duration::ZERO).await.ok(),
            None => None,
        };
        let task = find(store.as_ref(), &a.task).await?;
        if wanted(task.stage) {
            if a.json {
                print_json(&task)?;
            } else {
                outln!(
                    "task {}  {}  [{}]",
                    task.id,
                    task.original_work_item_id(),
                    task.stage
                );
            }
            return Ok(());
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let shown = if stages.is_empty() {
                "a terminal stage (done, failed, cancelled)".to_owned()
            } else {
                stages
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            };
            return Err(CliError::Runtime(anyhow::anyhow!(
                "task {} ({}) is still in {} after {}s, not in {shown}",
                task.id,
                task.original_work_item_id(),
                task.stage,
                a.timeout
            )));
        }
        if let (Some(e), Some(seen)) = (&engine, seen)
            && crate::engine_link::changes(e, seen, left).await.is_ok()
        {
            continue;
        }
        // No engine to wait on (none runs, or it stopped answering): look
        // again shortly, and for an engine that started meanwhile.
        tokio::time::sleep(WAIT_WITHOUT_ENGINE.min(left)).await;
        engine = crate::engine_link::running(cfg)?;
    }
}

#[derive(Serialize)]
struct TaskDetail {
    task: Task,
    depends_on: Vec<TaskId>,
    jobs: Vec<orch_core::Job>,
    runs: Vec<orch_core::Run>,
    usage: orch_core::run::Usage,
    events: Vec<orch_core::TaskEvent>,
    /// Saved states of its worktree (`refs/orch/archive/<key>/<n>`), with files.
    archives: Vec<orch_git::ArchiveListing>,
}

pub async fn show(cfg: &Config, a: &TaskShowArgs) -> CliResult {
    let store = super::open_store(cfg).await?;
    let task = find(store.as_ref(), &a.task).await?;
    let d = TaskDetail {
        depends_on: store.dependencies(task.id).await?,
        jobs: store.jobs_for_task(task.id).await?,
        runs: store.runs_for_task(task.id).await?,
        usage: store.task_usage(task.id).await?,
        events: store.events(task.id).await?,
        archives: super::archives::of_task(cfg, &task).await?,
        task,
    };
    if a.json {
        print_json(&d)?;
        return Ok(());
    }
    let t = &d.task;
    outln!(
        "task {}  {}  [{}]",
        t.id,
        t.original_work_item_id(),
        t.stage
    );
    outln!("title:   {}", t.title);
    outln!("repo:    {}   branch: {}", t.repo, t.branch);
    if let Some(tid) = t.original_tracker_id() {
        outln!("tracker: {tid}");
    }
    if orch_core::keys::is_tombstoned(&t.work_item_id) {
        outln!(
            "key:     {} released (the task keeps its history; the item can run again as a new task)",
            t.original_work_item_id()
        );
    }
    outln!(
        "created: {}   updated: {}",
        ago(t.created_at),
        ago(t.updated_at)
    );
    if let Some(at) = t.cancel_requested_at {
        outln!("cancel requested: {}", ago(at));
    }
    if let Some(at) = t.cancelled_at {
        outln!("cancelled: {}", ago(at));
    }
    if !d.depends_on.is_empty() {
        let on: Vec<String> = d.depends_on.iter().map(|x| x.to_string()).collect();
        outln!("depends on: {}", on.join(", "));
    }
    outln!(
        "usage:   {} tokens in, {} out, ${:.4}, agents ran {}",
        d.usage.input_tokens,
        d.usage.output_tokens,
        d.usage.cost_usd,
        orch_core::budget::duration_text(d.usage.agent_wall_ms_at(now()))
    );
    if !t.body.is_empty() {
        outln!("\n{}", t.body);
    }
    if !d.jobs.is_empty() {
        outln!("\njobs:");
        let rows: Vec<Vec<String>> = d
            .jobs
            .iter()
            .map(|j| {
                vec![
                    j.id.to_string(),
                    j.agent.to_string(),
                    j.status.to_string(),
                    format!("{}/{}", j.attempts, j.max_attempts),
                    j.last_error
                        .as_deref()
                        .map(|e| clip(e, 60))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        out!(
            "{}",
            table(&["JOB", "AGENT", "STATUS", "ATTEMPTS", "LAST ERROR"], &rows)
        );
    }
    if !d.runs.is_empty() {
        outln!("\nruns:");
        let rows: Vec<Vec<String>> = d
            .runs
            .iter()
            .map(|r| {
                vec![
                    clip(r.run_id.as_str(), 13),
                    r.agent.to_string(),
                    r.outcome
                        .map(|o| o.as_str().to_owned())
                        .unwrap_or_else(|| "running".into()),
                    ago(r.started_at),
                    format!("{}/{}", r.usage.input_tokens, r.usage.output_tokens),
                    format!("${:.4}", r.usage.cost_usd),
                ]
            })
            .collect();
        out!(
            "{}",
            table(
                &["RUN", "AGENT", "OUTCOME", "STARTED", "TOKENS", "COST"],
                &rows
            )
        );
    }
    super::archives::print(&d.archives);
    outln!("\nevents:");
    for e in &d.events {
        let stages = match (e.from_stage, e.to_stage) {
            (Some(a), Some(b)) => format!(" {a} → {b}"),
            (None, Some(b)) => format!(" → {b}"),
            _ => String::new(),
        };
        outln!(
            "  {:>8}  {}{}  by {}  {}",
            ago(e.at),
            e.kind,
            stages,
            e.actor,
            e.message
        );
    }
    Ok(())
}
