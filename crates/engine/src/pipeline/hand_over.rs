//! A task's branch handed from node to node through the remote (issue 11).
//!
//! On a store several nodes share, each of a task's runs may land on
//! another machine, with a worktree of its own. The remote is what the
//! nodes share, so:
//! - a run that succeeded pushes its work (orch commits what an analyst or
//!   a developer left uncommitted) before its job counts as done ([`push_run_work`], called
//!   by the supervisor of the node that ran it): whichever node takes the
//!   task's next step finds the work there;
//! - a node brings its copy of the branch up to the remote's before it
//!   starts a run in it or pushes it ([`catch_up`]); before a run it skips
//!   that fetch when the task's last successful run was its own (it pushed
//!   that work from this very copy, [`last_work_was_here`]).
//!
//! With one node (SQLite) neither happens: the worktree stays on the one
//! machine, and the branch is pushed when the pipeline hands it to people
//! (after the analysis and after the development, `Pipeline::step`).

use orch_core::run::RunOutcome;
use orch_core::{AgentKind, Job, Task};
use orch_git::{CatchUp, RepoStore};
use orch_store::Store;

use super::Pipeline;

impl Pipeline {
    /// Push the task's branch. On a shared store this node's copy first
    /// catches up with the remote's: another node may have pushed the
    /// task's latest work, and this node may not even have the branch.
    pub(crate) async fn push_task_branch(&self, task: &Task) -> crate::ports::PortResult<String> {
        self.catch_up_if_shared(task).await;
        self.forge.push_branch(&task.repo, &task.branch).await
    }

    /// On a shared store, bring this node's copy of the task's branch (and
    /// its worktree) up to the remote's ([`catch_up`]). A failure is
    /// logged: the push that follows is then refused and says why.
    pub(crate) async fn catch_up_if_shared(&self, task: &Task) {
        if self.cfg.store_is_shared()
            && let Err(e) = catch_up(&self.repos, task).await
        {
            tracing::warn!(task = %task.id, error = %e, "this node's copy of the branch may be behind");
        }
    }
}

/// Bring the task's local branch (and its worktree) to the remote's tip,
/// unless this node's copy is ahead. An error says what failed.
pub(crate) async fn catch_up(repos: &RepoStore, task: &Task) -> Result<CatchUp, String> {
    let caught = repos
        .catch_up_with_remote(&task.repo, &task.branch)
        .await
        .map_err(|e| format!("catching up with the remote's {}: {e}", task.branch))?;
    if let CatchUp::Replaced { kept, to } = &caught {
        tracing::warn!(
            task = %task.id,
            branch = %task.branch,
            %kept,
            %to,
            "this node's copy of the branch went apart from the remote's (a run lost with its node was done again elsewhere); the remote's is taken"
        );
    }
    Ok(caught)
}

/// Whether the task's last successful run (the last that handed work over)
/// was one of this node's, the node that claimed `job`: then this node's
/// copy of the branch is the one that was pushed. A store that cannot be
/// read says no (the fetch is made).
pub(crate) async fn last_work_was_here(store: &dyn Store, task: &Task, job: &Job) -> bool {
    let Some(me) = &job.worker_id else {
        return false;
    };
    let Ok(runs) = store.runs_for_task(task.id).await else {
        return false;
    };
    runs.iter()
        .filter(|r| r.outcome == Some(RunOutcome::Succeeded) && r.agent != AgentKind::Deployer)
        .max_by_key(|r| r.finished_at)
        .is_some_and(|r| r.worker_id == *me)
}

/// Push the task's branch after a successful run of `agent` (first
/// committing what an analyst or developer left uncommitted), so that its
/// work leaves this machine.
/// Runs that do not work on the branch (the deployer's) have nothing to
/// hand over; nor has a task with no worktree here.
pub(crate) async fn push_run_work(
    repos: &RepoStore,
    task: &Task,
    agent: AgentKind,
    base: &str,
) -> Result<(), String> {
    if agent == AgentKind::Deployer {
        return Ok(());
    }
    let path = repos
        .worktree_path(&task.repo, &task.branch)
        .map_err(|e| e.to_string())?;
    if !path.exists() {
        return Ok(());
    }
    let wt = repos
        .create_or_reuse_worktree(&task.repo, &task.branch, base)
        .await
        .map_err(|e| format!("worktree: {e}"))?;
    // As on one node: orch commits what the analyst and the developer
    // leave (their handovers, `Pipeline::step`); a reviewer's or a
    // merger's leftovers (notes, verify's outputs) are not the task's work.
    if matches!(agent, AgentKind::Analyst | AgentKind::Developer) {
        let msg = format!(
            "{}: uncommitted work left by the {agent}",
            task.original_work_item_id()
        );
        repos
            .commit_all(&wt, &msg)
            .await
            .map_err(|e| format!("committing the {agent}'s work: {e}"))?;
    }
    repos
        .push_branch(&task.repo, &task.branch)
        .await
        .map_err(|e| format!("pushing {}: {e}", task.branch))?;
    Ok(())
}
