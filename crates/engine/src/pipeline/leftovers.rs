//! Crash leftovers in task worktrees: a stale `index.lock`, a checkout killed
//! before it finished and a merge of the base killed midway
//! (`orch_git::RepoStore::repair_worktree` says how each is recognised). They
//! are cleared at start-up for every live task and again before each of
//! orch's git steps in a worktree (the run's preparation, the leftover commit,
//! the merge step), and every repair is an event on the task.

use super::Pipeline;
use orch_core::EventKind;
use orch_core::{EventInput, Task};
use orch_git::{RepoStore, Worktree};
use orch_store::Store;

/// How long a step waits for a process still working in the worktree (a
/// git of an orch killed a moment ago, finishing a checkout) before it
/// goes on without the repair.
pub(crate) const BUSY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Clear what a killed git left in the task's worktree and log it on the
/// task, after waiting up to `patience` for a process still working there.
/// Returns who still works there when the wait ran out (`None`: the worktree
/// is free). A failure is logged and otherwise ignored: the git step that
/// follows fails with git's own words if the leftover is still in its way.
pub(crate) async fn repair_worktree(
    store: &dyn Store,
    repos: &RepoStore,
    task: &Task,
    wt: &Worktree,
    actor: &str,
    patience: std::time::Duration,
) -> Option<String> {
    let repair = match repos.repair_worktree_patiently(wt, patience).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(task = %task.id, error = %e, "checking the worktree for crash leftovers failed");
            return None;
        }
    };
    let mut events = Vec::new();
    for lock in &repair.removed_locks {
        events.push(EventInput::new(
            actor,
            EventKind::StaleLockRemoved,
            format!(
                "removed {}: a git process that no longer runs left it (orch or its git was killed)",
                lock.display()
            ),
        ));
    }
    if let Some(head) = &repair.finished_checkout {
        events.push(EventInput::new(
            actor,
            EventKind::CheckoutFinished,
            format!(
                "the worktree's checkout was killed before it finished; its files were written from {head}"
            ),
        ));
    }
    if let Some(head) = &repair.undone_merge {
        events.push(EventInput::new(
            actor,
            EventKind::MergeUndone,
            format!(
                "a merge of the base into {} was killed midway; the worktree is back at {head} and the merge runs again",
                task.branch
            ),
        ));
    }
    if let Some(who) = &repair.busy {
        tracing::warn!(task = %task.id, holder = %who, "crash leftovers kept: a live process still works in the worktree");
    }
    for e in events {
        if let Err(err) = store.append_event(task.id, e).await {
            tracing::warn!(task = %task.id, error = %err, "logging a worktree repair failed");
        }
    }
    repair.busy
}

impl Pipeline {
    /// [`repair_worktree`] as this pipeline's actor, waiting for a process
    /// still working in the worktree ([`BUSY_PATIENCE`]).
    pub(crate) async fn repair_worktree(&self, task: &Task, wt: &Worktree) -> Option<String> {
        repair_worktree(
            self.store.as_ref(),
            &self.repos,
            task,
            wt,
            &self.actor,
            BUSY_PATIENCE,
        )
        .await
    }

    /// At start-up, before anything runs: clear the crash leftovers in the
    /// worktree of every live task. Returns how many worktrees were looked at.
    pub async fn recover_worktrees(&self) -> super::PipelineResult<usize> {
        let tasks = self
            .store
            .list_tasks(&orch_store::TaskFilter::default())
            .await?;
        let mut n = 0;
        for task in tasks.into_iter().filter(|t| !t.stage.is_terminal()) {
            let Ok(path) = self.repos.worktree_path(&task.repo, &task.branch) else {
                continue;
            };
            if !path.is_dir() {
                continue;
            }
            let wt = Worktree {
                repo: task.repo.clone(),
                path,
                branch: task.branch.clone(),
                created: false,
            };
            // At start-up nothing waits: an agent of the orch before may
            // still run in a worktree until recovery has dealt with it.
            repair_worktree(
                self.store.as_ref(),
                &self.repos,
                &task,
                &wt,
                &self.actor,
                std::time::Duration::ZERO,
            )
            .await;
            n += 1;
        }
        Ok(n)
    }
}
