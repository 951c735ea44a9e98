//! Disk care of the task worktrees (issue 12): the size after each run,
//! the park over `limits.worktree_mb`, and the removal of ignored build
//! outputs from worktrees idle for `cleanup.cleanup_after_hours`.

use super::owner::{Command, Outcome};
use super::{Pipeline, PipelineResult};
use orch_core::EventKind;
use orch_core::disk::WorktreeSize;
use orch_core::{TaskId, Timestamp};
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

    /// A run of the task ended: measure its worktree, off the task's owner
    /// (a walk of a big worktree must not hold up a STOP). With
    /// `limits.worktree_mb` set the walk stops just past the limit, so a
    /// huge worktree costs what the limit does, and its size goes to the
    /// owner with the run's report (which parks a task over the limit).
    /// Without a limit nothing depends on the figure: it is measured and
    /// recorded in the background, and the next stage starts at once.
    pub(crate) async fn measure_after_run(&self, id: TaskId) -> Option<WorktreeSize> {
        let task = match self.store.get_task(id).await {
            Ok(Some(t)) if !t.stage.is_terminal() => t,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "measuring the worktree: reading the task failed");
                return None;
            }
        };
        let Some(limit) = self.cfg.limits.worktree_mb else {
            if let Some(me) = self.me.upgrade() {
                tokio::spawn(async move {
                    if let Some(size) = me.worktree_size(&task.repo, &task.branch, None).await
                        && let Err(e) = me.store.record_worktree_size(id, size).await
                    {
                        tracing::warn!(task = %id, error = %e, "recording the worktree's size failed");
                    }
                });
            }
            return None;
        };
        let cap = limit.saturating_mul(orch_core::disk::MIB);
        let size = self
            .worktree_size(&task.repo, &task.branch, Some(cap))
            .await?;
        if let Err(e) = self.store.record_worktree_size(id, size).await {
            tracing::warn!(task = %id, error = %e, "recording the worktree's size failed");
        }
        Some(size)
    }

    /// Remove the ignored build outputs (`cleanup.build_output_globs`) of
    /// every worktree whose task has had no run since `idle_since`, has
    /// none queued or running, and was not cleaned since its last run. Each
    /// cleanup is logged on its task, by the task's owner. Errors of one
    /// worktree do not stop the others.
    pub async fn clean_idle_worktrees(&self, idle_since: Timestamp) -> PipelineResult<CleanupPass> {
        let globs = self.cfg.cleanup.output_globs();
        let mut pass = CleanupPass::default();
        for wt in self.store.idle_worktrees(idle_since).await? {
            let command = Command::CleanBuildOutputs {
                globs: globs.clone(),
            };
            match self.command(wt.task, command).await? {
                Outcome::Cleaned(one) => {
                    pass.cleaned.extend(one.cleaned);
                    pass.failed.extend(one.failed);
                }
                other => return Err(super::unexpected("clean_build_outputs", other)),
            }
        }
        Ok(pass)
    }

    /// One idle worktree's build outputs removed, by its task's owner.
    pub(super) async fn apply_clean_build_outputs(
        &self,
        id: TaskId,
        globs: &[orch_core::disk::OutputGlob],
    ) -> PipelineResult<CleanupPass> {
        let mut pass = CleanupPass::default();
        let wt = self.task(id).await?;
        // A job queued since the listing: its agent may be building.
        let busy = self
            .store
            .jobs_for_task(id)
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
            return Ok(pass);
        }
        let cleanup = match self
            .repos
            .clean_build_outputs(&wt.repo, &wt.branch, globs)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "removing build outputs failed");
                pass.failed.push((id, e.to_string()));
                return Ok(pass);
            }
        };
        let size = self
            .worktree_size(&wt.repo, &wt.branch, None)
            .await
            .unwrap_or_default();
        self.store
            .record_worktree_cleanup(id, cleanup.freed_bytes, size)
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
                .append_event(id, self.event(EventKind::BuildOutputsRemoved, text))
                .await;
        }
        pass.cleaned.push((id, cleanup));
        Ok(pass)
    }

    /// Remove the worktree a terminal task left behind (a removal that
    /// failed when it finished), its work archived first. `false`:
    /// the task is not terminal, and nothing was touched.
    pub async fn retire_finished_worktree(&self, id: TaskId) -> PipelineResult<bool> {
        match self.command(id, Command::RetireFinishedWorktree).await? {
            Outcome::Acted(a) => Ok(a),
            other => Err(super::unexpected("retire_finished_worktree", other)),
        }
    }

    /// The leftover worktree removed, by the task's owner.
    pub(super) async fn apply_retire_finished_worktree(&self, id: TaskId) -> PipelineResult<bool> {
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
