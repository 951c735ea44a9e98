//! STOP (R-30…R-35, ported from ORCH-090) carried out: `cancel_task` reads
//! the task's view as the task's owner, `orch_core::decide` (through
//! `cancel::decide_stop`) decides the note and the ordered steps (the full reset, or the deferral inside a
//! critical window, D7), and this file performs them in that order.

use super::owner::{self, Outcome};
use super::{Pipeline, view::task_view};
use orch_core::EventKind;
use orch_core::cancel::{CancelCause, CancelNote, StopNotice, StopStep};
use orch_core::decide::{Command, Effect, decide, without_task};
use orch_core::{JobStatus, TaskId};
use serde::Serialize;

/// A cancel to carry out: why, of which kind, and who asked.
#[derive(Debug, Clone)]
pub(crate) struct CancelOrder {
    pub reason: String,
    pub cause: CancelCause,
    /// Who asked (the API, the CLI, a tracker, `deferred`).
    pub source: String,
}

impl CancelOrder {
    /// A STOP that waited for a critical window, applied once it closed.
    pub(crate) fn deferred(reason: impl Into<String>) -> CancelOrder {
        CancelOrder {
            reason: reason.into(),
            cause: CancelCause::DeferredStop,
            source: "deferred".into(),
        }
    }
}

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

    /// A person's STOP on a task (tracker, CLI, API).
    pub async fn stop_task(&self, id: TaskId, source: &str) -> CancelResult {
        self.cancel_task(id, "STOP", CancelCause::Stop, source)
            .await
    }

    /// cancel a task as `orch_core::decide` says. Never
    /// fails: a problem on the way is logged on the task and the reset goes
    /// on with the next step. The task's owner carries it out, after the
    /// commands queued before it and to its end even if the caller goes.
    pub async fn cancel_task(
        &self,
        id: TaskId,
        reason: &str,
        cause: CancelCause,
        source: &str,
    ) -> CancelResult {
        let command = owner::Command::Cancel(CancelOrder {
            reason: reason.to_owned(),
            cause,
            source: source.to_owned(),
        });
        match self.command(id, command).await {
            Ok(Outcome::Cancel(r)) => r,
            Ok(other) => {
                CancelResult::failed(format!("internal error: cancel answered with {other:?}"))
            }
            Err(e) => CancelResult::failed(e),
        }
    }

    /// D7: the irreversible step a STOP waited for ended (its event
    /// `kind`, saying `msg`): log it, then apply the deferred STOP in full.
    /// Called by the step's finalizer, which runs in the task's owner.
    pub(crate) async fn end_step_then_stop(
        &self,
        task: &orch_core::Task,
        kind: EventKind,
        msg: &str,
        step: &str,
    ) -> super::PipelineResult<String> {
        self.store
            .append_event(task.id, self.event(kind, msg))
            .await?;
        let r = self
            .apply_cancel(
                task.id,
                &CancelOrder::deferred(format!("STOP (deferred until the {step} ended)")),
            )
            .await;
        Ok(format!("{msg}; deferred STOP: {}", r.note))
    }

    /// The cancel, applied by the task's owner (directly by a finalizer
    /// applying a deferred STOP, which runs in the owner already). Never
    /// fails: what went wrong is the result's error.
    pub(crate) async fn apply_cancel(&self, id: TaskId, order: &CancelOrder) -> CancelResult {
        self.cancel_owned(id, order).await.unwrap_or_else(|e| {
            tracing::error!(task = %id, error = %e, "cancel failed");
            CancelResult::failed(e)
        })
    }

    /// Read the view, let the core decide, carry the plan out in its order.
    async fn cancel_owned(
        &self,
        id: TaskId,
        order: &CancelOrder,
    ) -> super::PipelineResult<CancelResult> {
        let CancelOrder {
            reason,
            cause,
            source,
        } = order;
        let (reason, cause, source) = (reason.as_str(), *cause, source.as_str());
        let began = crate::metered::now();
        let task = self.store.get_task(id).await?;
        let command = Command::Stop { cause };
        let decision = match &task {
            Some(task) => decide(
                &task_view(self.store.as_ref(), task).await?,
                &command,
                &self.decision_policy(&task.repo),
            ),
            None => without_task(&command),
        };
        let verdict = decision
            .stop
            .expect("a STOP is always answered with its verdict");
        let mut result = CancelResult {
            ok: verdict.ok,
            deferred: verdict.deferred,
            stopped: 0,
            note: verdict.note,
            error: None,
        };
        let Some(task) = task else {
            return Ok(result);
        };
        if verdict.note == CancelNote::Disabled {
            tracing::info!(task = %id, repo = %task.repo, "STOP ignored: the kill switch is off or the repo is out of scope");
        }
        // The jobs that were running when the reset began: their runs are
        // the ones to stop.
        let mut running = Vec::new();
        for effect in decision.effects {
            let Effect::Stop(step) = effect else {
                unreachable!("a STOP decides only the steps of a cancel: {effect:?}")
            };
            match step {
                StopStep::CancelQueuedJobs => {
                    self.store.cancel_jobs_for_task(id, true).await?;
                }
                StopStep::RequestCancel => {
                    // The store's stamp guards against a STOP from another
                    // process between our read and this write: only the
                    // first stamp is announced, its comment for the item
                    // written with it (delivered by `Tell(Deferred)`).
                    let msg = format!(
                        "{reason} ({source}) arrives while an irreversible step is in flight; it applies as soon as that step ends"
                    );
                    let asked = self
                        .event(
                            EventKind::CancelRequested,
                            "STOP deferred until the running step finishes",
                        )
                        .with_tracker_comment(&msg);
                    if !self.store.set_cancel_requested(id, asked).await? {
                        result.note = CancelNote::DeferredAlreadyPending;
                    }
                }
                StopStep::CancelAllJobs => {
                    running = self
                        .store
                        .jobs_for_task(id)
                        .await?
                        .into_iter()
                        .filter(|j| j.status == JobStatus::Running)
                        .collect();
                    self.store.cancel_jobs_for_task(id, false).await?;
                }
                StopStep::StopRuns => {
                    result.stopped = self.stop_runs(&task, &running, reason).await;
                }
                StopStep::RetireWorktree => {
                    if let Err(e) = self.retire_worktree(&task).await {
                        self.cancel_problem(id, format!("removing the worktree: {e}"))
                            .await?;
                    }
                }
                StopStep::DeleteBranch => {
                    let problem = match self
                        .forge
                        .delete_branch(&task.repo, &task.branch, &self.protected(&task.repo))
                        .await
                    {
                        Ok(orch_git::DeleteOutcome::Refused { reason }) => {
                            Some(format!("branch kept: {reason}"))
                        }
                        Ok(_) => None,
                        // A repo orch never mirrored has no branch to delete.
                        Err(crate::ports::PortError::NoMirror(_)) => None,
                        Err(e) => Some(format!("deleting the remote branch: {e}")),
                    };
                    if let Some(p) = problem {
                        self.cancel_problem(id, p).await?;
                    }
                }
                StopStep::ReleaseMergeLease => {
                    self.store.release_merge_lease(&task.repo, id).await?;
                }
                StopStep::MarkCancelled => {
                    // The item hears why with the state, in the same
                    // transaction (delivered by `Tell(Cancelled)`).
                    let msg = cancelled_message(reason, source, result.stopped);
                    let cancelled = self
                        .store
                        .mark_cancelled(
                            id,
                            self.event(EventKind::Cancelled, msg.clone())
                                .with_tracker_comment(&msg),
                        )
                        .await?;
                    self.reflect(&cancelled, &msg).await;
                }
                StopStep::Tell(StopNotice::Deferred) => {
                    // Its comment was queued with the first stamp: deliver.
                    if result.note == CancelNote::DeferredCriticalWindow {
                        self.write_tracker(&task, Vec::new()).await;
                    }
                }
                StopStep::Tell(StopNotice::Cancelled) => {
                    // Its comment was queued with the cancel: deliver.
                    self.write_tracker(&task, Vec::new()).await;
                }
            }
        }
        if result.note == CancelNote::Cancelled {
            // A deferred STOP counts from the moment it was asked for.
            let asked = task.cancel_requested_at.unwrap_or(began);
            crate::metered::stopped(crate::metered::now().since(asked));
        }
        Ok(result)
    }

    /// A step of the reset failed: say so on the task and go on.
    async fn cancel_problem(&self, id: TaskId, problem: String) -> super::PipelineResult<()> {
        tracing::warn!(task = %id, problem = %problem, "cancel: a step of the reset failed");
        self.store
            .append_event(id, self.event(EventKind::CancelProblem, problem))
            .await?;
        Ok(())
    }

    /// Stop the runs of these (just cancelled) jobs and wait until their
    /// processes are gone; returns how many runs were stopped (TC-02: an
    /// idle task stops nothing). The supervisor of this process stops the
    /// runs it watches (the one killer); a run no live watcher here owns —
    /// its watcher died with a previous orch, or no engine runs in this
    /// process — is stopped by its recorded process identity.
    async fn stop_runs(
        &self,
        task: &orch_core::Task,
        jobs: &[orch_core::Job],
        reason: &str,
    ) -> u32 {
        let owned = match self.supervisor.get() {
            Some(s) => s.stop_task_runs(task.id).await,
            None => Vec::new(),
        };
        let mut handles = Vec::new();
        for j in jobs {
            let Some(run_id) = &j.run_id else { continue };
            if owned.contains(run_id) {
                continue;
            }
            match self.store.get_run(run_id).await {
                // Another machine's run is its node's to stop: that node
                // hears of the cancelled job through the queue signal (or
                // its watcher's next heartbeat) and stops it there.
                Ok(Some(run)) if crate::node::ran_elsewhere(self.store.as_ref(), &run).await => {
                    tracing::info!(run = %run_id, node = %run.worker_id, "cancel: the run's own node stops it");
                }
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
        let n = (owned.len() + handles.len()) as u32;
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
}

fn cancelled_message(reason: &str, source: &str, stopped: u32) -> String {
    format!("{reason} ({source}): cancelled; {stopped} agent run(s) stopped")
}
