//! STOP and the runs' owner (issue 10, "one killer"). First, a STOP that
//! lands between a job's claim and its agent's launch (issue 10,
//! "a STOP that races a job just claimed"): the STOP finds a running job
//! with no process yet, cancels the task and removes its worktree; then the
//! supervisor's preparation goes on and makes the worktree again. Before
//! the fix the agent was launched anyway (into a re-created worktree that
//! nobody removed) and ran until its first heartbeat.
//!
//! Real SQLite store, real git (a bare remote, the local forge), the real
//! `PipelinePreparer` and the real `orch monitor`; the only thing added is a
//! gate in front of the preparer, so the STOP lands exactly in the window.

use orch_agent::process::{CgroupMode, MonitorCommand, StopPolicy};
use orch_core::retry::RetryPolicy;
use orch_core::run::RunOutcome;
use orch_core::{Job, Stage, Task, Timestamp, WorkerId};
use orch_engine::pipeline::{Pipeline, PipelinePreparer};
use orch_engine::supervisor::{
    AgentEnv, Budget, JobEnd, PreparedRun, RunPreparer, Supervisor, SupervisorConfig,
};
use orch_store::{SqliteOptions, SqliteStore, Store, TrackerItem};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real preparer, held at its door until the test says go; the agent it
/// prepares is swapped for one that leaves a mark when it starts.
struct Gated {
    inner: PipelinePreparer,
    arrived: Arc<Notify>,
    go: Arc<Notify>,
    mark: std::path::PathBuf,
}

#[async_trait::async_trait]
impl RunPreparer for Gated {
    async fn prepare(&self, task: &Task, job: &Job, run_dir: &Path) -> Result<PreparedRun, String> {
        self.arrived.notify_one();
        self.go.notified().await;
        let mut run = self.inner.prepare(task, job, run_dir).await?;
        run.argv = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo started > '{}'; sleep 60", self.mark.display()),
        ];
        Ok(run)
    }
}

/// A data folder with one repo, a started task (its analyst job queued), and
/// a supervisor over the gated preparer.
struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
    task: Task,
    supervisor: Arc<Supervisor>,
    reports: tokio::sync::mpsc::UnboundedReceiver<orch_engine::supervisor::RunReport>,
    arrived: Arc<Notify>,
    go: Arc<Notify>,
    mark: std::path::PathBuf,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let remote = d.join("remotes/demo.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "--quiet", "--bare", "-b", "main"]);
    let seed = d.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "--quiet", "-b", "main"]);
    std::fs::write(seed.join("README.md"), "hi\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "--quiet", "-m", "init"]);
    git(
        &seed,
        &["push", "--quiet", remote.to_str().unwrap(), "main"],
    );
    std::fs::write(
        d.join("orch.toml"),
        "data_dir = \".orch\"\n[stop]\ngrace_int_secs = 1\ngrace_term_secs = 1\n\
         [agents.analyst]\ncommand = [\"true\"]\n\
         [[repos]]\nname = \"demo\"\nremote = \"remotes/demo.git\"\nverify = [\"true\"]\n",
    )
    .unwrap();
    let cfg = orch_config::Config::load(Some(&d.join("orch.toml"))).unwrap();
    std::fs::create_dir_all(cfg.data_dir()).unwrap();
    let store = SqliteStore::open(cfg.data_dir().join("orch.db"), SqliteOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let cfg = Arc::new(cfg);
    let pipeline = Pipeline::with_defaults(store.clone(), cfg.clone(), "test");
    pipeline
        .repos()
        .ensure_mirror("demo", remote.to_str().unwrap())
        .await
        .unwrap();
    store
        .create_item(&TrackerItem {
            id: "DEMO-1".into(),
            project: "demo".into(),
            title: "Add a greeting".into(),
            body: String::new(),
            state: "To Analyse".into(),
            labels: vec![],
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        })
        .await
        .unwrap();
    let task = pipeline.start_pipeline("DEMO-1").await.unwrap().task;
    let task = store.get_task(task).await.unwrap().unwrap();

    let (arrived, go) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let mark = d.join("agent-started");
    let preparer = Arc::new(Gated {
        inner: PipelinePreparer::new(store.clone(), cfg.clone(), pipeline.repos().clone()),
        arrived: arrived.clone(),
        go: go.clone(),
        mark: mark.clone(),
    });
    let sup_cfg = SupervisorConfig {
        worker: WorkerId("test-worker".into()),
        runs_dir: cfg.runs_dir(),
        lease: Duration::from_secs(5),
        heartbeat: Duration::from_secs(1),
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
        stop: StopPolicy::with_grace(Duration::from_secs(1)),
        budget: Budget::default(),
        env: AgentEnv {
            allow: vec!["PATH".into()],
            set: Default::default(),
        },
        monitor: MonitorCommand {
            program: env!("CARGO_BIN_EXE_orch").into(),
            args_prefix: vec!["monitor".into()],
        },
        cgroup: CgroupMode::Auto,
    };
    let (supervisor, reports) = Supervisor::new(store.clone(), preparer, sup_cfg);
    Rig {
        _dir: dir,
        store,
        pipeline,
        task,
        supervisor,
        reports,
        arrived,
        go,
        mark,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_between_claim_and_launch_starts_no_agent_and_leaves_no_worktree() {
    let Rig {
        _dir,
        store,
        pipeline,
        task,
        supervisor,
        mut reports,
        arrived,
        go,
        mark,
    } = rig().await;

    // The analyst's job is claimed; its preparation waits at the door.
    assert_eq!(supervisor.dispatch_once().await, 1);
    tokio::time::timeout(Duration::from_secs(60), arrived.notified())
        .await
        .expect("the claimed job reaches its preparation");
    // STOP now: the job is running with no process; the task is cancelled
    // and its worktree removed.
    let r = pipeline.stop_task(task.id, "test").await;
    assert!(r.ok && !r.deferred, "{r:?}");
    assert_eq!(r.stopped, 0, "no process existed to stop");
    let worktree = pipeline
        .repos()
        .worktree_path("demo", &task.branch)
        .unwrap();
    // The preparation goes on: it makes the worktree again.
    go.notify_one();
    let report = tokio::time::timeout(Duration::from_secs(60), reports.recv())
        .await
        .expect("the run is reported")
        .expect("a report");
    pipeline.on_run_report(&report).await.unwrap();

    assert_eq!(report.end, JobEnd::Cancelled, "{report:?}");
    assert_eq!(report.outcome, RunOutcome::Cancelled, "{report:?}");
    assert!(
        !mark.exists(),
        "the agent of a job cancelled before its launch started anyway"
    );
    let task = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(task.stage, Stage::Cancelled);
    assert!(
        !worktree.exists(),
        "the cancelled task's worktree, made again by the preparation, was left at {}",
        worktree.display()
    );
    let runs = store.runs_for_task(task.id).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].outcome,
        Some(RunOutcome::Cancelled),
        "{:?}",
        runs[0]
    );
    assert_eq!(runs[0].pid, None, "no process was ever recorded");
}

/// The one killer: with the engine's supervisor attached, a STOP has the
/// run's watcher stop it (never a second kill by pid from the pipeline), and
/// returns only once the agent's processes are gone, before the worktree is
/// removed. Before, the pipeline signalled the processes itself while the
/// watcher raced it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_of_a_running_agent_is_carried_out_by_the_runs_watcher() {
    let Rig {
        _dir,
        store,
        pipeline,
        task,
        supervisor,
        mut reports,
        arrived,
        go,
        mark,
    } = rig().await;
    pipeline.attach_supervisor(supervisor.clone());
    assert_eq!(supervisor.dispatch_once().await, 1);
    tokio::time::timeout(Duration::from_secs(60), arrived.notified())
        .await
        .expect("the claimed job reaches its preparation");
    go.notify_one();
    // The agent writes its mark as it starts.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !mark.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never started"
        );
        // A file the agent writes as it starts: no engine signal for it.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let run = store.runs_for_task(task.id).await.unwrap().remove(0);
    let pid = run.pid.expect("the running agent's monitor is recorded");

    let r = pipeline.stop_task(task.id, "test").await;
    assert!(r.ok && !r.deferred, "{r:?}");
    assert_eq!(r.stopped, 1, "{r:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z ")),
        "the run's monitor {pid} outlived the STOP"
    );
    let worktree = pipeline
        .repos()
        .worktree_path("demo", &task.branch)
        .unwrap();
    assert!(!worktree.exists(), "the worktree stayed");
    // Who stopped it: the watcher writes its own reason into the run's
    // stop record; the pipeline's pid-based stop wrote "STOP cancel task …".
    let stop: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            supervisor
                .config()
                .runs_dir
                .join(run.run_id.as_str())
                .join("stop.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(stop["reason"], "STOP requested", "{stop}");

    let report = tokio::time::timeout(Duration::from_secs(60), reports.recv())
        .await
        .expect("the run is reported")
        .expect("a report");
    assert_eq!(
        (report.outcome, report.end.clone()),
        (RunOutcome::Cancelled, JobEnd::Cancelled),
        "{report:?}"
    );
    pipeline.on_run_report(&report).await.unwrap();
    let task = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(task.stage, Stage::Cancelled);
}
