//! After a restart: re-adopt this worker's live runs, finish those that ended
//! while nobody watched, reap the lost. And the reaper for runs whose
//! worker stopped renewing their lease.

use super::tail::LogTail;
use super::watch::{Ending, drain};
use super::{JobEnd, RunReport, Supervisor, handle_of};
use orch_agent::adapters::{AdapterKind, AdapterOptions, OutputAdapter, TokenUsage, adapter_with};
use orch_agent::process::{RunHandle, RunState, Timeouts, is_alive, run_state};
use orch_core::run::{RunOutcome, Usage};
use orch_core::{Job, Timestamp};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long recovery waits for a just-spawned monitor to name itself.
const MONITOR_APPEAR: Duration = Duration::from_secs(5);

/// What a later orchestrator needs to keep watching a run: written next to the
/// monitor's files at launch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct RunMeta {
    pub adapter: AdapterKind,
    pub wall_ms: Option<u64>,
    pub idle_ms: Option<u64>,
    pub started_at: Timestamp,
    /// A resumed Codex thread's running total before this run (see
    /// [`PreparedRun::previous_total`](super::PreparedRun)).
    #[serde(default)]
    pub previous_total: Option<TokenUsage>,
}

pub(super) const RUN_META: &str = "orch-run.json";
/// Where a Codex run's thread total is kept when it ends, for the run that
/// resumes its thread (`AgentOutcome::thread_total`).
pub const THREAD_TOTAL: &str = "thread-total.json";

/// The output adapter of the run in `run_dir`: a resumed Codex thread's
/// run subtracts the total its thread had before (its `RunMeta`), so it is
/// charged only for its own tokens.
pub(super) fn run_adapter(kind: AdapterKind, run_dir: &Path) -> Box<dyn OutputAdapter + Send> {
    let previous_total = RunMeta::read(run_dir).and_then(|m| m.previous_total);
    adapter_with(
        kind,
        AdapterOptions {
            previous_total,
            ..AdapterOptions::default()
        },
    )
}

/// The thread total a finished run's thread reached, if it recorded one.
pub fn read_thread_total(run_dir: &Path) -> Option<TokenUsage> {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join(THREAD_TOTAL)).ok()?).ok()
}

impl RunMeta {
    pub fn new(
        adapter: AdapterKind,
        t: &Timeouts,
        started_at: Timestamp,
        previous_total: Option<TokenUsage>,
    ) -> Self {
        RunMeta {
            adapter,
            wall_ms: t.wall.map(|d| d.as_millis() as u64),
            idle_ms: t.idle.map(|d| d.as_millis() as u64),
            started_at,
            previous_total,
        }
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            wall: self.wall_ms.map(Duration::from_millis),
            idle: self.idle_ms.map(Duration::from_millis),
        }
    }

    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string(self).map_err(std::io::Error::other)?;
        std::fs::write(run_dir.join(RUN_META), text)
    }

    pub fn read(run_dir: &Path) -> Option<RunMeta> {
        serde_json::from_str(&std::fs::read_to_string(run_dir.join(RUN_META)).ok()?).ok()
    }
}

impl Supervisor {
    /// Start-up recovery of the jobs this worker left running.
    pub async fn recover(self: &Arc<Self>) {
        let jobs = match self.store.running_jobs(Some(&self.cfg().worker)).await {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "listing running jobs for recovery failed");
                return;
            }
        };
        for job in jobs {
            self.recover_job(job).await;
        }
    }

    async fn recover_job(self: &Arc<Self>, job: Job) {
        let Some(run_id) = job.run_id.clone() else {
            return;
        };
        let run = match self.store.get_run(&run_id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(run = %run_id, error = %e, "loading the run for recovery failed");
                return;
            }
        };
        let handle = match run
            .as_ref()
            .and_then(|r| handle_of(r, &self.cfg().runs_dir))
        {
            Some(h) => Some(h),
            None => self.handle_from_run_dir(&run_id).await,
        };
        let Some(handle) = handle else {
            // Claimed, but the agent never started (crash between claim and launch).
            let reason = "orch restarted before the agent started";
            let d = self
                .store
                .reap_unknown_outcome(job.id, &run_id, reason, &self.cfg().retry)
                .await;
            let end = Self::end_of(&job, d);
            tracing::info!(run = %run_id, ?end, "reaped a run that never started");
            self.report_reaped(&job, &run_id, end, reason);
            return;
        };
        let meta = RunMeta::read(&handle.run_dir);
        let adapter = meta.as_ref().map_or(AdapterKind::Command, |m| m.adapter);
        let timeouts = meta.as_ref().map(RunMeta::timeouts).unwrap_or(Timeouts {
            wall: None,
            idle: None,
        });
        let started = meta.map_or_else(
            || run.map_or(Timestamp(0), |r| r.started_at),
            |m| m.started_at,
        );
        let task = match self.store.get_task(job.task_id).await {
            Ok(Some(t)) => t,
            _ => return,
        };
        match run_state(&handle) {
            RunState::Running => {
                tracing::info!(run = %run_id, pid = handle.pid, "re-adopting a live run");
                // Registered before the watcher starts: `active_runs` and a STOP
                // see the run as soon as recovery returns.
                self.lock_active()
                    .entry(run_id.clone())
                    .or_insert_with(|| super::Active::new(task.id, &handle.run_dir));
                let sup = self.clone();
                let span = super::run_span(&job);
                tokio::spawn(tracing::Instrument::instrument(
                    async move {
                        sup.watch_run(task, job, handle, adapter, timeouts, started)
                            .await
                    },
                    span,
                ));
            }
            RunState::Exited(rec) => {
                tracing::info!(run = %run_id, "recording a run that ended while orch was away");
                self.record_from_log(&job, &handle, adapter, Ending::Exited(rec))
                    .await;
            }
            RunState::Lost => {
                self.record_from_log(&job, &handle, adapter, Ending::Lost)
                    .await;
            }
        }
    }

    /// A crash between starting the monitor and recording its pid leaves the
    /// run's row without a process, yet the monitor runs (and will run the
    /// agent, e.g. a deploy): treating it as never started would run the work
    /// twice. The monitor names itself in `monitor.json`; it is waited for a
    /// moment when the launcher got as far as spawning it (`monitor.log`).
    async fn handle_from_run_dir(&self, run_id: &orch_core::RunId) -> Option<RunHandle> {
        use orch_agent::process::run_dir;
        let dir = self.cfg().runs_dir.join(run_id.as_str());
        if !dir.join(run_dir::MONITOR_LOG).exists() {
            return None;
        }
        let deadline = std::time::Instant::now() + MONITOR_APPEAR;
        let info = loop {
            if let Some(info) = run_dir::read_monitor_info(&dir) {
                break info;
            }
            if run_dir::read_exit(&dir).is_some() || std::time::Instant::now() >= deadline {
                // It could not start the agent, or it never ran.
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let handle = RunHandle {
            run_id: run_id.clone(),
            pid: info.monitor_pid,
            pgid: info.monitor_pid,
            proc_start_ticks: info.monitor_start_ticks,
            run_dir: dir.clone(),
        };
        let process = orch_store::RunProcess {
            pid: handle.pid,
            pgid: handle.pgid,
            proc_start_ticks: handle.proc_start_ticks,
            log_path: dir.join(run_dir::OUTPUT_LOG).display().to_string(),
        };
        if let Err(e) = self.store.record_run_process(run_id, &process).await {
            tracing::warn!(run = %run_id, error = %e, "recording the recovered run's process failed");
        }
        tracing::info!(run = %run_id, pid = handle.pid, "found a run started just before a crash");
        Some(handle)
    }

    async fn record_from_log(
        &self,
        job: &Job,
        handle: &RunHandle,
        adapter: AdapterKind,
        ending: Ending,
    ) {
        let mut a = run_adapter(adapter, &handle.run_dir);
        let log = handle
            .run_dir
            .join(orch_agent::process::run_dir::OUTPUT_LOG);
        // Read in bounded slices, as a live run is: the log may be huge.
        let mut tail = LogTail::new(log);
        drain(&mut tail, a.as_mut(), &handle.run_id, u64::MAX).await;
        self.note_truncated(job.task_id, tail.stats()).await;
        self.note_egress_refused(job.task_id, &handle.run_dir, &mut 0)
            .await;
        self.record(job, handle, a.as_mut(), ending).await;
    }

    /// A reaped run is reported like a watched one, so the pipeline acts on
    /// it: a job with no attempts left parks its task (the park reaches the
    /// tracker and the webhooks), and a retry is claimed at once.
    fn report_reaped(&self, job: &Job, run: &orch_core::RunId, end: JobEnd, why: &str) {
        let _ = self.reports.send(RunReport {
            task_id: job.task_id,
            job_id: job.id,
            run_id: run.clone(),
            agent: job.agent,
            outcome: RunOutcome::Unknown,
            end,
            usage: Usage::default(),
            final_text: None,
            error: Some(why.to_owned()),
            question: None,
        });
    }

    /// Every half lease: jobs whose lease expired and that nobody here watches
    /// have an unknown outcome (their worker died or lost the store).
    pub(super) async fn reaper_loop(self: Arc<Self>) {
        let period = (self.cfg().lease / 2).max(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = self.shutdown.notified() => return,
            }
            self.reap_once().await;
        }
    }

    /// One reaper pass; returns how many jobs it reaped.
    pub async fn reap_once(&self) -> usize {
        let expired = match self.store.expired_jobs().await {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "listing expired jobs failed");
                return 0;
            }
        };
        let watched = self.active_runs();
        let mut n = 0;
        for job in expired {
            let Some(run_id) = job.run_id.clone() else {
                continue;
            };
            if watched.contains(&run_id) {
                continue;
            }
            // If the run's process still lives on this machine, end it first:
            // requeueing while it runs would run the stage twice. (Another
            // machine's process ids mean nothing here.)
            if let Ok(Some(run)) = self.store.get_run(&run_id).await
                && !crate::node::ran_elsewhere(self.store.as_ref(), &run).await
                && let Some(h) = handle_of(&run, &self.cfg().runs_dir)
                && is_alive(&h)
            {
                let policy = self.cfg().stop;
                let _ = tokio::task::spawn_blocking(move || {
                    orch_agent::process::stop(&h, &policy, "lease expired: outcome unknown")
                })
                .await;
            }
            let reason = "the worker stopped renewing the job's lease";
            let d = self
                .store
                .reap_unknown_outcome(job.id, &run_id, reason, &self.cfg().retry)
                .await;
            let end = Self::end_of(&job, d);
            tracing::warn!(job = %job.id, run = %run_id, ?end, "reaped a job with an unknown outcome");
            self.report_reaped(&job, &run_id, end, reason);
            n += 1;
        }
        n
    }
}
