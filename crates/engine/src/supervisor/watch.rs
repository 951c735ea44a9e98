//! Watching one run to its end, and recording how it ended.
//!
//! The watcher is the run's single owner in this process: it feeds the log to
//! the adapter, renews the job's lease (a refused heartbeat means the claim is
//! fenced: the job was cancelled or reaped, so the agent must go), enforces the
//! wall/idle timeouts and the task's budget, and answers stop requests.
//!
//! The log is read in slices of at most `SLICE_BYTES` (`tail.rs` bounds the
//! reader's memory), and between two slices the watcher looks at STOP, the
//! timeouts, the budget and its heartbeat and lets other tasks run: an agent
//! flooding its output never holds its watcher up.

use super::tail::{LogTail, MAX_PARSE_LINE, TailStats};
use super::{Active, JobEnd, RunReport, Supervisor};
use orch_agent::adapters::{AdapterKind, OutputAdapter, ProcessExit};
use orch_agent::process::limits::LimitHit;
use orch_agent::process::{ExitRecord, RunHandle, RunState, Timeouts, run_dir, run_state};
use orch_core::EventKind;
use orch_core::retry::FailureDecision;
use orch_core::run::{RunOutcome, Usage};
use orch_core::{Job, Task, Timestamp};
use orch_store::RunFinish;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How much output the watcher reads and parses in one go before it looks
/// at STOP, the timeouts and its heartbeat again and yields to other tasks:
/// a few milliseconds of parsing.
pub(super) const SLICE_BYTES: usize = 1024 * 1024;

/// After orch stopped a run, at most this much of its unread output is still
/// parsed (for its usage and session); the rest stays unparsed in the log
/// file, so a STOP is recorded at once even when the agent wrote faster than
/// orch could read.
const AFTER_STOP_BYTES: u64 = 64 * 1024 * 1024;

/// How the watch ended.
pub(super) enum Ending {
    /// The monitor recorded the agent's exit.
    Exited(ExitRecord),
    /// The monitor vanished without a record: the outcome is unknown.
    Lost,
    /// orch stopped the run.
    Stopped {
        outcome: RunOutcome,
        reason: String,
        exit: Option<ExitRecord>,
    },
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
}

impl Supervisor {
    /// Watch `handle` until it ends, then record it. `started` is when the run began.
    pub(super) async fn watch_run(
        self: &Arc<Self>,
        task: Task,
        job: Job,
        handle: RunHandle,
        adapter: AdapterKind,
        timeouts: Timeouts,
        started: Timestamp,
    ) {
        let run = handle.run_id.clone();
        // Recovery may have registered the run already (so it is visible the
        // moment `recover` returns); keep its stop signal.
        let (stop, gone) = {
            let mut active = self.lock_active();
            let a = active
                .entry(run.clone())
                .or_insert_with(|| Active::new(task.id, &handle.run_dir));
            (a.stop.clone(), a.gone.clone())
        };
        let mut adapter = super::recover::run_adapter(adapter, &handle.run_dir);
        let mut tail = LogTail::new(handle.run_dir.join(run_dir::OUTPUT_LOG));
        let mut egress_seen = 0;
        let ending = self
            .follow(
                &task,
                &job,
                &handle,
                adapter.as_mut(),
                &mut tail,
                &timeouts,
                started,
                &stop,
                &mut egress_seen,
            )
            .await;
        // Exited or stopped: no process of the run is left.
        gone.send_replace(true);
        let limit = match ending {
            Ending::Stopped { .. } => AFTER_STOP_BYTES,
            // `follow` read up to the end already; this is what the monitor's
            // copiers wrote after that.
            Ending::Exited(_) | Ending::Lost => u64::MAX,
        };
        drain(&mut tail, adapter.as_mut(), &run, limit).await;
        self.note_truncated(task.id, tail.stats()).await;
        self.note_egress_refused(task.id, &handle.run_dir, &mut egress_seen)
            .await;
        // `record` lets go of the run (see `report`).
        self.record(&job, &handle, adapter.as_mut(), ending).await;
    }

    /// Convenience for a freshly launched run.
    pub(super) async fn watch(
        self: &Arc<Self>,
        task: Task,
        job: Job,
        handle: RunHandle,
        adapter: AdapterKind,
        timeouts: Timeouts,
    ) {
        self.watch_run(task, job, handle, adapter, timeouts, now())
            .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &self,
        task: &Task,
        job: &Job,
        handle: &RunHandle,
        adapter: &mut (dyn OutputAdapter + Send),
        tail: &mut LogTail,
        timeouts: &Timeouts,
        started: Timestamp,
        stop: &Notify,
        egress_seen: &mut usize,
    ) -> Ending {
        let run = &handle.run_id;
        // This run's own usage is recorded only when it ends; the rest is spent.
        let spent_before = match self.store.task_usage(task.id).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(run = %run, error = %e, "reading the task's usage failed; budget counts this run only");
                Usage::default()
            }
        };
        // The first heartbeat at once: a STOP that cancelled the job after
        // the launch's own check but before the run's process was recorded
        // (so it found nothing to signal) is seen now, not a heartbeat later.
        let mut next_heartbeat = Instant::now();
        let mut exit_watch = super::exit_watch::ExitWatch::new(&handle.run_dir);
        let mut asked_after_exit = false;
        loop {
            // The state is read before the log: an exit seen here means the
            // agent's output is all in the file, so reading to its end gets it.
            let state = run_state(handle);
            let slice = tail.read_slice(SLICE_BYTES, |line| feed(adapter, run, line));
            match state {
                RunState::Exited(rec) if slice.at_end => return Ending::Exited(rec),
                RunState::Lost if slice.at_end => return Ending::Lost,
                RunState::Running => {}
                // The agent is gone and its output still being read: ask the
                // store now whether the job is still ours. A STOP from
                // another process (it cancels the job, then ends the
                // processes) then skips the backlog instead of reading it.
                _ if !asked_after_exit => {
                    asked_after_exit = true;
                    next_heartbeat = Instant::now();
                }
                _ => {}
            }
            // Limits stop a live agent; one that has ended is judged by its
            // output, however long reading the rest of it takes.
            if matches!(state, RunState::Running) {
                let last = orch_agent::process::last_output_at(&handle.run_dir);
                if let Some(kind) =
                    orch_agent::process::decide_timeout(timeouts, started, last, now())
                {
                    let reason = format!("{kind:?} timeout: the agent was stopped");
                    return self.stop_now(handle, kind.outcome(), reason).await;
                }
                let mut used = spent_before;
                used += adapter.usage_so_far();
                if let Some(why) = self.cfg().budget.exceeded(used) {
                    return self.stop_now(handle, RunOutcome::BudgetExceeded, why).await;
                }
            }
            if Instant::now() >= next_heartbeat {
                // Refused connections show on the task while the agent runs.
                self.note_egress_refused(task.id, &handle.run_dir, egress_seen)
                    .await;
                match self.store.heartbeat(job.id, run, self.cfg().lease).await {
                    Ok(true) => next_heartbeat = Instant::now() + self.cfg().heartbeat,
                    Ok(false) => {
                        let reason = "the job was cancelled or its claim was lost".to_owned();
                        return self.stop_now(handle, RunOutcome::Cancelled, reason).await;
                    }
                    Err(e) => {
                        // Keep the agent; if the store stays away the lease expires
                        // and the reaper decides, which is the safe default.
                        tracing::warn!(run = %run, error = %e, "heartbeat failed; retrying");
                        next_heartbeat = Instant::now() + self.cfg().heartbeat / 4;
                    }
                }
            }
            if slice.at_end {
                tokio::select! {
                    _ = tokio::time::sleep(self.cfg().tick) => {}
                    _ = exit_watch.changed() => {}
                    _ = stop.notified() => {
                        return self.stop_now(handle, RunOutcome::Cancelled, "STOP requested".to_owned()).await;
                    }
                }
            } else {
                // More output is waiting: read on at once, but let a STOP in
                // first and the other tasks run.
                tokio::select! {
                    biased;
                    _ = stop.notified() => {
                        return self.stop_now(handle, RunOutcome::Cancelled, "STOP requested".to_owned()).await;
                    }
                    _ = tokio::task::yield_now() => {}
                }
            }
        }
    }

    /// Lines longer than the parse cap are logged on the task, once per run:
    /// what orch decided from the output may have missed something in them.
    pub(super) async fn note_truncated(&self, task: orch_core::TaskId, stats: TailStats) {
        if stats.truncated == 0 {
            return;
        }
        let msg = format!(
            "{} output line(s) longer than {} KiB were parsed only in part (the longest: {} bytes); the run's output.log holds them whole",
            stats.truncated,
            MAX_PARSE_LINE / 1024,
            stats.longest_truncated
        );
        let ev = orch_core::EventInput::new(
            format!("worker:{}", self.cfg().worker),
            EventKind::OutputTruncated,
            msg,
        );
        if let Err(e) = self.store.append_event(task, ev).await {
            tracing::warn!(task = %task, error = %e, "logging the truncated output on the task failed");
        }
    }

    /// Connections the sandbox's proxy refused, logged on the task: the
    /// agent saw a refusal (403), the operator sees what it wanted. `seen`
    /// counts those already logged (the watcher looks on every heartbeat).
    pub(super) async fn note_egress_refused(
        &self,
        task: orch_core::TaskId,
        run_dir: &Path,
        seen: &mut usize,
    ) {
        let all = orch_agent::process::sandbox::egress::read_refusals(run_dir);
        let Some(refused) = all.get(*seen..).filter(|r| !r.is_empty()) else {
            return;
        };
        *seen = all.len();
        let mut targets: Vec<&str> = refused.iter().map(|r| r.target.as_str()).collect();
        targets.sort_unstable();
        targets.dedup();
        let shown = targets
            .iter()
            .take(10)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let more = targets.len().saturating_sub(10);
        let msg = format!(
            "the sandbox refused {} connection(s) not on the agent's egress allowlist ([agents.<kind>] egress_allow): {shown}{}",
            refused.len(),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        let ev = orch_core::EventInput::new(
            format!("worker:{}", self.cfg().worker),
            EventKind::EgressRefused,
            msg,
        );
        if let Err(e) = self.store.append_event(task, ev).await {
            tracing::warn!(task = %task, error = %e, "logging the refused connections on the task failed");
        }
    }

    /// Stop the run's whole process tree (blocking work, off the runtime).
    async fn stop_now(&self, handle: &RunHandle, outcome: RunOutcome, reason: String) -> Ending {
        let h = handle.clone();
        let policy = self.cfg().stop;
        let why = reason.clone();
        let report =
            tokio::task::spawn_blocking(move || orch_agent::process::stop(&h, &policy, &why)).await;
        let exit = match report {
            Ok(Ok(r)) => {
                if !r.all_gone {
                    tracing::error!(run = %handle.run_id, survivors = ?r.survivors, "processes survived the stop");
                }
                if let Some(refusal) = &r.refused {
                    tracing::warn!(run = %handle.run_id, ?refusal, "stop refused: the pid now belongs to another process");
                }
                tracing::info!(run = %handle.run_id, reason = %reason, elapsed_ms = r.elapsed.as_millis() as u64, "run stopped");
                r.exit
            }
            Ok(Err(e)) => {
                tracing::error!(run = %handle.run_id, error = %e, "stopping the run failed");
                None
            }
            Err(e) => {
                tracing::error!(run = %handle.run_id, error = %e, "stop task failed");
                None
            }
        };
        Ending::Stopped {
            outcome,
            reason,
            exit,
        }
    }

    /// Record the run, end the job, and report.
    pub(super) async fn record(
        &self,
        job: &Job,
        handle: &RunHandle,
        adapter: &mut (dyn OutputAdapter + Send),
        ending: Ending,
    ) {
        let run = &handle.run_id;
        let exit_of = |rec: &ExitRecord| ProcessExit::from_parts(rec.exit_code, rec.signal);
        // The adapter's conclusions; the outcome and error may be orch's own.
        let (outcome, exit_rec, error, out) = match ending {
            Ending::Exited(rec) => {
                // A monitor that could not start the agent still records why.
                let out = adapter.finish(exit_of(&rec).unwrap_or(ProcessExit::Code(127)));
                // A run the kernel killed at its memory limit failed, whatever
                // its output said; the limit comes first in the words.
                let oom = rec
                    .limits_hit
                    .iter()
                    .any(|h| matches!(h, LimitHit::Memory { .. }));
                let outcome = if rec.spawn_error.is_some() || oom {
                    RunOutcome::Failed
                } else {
                    out.run_outcome()
                };
                let limits: Vec<String> = rec.limits_hit.iter().map(LimitHit::describe).collect();
                let error = rec.spawn_error.clone().or_else(|| {
                    match (
                        limits.is_empty() || outcome == RunOutcome::Succeeded,
                        out.error_message(),
                    ) {
                        (true, e) => e,
                        (false, Some(e)) => Some(format!("{}; {e}", limits.join("; "))),
                        (false, None) => Some(limits.join("; ")),
                    }
                });
                (outcome, Some(rec), error, out)
            }
            Ending::Stopped {
                outcome,
                reason,
                exit,
            } => {
                let pe = exit
                    .as_ref()
                    .and_then(exit_of)
                    .unwrap_or(ProcessExit::Signal(9));
                let out = adapter.finish(pe);
                (outcome, exit, Some(reason), out)
            }
            Ending::Lost => {
                let reason = "the run's monitor vanished without recording an exit";
                let out = adapter.finish(ProcessExit::Signal(9));
                let finish = RunFinish {
                    outcome: RunOutcome::Unknown,
                    exit_code: None,
                    signal: None,
                    usage: out.usage,
                    session_id: out.session_id.clone(),
                    error: Some(reason.to_owned()),
                    final_text: out.final_text.clone(),
                };
                let _ = self.store.finish_run(run, &finish).await;
                let decision = self
                    .store
                    .reap_unknown_outcome(job.id, run, reason, &self.cfg().retry)
                    .await;
                let end = Self::end_of(job, decision);
                self.report(
                    job,
                    run,
                    RunOutcome::Unknown,
                    end,
                    out.usage,
                    out.final_text.clone(),
                    Some(reason.to_owned()),
                    None,
                );
                return;
            }
        };
        let (final_text, usage) = (out.final_text.clone(), out.usage);
        // Before the store learns the run succeeded, its work leaves this
        // machine (a store several nodes share: the task's next step may
        // run on another).
        let (outcome, error) = match outcome {
            RunOutcome::Succeeded => match self
                .keeping_lease(job, run, self.preparer.hand_over(job))
                .await
            {
                Ok(()) => (outcome, error),
                Err(e) => {
                    tracing::warn!(run = %run, error = %e, "handing the run's work over failed");
                    (
                        RunOutcome::Failed,
                        Some(format!("handing the run's work over failed: {e}")),
                    )
                }
            },
            _ => (outcome, error),
        };
        if let Some(total) = out.thread_total {
            // The run that resumes this thread subtracts it (recover.rs).
            let path = handle.run_dir.join(super::recover::THREAD_TOTAL);
            if let Err(e) = serde_json::to_string(&total)
                .map_err(std::io::Error::other)
                .and_then(|t| std::fs::write(&path, t))
            {
                tracing::warn!(run = %run, error = %e, "keeping the thread's token total failed");
            }
        }
        let finish = RunFinish {
            outcome,
            exit_code: exit_rec.as_ref().and_then(|r| r.exit_code),
            signal: exit_rec.as_ref().and_then(|r| r.signal),
            usage,
            session_id: out.session_id.clone(),
            error: error.clone(),
            final_text: final_text.clone(),
        };
        // A question (asked through `ask_person`, or read from the output)
        // parks the task for a person whatever else the run did; a STOP's
        // cancelled run is the STOP's.
        let question = self
            .lock_active()
            .get(run)
            .and_then(|a| a.question.clone())
            .or(out.question)
            .filter(|_| outcome != RunOutcome::Cancelled);
        // A success is recorded with its job's completion, in one step: a
        // run whose job was taken from it meanwhile is not a success.
        let (outcome, error) = if outcome == RunOutcome::Succeeded && question.is_none() {
            match self.store.complete_run(job.id, run, &finish).await {
                Ok(true) => (outcome, error),
                Ok(false) => {
                    let f = finish.fenced();
                    (f.outcome, f.error)
                }
                Err(e) => {
                    tracing::error!(run = %run, error = %e, "completing the job failed; the reaper will decide");
                    (
                        RunOutcome::Unknown,
                        Some(format!("completing the job failed: {e}")),
                    )
                }
            }
        } else {
            if let Err(e) = self.store.finish_run(run, &finish).await {
                tracing::error!(run = %run, error = %e, "recording the run's end failed");
            }
            (outcome, error)
        };
        let end = match outcome {
            // The job stays the run's: the task's owner ends it with the
            // question and parks the task on it in one command (run_ended.rs),
            // so no tick in between finds it failed and parks it otherwise.
            _ if question.is_some() => JobEnd::Asked,
            RunOutcome::Succeeded => JobEnd::Completed,
            // STOP cancels the job before stopping the run; a fenced run's job
            // belongs to someone else already. Either way, leave the job alone;
            // so too when the store could not be told (the reaper decides).
            RunOutcome::Cancelled | RunOutcome::Unknown => JobEnd::Cancelled,
            RunOutcome::BudgetExceeded => {
                let why = error.clone().unwrap_or_else(|| "budget exceeded".into());
                match self.store.give_up(job.id, run, &why).await {
                    Ok(true) => JobEnd::GaveUp,
                    // Taken from this run meanwhile (a STOP, the reaper).
                    Ok(false) => JobEnd::Cancelled,
                    Err(e) => {
                        tracing::error!(job = %job.id, error = %e, "recording the spent budget failed; the reaper will decide");
                        JobEnd::Cancelled
                    }
                }
            }
            _ => {
                let why = error.clone().unwrap_or_else(|| outcome.as_str().to_owned());
                let decision = self.store.fail(job.id, run, &why, &self.cfg().retry).await;
                Self::end_of(job, decision)
            }
        };
        tracing::info!(run = %run, job = %job.id, outcome = outcome.as_str(), end = ?end, "run finished");
        self.report(job, run, outcome, end, usage, final_text, error, question);
    }

    /// Do `work` while keeping the job's lease: work after the agent ended
    /// (handing its branch over) can outlast a lease, and a reaper must not
    /// take a job whose run is still being recorded. A claim lost meanwhile
    /// shows when the job is completed.
    async fn keeping_lease<T>(
        &self,
        job: &Job,
        run: &orch_core::RunId,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = tokio::time::sleep(self.cfg().heartbeat) => {
                    if let Err(e) = self.store.heartbeat(job.id, run, self.cfg().lease).await {
                        tracing::warn!(run = %run, error = %e, "heartbeat failed; retrying");
                    }
                }
            }
        }
    }

    /// How a failed attempt ends the job, from what the store decided. A
    /// job with no attempts left is reported as given up: the task's owner
    /// parks its task (the supervisor writes no stage).
    pub(super) fn end_of(
        job: &Job,
        decision: orch_store::StoreResult<Option<FailureDecision>>,
    ) -> JobEnd {
        match decision {
            Ok(Some(FailureDecision::GiveUp)) => JobEnd::GaveUp,
            Ok(Some(FailureDecision::Cancel)) | Ok(None) => JobEnd::Cancelled,
            Ok(Some(d)) => JobEnd::Retrying(d),
            Err(e) => {
                tracing::error!(job = %job.id, error = %e, "recording the failure failed; the reaper will decide");
                JobEnd::Cancelled
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &self,
        job: &Job,
        run: &orch_core::RunId,
        outcome: RunOutcome,
        end: JobEnd,
        usage: Usage,
        final_text: Option<String>,
        error: Option<String>,
        question: Option<String>,
    ) {
        // The claim stamped `updated_at`: the run's start, as far as the job knows.
        let took = crate::metered::now().since(job.updated_at);
        crate::metered::run_finished(job.agent, outcome, took);
        // The job's end is in the store (the reaper no longer sees it): stop
        // watching before anyone hears of the end, so a report's reader never
        // finds the run still listed or stoppable.
        self.lock_active().remove(run);
        let _ = self.reports.send(RunReport {
            task_id: job.task_id,
            job_id: job.id,
            run_id: run.clone(),
            agent: job.agent,
            outcome,
            end,
            usage,
            final_text,
            error,
            question,
        });
    }
}

/// Feeds one output line to the adapter.
fn feed(adapter: &mut (dyn OutputAdapter + Send), run: &orch_core::RunId, line: &str) {
    for ev in adapter.feed_line(line) {
        tracing::trace!(run = %run, event = ?ev, "agent event");
    }
}

/// Reads what is left of a finished run's log (at most `limit` bytes, in
/// slices, yielding between them) and its last line without a newline.
pub(super) async fn drain(
    tail: &mut LogTail,
    adapter: &mut (dyn OutputAdapter + Send),
    run: &orch_core::RunId,
    limit: u64,
) {
    let mut read = 0u64;
    loop {
        let slice = tail.read_slice(SLICE_BYTES, |line| feed(adapter, run, line));
        read += slice.bytes as u64;
        if slice.at_end {
            break;
        }
        if read >= limit {
            let skipped = tail.skip_to_end();
            tracing::warn!(run = %run, parsed = read, skipped, "the stopped run's remaining output was not parsed");
            return;
        }
        tokio::task::yield_now().await;
    }
    tail.flush(|line| feed(adapter, run, line));
}
