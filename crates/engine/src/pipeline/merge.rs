//! The merge gate's irreversible step and the deploy finalizer.
//!
//! Both run under an INITIATED marker written before the step, so a restart
//! finishes the step or proves it done, and never runs it twice: the merge is
//! a fast-forward of the base that is conditional on the base still being where
//! it was, and the marker records the verified head and that base.
//!
//! The merge step is bounded (`merge.max_attempts`), because it runs while the
//! task holds its repo's merge lease and every other task of the repo waits:
//! - a refusal the forge will repeat (branch protection, a bad remote or
//!   credentials: [`Failure::Permanent`]) parks the task at once with the
//!   forge's words, and the lease is released;
//! - a failure that may pass (an outage, a timeout: [`Failure::Transient`]) is
//!   tried again after the backoff of `[queue.retry]`, and a base that moved
//!   sends the branch back to the merger to merge it in and verify again;
//! - after `max_attempts` failed attempts of either kind the task parks the
//!   same way. Each attempt is an event on the task (`merge_failed`,
//!   `merge_retry`), so the count and the backoff survive a restart.

use super::lease::check_lease;
use super::{Pipeline, PipelineError, PipelineResult};
use crate::ports::{Failure, MergeOutcome, PortError};
use orch_core::EventKind;
use orch_core::pipeline::{DeployPhase, JobSpec};
use orch_core::{AgentKind, Stage, Task, TaskEvent, TaskId};
use orch_store::{MarkerState, MarkerStep, MergeLeaseProof, StoreError};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a merge marker records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MergeDetail {
    head: String,
    base: String,
    base_sha: String,
}

/// Why a merge attempt stopped short.
enum Stop {
    /// The forge (or git beneath it) failed or refused: an attempt, classified.
    Forge(PortError),
    /// orch's own store failed: the tick fails and runs again.
    Pipeline(PipelineError),
}

impl From<PortError> for Stop {
    fn from(e: PortError) -> Stop {
        Stop::Forge(e)
    }
}

impl From<orch_git::GitError> for Stop {
    fn from(e: orch_git::GitError) -> Stop {
        Stop::Forge(e.into())
    }
}

impl From<PipelineError> for Stop {
    fn from(e: PipelineError) -> Stop {
        Stop::Pipeline(e)
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Stop {
        Stop::Pipeline(e.into())
    }
}

impl Pipeline {
    /// The merger's verify passed on the current head: push it and merge it.
    pub(crate) async fn merge(
        &self,
        task: &Task,
        lease: &MergeLeaseProof,
    ) -> PipelineResult<String> {
        check_lease(lease, task)?;
        if let Some(wait) = self.merge_backing_off(task).await? {
            return Ok(wait);
        }
        let r = self.try_merge(task, lease).await;
        self.merge_attempt_ended(task, r).await
    }

    async fn try_merge(&self, task: &Task, lease: &MergeLeaseProof) -> Result<String, Stop> {
        let base = self.base_branch(&task.repo);
        let wt = self
            .repos
            .create_or_reuse_worktree(&task.repo, &task.branch, &base)
            .await?;
        self.repair_worktree(task, &wt).await;
        // The merger may have run on another node (it pushed its head).
        self.catch_up_if_shared(task).await;
        let head = self.repos.head_sha(&wt).await?;
        let pushed = self.forge.push_branch(&task.repo, &task.branch).await?;
        if pushed != head {
            return Ok(self
                .merge_stale(task, "the pushed head is not the verified one")
                .await?);
        }
        // The merger's verify passed on this head; the forge shows it.
        self.show_verify(task, &head, true, "orch verify passed")
            .await;
        let Some(base_sha) = self.forge.base_head(&task.repo, &base).await? else {
            return Err(PortError::not_found(format!(
                "the remote has no branch {base}; push it, or set the repo's default_branch"
            ))
            .into());
        };
        if self.repos.base_holds(&task.repo, &base_sha, &head).await? == Some(true)
            && !self.merge_completed(task, &head).await?
        {
            return self.nothing_to_merge(task, &wt, &head, &base).await;
        }
        let detail = MergeDetail {
            head: head.clone(),
            base: base.clone(),
            base_sha,
        };
        let marker = self
            .store
            .write_marker(
                task.id,
                &task.repo,
                MarkerStep::Merge,
                &serde_json::to_string(&detail).unwrap_or_default(),
            )
            .await?;
        self.store
            .append_event(
                task.id,
                self.event(
                    EventKind::MergeInitiated,
                    format!("merging {head} into {base}"),
                ),
            )
            .await?;
        self.try_finish_merge(task, marker.id, &detail, lease).await
    }

    /// Whether a merge of `head` for this task finished before (a crash came
    /// after the merge's marker was completed and before the stage moved).
    async fn merge_completed(&self, task: &Task, head: &str) -> Result<bool, Stop> {
        Ok(self.store.task_markers(task.id).await?.iter().any(|m| {
            m.step == MarkerStep::Merge
                && m.state == MarkerState::Completed
                && serde_json::from_str::<MergeDetail>(&m.detail).is_ok_and(|d| d.head == head)
        }))
    }

    /// The branch's head is already in the base, and no merge of it was
    /// done: the task's branch brings nothing, so "merged" would be false.
    /// The task parks for a person, who finds its worktree as it was; work
    /// left there uncommitted (its commit failed at a handover, see the
    /// task's `commit_failed` events) is named, never merged unreviewed.
    async fn nothing_to_merge(
        &self,
        task: &Task,
        wt: &orch_git::Worktree,
        head: &str,
        base: &str,
    ) -> Result<String, Stop> {
        let left = self.repos.uncommitted(wt).await?;
        let worktree = if left.is_empty() {
            String::new()
        } else {
            const SHOWN: usize = 5;
            let more = left.len().saturating_sub(SHOWN);
            let mut names = left
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if more > 0 {
                names.push_str(&format!(" and {more} more"));
            }
            format!(
                "; its worktree holds work no commit has ({names}): commit what should be merged, then resume"
            )
        };
        Ok(self
            .give_up_merge(
                task,
                &format!(
                    "nothing to merge: the branch's head {} is already in {base}, so the task brings no change of its own{worktree}",
                    short(head)
                ),
            )
            .await?)
    }

    /// An INITIATED merge marker exists (a crash came mid-merge, or the last
    /// attempt failed after writing it): finish the merge or prove it done.
    pub(crate) async fn resume_merge(
        &self,
        task: &Task,
        lease: &MergeLeaseProof,
    ) -> PipelineResult<String> {
        check_lease(lease, task)?;
        let markers = self.store.initiated_markers(Some(task.id)).await?;
        let Some(marker) = markers.into_iter().find(|m| m.step == MarkerStep::Merge) else {
            return Ok("no merge in flight".into());
        };
        let Ok(detail) = serde_json::from_str::<MergeDetail>(&marker.detail) else {
            self.store
                .finish_marker(marker.id, MarkerState::Abandoned)
                .await?;
            return self
                .merge_stale(task, "an unreadable merge marker was abandoned")
                .await;
        };
        if let Some(wait) = self.merge_backing_off(task).await? {
            return Ok(wait);
        }
        self.store
            .append_event(
                task.id,
                self.event(
                    EventKind::MergeResumed,
                    format!("finishing the merge of {}", detail.head),
                ),
            )
            .await?;
        let r = self.try_finish_merge(task, marker.id, &detail, lease).await;
        self.merge_attempt_ended(task, r).await
    }

    async fn try_finish_merge(
        &self,
        task: &Task,
        marker: i64,
        d: &MergeDetail,
        lease: &MergeLeaseProof,
    ) -> Result<String, Stop> {
        // Proven done: a restart after the merge, before the marker's completion.
        let merged = self.forge.is_merged(&task.repo, &d.base, &d.head).await?;
        if !merged {
            match self
                .forge
                .merge(lease, &d.base, &d.head, &d.base_sha)
                .await?
            {
                MergeOutcome::Merged { .. } => {}
                MergeOutcome::Stale(why) => {
                    self.store
                        .finish_marker(marker, MarkerState::Abandoned)
                        .await?;
                    return Ok(self
                        .merge_stale(task, &format!("merge not done: {why}"))
                        .await?);
                }
            }
        }
        self.store
            .finish_marker(marker, MarkerState::Completed)
            .await?;
        let msg = format!("merged {} into {}", short(&d.head), d.base);
        let task = self
            .store
            .get_task(task.id)
            .await?
            .unwrap_or_else(|| task.clone());
        if task.cancel_requested_at.is_some() {
            // D7: the deferred STOP is applied by the step's finalizer.
            return Ok(self
                .end_step_then_stop(&task, EventKind::Merged, &msg, "merge")
                .await?);
        }
        let has_deploy = self.policy(&task.repo).deploy.is_some();
        let to = if has_deploy {
            Stage::Deploy
        } else {
            Stage::Done
        };
        if to == Stage::Done {
            // The merged feature branch is no longer needed on the remote.
            let _ = self
                .forge
                .delete_branch(&task.repo, &task.branch, &self.protected(&task.repo))
                .await;
        }
        self.step(&task, to, EventKind::Merged, &msg, None).await?;
        Ok(msg)
    }

    /// A merge attempt failed on the forge: retried later, or the end of the
    /// merge gate for this task (see the module docs).
    async fn merge_attempt_ended(
        &self,
        task: &Task,
        r: Result<String, Stop>,
    ) -> PipelineResult<String> {
        let e = match r {
            Ok(note) => return Ok(note),
            Err(Stop::Pipeline(e)) => return Err(e),
            Err(Stop::Forge(e)) => e,
        };
        let max = self.cfg.merge.max_attempts.max(1) as usize;
        let attempt = merge_attempts(&self.store.events(task.id).await?) + 1;
        let give_up = match e.failure() {
            Failure::Permanent => Some(format!("the forge refused the merge: {e}")),
            Failure::Transient if attempt >= max => Some(format!(
                "the merge failed {attempt} times (merge.max_attempts = {max}); the last time: {e}"
            )),
            Failure::Transient => None,
        };
        let note = match &give_up {
            Some(_) => format!("{e} (attempt {attempt} of {max}; not tried again)"),
            None => {
                let wait = self.merge_retry_wait(task.id, attempt);
                format!(
                    "{e} (attempt {attempt} of {max}; tried again in {} s)",
                    wait.as_secs_f64().ceil()
                )
            }
        };
        tracing::warn!(task = %task.id, attempt, max, failure = ?e.failure(), kind = e.kind(), error = %e, "merge attempt failed");
        self.store
            .append_event(task.id, self.event(EventKind::MergeFailed, note.clone()))
            .await?;
        match give_up {
            Some(why) => self.give_up_merge(task, &why).await,
            None => Ok(note),
        }
    }

    /// The merge must be verified again (the base moved, the head changed):
    /// an attempt too, so a forge that keeps answering so cannot hold the
    /// lease forever.
    async fn merge_stale(&self, task: &Task, why: &str) -> PipelineResult<String> {
        let max = self.cfg.merge.max_attempts.max(1) as usize;
        let attempt = merge_attempts(&self.store.events(task.id).await?) + 1;
        if attempt >= max {
            return self
                .give_up_merge(
                    task,
                    &format!(
                        "the merge did not go through in {attempt} attempts (merge.max_attempts = {max}); the last time: {why}"
                    ),
                )
                .await;
        }
        self.step(
            task,
            Stage::Merge,
            EventKind::MergeRetry,
            &format!("{why} (attempt {attempt} of {max}; verifying again)"),
            Some(JobSpec::new(AgentKind::Merger)),
        )
        .await?;
        Ok(why.to_owned())
    }

    /// The end of the merge gate for this task: parked for a person with the
    /// reason, the merge marker abandoned (nothing is in flight any more) and
    /// the repo's merge lease released at once, so other tasks can merge.
    async fn give_up_merge(&self, task: &Task, why: &str) -> PipelineResult<String> {
        let markers = self.store.initiated_markers(Some(task.id)).await?;
        for m in markers.iter().filter(|m| m.step == MarkerStep::Merge) {
            self.store
                .finish_marker(m.id, MarkerState::Abandoned)
                .await?;
        }
        let task = self
            .store
            .get_task(task.id)
            .await?
            .unwrap_or_else(|| task.clone());
        let note = self.park(&task, why).await?;
        self.store.release_merge_lease(&task.repo, task.id).await?;
        self.store
            .append_event(
                task.id,
                self.event(
                    EventKind::LeaseReleased,
                    format!(
                        "merge lease of {} released: the other tasks of the repo may merge",
                        task.repo
                    ),
                ),
            )
            .await?;
        Ok(note)
    }

    /// `Some(why)` while the last merge attempt failed and its backoff has not
    /// passed yet: the tick then does nothing.
    async fn merge_backing_off(&self, task: &Task) -> PipelineResult<Option<String>> {
        let events = self.store.events(task.id).await?;
        let mut attempt = 0;
        let mut failed_at = None;
        for e in since_merge_entry(&events) {
            if e.kind == EventKind::MergeFailed {
                attempt += 1;
                failed_at = Some((e.at, attempt));
            } else if e.kind == EventKind::MergeRetry {
                attempt += 1;
                failed_at = None;
            }
        }
        let Some((at, n)) = failed_at else {
            return Ok(None);
        };
        let due = at.plus(self.merge_retry_wait(task.id, n));
        let now = crate::metered::now();
        Ok((now < due).then(|| {
            format!(
                "merge attempt {} is due in {} ms",
                n + 1,
                due.millis() - now.millis()
            )
        }))
    }

    /// The backoff after the `attempt`-th failed merge attempt: `[queue.retry]`,
    /// with a jitter fixed per task and attempt (every tick computes the same).
    fn merge_retry_wait(&self, task: TaskId, attempt: usize) -> Duration {
        let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
        let mut z = (task.0 as u64) ^ (u64::from(attempt) << 32);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        self.cfg.retry_policy().backoff(attempt, unit)
    }

    /// The merger gave up: push the head it checked (the failing state is then
    /// visible on the pull request) and report a failed `orch/verify` status on
    /// it. Errors are noted on the task and never stop the parking.
    pub(crate) async fn report_failed_verify(&self, task: &Task, why: &str) {
        let pushed = match self.push_task_branch(task).await {
            Ok(sha) => sha,
            Err(e) => {
                let _ = self
                    .store
                    .append_event(
                        task.id,
                        self.event(EventKind::ForgeError, format!("push: {e}")),
                    )
                    .await;
                return;
            }
        };
        // A commit status description is short on every forge.
        let description: String = why.chars().take(140).collect();
        self.show_verify(task, &pushed, false, &description).await;
    }

    /// The verify's result as a commit status on `head`. A failure to
    /// report is noted on the task and never stops the step.
    async fn show_verify(&self, task: &Task, head: &str, passed: bool, description: &str) {
        if let Err(e) = self
            .forge
            .report_verify(&task.repo, head, passed, description)
            .await
        {
            let _ = self
                .store
                .append_event(
                    task.id,
                    self.event(EventKind::ForgeError, format!("commit status: {e}")),
                )
                .await;
        }
    }

    /// Confirm Deploy (or `auto`): the INITIATED marker, then phase B queued.
    pub(crate) async fn start_deploy_run(
        &self,
        task: &Task,
        lease: &MergeLeaseProof,
    ) -> PipelineResult<String> {
        check_lease(lease, task)?;
        match self
            .store
            .write_marker(task.id, &task.repo, MarkerStep::Deploy, "phase B")
            .await
        {
            Ok(_) | Err(orch_store::StoreError::MarkerExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut spec = JobSpec::new(AgentKind::Deployer);
        spec.phase = Some(DeployPhase::Run);
        self.step(
            task,
            Stage::Deploy,
            EventKind::DeployStarted,
            "deploy phase B queued",
            Some(spec),
        )
        .await
    }

    /// Phase B succeeded: health, marker, lease, `done` — or the deferred cancel.
    pub(crate) async fn finish_deploy(
        &self,
        task: &Task,
        lease: &MergeLeaseProof,
    ) -> PipelineResult<String> {
        check_lease(lease, task)?;
        let health = self.deploy_health(task).await;
        let markers = self.store.initiated_markers(Some(task.id)).await?;
        for m in markers.iter().filter(|m| m.step == MarkerStep::Deploy) {
            self.store
                .finish_marker(m.id, MarkerState::Completed)
                .await?;
        }
        if let Err(why) = health {
            return self
                .park(
                    task,
                    &format!("deployed, but the health check failed: {why}"),
                )
                .await;
        }
        let task = self
            .store
            .get_task(task.id)
            .await?
            .unwrap_or_else(|| task.clone());
        if task.cancel_requested_at.is_some() {
            return self
                .end_step_then_stop(&task, EventKind::Deployed, "deploy finished", "deploy")
                .await;
        }
        let _ = self
            .forge
            .delete_branch(&task.repo, &task.branch, &self.protected(&task.repo))
            .await;
        self.step(
            &task,
            Stage::Done,
            EventKind::Deployed,
            "deployed and healthy",
            None,
        )
        .await
    }

    pub(crate) async fn deploy_failed(&self, task: &Task, why: &str) -> PipelineResult<String> {
        let markers = self.store.initiated_markers(Some(task.id)).await?;
        for m in markers.iter().filter(|m| m.step == MarkerStep::Deploy) {
            self.store
                .finish_marker(m.id, MarkerState::Abandoned)
                .await?;
        }
        self.park(task, &format!("deploy phase B failed: {why}"))
            .await
    }

    /// Runs the repo's health command in the worktree (none = healthy).
    async fn deploy_health(&self, task: &Task) -> Result<(), String> {
        let Some(argv) = self
            .cfg
            .repo(&task.repo)
            .and_then(|r| r.deploy.as_ref())
            .and_then(|d| d.health.clone())
        else {
            return Ok(());
        };
        let Some((program, args)) = argv.split_first() else {
            return Ok(());
        };
        let base = self.base_branch(&task.repo);
        let cwd = self
            .repos
            .create_or_reuse_worktree(&task.repo, &task.branch, &base)
            .await
            .map(|w| w.path)
            .unwrap_or_else(|_| self.cfg.base_dir());
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(300),
            tokio::process::Command::new(program)
                .args(args)
                .current_dir(cwd)
                .stdin(std::process::Stdio::null())
                .output(),
        )
        .await
        .map_err(|_| "the health check took over 300 s".to_string())?
        .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

/// The events since the task last entered the merge stage.
fn since_merge_entry(events: &[TaskEvent]) -> &[TaskEvent] {
    let entry = events
        .iter()
        .rposition(|e| e.to_stage == Some(Stage::Merge) && e.from_stage != e.to_stage)
        .unwrap_or(0);
    &events[entry..]
}

/// Failed merge attempts since the task last entered the merge stage.
fn merge_attempts(events: &[TaskEvent]) -> usize {
    since_merge_entry(events)
        .iter()
        .filter(|e| e.kind == EventKind::MergeFailed || e.kind == EventKind::MergeRetry)
        .count()
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
