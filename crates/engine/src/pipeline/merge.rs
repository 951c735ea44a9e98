//! The merge gate's irreversible step and the deploy finalizer.
//!
//! Both run under an INITIATED marker written before the step, so a restart
//! finishes the step or proves it done, and never runs it twice: the merge is
//! a fast-forward of the base that is conditional on the base still being where
//! it was, and the marker records the verified head and that base.

use super::{Pipeline, PipelineResult};
use crate::ports::MergeOutcome;
use orch_core::pipeline::{DeployPhase, JobSpec};
use orch_core::{AgentKind, Stage, Task};
use orch_store::{MarkerState, MarkerStep};
use serde::{Deserialize, Serialize};

/// What a merge marker records.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MergeDetail {
    head: String,
    base: String,
    base_sha: String,
}

impl Pipeline {
    /// The merger's verify passed on the current head: push it and merge it.
    pub(crate) async fn merge(&self, task: &Task) -> PipelineResult<String> {
        let base = self.base_branch(&task.repo);
        let wt = self
            .repos
            .create_or_reuse_worktree(&task.repo, &task.branch, &base)
            .await
            .map_err(|e| super::PipelineError::Invalid(format!("worktree: {e}")))?;
        let head = self
            .repos
            .head_sha(&wt)
            .await
            .map_err(|e| super::PipelineError::Invalid(format!("reading the head: {e}")))?;
        let pushed = self
            .noted(task, self.forge.push_branch(&task.repo, &task.branch).await)
            .await?;
        if pushed != head {
            return self
                .requeue_merger(task, "the pushed head is not the verified one")
                .await;
        }
        // The merger's verify passed on this head; the forge shows it. A
        // failure to report is noted and never stops the merge.
        if let Err(e) = self
            .forge
            .report_verify(&task.repo, &head, true, "orch verify passed")
            .await
        {
            let _ = self
                .store
                .append_event(
                    task.id,
                    self.event("forge_error", format!("commit status: {e}")),
                )
                .await;
        }
        let Some(base_sha) = self
            .noted(task, self.forge.base_head(&task.repo, &base).await)
            .await?
        else {
            return Err(super::PipelineError::Invalid(format!(
                "the remote has no branch {base}"
            )));
        };
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
                self.event("merge_initiated", format!("merging {head} into {base}")),
            )
            .await?;
        self.finish_merge(task, marker.id, &detail).await
    }

    /// An INITIATED merge marker exists (a crash came mid-merge): finish the
    /// merge or prove it done.
    pub(crate) async fn resume_merge(&self, task: &Task) -> PipelineResult<String> {
        let markers = self.store.initiated_markers(Some(task.id)).await?;
        let Some(marker) = markers.into_iter().find(|m| m.step == MarkerStep::Merge) else {
            return Ok("no merge in flight".into());
        };
        let Ok(detail) = serde_json::from_str::<MergeDetail>(&marker.detail) else {
            self.store
                .finish_marker(marker.id, MarkerState::Abandoned)
                .await?;
            return self
                .requeue_merger(task, "an unreadable merge marker was abandoned")
                .await;
        };
        self.store
            .append_event(
                task.id,
                self.event(
                    "merge_resumed",
                    format!("finishing the merge of {}", detail.head),
                ),
            )
            .await?;
        self.finish_merge(task, marker.id, &detail).await
    }

    async fn finish_merge(
        &self,
        task: &Task,
        marker: i64,
        d: &MergeDetail,
    ) -> PipelineResult<String> {
        let merged = if self
            .noted(
                task,
                self.forge.is_merged(&task.repo, &d.base, &d.head).await,
            )
            .await?
        {
            // Proven done (a restart after the merge, before the marker's completion).
            true
        } else {
            match self
                .noted(
                    task,
                    self.forge
                        .merge(&task.repo, &task.branch, &d.base, &d.head, &d.base_sha)
                        .await,
                )
                .await?
            {
                MergeOutcome::Merged { .. } => true,
                MergeOutcome::Stale(why) => {
                    self.store
                        .finish_marker(marker, MarkerState::Abandoned)
                        .await?;
                    return self
                        .requeue_merger(task, &format!("merge not done: {why}"))
                        .await;
                }
            }
        };
        debug_assert!(merged);
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
            self.store
                .append_event(task.id, self.event("merged", msg.clone()))
                .await?;
            let r = self
                .cancel_task_unlocked(
                    task.id,
                    "STOP (deferred until the merge ended)",
                    true,
                    "deferred",
                )
                .await;
            return Ok(format!("{msg}; deferred STOP: {}", r.note));
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
        self.step(&task, to, "merged", &msg, None).await?;
        Ok(msg)
    }

    /// The merger gave up: push the head it checked (the failing state is then
    /// visible on the pull request) and report a failed `orch/verify` status on
    /// it. Errors are noted on the task and never stop the parking.
    pub(crate) async fn report_failed_verify(&self, task: &Task, why: &str) {
        let pushed = match self.forge.push_branch(&task.repo, &task.branch).await {
            Ok(sha) => sha,
            Err(e) => {
                let _ = self
                    .store
                    .append_event(task.id, self.event("forge_error", format!("push: {e}")))
                    .await;
                return;
            }
        };
        // A commit status description is short on every forge.
        let description: String = why.chars().take(140).collect();
        if let Err(e) = self
            .forge
            .report_verify(&task.repo, &pushed, false, &description)
            .await
        {
            let _ = self
                .store
                .append_event(
                    task.id,
                    self.event("forge_error", format!("commit status: {e}")),
                )
                .await;
        }
    }

    /// The merge must be verified again (the base moved, the head changed).
    async fn requeue_merger(&self, task: &Task, why: &str) -> PipelineResult<String> {
        self.step(
            task,
            Stage::Merge,
            "merge_retry",
            why,
            Some(JobSpec::new(AgentKind::Merger)),
        )
        .await?;
        Ok(why.to_owned())
    }

    /// Confirm Deploy (or `auto`): the INITIATED marker, then phase B queued.
    pub(crate) async fn start_deploy_run(&self, task: &Task) -> PipelineResult<String> {
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
            "deploy_started",
            "deploy phase B queued",
            Some(spec),
        )
        .await
    }

    /// Phase B succeeded: health, marker, lease, `done` — or the deferred cancel.
    pub(crate) async fn finish_deploy(&self, task: &Task) -> PipelineResult<String> {
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
            self.store
                .append_event(task.id, self.event("deployed", "deploy finished"))
                .await?;
            let r = self
                .cancel_task_unlocked(
                    task.id,
                    "STOP (deferred until the deploy ended)",
                    true,
                    "deferred",
                )
                .await;
            return Ok(format!("deployed; deferred STOP: {}", r.note));
        }
        let _ = self
            .forge
            .delete_branch(&task.repo, &task.branch, &self.protected(&task.repo))
            .await;
        self.step(&task, Stage::Done, "deployed", "deployed and healthy", None)
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

impl Pipeline {
    /// A forge error on the task's event log, once per run of equal
    /// errors: the tick retries the step every few hundred milliseconds, and
    /// an outage must not bury the log. The error still fails the step.
    async fn noted<T>(
        &self,
        task: &Task,
        r: Result<T, crate::ports::PortError>,
    ) -> PipelineResult<T> {
        if let Err(e) = &r {
            let msg = format!("forge: {e}; the step is retried");
            let last = self
                .store
                .events(task.id)
                .await
                .ok()
                .and_then(|ev| ev.last().cloned());
            if !last.is_some_and(|l| l.kind == "forge_error" && l.message == msg) {
                let _ = self
                    .store
                    .append_event(task.id, self.event("forge_error", msg))
                    .await;
            }
        }
        Ok(r?)
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}
