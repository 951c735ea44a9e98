//! A run ended (R-4, R-8a): the supervisor's report becomes the task
//! owner's `RunEnded` command, with the worktree measured beforehand. What
//! follows is decided by `orch_core::decide` (through `run_end`); this
//! carries it out. The supervisor only records the job's end: a park (a
//! question, no attempts left, the budget spent) is written here or by the
//! tick, so a task's stage has one writer. A question's job is ended here
//! too, with the park, in the one command.

use super::owner;
use super::view::task_view;
use super::{Pipeline, PipelineResult};
use crate::supervisor::{JobEnd, RunReport};
use orch_core::decide::{Command, Effect, RunEnd, decide};
use orch_core::run_end::{JobEndKind, RunEndStep};

impl Pipeline {
    /// A run ended: its worktree is measured (disk care, `disk.rs`), then
    /// the task's owner does what the run's end calls for.
    pub async fn on_run_report(&self, r: &RunReport) -> PipelineResult<()> {
        let size = if r.end == JobEnd::Cancelled {
            None
        } else {
            self.measure_after_run(r.task_id).await
        };
        let report = Box::new(r.clone());
        self.command(r.task_id, owner::Command::RunEnded { report, size })
            .await
            .map(|_| ())
    }

    /// A run ended, applied by the task's owner.
    pub(super) async fn apply_run_ended(
        &self,
        r: &RunReport,
        size: Option<orch_core::disk::WorktreeSize>,
    ) -> PipelineResult<()> {
        let task = self.task(r.task_id).await?;
        let view = task_view(self.store.as_ref(), &task).await?;
        let command = Command::RunEnded(RunEnd {
            end: match r.end {
                JobEnd::Completed => JobEndKind::Completed,
                JobEnd::Retrying(_) => JobEndKind::Retrying,
                JobEnd::GaveUp => JobEndKind::GaveUp,
                JobEnd::Asked => JobEndKind::Asked,
                JobEnd::Cancelled => JobEndKind::Cancelled,
            },
            agent: r.agent,
            size,
            question: r.question.as_deref(),
            error: r.error.as_deref(),
        });
        let decision = decide(&view, &command, &self.decision_policy(&task.repo));
        for effect in decision.effects {
            let Effect::AfterRun(step) = effect else {
                unreachable!("a run's end decides only the steps after a run: {effect:?}")
            };
            match step {
                RunEndStep::RetireWorktree => {
                    if let Err(e) = self.retire_worktree(&task).await {
                        tracing::warn!(task = %task.id, error = %e, "removing the cancelled task's worktree failed");
                    }
                }
                RunEndStep::Park(why) => {
                    // Disk care must not hold the pipeline up: the next run
                    // measures again.
                    if let Err(e) = self.park(&task, &why).await {
                        tracing::warn!(task = %task.id, error = %e, "parking a worktree over its limit failed");
                    }
                }
                RunEndStep::Question { question, park } => {
                    self.end_on_question(&task, r, &question, park).await?;
                }
                RunEndStep::Tick => self.apply_tick(r.task_id).await?,
            }
        }
        Ok(())
    }

    /// The agent asked a person: its job ends with the question (unless a
    /// STOP or the reaper took it meanwhile), then the task parks on it.
    async fn end_on_question(
        &self,
        task: &orch_core::Task,
        r: &RunReport,
        question: &str,
        park: bool,
    ) -> PipelineResult<()> {
        if !self.store.give_up(r.job_id, &r.run_id, question).await? {
            tracing::info!(task = %task.id, run = %r.run_id, "the asking run's job was taken meanwhile: no park");
            return Ok(());
        }
        if park {
            self.park_on_question(task, question).await?;
        }
        Ok(())
    }
}
