//! The supervisor (R-10…R-17): the only owner of this worker's agent runs.
//!
//! ```text
//! dispatcher ── claim ──▶ prepare (worktree, prompt) ── launch monitor ──▶ watcher
//! watcher: tail log → adapter · heartbeat (fenced) · timeouts · budget · exit
//!          └─ record run + end job (complete | retry | give up) ──▶ RunReport
//! start-up: running jobs of this worker → re-adopt (alive) | finish (exited) | reap (lost)
//! reaper:   expired leases of other workers → unknown outcome (R-12)
//! ```

pub mod agent_token;
mod env;
mod exit_watch;
pub mod recover;
mod tail;
mod watch;

pub use env::{AgentEnv, agent_env};

use orch_agent::adapters::AdapterKind;
use orch_agent::process::{
    CgroupMode, LaunchSpec, MonitorCommand, RunHandle, StopPolicy, Timeouts,
};
use orch_core::retry::{FailureDecision, RetryPolicy};
use orch_core::run::{RunOutcome, Usage};
use orch_core::{AgentKind, Gates, Job, JobId, Limits, RunId, Task, TaskId, WorkerId};
use orch_store::{ClaimRequest, RunProcess, Store};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

/// How and where one agent run starts: decided by the pipeline's preparer
/// (worktree, prompt, agent config) before the launch.
#[derive(Debug, Clone)]
pub struct PreparedRun {
    pub cwd: PathBuf,
    pub argv: Vec<String>,
    /// Extra variables for this run (e.g. ORCH_PROMPT_FILE), on top of the allowlist.
    pub env: BTreeMap<String, String>,
    pub adapter: AdapterKind,
    pub timeouts: Timeouts,
    /// Run the agent sandboxed (`[sandbox] mode = "namespaces"`).
    pub sandbox: Option<orch_agent::process::sandbox::SandboxSpec>,
    /// `[limits] memory_mb`, `cpu_percent`, `pids`.
    pub limits: orch_agent::process::limits::ResourceLimits,
    /// A resumed Codex thread: the running total it had before this run
    /// (Codex reports the thread's, not the run's, usage).
    pub previous_total: Option<orch_agent::adapters::TokenUsage>,
}

/// Prepares a claimed job's run. Errors fail the attempt (and it is retried).
#[async_trait::async_trait]
pub trait RunPreparer: Send + Sync {
    async fn prepare(&self, task: &Task, job: &Job, run_dir: &Path) -> Result<PreparedRun, String>;

    /// A run of `job` succeeded on this machine: make its work available to
    /// whichever node takes the task's next step, before the store learns
    /// the job is done. An error fails the attempt (it is tried again).
    async fn hand_over(&self, _job: &Job) -> Result<(), String> {
        Ok(())
    }
}

/// Per-task limits (R-17): tokens, cost and agent wall time. Exceeding one
/// stops the agent and parks the task. The decision is the core's
/// ([`orch_core::budget::TaskBudget`]); this reads the clock for it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
    /// Agent wall time, summed over the task's agent runs (see
    /// `orch_core::budget`): `used.agent_running_since` makes the run in
    /// progress count up to now.
    pub max_wall_secs: Option<u64>,
}

impl Budget {
    /// What is exceeded by `used` now, if anything, as a sentence for the task's log.
    pub fn exceeded(&self, used: Usage) -> Option<String> {
        orch_core::budget::TaskBudget {
            max_tokens: self.max_tokens,
            max_cost_usd: self.max_cost_usd,
            max_wall_secs: self.max_wall_secs,
        }
        .exceeded(&used, crate::metered::now())
    }
}

#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub worker: WorkerId,
    /// Each run gets `runs_dir/<run_id>/` (logs, exit.json).
    pub runs_dir: PathBuf,
    pub lease: Duration,
    pub heartbeat: Duration,
    /// Fallback polling of the queue when nobody wakes the dispatcher.
    pub poll: Duration,
    /// How often a watcher looks at its run (log lines, budget, timeouts, a
    /// monitor that died). The run's end wakes it at once (inotify), so this
    /// can be slow; it bounds only how late a timeout or budget is noticed.
    pub tick: Duration,
    pub limits: Limits,
    pub gates: Gates,
    pub retry: RetryPolicy,
    pub stop: StopPolicy,
    pub budget: Budget,
    pub env: AgentEnv,
    pub monitor: MonitorCommand,
    pub cgroup: CgroupMode,
}

/// How a job's attempt ended, for the pipeline to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    Completed,
    Retrying(FailureDecision),
    /// No attempts left or the budget spent: the job failed for good. The
    /// supervisor writes no stage: the pipeline's tick parks the task.
    GaveUp,
    /// The agent asked a person (`RunReport::question`). The job is left
    /// running (its run is no longer watched): the task's owner gives it up
    /// with the question and parks the task on it; should orch die first,
    /// the reaper takes the job and it runs again.
    Asked,
    /// The job was cancelled (STOP) or its claim was lost (fenced).
    Cancelled,
}

/// One finished run, reported to the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    pub task_id: TaskId,
    pub job_id: JobId,
    pub run_id: RunId,
    pub agent: AgentKind,
    pub outcome: RunOutcome,
    pub end: JobEnd,
    pub usage: Usage,
    pub final_text: Option<String>,
    pub error: Option<String>,
    /// The question the agent asked a person (`JobEnd::Asked`).
    pub question: Option<String>,
}

/// The run an `orch mcp` token belongs to, while it is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSession {
    pub task: TaskId,
    pub run: RunId,
}

/// A run this worker is watching.
struct Active {
    task: TaskId,
    /// The hash of the run's `orch mcp` token (`agent_token`): valid while
    /// this entry exists.
    token_hash: Option<String>,
    /// What the agent asked a person through `ask_person`, if it did: the
    /// task parks on it when the run ends.
    question: Option<String>,
    /// Progress notes the agent posted (bounded: each is a tracker comment).
    notes: u32,
    stop: Arc<Notify>,
    /// Set once the run's processes are gone (it exited, or its watcher
    /// stopped it): what a STOP waits for before the worktree goes.
    gone: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Active {
    fn new(task: TaskId, run_dir: &Path) -> Active {
        Active {
            task,
            token_hash: agent_token::read_hash(run_dir),
            question: None,
            notes: 0,
            stop: Arc::new(Notify::new()),
            gone: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

pub struct Supervisor {
    store: Arc<dyn Store>,
    preparer: Arc<dyn RunPreparer>,
    /// Swapped whole by [`Supervisor::reload`]; read per use, so a run
    /// started after a reload sees the new limits, retry policy, budget and
    /// agent environment.
    cfg: std::sync::RwLock<Arc<SupervisorConfig>>,
    wake: Notify,
    shutdown: Notify,
    active: Mutex<HashMap<RunId, Active>>,
    reports: mpsc::UnboundedSender<RunReport>,
    /// The node drains (`orch node drain`): claim nothing new; the runs it
    /// watches go on to their end.
    draining: std::sync::atomic::AtomicBool,
}

impl Supervisor {
    /// A supervisor and the stream of its run reports.
    pub fn new(
        store: Arc<dyn Store>,
        preparer: Arc<dyn RunPreparer>,
        cfg: SupervisorConfig,
    ) -> (Arc<Supervisor>, mpsc::UnboundedReceiver<RunReport>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sup = Arc::new(Supervisor {
            store,
            preparer,
            cfg: std::sync::RwLock::new(Arc::new(cfg)),
            wake: Notify::new(),
            shutdown: Notify::new(),
            active: Mutex::new(HashMap::new()),
            reports: tx,
            draining: std::sync::atomic::AtomicBool::new(false),
        });
        (sup, rx)
    }

    pub fn config(&self) -> Arc<SupervisorConfig> {
        self.cfg().clone()
    }

    fn cfg(&self) -> Arc<SupervisorConfig> {
        self.cfg
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies a reloaded configuration's policies to work claimed from now
    /// on: concurrency limits, retry policy, budget and the agents'
    /// environment. What the running loops were built with (worker name,
    /// runs folder, lease, heartbeat, polling, STOP's grace, monitor) stays
    /// until a restart. Runs already started keep what they started with.
    pub fn reload(&self, new: &SupervisorConfig) {
        let mut cfg = self
            .cfg
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = (**cfg).clone();
        next.limits = new.limits.clone();
        next.retry = new.retry.clone();
        next.budget = new.budget;
        next.env = new.env.clone();
        *cfg = Arc::new(next);
        drop(cfg);
        // A raised limit may let waiting work start now.
        self.wake();
    }

    /// New work was queued: claim now instead of at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stop claiming. Running agents are left alone: a restarted orchestrator
    /// re-adopts them (graceful shutdown, R-60).
    pub fn shutdown(&self) {
        self.shutdown.notify_waiters();
    }

    /// Drain (claim nothing new, let the runs it watches end) or claim
    /// again. Returns whether it claims nothing new now.
    pub fn set_draining(&self, draining: bool) -> bool {
        use std::sync::atomic::Ordering;
        let was = self.draining.swap(draining, Ordering::SeqCst);
        if was && !draining {
            self.wake();
        }
        draining
    }

    /// Whether it claims nothing new (draining).
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The watched run whose `orch mcp` token this is; `None` for a token of
    /// no run, or of a run that ended (the token died with it).
    pub fn agent_session(&self, token: &str) -> Option<AgentSession> {
        let hash = agent_token::hash(token);
        self.lock_active()
            .iter()
            .find(|(_, a)| a.token_hash.as_deref() == Some(hash.as_str()))
            .map(|(run, a)| AgentSession {
                task: a.task,
                run: run.clone(),
            })
    }

    /// The agent of `run` asked a person: the task parks on the question
    /// when the run ends. False when the run is no longer watched.
    pub fn record_question(&self, run: &RunId, question: String) -> bool {
        match self.lock_active().get_mut(run) {
            Some(a) => {
                a.question = Some(question);
                true
            }
            None => false,
        }
    }

    /// Counts one more progress note of `run`; false when the run is no
    /// longer watched or has posted `max` already.
    pub fn count_note(&self, run: &RunId, max: u32) -> bool {
        match self.lock_active().get_mut(run) {
            Some(a) if a.notes < max => {
                a.notes += 1;
                true
            }
            _ => false,
        }
    }

    /// Runs being watched right now.
    pub fn active_runs(&self) -> Vec<RunId> {
        self.lock_active().keys().cloned().collect()
    }

    /// Stop every run of `task` that this supervisor watches, and wait
    /// until their processes are gone (STOP: the supervisor is the one code
    /// that signals agents; each run's watcher stops its tree and records the
    /// run as cancelled). Returns the runs that were stopped.
    pub async fn stop_task_runs(&self, task: TaskId) -> Vec<RunId> {
        let signalled: Vec<(RunId, tokio::sync::watch::Receiver<bool>)> = {
            let active = self.lock_active();
            active
                .iter()
                .filter(|(_, a)| a.task == task)
                .map(|(run, a)| {
                    a.stop.notify_one();
                    (run.clone(), a.gone.subscribe())
                })
                .collect()
        };
        // A stop ends within its graces and the kill wait; past that (a
        // watcher wedged on something else) the cancel goes on and says so.
        let limit = self.cfg().stop.grace_int
            + self.cfg().stop.grace_term
            + self.cfg().stop.kill_wait
            + std::time::Duration::from_secs(5);
        let mut stopped = Vec::with_capacity(signalled.len());
        for (run, mut gone) in signalled {
            match tokio::time::timeout(limit, gone.wait_for(|g| *g)).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::error!(run = %run, "STOP: the run's watcher did not end it in time")
                }
            }
            stopped.push(run);
        }
        stopped
    }

    /// Another process cancelled `job` (a queue signal said so): stop its
    /// run now if this supervisor watches it, instead of at the watcher's
    /// next heartbeat. Only a job the store shows cancelled is stopped, and
    /// only the run of its last attempt (its fencing run id); `true` if that
    /// run was signalled. Its watcher records it as cancelled.
    pub async fn stop_cancelled_job(&self, job: JobId) -> bool {
        let job = match self.store.get_job(job).await {
            Ok(Some(j)) if j.status == orch_core::JobStatus::Cancelled => j,
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(job = %job, error = %e, "loading a cancelled job failed; its watcher finds out at its next heartbeat");
                return false;
            }
        };
        let Some(run) = job.run_id else {
            return false;
        };
        match self.lock_active().get(&run) {
            Some(a) => {
                a.stop.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Active>> {
        // A watcher that panicked while holding the lock leaves the map intact
        // (inserts and removes are single operations), so keep using it.
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run_dir(&self, run: &RunId) -> PathBuf {
        self.cfg().runs_dir.join(run.as_str())
    }

    fn claim_request(&self) -> ClaimRequest {
        ClaimRequest {
            worker: self.cfg().worker.clone(),
            lease: self.cfg().lease,
            limits: self.cfg().limits.clone(),
            gates: self.cfg().gates,
        }
    }

    /// Claim and start every job that may run now; returns how many started.
    pub async fn dispatch_once(self: &Arc<Self>) -> usize {
        let mut started = 0;
        loop {
            // Checked before each claim: a drain takes effect between two.
            if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
                return started;
            }
            match self.store.claim(&self.claim_request()).await {
                Ok(Some(job)) => {
                    started += 1;
                    crate::metered::run_started(&job);
                    let sup = self.clone();
                    // Every line logged for this run carries its task and run.
                    let span = run_span(&job);
                    tokio::spawn(tracing::Instrument::instrument(
                        async move { sup.start_job(job).await },
                        span,
                    ));
                }
                Ok(None) => return started,
                Err(e) => {
                    tracing::error!(error = %e, "claiming a job failed; retrying at the next poll");
                    return started;
                }
            }
        }
    }

    /// The dispatcher loop: claim on wake-up or every `poll`, until shutdown.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.dispatch_once().await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.cfg().poll) => {}
                _ = self.shutdown.notified() => return,
            }
        }
    }

    /// Start the dispatcher and the reaper; recover this worker's runs first.
    pub async fn start(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        self.recover().await;
        let reaper = {
            let sup = self.clone();
            tokio::spawn(async move { sup.reaper_loop().await })
        };
        let dispatcher = tokio::spawn(self.clone().run());
        vec![dispatcher, reaper]
    }

    /// Prepare and launch a claimed job, then watch it to the end.
    async fn start_job(self: Arc<Self>, job: Job) {
        let Some(run) = job.run_id.clone() else {
            tracing::error!(job = %job.id, "claimed job has no run id");
            return;
        };
        let run_dir = self.run_dir(&run);
        let claimed = std::time::Instant::now();
        let task = match self.store.get_task(job.task_id).await {
            Ok(Some(t)) => t,
            other => {
                let why = match other {
                    Err(e) => format!("loading task {}: {e}", job.task_id),
                    _ => format!("task {} no longer exists", job.task_id),
                };
                self.launch_failed(&job, &run, why).await;
                return;
            }
        };
        if let Err(e) = std::fs::create_dir_all(&run_dir) {
            self.launch_failed(&job, &run, format!("creating {}: {e}", run_dir.display()))
                .await;
            return;
        }
        let prepared = match self.preparer.prepare(&task, &job, &run_dir).await {
            Ok(p) => p,
            Err(e) => {
                self.launch_failed(&job, &run, format!("preparing the run: {e}"))
                    .await;
                return;
            }
        };
        // A STOP (or a park) may have cancelled the job while it was being
        // prepared: the claim, renewed here under its fencing run id, says
        // whether it is still ours. If not, nothing starts; the report lets
        // the pipeline clear what preparing left (the worktree of a
        // cancelled task). A STOP after this point finds the run's process
        // recorded, or the watcher's first heartbeat finds the claim gone.
        match self.store.heartbeat(job.id, &run, self.cfg().lease).await {
            Ok(true) => {}
            Ok(false) => {
                self.not_launched(&job, &run).await;
                return;
            }
            Err(e) => {
                self.launch_failed(
                    &job,
                    &run,
                    format!("checking the claim before the launch: {e}"),
                )
                .await;
                return;
            }
        }
        let prepare_ms = claimed.elapsed().as_secs_f64() * 1e3;
        let meta = recover::RunMeta::new(
            prepared.adapter,
            &prepared.timeouts,
            job.updated_at,
            prepared.previous_total,
        );
        if let Err(e) = meta.write(&run_dir) {
            self.launch_failed(&job, &run, format!("writing the run's metadata: {e}"))
                .await;
            return;
        }
        let mut env = agent_env(&self.cfg().env, &task, &job, &run);
        env.extend(prepared.env.clone());
        let mut sandbox = prepared.sandbox.clone();
        if let Some(s) = &mut sandbox {
            // The agent's HOME, as its environment names it, is an empty
            // folder inside: nothing of the host user's home is visible.
            s.home = env.get("HOME").map(PathBuf::from);
        }
        let spec = LaunchSpec {
            run_id: run.clone(),
            run_dir: run_dir.clone(),
            cwd: prepared.cwd.clone(),
            argv: prepared.argv.iter().map(Into::into).collect(),
            env,
            monitor: self.cfg().monitor.clone(),
            cgroup: self.cfg().cgroup,
            sandbox,
            limits: prepared.limits,
        };
        let handle =
            match tokio::task::spawn_blocking(move || orch_agent::process::launch(spec)).await {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => {
                    self.launch_failed(&job, &run, format!("launching the agent: {e}"))
                        .await;
                    return;
                }
                Err(e) => {
                    self.launch_failed(&job, &run, format!("launcher task failed: {e}"))
                        .await;
                    return;
                }
            };
        let launch_ms = claimed.elapsed().as_secs_f64() * 1e3 - prepare_ms;
        let process = RunProcess {
            pid: handle.pid,
            pgid: handle.pgid,
            proc_start_ticks: handle.proc_start_ticks,
            log_path: run_dir
                .join(orch_agent::process::run_dir::OUTPUT_LOG)
                .display()
                .to_string(),
        };
        if let Err(e) = self.store.record_run_process(&run, &process).await {
            // The run is alive and known by its folder; recovery can still find it
            // by run id, so watch it rather than orphan it.
            tracing::error!(run = %run, error = %e, "recording the run's process failed");
        }
        // The two parts of orch's own start latency, for operators and benches.
        tracing::info!(task = %task.id, job = %job.id, run = %run, agent = %job.agent, pid = handle.pid, prepare_ms = format!("{prepare_ms:.1}"), launch_ms = format!("{launch_ms:.1}"), "agent started");
        self.watch(task, job, handle, prepared.adapter, prepared.timeouts)
            .await;
    }

    /// The job was cancelled (or its claim lost) between the claim and the
    /// launch: no agent starts. The run is recorded as cancelled and the job
    /// left to whoever cancelled it.
    async fn not_launched(&self, job: &Job, run: &RunId) {
        let why = "the job was cancelled before its agent started; nothing was launched";
        tracing::info!(job = %job.id, run = %run, "{why}");
        let finish = orch_store::RunFinish {
            outcome: RunOutcome::Cancelled,
            exit_code: None,
            signal: None,
            usage: Usage::default(),
            session_id: None,
            error: Some(why.to_owned()),
            final_text: None,
        };
        if let Err(e) = self.store.finish_run(run, &finish).await {
            tracing::warn!(run = %run, error = %e, "recording the run that never started failed");
        }
        let _ = self.reports.send(RunReport {
            task_id: job.task_id,
            job_id: job.id,
            run_id: run.clone(),
            agent: job.agent,
            outcome: RunOutcome::Cancelled,
            end: JobEnd::Cancelled,
            usage: Usage::default(),
            final_text: None,
            error: Some(why.to_owned()),
            question: None,
        });
    }

    /// The attempt failed before an agent process existed: record and retry.
    async fn launch_failed(&self, job: &Job, run: &RunId, error: String) {
        tracing::warn!(job = %job.id, run = %run, error = %error, "run could not start");
        let finish = orch_store::RunFinish {
            outcome: RunOutcome::Failed,
            exit_code: None,
            signal: None,
            usage: Usage::default(),
            session_id: None,
            error: Some(error.clone()),
            final_text: None,
        };
        let _ = self.store.finish_run(run, &finish).await;
        let decision = self
            .store
            .fail(job.id, run, &error, &self.cfg().retry)
            .await;
        let end = Self::end_of(job, decision);
        let _ = self.reports.send(RunReport {
            task_id: job.task_id,
            job_id: job.id,
            run_id: run.clone(),
            agent: job.agent,
            outcome: RunOutcome::Failed,
            end,
            usage: Usage::default(),
            final_text: None,
            error: Some(error),
            question: None,
        });
    }
}

/// The span of one run's work: its log lines name the task, run and agent.
pub(crate) fn run_span(job: &Job) -> tracing::Span {
    tracing::info_span!(
        "run",
        task = %job.task_id,
        run = job.run_id.as_ref().map_or("", |r| r.as_str()),
        agent = %job.agent
    )
}

/// Rebuild a run's handle from what the store recorded.
pub fn handle_of(run: &orch_core::Run, runs_dir: &Path) -> Option<RunHandle> {
    Some(RunHandle {
        run_id: run.run_id.clone(),
        pid: run.pid?,
        pgid: run.pgid?,
        proc_start_ticks: run.proc_start_ticks?,
        run_dir: runs_dir.join(run.run_id.as_str()),
    })
}
