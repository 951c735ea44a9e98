//! The merge gate's look at CI (issue 16): the repo's required checks on
//! the task's head, read from the forge when the gate decides.
//!
//! The ticker passes over every live task several times a second, so a look
//! is kept for [`CI_LOOK_EVERY`] per task (and per move of the task): a
//! waiting task costs the forge two calls per period, not per pass. A
//! webhook about a check ([`Pipeline::ci_reported`]) forgets the repo's
//! looks and ticks its waiting tasks, so a report acts at once; a lost
//! delivery only delays until the next look.

use super::view::task_view;
use super::{Pipeline, PipelineResult};
use orch_core::ci::{CiVerdict, verdict};
use orch_core::pipeline::TaskView;
use orch_core::{Stage, Task, TaskId, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the merge gate trusts its last look at a task's checks.
pub const CI_LOOK_EVERY: Duration = Duration::from_secs(30);

/// The last look per task: taken when, for which version of the task.
#[derive(Default)]
pub(super) struct CiLooks(Mutex<HashMap<TaskId, Look>>);

struct Look {
    task_updated: Timestamp,
    at: Instant,
    verdict: CiVerdict,
}

impl CiLooks {
    fn fresh(&self, task: &Task) -> Option<CiVerdict> {
        let looks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        looks
            .get(&task.id)
            .filter(|l| l.task_updated == task.updated_at && l.at.elapsed() < CI_LOOK_EVERY)
            .map(|l| l.verdict.clone())
    }

    fn keep(&self, task: &Task, verdict: &CiVerdict) {
        let mut looks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        looks.insert(
            task.id,
            Look {
                task_updated: task.updated_at,
                at: Instant::now(),
                verdict: verdict.clone(),
            },
        );
    }

    fn forget(&self, task: TaskId) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&task);
    }
}

impl Pipeline {
    /// The task's view with what the forge says of its required checks
    /// where the merge gate needs them (see [`TaskView::ci`]).
    pub(super) async fn decision_view(&self, task: &Task) -> PipelineResult<TaskView> {
        let mut view = task_view(self.store.as_ref(), task).await?;
        let required = self
            .cfg
            .repo(&task.repo)
            .map(|r| r.required_checks.as_slice())
            .unwrap_or_default();
        if task.stage == Stage::Merge
            && !required.is_empty()
            && !view.holds_lease
            && !view.merge_initiated
            && !view.has_active_job
        {
            let verdict = match self.ci_looks.fresh(task) {
                Some(v) => v,
                None => {
                    let v = self.ci_verdict(task, required).await;
                    self.ci_looks.keep(task, &v);
                    v
                }
            };
            view.ci = Some(verdict);
        } else {
            self.ci_looks.forget(task.id);
        }
        Ok(view)
    }

    /// The verdict on the head the forge has for the task's branch. A forge
    /// that cannot be asked makes the gate wait (it asks again at the next
    /// look), never merge.
    async fn ci_verdict(&self, task: &Task, required: &[String]) -> CiVerdict {
        let head = match self.repos.remote_branch_sha(&task.repo, &task.branch).await {
            Ok(Some(sha)) => sha,
            // Never pushed (the development's push failed): push it now, so
            // CI can run on it.
            Ok(None) => match self.forge.push_branch(&task.repo, &task.branch).await {
                Ok(sha) => sha,
                Err(e) => {
                    return CiVerdict::Pending {
                        waiting: vec![format!("the branch could not be pushed for CI ({e})")],
                    };
                }
            },
            Err(e) => {
                return CiVerdict::Pending {
                    waiting: vec![format!("the branch's head on the forge is unknown ({e})")],
                };
            }
        };
        match self.forge.checks(&task.repo, &head).await {
            Ok(checks) => verdict(required, &checks),
            Err(e) => CiVerdict::Pending {
                waiting: vec![format!("the forge's checks could not be read ({e})")],
            },
        }
    }

    /// The forge reported a check of a commit of `repo` (a webhook): every
    /// task of the repo in merge looks at its checks again now. Returns how
    /// many were ticked.
    pub async fn ci_reported(&self, repo: &str) -> PipelineResult<usize> {
        let filter = orch_store::TaskFilter {
            repo: Some(repo.to_owned()),
            stage: Some(Stage::Merge),
            limit: None,
        };
        let tasks = self.store.list_tasks(&filter).await?;
        for task in &tasks {
            self.ci_looks.forget(task.id);
            self.tick(task.id).await?;
        }
        Ok(tasks.len())
    }
}
