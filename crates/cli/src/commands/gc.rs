//! `orch gc`: where the disk under `data_dir` goes, per repo (the mirror
//! with its archives, each task's worktree and the build outputs in it),
//! and with `--apply` the space orch may free without losing work:
//! - ignored build outputs (`cleanup.build_output_globs`) of worktrees
//!   idle for `--idle-hours` (default `cleanup.cleanup_after_hours`): the
//!   engine's own cleanup, on demand;
//! - worktrees of finished tasks (done, cancelled, failed) that are still on
//!   disk, each archived first.
//!
//! Folders git no longer knows are left to `orch serve`'s start-up (which
//! archives and removes them): beside a running engine such a folder may be
//! a worktree being created.
//!
//! Archives are refs in the mirror and are always kept. Safe beside a
//! running engine: it touches only idle worktrees and finished tasks.

use crate::args::GcArgs;
use crate::error::{CliError, CliResult};
use crate::output::{out, outln};
use crate::progress::Progress;
use crate::render::{now, print_json, table};
use orch_config::Config;
use orch_core::disk::WorktreeSize;
use orch_core::{Task, TaskId, Timestamp};
use orch_git::RepoStore;
use orch_store::TaskFilter;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One place that holds disk.
#[derive(Debug, Serialize)]
struct Entry {
    repo: String,
    what: Kind,
    path: PathBuf,
    task: Option<TaskId>,
    stage: Option<orch_core::Stage>,
    size: WorktreeSize,
    /// Ignored build outputs in a worktree (what cleanup would remove).
    build_outputs: u64,
    /// `--apply` frees it: the build outputs of an idle worktree, or the
    /// whole worktree of a finished task.
    freeable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    /// The bare mirror: objects, branches and the archives.
    Mirror,
    Worktree,
}

#[derive(Debug, Default, Serialize)]
struct Freed {
    build_outputs: u64,
    worktrees_removed: Vec<TaskId>,
    failed: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    entries: Vec<Entry>,
    total_bytes: u64,
    freeable_bytes: u64,
    applied: Option<Freed>,
}

pub async fn run(cfg: &Config, a: &GcArgs) -> CliResult {
    let store = super::open_store(cfg).await?;
    let repos = RepoStore::new(cfg.repos_dir());
    let hours = a.idle_hours.unwrap_or(cfg.cleanup.cleanup_after_hours);
    let idle_since = now().minus(Duration::from_secs(hours.saturating_mul(3600)));
    let progress = (!a.json).then(|| Progress::new(Instant::now()));
    let entries = survey(cfg, store.as_ref(), &repos, idle_since, progress.as_ref()).await?;
    let mut report = Report {
        total_bytes: entries.iter().map(|e| e.size.bytes).sum(),
        freeable_bytes: entries.iter().filter(|e| e.freeable).map(freeable).sum(),
        entries,
        applied: None,
    };
    if a.apply {
        let pipeline = super::pipeline(cfg, store.clone(), "cli");
        let mut freed = Freed::default();
        if let Some(p) = &progress {
            p.status("removing build outputs of idle worktrees".into());
        }
        match pipeline.clean_idle_worktrees(idle_since).await {
            Ok(pass) => {
                freed.build_outputs = pass.freed_bytes();
                freed
                    .failed
                    .extend(pass.failed.iter().map(|(t, e)| format!("task {t}: {e}")));
            }
            Err(e) => freed.failed.push(format!("build outputs: {e}")),
        }
        for e in report.entries.iter().filter(|e| e.freeable) {
            let Some(task) = e.task.filter(|_| e.stage.is_some_and(|s| s.is_terminal())) else {
                continue;
            };
            if let Some(p) = &progress {
                p.status(format!(
                    "archiving and removing the worktree of task {task}"
                ));
            }
            match pipeline.retire_finished_worktree(task).await {
                Ok(true) => freed.worktrees_removed.push(task),
                Ok(false) => {}
                Err(err) => freed.failed.push(format!("task {task}: {err}")),
            }
        }
        report.applied = Some(freed);
    }
    if let Some(p) = progress {
        p.finish();
    }
    if a.json {
        print_json(&report)?;
    } else {
        print_report(&report, hours);
    }
    match report.applied.as_ref().map(|f| f.failed.is_empty()) {
        Some(false) => Err(CliError::Runtime(anyhow::anyhow!(
            "some space could not be freed (see above)"
        ))),
        _ => Ok(()),
    }
}

fn freeable(e: &Entry) -> u64 {
    if e.stage.is_some_and(|s| s.is_terminal()) {
        e.size.bytes
    } else {
        e.build_outputs
    }
}

/// Measure every repo's mirror and worktrees, and the build outputs in them.
async fn survey(
    cfg: &Config,
    store: &dyn orch_store::Store,
    repos: &RepoStore,
    idle_since: Timestamp,
    progress: Option<&Progress>,
) -> CliResult<Vec<Entry>> {
    let globs = cfg.cleanup.output_globs();
    let idle: BTreeSet<TaskId> = store
        .idle_worktrees(idle_since)
        .await?
        .into_iter()
        .map(|d| d.task)
        .collect();
    let mut entries = Vec::new();
    for repo in &cfg.repos {
        let name = repo.name.as_str();
        if let Some(p) = progress {
            p.say(&format!("measuring repo {name}"));
        }
        let tasks = store
            .list_tasks(&TaskFilter {
                repo: Some(name.to_owned()),
                ..TaskFilter::default()
            })
            .await?;
        let mirror = repos
            .mirror_path(name)
            .map_err(|e| CliError::Runtime(e.into()))?;
        if mirror.is_dir() {
            entries.push(Entry {
                repo: name.to_owned(),
                what: Kind::Mirror,
                size: measure(&mirror).await,
                path: mirror,
                task: None,
                stage: None,
                build_outputs: 0,
                freeable: false,
            });
        }
        for (path, task) in worktrees_of(repos, name, &tasks).await {
            if let Some(p) = progress {
                p.status(format!("measuring {}", path.display()));
            }
            let size = measure(&path).await;
            let mut build_outputs = 0;
            if let Some(t) = task {
                for rel in repos
                    .build_outputs(name, &t.branch, &globs)
                    .await
                    .unwrap_or_default()
                {
                    build_outputs += measure(&path.join(rel.trim_end_matches('/'))).await.bytes;
                }
            }
            let freeable = task.is_some_and(|t| {
                t.stage.is_terminal() || (idle.contains(&t.id) && build_outputs > 0)
            });
            entries.push(Entry {
                repo: name.to_owned(),
                what: Kind::Worktree,
                path,
                task: task.map(|t| t.id),
                stage: task.map(|t| t.stage),
                size,
                build_outputs,
                freeable,
            });
        }
    }
    Ok(entries)
}

/// The worktree folders of a repo, each with the task it belongs to: the
/// live task on that branch, else the newest (a branch's item may have run
/// several times).
async fn worktrees_of<'t>(
    repos: &RepoStore,
    repo: &str,
    tasks: &'t [Task],
) -> Vec<(PathBuf, Option<&'t Task>)> {
    let mut by_path: BTreeMap<PathBuf, &Task> = BTreeMap::new();
    // Newest first: the first live one wins, else the newest.
    for t in tasks {
        let Ok(p) = repos.worktree_path(repo, &t.branch) else {
            continue;
        };
        match by_path.get(&p) {
            Some(held) if !held.stage.is_terminal() || t.stage.is_terminal() => {}
            _ => {
                by_path.insert(p, t);
            }
        }
    }
    let dir = repos.repos_dir().join("worktrees").join(repo);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Option<&Task>)> = rd
        .flatten()
        .map(|e| {
            let p = e.path();
            let t = by_path.get(&p).copied();
            (p, t)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn measure(path: &Path) -> WorktreeSize {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || orch_git::size::measure(&path, None))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

fn mb(bytes: u64) -> String {
    WorktreeSize {
        bytes,
        complete: true,
    }
    .to_string()
}

fn print_report(r: &Report, hours: u64) {
    if r.entries.is_empty() {
        outln!("no mirrors or worktrees under the data folder");
    } else {
        let rows: Vec<Vec<String>> = r
            .entries
            .iter()
            .map(|e| {
                let what = match e.what {
                    Kind::Mirror => "mirror (with archives)".to_owned(),
                    Kind::Worktree => format!(
                        "worktree {}",
                        e.path.file_name().unwrap_or_default().to_string_lossy()
                    ),
                };
                let outputs = if e.build_outputs > 0 {
                    mb(e.build_outputs)
                } else {
                    String::new()
                };
                vec![
                    e.repo.clone(),
                    what,
                    e.task.map(|t| t.to_string()).unwrap_or_default(),
                    e.stage.map(|s| s.to_string()).unwrap_or_default(),
                    e.size.to_string(),
                    outputs,
                    if e.freeable { "yes" } else { "" }.to_owned(),
                ]
            })
            .collect();
        out!(
            "{}",
            table(
                &[
                    "REPO",
                    "WHAT",
                    "TASK",
                    "STAGE",
                    "SIZE",
                    "BUILD OUTPUTS",
                    "FREEABLE"
                ],
                &rows
            )
        );
    }
    outln!(
        "total {}; freeable {} (build outputs of worktrees idle {hours} h or more, worktrees of finished tasks)",
        mb(r.total_bytes),
        mb(r.freeable_bytes)
    );
    match &r.applied {
        None if r.freeable_bytes > 0 => {
            outln!("run `orch gc --apply` to free it; archives are always kept")
        }
        None => {}
        Some(f) => {
            outln!(
                "freed: build outputs {}, {} finished worktree(s) removed after archiving",
                mb(f.build_outputs),
                f.worktrees_removed.len()
            );
            for e in &f.failed {
                orch_core::note!("could not free: {e}");
            }
        }
    }
}
