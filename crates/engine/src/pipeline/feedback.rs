//! What the forge says about a task's head, for the decisions that need it
//! (issue 16): the repo's required CI checks and people's reviews on the
//! pull request, read from the forge when the gate decides — the merge gate
//! before it takes the lease, and a review that asked for changes under
//! `review.human_approval = "enough"`.
//!
//! The ticker passes over every live task several times a second, so a look
//! is kept for [`LOOK_EVERY`] per task (and per move of the task): a waiting
//! task costs the forge a few calls per period, not per pass. A webhook
//! about a check or a review ([`Pipeline::forge_reported`]) forgets the
//! repo's looks and ticks its tasks, so a report acts at once; a lost
//! delivery only delays until the next look.

use super::view::task_view;
use super::{Pipeline, PipelineResult};
use orch_config::ForgeKind;
use orch_core::ci::{CiVerdict, verdict};
use orch_core::people::{HumanApproval, PeopleSay, people_say};
use orch_core::pipeline::{ReviewOutcome, TaskView};
use orch_core::{AgentKind, JobStatus, Stage, Task, TaskId, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a decision trusts its last look at a task's head on the forge.
pub const LOOK_EVERY: Duration = Duration::from_secs(30);

/// What one look found.
#[derive(Clone)]
struct Found {
    ci: Option<CiVerdict>,
    people: Option<PeopleSay>,
}

/// The last look per task: taken when, for which version of the task.
#[derive(Default)]
pub(super) struct Looks(Mutex<HashMap<TaskId, Look>>);

struct Look {
    task_updated: Timestamp,
    at: Instant,
    found: Found,
}

impl Looks {
    fn fresh(&self, task: &Task) -> Option<Found> {
        let looks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        looks
            .get(&task.id)
            .filter(|l| l.task_updated == task.updated_at && l.at.elapsed() < LOOK_EVERY)
            .map(|l| l.found.clone())
    }

    fn keep(&self, task: &Task, found: &Found) {
        let mut looks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        looks.insert(
            task.id,
            Look {
                task_updated: task.updated_at,
                at: Instant::now(),
                found: found.clone(),
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

/// What a decision on `task` needs from the forge, given its view.
struct Needs {
    ci: bool,
    people: bool,
}

impl Pipeline {
    /// The task's view with what the forge says of its head where a
    /// decision needs it (see [`TaskView::ci`], [`TaskView::people`]).
    pub(super) async fn decision_view(&self, task: &Task) -> PipelineResult<TaskView> {
        let mut view = task_view(self.store.as_ref(), task).await?;
        let needs = self.needs(task, &view);
        if !needs.ci && !needs.people {
            self.looks.forget(task.id);
            return Ok(view);
        }
        let found = match self.looks.fresh(task) {
            Some(f) => f,
            None => {
                let f = self.look(task, &needs).await;
                self.looks.keep(task, &f);
                f
            }
        };
        view.ci = found.ci;
        view.people = found.people;
        Ok(view)
    }

    fn needs(&self, task: &Task, view: &TaskView) -> Needs {
        let repo = self.cfg.repo(&task.repo);
        // The local forge has no pull requests, hence no reviews, and no
        // CI; any other forge's protection of the base may require checks.
        let has_prs = self.cfg.forge.kind != ForgeKind::Local;
        let required = has_prs || repo.is_some_and(|r| !r.required_checks.is_empty());
        let at_merge_gate = task.stage == Stage::Merge
            && !view.holds_lease
            && !view.merge_initiated
            && !view.has_active_job;
        let review_overruled = task.stage == Stage::Review
            && self.cfg.review.human_approval == HumanApproval::Enough
            && !view.has_active_job
            && view.stage_job.as_ref().is_some_and(|j| {
                j.agent == AgentKind::Reviewer
                    && j.status == JobStatus::Succeeded
                    && matches!(j.review, Some(ReviewOutcome::ChangesRequested(_)))
            });
        Needs {
            ci: at_merge_gate && required,
            people: has_prs && (at_merge_gate || review_overruled),
        }
    }

    /// One look at the head the forge has for the task's branch. A forge
    /// that cannot be asked makes CI wait and says nothing of people (never
    /// a merge past an unknown result, never a made-up approval).
    async fn look(&self, task: &Task, needs: &Needs) -> Found {
        let pending = |why: String| CiVerdict::Pending { waiting: vec![why] };
        let head = match self.repos.remote_branch_sha(&task.repo, &task.branch).await {
            Ok(Some(sha)) => Ok(sha),
            // Never pushed (the development's push failed): push it now, so
            // CI can run on it and people can review it.
            Ok(None) => self
                .push_task_branch(task)
                .await
                .map_err(|e| format!("the branch could not be pushed ({e})")),
            Err(e) => Err(format!("the branch's head on the forge is unknown ({e})")),
        };
        let head = match head {
            Ok(h) => h,
            Err(why) => {
                return Found {
                    ci: needs.ci.then(|| pending(why)),
                    people: needs.people.then(PeopleSay::default),
                };
            }
        };
        let ci = if needs.ci {
            Some(self.ci_verdict(task, &head).await)
        } else {
            None
        };
        let people = if needs.people {
            let base = self.base_branch(&task.repo);
            match self.forge.reviews(&task.repo, &task.branch, &base).await {
                Ok(reviews) => Some(people_say(&reviews, &head)),
                Err(e) => {
                    tracing::warn!(task = %task.id, error = %e, "reading the pull request's reviews failed; asked again at the next look");
                    Some(PeopleSay::default())
                }
            }
        } else {
            None
        };
        Found { ci, people }
    }

    /// The required checks of the head (the repo's `required_checks` and
    /// what the forge's protection of the base requires), decided. A forge
    /// that cannot be asked holds the merge.
    async fn ci_verdict(&self, task: &Task, head: &str) -> CiVerdict {
        let pending = |why: String| CiVerdict::Pending { waiting: vec![why] };
        let configured = self
            .cfg
            .repo(&task.repo)
            .map(|r| r.required_checks.clone())
            .unwrap_or_default();
        let base = self.base_branch(&task.repo);
        let protected = match self.forge.required_checks(&task.repo, &base).await {
            Ok(p) => p,
            Err(e) => {
                return pending(format!(
                    "the protection of {base} could not be read from the forge ({e})"
                ));
            }
        };
        let required = orch_core::ci::required(&configured, &protected);
        if required.is_empty() {
            return CiVerdict::Passed;
        }
        match self.forge.checks(&task.repo, head).await {
            Ok(checks) => verdict(&required, &checks),
            Err(e) => pending(format!("the forge's checks could not be read ({e})")),
        }
    }

    /// The forge reported a check or a review on `repo` (a webhook): every
    /// task of the repo in review or merge looks again now. Returns how many
    /// were ticked.
    pub async fn forge_reported(&self, repo: &str) -> PipelineResult<usize> {
        let mut ticked = 0;
        for stage in [Stage::Review, Stage::Merge] {
            let filter = orch_store::TaskFilter {
                repo: Some(repo.to_owned()),
                stage: Some(stage),
                limit: None,
            };
            for task in self.store.list_tasks(&filter).await? {
                self.looks.forget(task.id);
                self.tick(task.id).await?;
                ticked += 1;
            }
        }
        Ok(ticked)
    }
}
