//! A task's archives: what `orch task show` lists, and `orch task
//! restore`, which makes a branch from one and pushes it so a person can check
//! it out.

use crate::args::TaskRestoreArgs;
use crate::error::{CliError, CliResult};
use crate::output::{out, outln};
use crate::render::{ago, print_json, table};
use orch_config::Config;
use orch_core::Task;
use orch_git::{ArchiveListing, RepoStore};
use serde::Serialize;

/// The task's archives with their files, oldest first; none when the repo has
/// no mirror or is gone from orch.toml.
pub async fn of_task(cfg: &Config, task: &Task) -> CliResult<Vec<ArchiveListing>> {
    let Some(repo) = cfg.repo(&task.repo) else {
        return Ok(Vec::new());
    };
    RepoStore::new(cfg.repos_dir())
        .archive_listings(
            &task.repo,
            task.original_work_item_id(),
            &repo.default_branch,
        )
        .await
        .map_err(|e| CliError::Runtime(e.into()))
}

/// The archives part of `orch task show`.
pub fn print(listings: &[ArchiveListing]) {
    if listings.is_empty() {
        return;
    }
    outln!("\narchives (restore one with `orch task restore <task> <N>`):");
    let rows: Vec<Vec<String>> = listings
        .iter()
        .map(|l| {
            let a = &l.archive;
            let mut files = l.files.join(", ");
            if l.files_cut {
                files.push_str(", …");
            }
            if files.is_empty() {
                files = "(no changes against the base)".into();
            }
            vec![
                a.number.to_string(),
                a.commit.chars().take(12).collect(),
                ago(a.created_at),
                if a.had_uncommitted {
                    "yes".into()
                } else {
                    "no".into()
                },
                files,
            ]
        })
        .collect();
    out!(
        "{}",
        table(&["N", "COMMIT", "SAVED", "UNCOMMITTED", "FILES"], &rows)
    );
}

#[derive(Serialize)]
struct Restored<'a> {
    task: i64,
    archive: u32,
    branch: &'a str,
    commit: &'a str,
    pushed: bool,
}

/// `orch task restore TASK [N]`: a branch `restore/<key>-<N>` at archive N (the
/// newest by default), pushed to the repo's remote.
pub async fn restore(cfg: &Config, a: &TaskRestoreArgs) -> CliResult {
    let store = super::open_store(cfg).await?;
    let task = super::task::find(store.as_ref(), &a.task).await?;
    let repo = cfg.repo(&task.repo).ok_or_else(|| {
        CliError::Usage(format!(
            "repo {:?} of task {} is no longer in orch.toml",
            task.repo, task.id
        ))
    })?;
    let repos = RepoStore::new(cfg.repos_dir());
    repos
        .ensure_mirror(&task.repo, &cfg.repo_remote(repo))
        .await
        .map_err(|e| CliError::Runtime(e.into()))?;
    let key = task.original_work_item_id();
    let archives = repos
        .list_archives(&task.repo, key)
        .await
        .map_err(|e| CliError::Runtime(e.into()))?;
    let archive = match a.number {
        Some(n) => archives.iter().find(|x| x.number == n).ok_or_else(|| {
            let have: Vec<String> = archives.iter().map(|x| x.number.to_string()).collect();
            CliError::Usage(format!(
                "task {} has no archive {n}; it has: {}",
                task.id,
                if have.is_empty() {
                    "none".to_owned()
                } else {
                    have.join(", ")
                }
            ))
        })?,
        None => archives.last().ok_or_else(|| {
            CliError::Usage(format!(
                "task {} ({key}) has no archive yet: its worktree was never removed",
                task.id
            ))
        })?,
    };
    let branch = repos
        .restore_archive(&task.repo, key, archive.number)
        .await
        .map_err(|e| CliError::Runtime(e.into()))?;
    repos.push_branch(&task.repo, &branch).await.map_err(|e| {
        CliError::Runtime(anyhow::anyhow!(
            "made branch {branch} in orch's mirror of {} but could not push it: {e}",
            task.repo
        ))
    })?;
    if a.json {
        print_json(&Restored {
            task: task.id.0,
            archive: archive.number,
            branch: &branch,
            commit: &archive.commit,
            pushed: true,
        })?;
    } else {
        outln!(
            "restored archive {} of {key} (commit {}) to branch {branch}, pushed to the remote of {}",
            archive.number,
            &archive.commit[..12.min(archive.commit.len())],
            task.repo
        );
        outln!("  check it out:  git fetch origin {branch} && git switch {branch}");
        if archive.had_uncommitted {
            outln!("  its last commit holds the work that was not committed when it was archived");
        }
    }
    Ok(())
}
