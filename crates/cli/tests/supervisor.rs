//! The supervisor with real processes: scripted agents run under the real
//! `orch monitor`, against a real SQLite store. Covers outcomes, retries with
//! backoff, timeouts, STOP of whole process trees, budgets, the environment
//! allowlist, and re-adoption after an orchestrator restart.

use orch_agent::adapters::AdapterKind;
use orch_agent::process::{CgroupMode, MonitorCommand, StopPolicy, Timeouts};
use orch_core::EventKind;
use orch_core::retry::RetryPolicy;
use orch_core::run::RunOutcome;
use orch_core::{
    AgentKind, Job, JobStatus, NewJob, NewTask, Stage, Task, TaskId, Timestamp, WorkerId,
};
use orch_engine::supervisor::{
    AgentEnv, Budget, JobEnd, PreparedRun, RunPreparer, RunReport, Supervisor, SupervisorConfig,
};
use orch_store::{SqliteOptions, SqliteStore, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// Runs `body` as a shell script in `workdir`.
struct Script {
    workdir: PathBuf,
    body: String,
    adapter: AdapterKind,
    timeouts: Timeouts,
}

#[async_trait::async_trait]
impl RunPreparer for Script {
    async fn prepare(
        &self,
        _task: &Task,
        _job: &Job,
        run_dir: &Path,
    ) -> Result<PreparedRun, String> {
        let path = run_dir.join("agent.sh");
        std::fs::write(&path, &self.body).map_err(|e| e.to_string())?;
        Ok(PreparedRun {
            sandbox: None,
            limits: Default::default(),
            previous_total: None,
            cwd: self.workdir.clone(),
            argv: vec!["/bin/sh".into(), path.display().to_string()],
            env: Default::default(),
            adapter: self.adapter,
            timeouts: self.timeouts,
        })
    }
}

/// A script whose hand-over (the work after a successful run, before its
/// job counts as done) waits until the test lets it go.
struct SlowHandOver {
    script: Script,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl RunPreparer for SlowHandOver {
    async fn prepare(&self, task: &Task, job: &Job, run_dir: &Path) -> Result<PreparedRun, String> {
        self.script.prepare(task, job, run_dir).await
    }

    async fn hand_over(&self, _job: &Job) -> Result<(), String> {
        self.entered.notify_one();
        self.release.notified().await;
        Ok(())
    }
}

impl SlowHandOver {
    fn new(script: Script) -> Arc<SlowHandOver> {
        Arc::new(SlowHandOver {
            script,
            entered: Default::default(),
            release: Default::default(),
        })
    }

    async fn wait_entered(&self) {
        tokio::time::timeout(Duration::from_secs(30), self.entered.notified())
            .await
            .expect("the run reached its hand-over");
    }
}

struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("orch.db"), SqliteOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        std::fs::create_dir_all(dir.path().join("work")).unwrap();
        World {
            dir,
            store: Arc::new(store),
        }
    }

    fn config(&self) -> SupervisorConfig {
        SupervisorConfig {
            worker: WorkerId("test-worker".into()),
            runs_dir: self.dir.path().join("runs"),
            lease: Duration::from_secs(3),
            heartbeat: Duration::from_millis(200),
            poll: Duration::from_millis(100),
            tick: Duration::from_millis(50),
            limits: Default::default(),
            gates: Default::default(),
            retry: RetryPolicy {
                base: Duration::from_millis(200),
                cap: Duration::from_secs(1),
                factor: 2.0,
                jitter: 0.0,
            },
            stop: StopPolicy::with_grace(Duration::from_secs(2)),
            budget: Budget::default(),
            env: AgentEnv {
                allow: vec!["PATH".into()],
                set: [("GREETING".to_string(), "hi".to_string())].into(),
            },
            monitor: MonitorCommand {
                program: env!("CARGO_BIN_EXE_orch").into(),
                args_prefix: vec!["monitor".into()],
            },
            cgroup: CgroupMode::Auto,
        }
    }

    fn script(&self, body: &str) -> Script {
        Script {
            workdir: self.dir.path().join("work"),
            body: body.to_owned(),
            adapter: AdapterKind::Command,
            timeouts: Timeouts {
                wall: None,
                idle: None,
            },
        }
    }

    async fn task(&self) -> Task {
        let mut t = NewTask::new("demo", "scripted");
        t.stage = Stage::Development;
        self.store.create_task(t, "test").await.unwrap()
    }

    async fn job(&self, task: &Task, max_attempts: u32) -> Job {
        let mut j = NewJob::new(task.id, AgentKind::Developer, "demo", Timestamp(0));
        j.max_attempts = max_attempts;
        self.store.enqueue(j).await.unwrap()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join("work").join(name)
    }
}

/// Wait for the next report (generous deadline: CI is a busy 2-core machine).
async fn next_report(rx: &mut UnboundedReceiver<RunReport>) -> RunReport {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a run report in time")
        .expect("channel open")
}

/// Until `f` holds of processes or files (agents', monitors'): those are
/// the kernel's news, no engine signal, so it looks every 50 ms.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Until `f` holds of what `store` holds: each look after a commit made
/// through it (`Store::changes`; a change between the mark and the look
/// ends the next wait at once).
async fn eventually_stored<F: std::future::Future<Output = bool>>(
    store: &dyn Store,
    what: &str,
    mut f: impl FnMut() -> F,
) {
    let mut changes = store.changes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        changes.borrow_and_update();
        if f().await {
            return;
        }
        let woken = tokio::time::timeout_at(deadline, changes.changed()).await;
        assert!(woken.is_ok(), "timed out waiting for: {what}");
    }
}

fn alive(pid: i32) -> bool {
    // A zombie has exited: only count processes that still run.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_is_recorded_and_the_job_completes() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 3).await;
    let (sup, mut rx) = Supervisor::new(
        w.store.clone(),
        Arc::new(w.script("echo working; echo done > result.txt")),
        w.config(),
    );
    assert_eq!(sup.dispatch_once().await, 1);
    let r = next_report(&mut rx).await;
    assert_eq!(
        (r.outcome, r.end.clone()),
        (RunOutcome::Succeeded, JobEnd::Completed)
    );
    assert_eq!(
        w.store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Succeeded
    );
    let run = w.store.get_run(&r.run_id).await.unwrap().unwrap();
    assert_eq!(
        (run.exit_code, run.outcome),
        (Some(0), Some(RunOutcome::Succeeded))
    );
    assert!(
        run.pid.is_some() && run.proc_start_ticks.is_some(),
        "process identity recorded"
    );
    assert!(
        std::fs::read_to_string(run.log_path.unwrap())
            .unwrap()
            .contains("working")
    );
    assert_eq!(
        std::fs::read_to_string(w.file("result.txt"))
            .unwrap()
            .trim(),
        "done",
        "ran in the prepared cwd"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_agent_is_retried_with_backoff_then_parks_the_task() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 2).await;
    let (sup, mut rx) = Supervisor::new(
        w.store.clone(),
        Arc::new(w.script("echo oops >&2; exit 7")),
        w.config(),
    );
    sup.dispatch_once().await;
    let first = next_report(&mut rx).await;
    assert_eq!(first.outcome, RunOutcome::Failed);
    let JobEnd::Retrying(orch_core::retry::FailureDecision::Retry { run_after }) = first.end else {
        panic!("expected a retry, got {:?}", first.end)
    };
    let queued = w.store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(
        (queued.status, queued.run_after),
        (JobStatus::Queued, run_after)
    );
    assert!(
        queued.last_error.unwrap().contains("exit code 7"),
        "the failure reason is kept"
    );
    assert_eq!(
        sup.dispatch_once().await,
        0,
        "not claimable before the backoff passes"
    );
    // The backoff is time itself: nothing to signal but the clock.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(sup.dispatch_once().await, 1);
    let second = next_report(&mut rx).await;
    assert_eq!(second.end, JobEnd::GaveUp);
    let job = w.store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 2));
    assert_eq!(
        w.store.get_task(t.id).await.unwrap().unwrap().stage,
        Stage::Development,
        "the supervisor writes no stage"
    );
    // The task's owner hears the report and parks the task (R-8a).
    pipeline_of(&w).on_run_report(&second).await.unwrap();
    let task = w.store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(
        task.stage,
        Stage::NeedsAttention,
        "exhausted retries park the task (R-8a)"
    );
    let evs = w.store.events(t.id).await.unwrap();
    assert!(
        evs.iter().any(|e| e.kind == EventKind::NeedsAttention
            && e.message.contains("after 2 attempts")
            && e.message.contains("exit code 7")),
        "{evs:?}"
    );
    assert_eq!(w.store.runs_for_task(t.id).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_and_idle_timeouts_stop_the_run_and_count_as_failure() {
    let w = World::new().await;
    let t = w.task().await;
    w.job(&t, 1).await;
    let mut s = w.script("echo start; exec sleep 30");
    s.timeouts = Timeouts {
        wall: Some(Duration::from_millis(700)),
        idle: None,
    };
    let (sup, mut rx) = Supervisor::new(w.store.clone(), Arc::new(s), w.config());
    sup.dispatch_once().await;
    let r = next_report(&mut rx).await;
    assert_eq!((r.outcome, r.end), (RunOutcome::TimedOut, JobEnd::GaveUp));

    let t2 = w.task().await;
    w.job(&t2, 1).await;
    let mut s = w.script("echo start; exec sleep 30");
    s.timeouts = Timeouts {
        wall: Some(Duration::from_secs(20)),
        idle: Some(Duration::from_millis(700)),
    };
    let (sup, mut rx) = Supervisor::new(w.store.clone(), Arc::new(s), w.config());
    sup.dispatch_once().await;
    let r = next_report(&mut rx).await;
    assert_eq!(r.outcome, RunOutcome::Stalled);
    let run = w.store.get_run(&r.run_id).await.unwrap().unwrap();
    assert!(
        run.error.unwrap().contains("Idle"),
        "the reason names the idle timeout"
    );
}

/// Port of TC-02 (active agent stopped by its run) with the process tree: the
/// agent, a grandchild, and a descendant that escaped into its own session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc02_stop_kills_the_agent_its_grandchildren_and_escaped_descendants() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 3).await;
    let pids = w.file("pids");
    let body = format!(
        "sleep 1000 & echo $! >> {p}\nsetsid sleep 1000 & echo $! >> {p}\necho $$ >> {p}\ntrap '' INT TERM\nwhile true; do sleep 1; done\n",
        p = pids.display()
    );
    let (sup, mut rx) = Supervisor::new(w.store.clone(), Arc::new(w.script(&body)), w.config());
    sup.dispatch_once().await;
    eventually("three pids written", || async {
        read_pids(&pids).len() == 3
    })
    .await;
    let pids_now = read_pids(&pids);
    assert!(pids_now.iter().all(|p| alive(*p)));
    // STOP: cancel the task's jobs, then stop its runs (the engine's order).
    assert_eq!(w.store.cancel_jobs_for_task(t.id, false).await.unwrap(), 1);
    let stopped = sup.stop_task_runs(t.id).await;
    assert_eq!(stopped.len(), 1, "one active run stopped");
    // It returns once the tree is gone: the engine removes the worktree next.
    for p in pids_now {
        assert!(!alive(p), "pid {p} survived the STOP");
    }
    let r = next_report(&mut rx).await;
    assert_eq!(
        (r.run_id, r.outcome, r.end),
        (stopped[0].clone(), RunOutcome::Cancelled, JobEnd::Cancelled)
    );
    assert_eq!(
        w.store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
    // An idle task (nothing running) has nothing to stop.
    let idle = w.task().await;
    assert!(sup.stop_task_runs(idle.id).await.is_empty());
}

/// A job cancelled by another process (a queue signal names it) has its
/// run stopped at once; a job that is not cancelled, or runs elsewhere, is
/// left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_cancelled_elsewhere_has_its_run_stopped_at_once() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 3).await;
    let started = w.file("started");
    let body = format!(
        "touch {s}\nwhile true; do sleep 1; done\n",
        s = started.display()
    );
    // No heartbeat during the test: only the stop can end the run.
    let mut cfg = w.config();
    cfg.lease = Duration::from_secs(600);
    cfg.heartbeat = Duration::from_secs(300);
    let (sup, mut rx) = Supervisor::new(w.store.clone(), Arc::new(w.script(&body)), cfg);
    sup.dispatch_once().await;
    eventually("the agent started", || async { started.exists() }).await;
    assert!(
        !sup.stop_cancelled_job(j.id).await,
        "a running job is not stopped"
    );
    assert_eq!(w.store.cancel_jobs_for_task(t.id, false).await.unwrap(), 1);
    assert!(sup.stop_cancelled_job(j.id).await, "its run is signalled");
    let r = next_report(&mut rx).await;
    assert_eq!(
        (r.job_id, r.outcome, r.end),
        (j.id, RunOutcome::Cancelled, JobEnd::Cancelled)
    );
    // Its run is no longer watched: nothing more to stop.
    assert!(!sup.stop_cancelled_job(j.id).await);
}

/// A cancelled job is noticed at the next heartbeat even without a direct stop
/// (another orchestrator cancelled it): the claim is fenced and the agent goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_claim_stops_the_agent_at_the_next_heartbeat() {
    let w = World::new().await;
    let t = w.task().await;
    w.job(&t, 3).await;
    let (sup, mut rx) = Supervisor::new(
        w.store.clone(),
        Arc::new(w.script("exec sleep 1000")),
        w.config(),
    );
    sup.dispatch_once().await;
    eventually("the run is active", || async {
        !sup.active_runs().is_empty()
    })
    .await;
    w.store.cancel_jobs_for_task(t.id, false).await.unwrap();
    let r = next_report(&mut rx).await;
    assert_eq!(r.outcome, RunOutcome::Cancelled);
    assert!(r.error.unwrap().contains("cancelled or its claim was lost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_exceeded_mid_run_stops_the_agent_and_parks_the_task() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 3).await;
    let body = r#"echo '{"type":"system","subtype":"init","session_id":"s-1","model":"claude-sonnet-4-5"}'
echo '{"type":"assistant","message":{"id":"m1","model":"claude-sonnet-4-5","role":"assistant","content":[{"type":"text","text":"thinking"}],"usage":{"input_tokens":5000,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":10}},"session_id":"s-1"}'
exec sleep 1000
"#;
    let mut s = w.script(body);
    s.adapter = AdapterKind::ClaudeCode;
    let mut cfg = w.config();
    cfg.budget = Budget {
        max_tokens: Some(1000),
        ..Budget::default()
    };
    let (sup, mut rx) = Supervisor::new(w.store.clone(), Arc::new(s), cfg);
    sup.dispatch_once().await;
    let r = next_report(&mut rx).await;
    assert_eq!(
        (r.outcome, r.end.clone()),
        (RunOutcome::BudgetExceeded, JobEnd::GaveUp)
    );
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("token budget exceeded")
    );
    assert_eq!(
        w.store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Failed,
        "no retry: fail closed"
    );
    pipeline_of(&w).on_run_report(&r).await.unwrap();
    let task = w.store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(task.stage, Stage::NeedsAttention);
    let evs = w.store.events(t.id).await.unwrap();
    assert!(
        evs.iter()
            .any(|e| e.kind == EventKind::NeedsAttention
                && e.message.contains("token budget exceeded")),
        "the park says why: {evs:?}"
    );
    let run = w.store.get_run(&r.run_id).await.unwrap().unwrap();
    assert_eq!(run.session_id.as_deref(), Some("s-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_sees_only_allowed_variables() {
    let w = World::new().await;
    let t = w.task().await;
    w.job(&t, 1).await;
    let (sup, mut rx) = Supervisor::new(
        w.store.clone(),
        Arc::new(w.script("env > env.txt")),
        w.config(),
    );
    sup.dispatch_once().await;
    assert_eq!(next_report(&mut rx).await.outcome, RunOutcome::Succeeded);
    let env = std::fs::read_to_string(w.file("env.txt")).unwrap();
    let names: Vec<&str> = env
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    // cargo sets CARGO_MANIFEST_DIR (and HOME is set) in this process: neither may leak.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok() && std::env::var("HOME").is_ok());
    for leaked in ["CARGO_MANIFEST_DIR", "HOME", "RUST_TEST_THREADS"] {
        assert!(
            !names.contains(&leaked),
            "{leaked} leaked into the agent: {names:?}"
        );
    }
    for expected in [
        "PATH",
        "GREETING",
        "ORCH_TASK_ID",
        "ORCH_WORK_ITEM",
        "ORCH_STAGE",
        "ORCH_DOCS_DIR",
        "ORCH_BRANCH",
        "ORCH_RUN_ID",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    assert!(env.contains(&format!("ORCH_TASK_ID={}", t.id)));
    assert!(env.contains("ORCH_STAGE=development"));
}

/// A reloaded configuration (live reload, issue 13) applies to the runs
/// claimed after it: the agent environment, the limits and the retry policy
/// change; what the running loops were built with (the worker) stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_to_the_next_run_and_keeps_the_loops() {
    let w = World::new().await;
    let first = w.task().await;
    w.job(&first, 1).await;
    let (sup, mut rx) = Supervisor::new(
        w.store.clone(),
        Arc::new(w.script("echo \"$GREETING\" >> greetings.txt")),
        w.config(),
    );
    sup.dispatch_once().await;
    assert_eq!(next_report(&mut rx).await.outcome, RunOutcome::Succeeded);

    let mut edited = w.config();
    edited.worker = WorkerId("not-applied".into());
    edited.env.set.insert("GREETING".into(), "bonjour".into());
    edited.limits.global = Some(3);
    edited.retry.cap = Duration::from_secs(9);
    sup.reload(&edited);
    let now = sup.config();
    assert_eq!(
        now.worker,
        WorkerId("test-worker".into()),
        "the loops' worker stays"
    );
    assert_eq!(now.limits.global, Some(3));
    assert_eq!(now.retry.cap, Duration::from_secs(9));

    let second = w.task().await;
    w.job(&second, 1).await;
    sup.dispatch_once().await;
    assert_eq!(next_report(&mut rx).await.outcome, RunOutcome::Succeeded);
    let greetings = std::fs::read_to_string(w.file("greetings.txt")).unwrap();
    assert_eq!(greetings, "hi\nbonjour\n");
}

/// R-13: a restarted orchestrator re-adopts the still-running agent and later
/// records its real exit status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_readopts_a_live_run_and_records_its_real_exit() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 1).await;
    let gate = w.file("go");
    let body = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; exit 3",
        gate.display()
    );
    // Orchestrator A claims and launches, then dies (its runtime is dropped).
    crashed_orchestrator(&w, &body, &[TaskId(1)]).await;
    let run = w.store.runs_for_task(t.id).await.unwrap().remove(0);
    assert!(alive(run.pid.unwrap()), "the agent outlived orchestrator A");
    // Orchestrator B starts with the same worker id and recovers.
    let (sup_b, mut rx) =
        Supervisor::new(w.store.clone(), Arc::new(w.script("exit 99")), w.config());
    sup_b.recover().await;
    assert_eq!(
        sup_b.active_runs(),
        vec![run.run_id.clone()],
        "re-adopted, not relaunched"
    );
    std::fs::write(&gate, "").unwrap();
    let r = next_report(&mut rx).await;
    assert_eq!(r.run_id, run.run_id);
    let rec = w.store.get_run(&run.run_id).await.unwrap().unwrap();
    assert_eq!(rec.exit_code, Some(3), "the real exit status");
    assert_eq!(
        w.store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Failed
    );
}

/// A crash between starting the monitor and recording its pid: the next
/// orchestrator finds the run by its folder (`monitor.json`) and re-adopts it
/// instead of running the work a second time (a deploy would run twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_pid_was_never_recorded_is_found_by_its_folder() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 2).await;
    let gate = w.file("go");
    let ran = w.file("ran");
    let body = format!(
        "echo once >> {}; while [ ! -e {} ]; do sleep 0.05; done",
        ran.display(),
        gate.display()
    );
    crashed_orchestrator(&w, &body, &[TaskId(1)]).await;
    // The crash came before the pid reached the store.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        w.dir.path().join("orch.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE runs SET pid = NULL, pgid = NULL, proc_start_ticks = NULL")
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let run = w.store.runs_for_task(t.id).await.unwrap().remove(0);
    assert!(run.pid.is_none());

    let (sup_b, mut rx) = Supervisor::new(
        w.store.clone(),
        Arc::new(w.script(&format!("echo twice >> {}", ran.display()))),
        w.config(),
    );
    sup_b.recover().await;
    assert_eq!(sup_b.active_runs(), vec![run.run_id.clone()], "re-adopted");
    assert!(
        w.store
            .get_run(&run.run_id)
            .await
            .unwrap()
            .unwrap()
            .pid
            .is_some(),
        "its process is recorded now"
    );
    std::fs::write(&gate, "").unwrap();
    let r = next_report(&mut rx).await;
    assert_eq!(
        (r.outcome, r.end),
        (RunOutcome::Succeeded, JobEnd::Completed)
    );
    assert_eq!(
        w.store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Succeeded
    );
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "once\n", "ran once");
}

/// R-12/R-13: runs whose process died or ended while nobody watched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_ended_or_died_while_nobody_watched_are_finished_or_reaped() {
    let w = World::new().await;
    // Run 1 ends (exit 0) while no orchestrator watches; run 2's monitor and agent are killed -9.
    let t1 = w.task().await;
    let j1 = w.job(&t1, 2).await;
    let t2 = w.task().await;
    let j2 = w.job(&t2, 2).await;
    let gate = w.file("go");
    let body = format!(
        "echo $$ > {}/agent-$ORCH_TASK_ID; while [ ! -e {} ]; do sleep 0.05; done",
        w.dir.path().join("work").display(),
        gate.display()
    );
    crashed_orchestrator(&w, &body, &[TaskId(1), TaskId(2)]).await;
    let run2 = w.store.runs_for_task(t2.id).await.unwrap().remove(0);
    let agent2 = w.file(&format!("agent-{}", t2.id));
    eventually("agent 2 wrote its pid", || async {
        !read_pids(&agent2).is_empty()
    })
    .await;
    // Simulate a crash of run 2's whole tree: monitor and agent killed outright.
    let monitor2 = run2.pid.unwrap();
    let agent2_pid = read_pids(&agent2)[0];
    unsafe_kill(monitor2);
    unsafe_kill(agent2_pid);
    eventually("run 2 is dead", || async {
        !alive(monitor2) && !alive(agent2_pid)
    })
    .await;
    // Let run 1 end normally, unobserved.
    std::fs::write(&gate, "").unwrap();
    let run1 = w.store.runs_for_task(t1.id).await.unwrap().remove(0);
    eventually("run 1's monitor recorded the exit", || async {
        orch_agent::process::read_exit(&w.dir.path().join("runs").join(run1.run_id.as_str()))
            .is_some()
    })
    .await;
    let (sup_b, mut rx) =
        Supervisor::new(w.store.clone(), Arc::new(w.script("exit 99")), w.config());
    sup_b.recover().await;
    let mut reports = [next_report(&mut rx).await, next_report(&mut rx).await];
    reports.sort_by_key(|r| r.task_id);
    assert_eq!(
        (reports[0].outcome, reports[0].end.clone()),
        (RunOutcome::Succeeded, JobEnd::Completed)
    );
    assert_eq!(
        w.store.get_job(j1.id).await.unwrap().unwrap().status,
        JobStatus::Succeeded
    );
    assert_eq!(reports[1].outcome, RunOutcome::Unknown);
    assert!(
        matches!(reports[1].end, JobEnd::Retrying(_)),
        "unknown outcome with attempts left is requeued"
    );
    assert_eq!(
        w.store.get_job(j2.id).await.unwrap().unwrap().status,
        JobStatus::Queued
    );
    assert!(sup_b.active_runs().is_empty());
}

/// R-12: a job whose worker stopped renewing its lease is reaped by another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_requeues_jobs_whose_lease_expired() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 3).await;
    let mut req = orch_store::ClaimRequest::new("dead-worker");
    req.lease = Duration::from_millis(1);
    w.store
        .claim(&req)
        .await
        .unwrap()
        .expect("claimed by a worker that then dies");
    // The 1 ms lease lapses with time: nothing to signal but the clock.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (sup, _rx) = Supervisor::new(w.store.clone(), Arc::new(w.script("true")), w.config());
    assert_eq!(sup.reap_once().await, 1);
    let job = w.store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Queued);
    assert!(job.last_error.unwrap().contains("lease"));
}

/// Handing a run's work over can outlast the lease (a slow push): the run
/// keeps its job meanwhile, so no other node's reaper runs the stage again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_over_longer_than_the_lease_keeps_the_job() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 3).await;
    let mut cfg = w.config();
    cfg.lease = Duration::from_millis(600);
    cfg.heartbeat = Duration::from_millis(100);
    let slow = SlowHandOver::new(w.script("echo done"));
    let (sup, mut rx) = Supervisor::new(w.store.clone(), slow.clone(), cfg.clone());
    assert_eq!(sup.dispatch_once().await, 1);
    slow.wait_entered().await;
    // Three leases pass while the work is handed over: time is the point.
    tokio::time::sleep(cfg.lease * 3).await;
    let mut other = cfg.clone();
    other.worker = WorkerId("another-node".into());
    let (elsewhere, _rx) = Supervisor::new(w.store.clone(), Arc::new(w.script("true")), other);
    assert_eq!(
        elsewhere.reap_once().await,
        0,
        "a job whose run is handing its work over is not reaped"
    );
    slow.release.notify_one();
    let r = next_report(&mut rx).await;
    assert_eq!(
        (r.outcome, r.end.clone()),
        (RunOutcome::Succeeded, JobEnd::Completed)
    );
    let job = w.store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Succeeded, 1));
}

/// A job taken from its run while the run hands its work over (a STOP, a
/// reaper) is not completed by it, and the run is not recorded a success:
/// a job never has two successful runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_job_is_taken_while_it_hands_over_is_not_a_success() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 3).await;
    let slow = SlowHandOver::new(w.script("echo done"));
    let (sup, mut rx) = Supervisor::new(w.store.clone(), slow.clone(), w.config());
    assert_eq!(sup.dispatch_once().await, 1);
    slow.wait_entered().await;
    w.store.cancel_jobs_for_task(t.id, false).await.unwrap();
    slow.release.notify_one();
    let r = next_report(&mut rx).await;
    assert_eq!(
        (r.outcome, r.end.clone()),
        (RunOutcome::Cancelled, JobEnd::Cancelled)
    );
    let run = w.store.get_run(&r.run_id).await.unwrap().unwrap();
    assert_eq!(run.outcome, Some(RunOutcome::Cancelled));
    assert_eq!(run.error.as_deref(), Some(orch_store::FENCED));
    assert_eq!(
        w.store.get_job(j.id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
}

/// Run `work` as an orchestrator that then crashes: on its own thread and
/// runtime, which is dropped afterwards (aborting every task it had).
/// Orchestrator A: claims and launches `body` for the queued jobs, waits
/// until the runs of `tasks` have a process, then dies (its runtime is
/// dropped), leaving the agents running.
async fn crashed_orchestrator(w: &World, body: &str, tasks: &[TaskId]) {
    let store = w.store.clone();
    let cfg = w.config();
    let script = w.script(body);
    let tasks = tasks.to_vec();
    orchestrator_a(async move {
        let (sup, _rx) = Supervisor::new(store.clone(), Arc::new(script), cfg);
        sup.dispatch_once().await;
        eventually_stored(store.as_ref(), "the runs have a process", || {
            let (store, tasks) = (store.clone(), tasks.clone());
            async move {
                for t in tasks {
                    let runs = store.runs_for_task(t).await.unwrap();
                    if runs.first().is_none_or(|r| r.pid.is_none()) {
                        return false;
                    }
                }
                true
            }
        })
        .await;
    })
    .await;
}

async fn orchestrator_a<F: std::future::Future<Output = ()> + Send + 'static>(work: F) {
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(work);
        drop(rt);
    })
    .await
    .unwrap();
}

fn unsafe_kill(pid: i32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
}

/// A task of item DEMO-9 in development whose one attempt was claimed by a
/// worker that then died, parked by the reaper; its run's report.
async fn reaper_park(w: &World) -> RunReport {
    w.store
        .create_item(&orch_store::TrackerItem {
            id: "DEMO-9".into(),
            project: "demo".into(),
            title: "scripted".into(),
            body: String::new(),
            state: "Development".into(),
            labels: vec![],
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        })
        .await
        .unwrap();
    let mut t = NewTask::new("demo", "scripted");
    t.stage = Stage::Development;
    t.tracker_id = Some("DEMO-9".into());
    t.work_item_id = Some("DEMO-9".into());
    let t = w.store.create_task(t, "test").await.unwrap();
    w.job(&t, 1).await;
    let mut req = orch_store::ClaimRequest::new("dead-worker");
    req.lease = Duration::from_millis(1);
    w.store
        .claim(&req)
        .await
        .unwrap()
        .expect("claimed by a worker that then dies");
    eventually("the lease to expire", || async {
        !w.store.expired_jobs().await.unwrap().is_empty()
    })
    .await;
    let (sup, mut rx) = Supervisor::new(w.store.clone(), Arc::new(w.script("true")), w.config());
    assert_eq!(sup.reap_once().await, 1);
    let task = w.store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(
        task.stage,
        Stage::Development,
        "the supervisor writes no stage: the task's owner parks it"
    );
    let report = next_report(&mut rx).await;
    assert_eq!(report.end, JobEnd::GaveUp, "no attempts left: {report:?}");
    report
}

fn pipeline_of(w: &World) -> Arc<orch_engine::pipeline::Pipeline> {
    std::fs::write(w.dir.path().join("orch.toml"), "data_dir = \"data\"\n").unwrap();
    let cfg = orch_config::Config::load(Some(&w.dir.path().join("orch.toml"))).unwrap();
    orch_engine::pipeline::Pipeline::with_defaults(w.store.clone(), Arc::new(cfg), "test")
}

/// The park is on DEMO-9: its state, and its comment exactly once.
async fn assert_park_on_the_tracker(w: &World) {
    let item = w.store.get_item("DEMO-9").await.unwrap().unwrap();
    assert_eq!(item.state, "Needs Attention", "the park is on the tracker");
    let comments = w.store.item_comments("DEMO-9").await.unwrap();
    let parks = comments
        .iter()
        .filter(|c| c.body.contains("orch needs a person") && c.body.contains("lease"))
        .count();
    assert_eq!(parks, 1, "the park's comment, once: {comments:?}");
}

/// Issue 10: a park made by the reaper (a job whose worker died, with no
/// attempts left) reaches the tracker like any other park: the reaper
/// reports the run, and the pipeline reflects the park on the item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_park_made_by_the_reaper_reaches_the_tracker() {
    let w = World::new().await;
    let pipeline = pipeline_of(&w);
    let report = reaper_park(&w).await;
    pipeline.on_run_report(&report).await.unwrap();
    assert_park_on_the_tracker(&w).await;
}

/// Issue 10: a park whose run report was lost (orch killed right after the
/// job gave up; the report lives in memory) still happens, with its comment
/// on the tracker: the task's owner parks the stage's failed job at its
/// next tick, and the comment is written with the park itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parks_comment_reaches_the_tracker_when_its_report_is_lost() {
    let w = World::new().await;
    let lost = reaper_park(&w).await;
    // After a restart: the new pipeline's tick finds the stage's job given
    // up and parks the task, and its outbox delivers the park.
    let pipeline = pipeline_of(&w);
    pipeline.tick(lost.task_id).await.unwrap();
    assert_eq!(
        w.store.get_task(lost.task_id).await.unwrap().unwrap().stage,
        Stage::NeedsAttention
    );
    pipeline.tracker_outbox().deliver(None).await;
    assert_park_on_the_tracker(&w).await;
}

/// Issue 10, found by the real Codex CLI's question test in CI: the agent
/// asked a person, and a tick that came between the run's end and its
/// report's turn found the job given up and parked the task as a plain
/// give-up, so the question was lost (no `agent_question` park, no Answer).
/// The supervisor now leaves an asking run's job to the task's owner, which
/// ends it with the question and parks in one command: a tick in between
/// finds the job still active and does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_between_a_questions_end_and_its_report_does_not_lose_the_question() {
    let w = World::new().await;
    let t = w.task().await;
    let j = w.job(&t, 3).await;
    let go = w.file("go");
    let body = format!(
        "echo asking; while [ ! -e {go:?} ]; do sleep 0.02; done; echo done",
        go = go.display().to_string()
    );
    let (sup, mut rx) = Supervisor::new(w.store.clone(), Arc::new(w.script(&body)), w.config());
    let pipeline = pipeline_of(&w);
    assert_eq!(sup.dispatch_once().await, 1);
    let run = w
        .store
        .get_job(j.id)
        .await
        .unwrap()
        .unwrap()
        .run_id
        .expect("claimed");
    eventually("the run to be watched", || async {
        sup.active_runs().contains(&run)
    })
    .await;
    assert!(sup.record_question(&run, "Which port should it use?".into()));
    std::fs::write(&go, "").unwrap();
    let report = next_report(&mut rx).await;
    assert_eq!(report.end, JobEnd::Asked, "{report:?}");
    // The ticker comes first.
    pipeline.tick(t.id).await.unwrap();
    assert_eq!(
        w.store.get_task(t.id).await.unwrap().unwrap().stage,
        Stage::Development,
        "the asking run's job is still the run's: nothing to park yet"
    );
    pipeline.on_run_report(&report).await.unwrap();
    let task = w.store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(task.stage, Stage::NeedsAttention);
    let evs = w.store.events(t.id).await.unwrap();
    let park = evs
        .iter()
        .rev()
        .find(|e| e.to_stage == Some(Stage::NeedsAttention))
        .expect("a park");
    assert_eq!(park.kind, EventKind::AgentQuestion, "{evs:?}");
    assert_eq!(park.message, "Which port should it use?");
    let job = w.store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.last_error.as_deref()),
        (JobStatus::Failed, Some("Which port should it use?")),
        "the owner ended the job with the question: no retry"
    );
}
