//! A run ended (R-4, R-8a): the supervisor's report becomes the task
//! owner's `RunEnded` command, with the worktree measured beforehand.

use super::owner::Command;
use super::{Pipeline, PipelineResult, park_comment, question_comment};
use orch_core::{Stage, TaskId};

impl Pipeline {
    /// A run ended: its worktree is measured (disk care, `disk.rs`), a
    /// merger that gave up (the supervisor parked the task) shows the failed
    /// verify on the forge; then whatever is due happens.
    pub async fn on_run_report(&self, r: &crate::supervisor::RunReport) -> PipelineResult<()> {
        let size = if r.end == crate::supervisor::JobEnd::Cancelled {
            None
        } else {
            self.measure_after_run(r.task_id).await
        };
        let report = Box::new(r.clone());
        self.command(r.task_id, Command::RunEnded { report, size })
            .await
            .map(|_| ())
    }

    /// A run ended, applied by the task's owner.
    pub(super) async fn apply_run_ended(
        &self,
        r: &crate::supervisor::RunReport,
        size: Option<orch_core::disk::WorktreeSize>,
    ) -> PipelineResult<()> {
        if r.end == crate::supervisor::JobEnd::Cancelled {
            self.clear_after_cancel(r.task_id).await?;
        } else if let Some(size) = size
            && let Err(e) = self.park_over_disk_limit(r.task_id, size).await
        {
            // Disk care must not hold the pipeline up: the next run measures again.
            tracing::warn!(task = %r.task_id, error = %e, "parking a worktree over its limit failed");
        }
        let gave_up = r.end == crate::supervisor::JobEnd::GaveUp;
        if gave_up && let Some(task) = self.store.get_task(r.task_id).await? {
            let why = r.error.as_deref().unwrap_or("the agent gave up");
            if r.agent == orch_core::AgentKind::Merger {
                self.report_failed_verify(&task, why).await;
            }
            // The supervisor parked the task (durably, with its comment for
            // the tracker, before this report); the webhooks hear of it and
            // the tracker's writes are delivered here (R-8a).
            if task.stage == Stage::NeedsAttention {
                let note = match &r.question {
                    Some(q) => question_comment(task.id, q),
                    None => park_comment(why),
                };
                self.reflect(&task, &note).await;
            }
        }
        self.apply_tick(r.task_id).await
    }

    /// A run of a cancelled job ended (or never started): if the task was
    /// cancelled, its worktree goes (archived first), as the cancel's reset
    /// did. A run prepared while the STOP ran may have made it again. The
    /// task's owner applies it after the STOP, so the STOP has finished.
    async fn clear_after_cancel(&self, id: TaskId) -> PipelineResult<()> {
        let task = self.task(id).await?;
        if task.stage != Stage::Cancelled {
            return Ok(());
        }
        if let Err(e) = self.retire_worktree(&task).await {
            tracing::warn!(task = %id, error = %e, "removing the cancelled task's worktree failed");
        }
        Ok(())
    }
}
