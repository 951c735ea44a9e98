//! STOP (R-30…R-35, ported from ORCH-090): `cancel_task` with its result
//! notes, the full reset, and the deferral inside a critical window (D7).

use super::{Pipeline, view::window_facts};
use orch_core::cancel::{CancelNote, in_critical_window};
use orch_core::{JobStatus, TaskId};
use serde::Serialize;

/// What `cancel_task` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelResult {
    pub ok: bool,
    pub deferred: bool,
    /// Agent runs that were stopped.
    pub stopped: u32,
    #[serde(serialize_with = "note_str")]
    pub note: CancelNote,
    /// With note `error`: what failed (e.g. the store's error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn note_str<S: serde::Serializer>(n: &CancelNote, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&n.to_string())
}

impl CancelResult {
    fn noop(note: CancelNote, ok: bool) -> CancelResult {
        CancelResult {
            ok,
            deferred: false,
            stopped: 0,
            note,
            error: None,
        }
    }

    /// The cancel could not be carried out: say why, never `no-task`.
    fn failed(error: impl std::fmt::Display) -> CancelResult {
        CancelResult {
            error: Some(error.to_string()),
            ..CancelResult::noop(CancelNote::Error, false)
        }
    }
}

impl Pipeline {
    /// A tracker item moved to STOP: an unknown item is a no-op, the kill
    /// switch and repo scope apply (TC-08), and it never fails the caller.
    pub async fn handle_stop(&self, item_id: &str, source: &str) -> CancelResult {
        let task = match self.store.find_live_task_by_tracker_id(item_id).await {
            Ok(Some(t)) => t,
            Ok(None) => return CancelResult::noop(CancelNote::NoTask, false),
            Err(e) => {
                tracing::warn!(item = item_id, error = %e, "STOP: looking up the task failed");
                return CancelResult::failed(format!("looking up the task of {item_id}: {e}"));
            }
        };
        self.stop_task(task.id, source).await
    }

    /// STOP on a task: the kill switch and repo scope, then `cancel_task`.
    pub async fn stop_task(&self, id: TaskId, source: &str) -> CancelResult {
        match self.store.get_task(id).await {
            Ok(Some(t)) if !self.cfg.stop_scope().applies(&t.repo) => {
                tracing::info!(task = %id, repo = %t.repo, "STOP ignored: the kill switch is off or the repo is out of scope");
                CancelResult::noop(CancelNote::Disabled, false)
            }
            _ => self.cancel_task(id, "STOP", false, source).await,
        }
    }

    /// cancel a task. Never fails: a problem on the way is logged on the
    /// task and the reset goes on with the next step.
    pub async fn cancel_task(
        &self,
        id: TaskId,
        reason: &str,
        force: bool,
        source: &str,
    ) -> CancelResult {
        let _g = self.lock(id).await;
        self.cancel_task_unlocked(id, reason, force, source).await
    }

    /// `cancel_task` for a caller that already holds the task's lock (a
    /// finalizer applying a deferred STOP).
    pub(crate) async fn cancel_task_unlocked(
        &self,
        id: TaskId,
        reason: &str,
        force: bool,
        source: &str,
    ) -> CancelResult {
        match self.cancel_locked(id, reason, force, source).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(task = %id, error = %e, "cancel failed");
                CancelResult::failed(e)
            }
        }
    }

    async fn cancel_locked(
        &self,
        id: TaskId,
        reason: &str,
        force: bool,
        source: &str,
    ) -> super::PipelineResult<CancelResult> {
        let began = crate::metered::now();
        let Some(task) = self.store.get_task(id).await? else {
            return Ok(CancelResult::noop(CancelNote::NoTask, false));
        };
        if task.stage.is_terminal() {
            return Ok(CancelResult::noop(
                CancelNote::AlreadyTerminal(task.stage),
                true,
            ));
        }
        let facts = window_facts(self.store.as_ref(), &task).await?;
        if !force && in_critical_window(facts) {
            // only queued jobs go; the running merge/deploy finishes and
            // its finalizer applies the cancel.
            self.store.cancel_jobs_for_task(id, true).await?;
            let first = self.store.set_cancel_requested(id).await?;
            let note = if first {
                let msg = format!(
                    "{reason} ({source}) arrives while an irreversible step is in flight; it applies as soon as that step ends"
                );
                // The store logged the first stamp itself (`cancel_requested`).
                self.notify_cancel(&task, &msg).await;
                CancelNote::DeferredCriticalWindow
            } else {
                CancelNote::DeferredAlreadyPending
            };
            return Ok(CancelResult {
                ok: true,
                deferred: true,
                stopped: 0,
                note,
                error: None,
            });
        }
        // full reset. Jobs first, so a watcher that sees its run end
        // finds its claim gone and records the run as cancelled.
        let running: Vec<_> = self
            .store
            .jobs_for_task(id)
            .await?
            .into_iter()
            .filter(|j| j.status == JobStatus::Running)
            .collect();
        self.store.cancel_jobs_for_task(id, false).await?;
        let stopped = self.stop_runs(&task, &running, reason).await;

        let mut problems = Vec::new();
        if let Err(e) = self.retire_worktree(&task).await {
            problems.push(format!("removing the worktree: {e}"));
        }
        match self
            .forge
            .delete_branch(&task.repo, &task.branch, &self.protected(&task.repo))
            .await
        {
            Ok(orch_git::DeleteOutcome::Refused { reason }) => {
                problems.push(format!("branch kept: {reason}"))
            }
            Ok(_) => {}
            // No mirror: orch never pushed a branch of this repo to delete.
            Err(crate::ports::PortError::NoMirror(_)) => {}
            Err(e) => problems.push(format!("deleting the remote branch: {e}")),
        }
        self.store.release_merge_lease(&task.repo, id).await?;
        for p in &problems {
            tracing::warn!(task = %id, problem = %p, "cancel: a step of the reset failed");
            self.store
                .append_event(id, self.event("cancel_problem", p.clone()))
                .await?;
        }
        let msg = format!("{reason} ({source}): cancelled; {stopped} agent run(s) stopped");
        let cancelled = self
            .store
            .mark_cancelled(id, self.event("cancelled", msg.clone()))
            .await?;
        self.reflect_noting(&cancelled, None, &msg).await;
        self.notify_cancel(&task, &msg).await;
        // A deferred STOP counts from the moment it was asked for.
        let asked = task.cancel_requested_at.unwrap_or(began);
        crate::metered::stopped(crate::metered::now().since(asked));
        Ok(CancelResult {
            ok: true,
            deferred: false,
            stopped,
            note: CancelNote::Cancelled,
            error: None,
        })
    }

    /// Stop the runs of these (just cancelled) jobs; returns how many had a
    /// process to stop (TC-02: an idle task stops nothing).
    async fn stop_runs(
        &self,
        task: &orch_core::Task,
        jobs: &[orch_core::Job],
        reason: &str,
    ) -> u32 {
        let mut handles = Vec::new();
        for j in jobs {
            let Some(run_id) = &j.run_id else { continue };
            match self.store.get_run(run_id).await {
                Ok(Some(run)) => {
                    if let Some(h) = crate::supervisor::handle_of(&run, &self.runs_dir) {
                        handles.push(h);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(run = %run_id, error = %e, "cancel: loading the run failed")
                }
            }
        }
        let n = handles.len() as u32;
        let policy = self.stop_policy;
        let why = format!("STOP cancel task {}: {reason}", task.id);
        let reports = tokio::task::spawn_blocking(move || {
            handles
                .iter()
                .map(|h| orch_agent::process::stop(h, &policy, &why))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for r in reports {
            match r {
                Ok(rep) if !rep.all_gone => {
                    tracing::error!(task = %task.id, survivors = ?rep.survivors, "cancel: processes survived the stop")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(task = %task.id, error = %e, "cancel: stopping a run failed")
                }
            }
        }
        n
    }

    /// The one notification of a cancel (D7: a repeated deferred STOP does
    /// not come here).
    async fn notify_cancel(&self, task: &orch_core::Task, msg: &str) {
        self.write_tracker(
            task,
            vec![crate::tracker_outbox::TrackerWrite::comment(msg)],
        )
        .await;
    }
}
