//! Disk care of the task worktrees (issue 12): the size after each run,
//! the park over `limits.worktree_mb`, and the removal of ignored build
//! outputs from worktrees idle for `cleanup.cleanup_after_hours`.

use super::{Pipeline, PipelineResult};
use orch_core::EventKind;
use orch_core::disk::WorktreeSize;
use orch_core::{Stage, TaskId, Timestamp};
use orch_git::OutputCleanup;

/// What one pass of [`Pipeline::clean_idle_worktrees`] did, per task.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CleanupPass {
    pub cleaned: Vec<(TaskId, OutputCleanup)>,
    /// Worktrees that could not be cleaned, with why (logged too).
    pub failed: Vec<(TaskId, String)>,
}

impl CleanupPass {
    pub fn freed_bytes(&self) -> u64 {
        self.cleaned.iter().map(|(_, c)| c.freed_bytes).sum()
    }
}

impl Pipeline {
    /// Measure a task's worktree (capped: see `orch_git::size`), off the
    /// async threads. `None`: the task has no worktree.
    pub async fn worktree_size(
        &self,
        repo: &str,
        branch: &str,
        cap_bytes: Option<u64>,
    ) -> Option<WorktreeSize> {
        let path = self.repos.worktree_path(repo, branch).ok()?;
        let measured =
            tokio::task::spawn_blocking(move || orch_git::size::measure(&path, cap_bytes)).await;
        match measured {
            Ok(Ok(size)) => Some(size),
            Ok(Err(_)) => None,
            Err(e) => {
                tracing::warn!(repo, branch, error = %e, "measuring a worktree failed");
                None
            }
        }
    }

    /// A run of the task ended: record its worktree's size, and park the
    /// task when it is over `limits.worktree_mb` (with the figure). The walk
    /// stops just past the limit, so a huge worktree costs what the limit does.
    pub(crate) async fn measure_after_run(&self, id: TaskId) -> PipelineResult<()> {
        let _g = self.lock(id).await;
        let task = self.task(id).await?;
        if task.stage.is_terminal() {
            return Ok(());
        }
        let limit = self.cfg.limits.worktree_mb;
        let cap = limit.map(|mb| mb.saturating_mul(orch_core::disk::MIB));
        let Some(size) = self.worktree_size(&task.repo, &task.branch, cap).await else {
            return Ok(());
        };
        self.store.record_worktree_size(id, size).await?;
        // Not in the merge or deploy stages: their steps hold the merge
        // lease and may be past the point of no return (a deploy's phase
        // B); the next agent stage's run parks the task instead.
        let parkable = !matches!(
            task.stage,
            Stage::NeedsAttention | Stage::Merge | Stage::Deploy
        );
        if parkable && let Some(why) = size.over_limit(limit) {
            self.park(&task, &why).await?;
        }
        Ok(())
    }

    /// Remove the ignored build outputs (`cleanup.build_output_globs`) of
    /// every worktree whose task has had no run since `idle_since`, has
    /// none queued or running, and was not cleaned since its last run. Each
    /// cleanup is logged on its task. Errors of one worktree do not stop
    /// the others.
    pub async fn clean_idle_worktrees(&self, idle_since: Timestamp) -> PipelineResult<CleanupPass> {
        let globs = self.cfg.cleanup.output_globs();
        let mut pass = CleanupPass::default();
        for wt in self.store.idle_worktrees(idle_since).await? {
            let _g = self.lock(wt.task).await;
            // A job queued since the listing: its agent may be building.
            let busy = self
                .store
                .jobs_for_task(wt.task)
                .await?
                .iter()
                .any(|j| !j.status.is_terminal());
            // Another node's worktree (several engines share a PostgreSQL
            // store, each with its own data folder): not ours to clean or
            // to mark cleaned.
            let here = self
                .repos
                .worktree_path(&wt.repo, &wt.branch)
                .is_ok_and(|p| p.is_dir());
            if busy || !here {
                continue;
            }
            let cleanup = match self
                .repos
                .clean_build_outputs(&wt.repo, &wt.branch, &globs)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(task = %wt.task, error = %e, "removing build outputs failed");
                    pass.failed.push((wt.task, e.to_string()));
                    continue;
                }
            };
            let size = self
                .worktree_size(&wt.repo, &wt.branch, None)
                .await
                .unwrap_or_default();
            self.store
                .record_worktree_cleanup(wt.task, cleanup.freed_bytes, size)
                .await?;
            if !cleanup.removed.is_empty() {
                let freed = WorktreeSize {
                    bytes: cleanup.freed_bytes,
                    complete: true,
                };
                let paths: Vec<&str> = cleanup.removed.iter().map(|r| r.path.as_str()).collect();
                let text = format!(
                    "removed ignored build outputs of the idle worktree ({}): {freed} freed, {size} left",
                    paths.join(", ")
                );
                let _ = self
                    .store
                    .append_event(wt.task, self.event(EventKind::BuildOutputsRemoved, text))
                    .await;
            }
            pass.cleaned.push((wt.task, cleanup));
        }
        Ok(pass)
    }

    /// Remove the worktree a terminal task left behind (a removal that
    /// failed when it finished), its work archived first. `false`:
    /// the task is not terminal, and nothing was touched.
    pub async fn retire_finished_worktree(&self, id: TaskId) -> PipelineResult<bool> {
        let _g = self.lock(id).await;
        let task = self.task(id).await?;
        if !task.stage.is_terminal() {
            return Ok(false);
        }
        self.retire_worktree(&task)
            .await
            .map_err(|e| super::PipelineError::Port(e.into()))?;
        Ok(true)
    }
}
