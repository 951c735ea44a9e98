//! `orch task add|list|show`.

use crate::args::{TaskAddArgs, TaskListArgs, TaskShowArgs};
use crate::error::{CliError, CliResult};
use crate::render::{ago, clip, print_json, table};
use orch_config::Config;
use orch_core::{NewTask, Stage, Task, TaskId};
use orch_store::{Store, TaskFilter};
use serde::Serialize;

pub async fn add(cfg: &Config, a: TaskAddArgs) -> CliResult {
    if a.title.trim().is_empty() {
        return Err(CliError::Usage("--title must not be empty".into()));
    }
    if !cfg.repos.is_empty() && cfg.repo(&a.repo).is_none() {
        let known: Vec<&str> = cfg.repos.iter().map(|r| r.name.as_str()).collect();
        return Err(CliError::Usage(format!(
            "unknown repo {:?}; orch.toml defines: {}. Add a [[repos]] entry for it first",
            a.repo,
            known.join(", ")
        )));
    }
    let store = super::open_store(cfg).await?;
    let new = NewTask {
        tracker_id: a.tracker_id,
        work_item_id: a.key,
        repo: a.repo,
        title: a.title.trim().to_owned(),
        body: a.body,
        stage: Stage::Analysis,
        depends_on: a.depends_on.into_iter().map(TaskId).collect(),
    };
    let task = store.create_task(new, "cli").await?;
    if a.json {
        print_json(&task)?;
    } else {
        println!(
            "created task {} ({}) on branch {}",
            task.id, task.work_item_id, task.branch
        );
    }
    Ok(())
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
        println!("no tasks yet; create one with `orch task add --repo REPO --title TITLE`");
    } else {
        let rows: Vec<Vec<String>> = tasks
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.original_work_item_id().to_owned(),
                    t.repo.clone(),
                    t.stage.to_string(),
                    ago(t.updated_at),
                    clip(&t.title, 50),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["ID", "KEY", "REPO", "STAGE", "UPDATED", "TITLE"], &rows)
        );
    }
    Ok(())
}

/// A task by numeric id, or by its (live) work item key.
async fn find(store: &dyn Store, what: &str) -> CliResult<Task> {
    let found = match what.parse::<i64>() {
        Ok(id) => store.get_task(TaskId(id)).await?,
        Err(_) => store.find_live_task_by_work_item(what).await?,
    };
    found.ok_or_else(|| {
        CliError::Runtime(anyhow::anyhow!(
            "no task with id or key {what:?}; `orch task list` shows the tasks"
        ))
    })
}

#[derive(Serialize)]
struct TaskDetail {
    task: Task,
    depends_on: Vec<TaskId>,
    jobs: Vec<orch_core::Job>,
    runs: Vec<orch_core::Run>,
    usage: orch_core::run::Usage,
    events: Vec<orch_core::TaskEvent>,
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
        task,
    };
    if a.json {
        print_json(&d)?;
        return Ok(());
    }
    let t = &d.task;
    println!(
        "task {}  {}  [{}]",
        t.id,
        t.original_work_item_id(),
        t.stage
    );
    println!("title:   {}", t.title);
    println!("repo:    {}   branch: {}", t.repo, t.branch);
    if let Some(tid) = t.original_tracker_id() {
        println!("tracker: {tid}");
    }
    println!(
        "created: {}   updated: {}",
        ago(t.created_at),
        ago(t.updated_at)
    );
    if let Some(at) = t.cancel_requested_at {
        println!("cancel requested: {}", ago(at));
    }
    if let Some(at) = t.cancelled_at {
        println!("cancelled: {}", ago(at));
    }
    if !d.depends_on.is_empty() {
        let on: Vec<String> = d.depends_on.iter().map(|x| x.to_string()).collect();
        println!("depends on: {}", on.join(", "));
    }
    println!(
        "usage:   {} tokens in, {} out, ${:.4}",
        d.usage.input_tokens, d.usage.output_tokens, d.usage.cost_usd
    );
    if !t.body.is_empty() {
        println!("\n{}", t.body);
    }
    if !d.jobs.is_empty() {
        println!("\njobs:");
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
        print!(
            "{}",
            table(&["JOB", "AGENT", "STATUS", "ATTEMPTS", "LAST ERROR"], &rows)
        );
    }
    if !d.runs.is_empty() {
        println!("\nruns:");
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
        print!(
            "{}",
            table(
                &["RUN", "AGENT", "OUTCOME", "STARTED", "TOKENS", "COST"],
                &rows
            )
        );
    }
    println!("\nevents:");
    for e in &d.events {
        let stages = match (e.from_stage, e.to_stage) {
            (Some(a), Some(b)) => format!(" {a} → {b}"),
            (None, Some(b)) => format!(" → {b}"),
            _ => String::new(),
        };
        println!(
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
