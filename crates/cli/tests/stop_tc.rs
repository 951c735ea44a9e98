//! The ORCH-090 STOP suite (`../shared/reference/orch-090-stop-status-tests.py.txt`)
//! ported to the pipeline engine: each test names the case it ports. They run
//! against a real SQLite store, real git (a bare remote on disk, the local
//! forge) and real agent processes under `orch monitor` — nothing is stubbed.
//! TC-03's helper, TC-04, TC-12's second half and TC-14 are store cases in
//! `orch_store::conformance`; TC-09 is in `crates/engine/tests/status.rs`.

use orch_agent::process::{CgroupMode, LaunchSpec, MonitorCommand, is_alive, launch, wait_started};
use orch_core::EventKind;
use orch_core::cancel::CancelNote;
use orch_core::pipeline::{DeployPhase, JobSpec};
use orch_core::{AgentKind, Job, JobStatus, NewJob, NewTask, Stage, Task, TaskId, Timestamp};
use orch_engine::pipeline::Pipeline;
use orch_store::{
    ClaimRequest, LeaseAcquire, MarkerStep, RunProcess, SqliteOptions, SqliteStore, Store,
    TrackerItem,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

struct World {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@localhost",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl World {
    async fn new(extra_toml: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let remote = d.join("remotes/orchestrator.git");
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
        let toml = format!(
            "data_dir = \".orch\"\n[stop]\ngrace_int_secs = 1\ngrace_term_secs = 1\n[[repos]]\nname = \"orchestrator\"\nremote = \"remotes/orchestrator.git\"\nverify = [\"true\"]\n{extra_toml}\n"
        );
        std::fs::write(d.join("orch.toml"), &toml).unwrap();
        let cfg = orch_config::Config::load(Some(&d.join("orch.toml"))).unwrap();
        std::fs::create_dir_all(cfg.data_dir()).unwrap();
        let store = SqliteStore::open(cfg.data_dir().join("orch.db"), SqliteOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let pipeline = Pipeline::with_defaults(store.clone(), Arc::new(cfg.clone()), "test");
        pipeline
            .repos()
            .ensure_mirror("orchestrator", remote.to_str().unwrap())
            .await
            .unwrap();
        World {
            dir,
            store,
            pipeline,
        }
    }

    fn remote(&self) -> PathBuf {
        self.dir.path().join("remotes/orchestrator.git")
    }

    /// `_make_task`: a task with a builtin tracker item, in `stage`.
    async fn task(&self, item: &str, key: &str, stage: Stage) -> Task {
        self.store
            .create_item(&TrackerItem {
                id: item.into(),
                project: "orchestrator".into(),
                title: key.into(),
                body: String::new(),
                state: "Development".into(),
                labels: vec![],
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
            })
            .await
            .unwrap();
        let mut t = NewTask::new("orchestrator", key);
        t.tracker_id = Some(item.into());
        t.work_item_id = Some(key.into());
        t.stage = stage;
        self.store.create_task(t, "test").await.unwrap()
    }

    async fn queued(&self, task: &Task, agent: AgentKind) -> Job {
        let mut j = NewJob::new(task.id, agent, "orchestrator", Timestamp(0));
        if agent == AgentKind::Deployer {
            let mut spec = JobSpec::new(agent);
            spec.phase = Some(DeployPhase::Run);
            j.payload = serde_json::to_value(spec).unwrap();
        }
        self.store.enqueue(j).await.unwrap()
    }

    /// A running job, claimed but with no process (`pid=None`).
    async fn running(&self, task: &Task, agent: AgentKind) -> Job {
        let j = self.queued(task, agent).await;
        let mut req = ClaimRequest::new("test-worker");
        req.gates.serial = false;
        let c = self.store.claim(&req).await.unwrap().expect("claimable");
        assert_eq!(c.id, j.id);
        c
    }

    /// A running job whose agent is a real process (`sleep 1000` under the monitor).
    async fn running_with_process(&self, task: &Task, agent: AgentKind) -> (Job, i32) {
        let j = self.running(task, agent).await;
        let run = j.run_id.clone().unwrap();
        let run_dir = self.pipeline.config().runs_dir().join(run.as_str());
        let spec = LaunchSpec {
            run_id: run.clone(),
            run_dir: run_dir.clone(),
            cwd: self.dir.path().to_path_buf(),
            argv: vec!["sh".into(), "-c".into(), "sleep 1000 & wait".into()],
            env: [("PATH".to_string(), std::env::var("PATH").unwrap())].into(),
            monitor: MonitorCommand {
                program: env!("CARGO_BIN_EXE_orch").into(),
                args_prefix: vec!["monitor".into()],
            },
            cgroup: CgroupMode::Off,
            sandbox: None,
            limits: Default::default(),
        };
        let h = launch(spec).unwrap();
        wait_started(&h, Duration::from_secs(10)).expect("agent started");
        self.store
            .record_run_process(
                &run,
                &RunProcess {
                    pid: h.pid,
                    pgid: h.pgid,
                    proc_start_ticks: h.proc_start_ticks,
                    log_path: run_dir.join("output.log").display().to_string(),
                },
            )
            .await
            .unwrap();
        (j, h.pid)
    }

    async fn status(&self, j: &Job) -> JobStatus {
        self.store.get_job(j.id).await.unwrap().unwrap().status
    }

    async fn stage(&self, t: &Task) -> Stage {
        self.store.get_task(t.id).await.unwrap().unwrap().stage
    }

    /// Push a feature branch to the remote, as the developer's work would be.
    async fn push_branch(&self, t: &Task, file: &str) {
        let wt = self
            .pipeline
            .repos()
            .create_or_reuse_worktree("orchestrator", &t.branch, "main")
            .await
            .unwrap();
        let p = wt.path.join(file);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "work\n").unwrap();
        self.pipeline.repos().commit_all(&wt, "work").await.unwrap();
        self.pipeline
            .repos()
            .push_branch("orchestrator", &t.branch)
            .await
            .unwrap();
        assert!(self.remote_has(&t.branch));
    }

    fn remote_has(&self, branch: &str) -> bool {
        !git(&self.remote(), &["branch", "--list", branch]).is_empty()
    }

    async fn comments(&self, item: &str) -> Vec<String> {
        self.store
            .item_comments(item)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.body)
            .collect()
    }
}

async fn gone(pid: i32) -> bool {
    for _ in 0..100 {
        if !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
        {
            return true;
        }
        // A process ending: the kernel's news, no engine signal.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn tc01_stop_routed_and_unknown_is_noop() {
    let w = World::new("").await;
    let t = w.task("PL-1", "ORCH-301", Stage::Development).await;
    // The STOP state routes to the cancel handler.
    let routed = w
        .pipeline
        .on_item_state("PL-1", "STOP", None, "tracker")
        .await
        .unwrap();
    assert!(
        matches!(routed, orch_engine::pipeline::Routed::Stop(ref r) if r.note == CancelNote::Cancelled),
        "{routed:?}"
    );
    assert_eq!(w.stage(&t).await, Stage::Cancelled);
    // A non-STOP state does not.
    let t2 = w.task("PL-2", "ORCH-302", Stage::Development).await;
    w.pipeline
        .on_item_state("PL-2", "Approved", None, "tracker")
        .await
        .unwrap();
    assert_eq!(w.stage(&t2).await, Stage::Development);
    // An unknown item: a no-op that never fails.
    let r = w.pipeline.handle_stop("does-not-exist", "tracker").await;
    assert_eq!(r.note, CancelNote::NoTask);
}

/// A run of a node on another machine (as its node reported) is that
/// node's to stop: its process id means nothing here, so a STOP received
/// here cancels the task without signalling it. (On one host, as here,
/// signalling it would also hide whether its own node acted.)
#[tokio::test]
async fn a_stop_never_signals_a_run_of_another_machine() {
    let w = World::new("").await;
    let t = w.task("PL-11", "ORCH-311", Stage::Development).await;
    let (j, pid) = w.running_with_process(&t, AgentKind::Developer).await;
    w.store
        .node_heartbeat(orch_store::NodeReport {
            name: "test-worker",
            boot_id: "boot",
            claims_stopped: false,
            api_url: None,
            machine: Some("another-machine"),
        })
        .await
        .unwrap();
    let r = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(r.ok, "{r:?}");
    assert_eq!(w.stage(&t).await, Stage::Cancelled);
    assert_eq!(r.stopped, 0, "{r:?}");
    let alive = !gone_now(pid);
    // Its own node is not running in this test: end the run here, the way
    // orch does (identity-checked, the whole tree), not with a bare kill.
    let run = w
        .store
        .get_run(j.run_id.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    let handle = orch_engine::supervisor::handle_of(&run, &w.pipeline.config().runs_dir())
        .expect("the run's process is recorded");
    let ended = tokio::task::spawn_blocking(move || {
        orch_agent::process::stop(
            &handle,
            &orch_agent::process::StopPolicy::with_grace(Duration::from_secs(1)),
            "the test is over",
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert!(ended.all_gone, "{ended:?}");
    assert!(
        alive,
        "the run of another machine (pid {pid}) was signalled"
    );
}

/// Gone or a zombie, at this moment.
fn gone_now(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

#[tokio::test]
async fn tc02_stop_active_agent_by_pid() {
    let w = World::new("").await;
    let t = w.task("PL-10", "ORCH-310", Stage::Development).await;
    let (_j, pid) = w.running_with_process(&t, AgentKind::Developer).await;
    let r = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(r.ok && !r.deferred, "{r:?}");
    assert_eq!(r.stopped, 1);
    assert!(gone(pid).await, "the agent (pid {pid}) is still running");
}

#[tokio::test]
async fn tc02_idle_agent_no_stop() {
    let w = World::new("").await;
    let t = w.task("PL-11", "ORCH-311", Stage::Development).await;
    w.queued(&t, AgentKind::Developer).await;
    let r = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(r.ok);
    assert_eq!(r.stopped, 0);
}

#[tokio::test]
async fn tc03_jobs_cancelled_and_claim_skips() {
    let w = World::new("").await;
    let t = w.task("PL-20", "ORCH-320", Stage::Development).await;
    let jr = w.running(&t, AgentKind::Developer).await;
    let jq = w.queued(&t, AgentKind::Reviewer).await;
    w.pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert_eq!(w.status(&jq).await, JobStatus::Cancelled);
    assert_eq!(w.status(&jr).await, JobStatus::Cancelled);
    assert!(
        w.store
            .claim(&ClaimRequest::new("w"))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn tc05_full_reset_removes_branch_and_worktree() {
    let w = World::new("").await;
    let t = w.task("PL-40", "ORCH-340", Stage::Review).await;
    w.push_branch(&t, "work/x.md").await;
    let wt = w
        .pipeline
        .repos()
        .worktree_path("orchestrator", &t.branch)
        .unwrap();
    assert!(wt.exists());
    let main_before = git(&w.remote(), &["rev-parse", "main"]);
    w.pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(!wt.exists(), "the worktree is removed");
    assert!(
        !w.remote_has(&t.branch),
        "the remote feature branch is deleted"
    );
    assert_eq!(
        git(&w.remote(), &["rev-parse", "main"]),
        main_before,
        "main untouched"
    );
}

#[tokio::test]
async fn tc05_delete_remote_branch_refuses_main() {
    let w = World::new("").await;
    let forge = orch_engine::ports::LocalForge::new(w.pipeline.repos().clone());
    use orch_engine::ports::Forge;
    let protected = orch_git::ProtectedBranches::default();
    for b in ["main", "master"] {
        let r = forge
            .delete_branch("orchestrator", b, &protected)
            .await
            .unwrap();
        assert!(
            matches!(r, orch_git::DeleteOutcome::Refused { .. }),
            "{b}: {r:?}"
        );
    }
    assert!(w.remote_has("main"));
}

#[tokio::test]
async fn tc06_docs_and_task_row_survive() {
    let w = World::new("").await;
    let t = w.task("PL-50", "ORCH-350", Stage::Development).await;
    w.push_branch(&t, "docs/work-items/ORCH-350/02-trz.md")
        .await;
    w.pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    // The task row is kept, cancelled.
    assert_eq!(w.stage(&t).await, Stage::Cancelled);
    // The docs artefacts survive in the archive ref.
    let archives = w
        .pipeline
        .repos()
        .list_archives("orchestrator", "ORCH-350")
        .await
        .unwrap();
    assert_eq!(archives.len(), 1, "{archives:?}");
    let mirror = w.pipeline.repos().mirror_path("orchestrator").unwrap();
    let spec = format!(
        "{}:docs/work-items/ORCH-350/02-trz.md",
        archives[0].ref_name
    );
    assert_eq!(git(&mirror, &["show", &spec]), "work");
}

#[tokio::test]
async fn tc07_idempotent_on_cancelled_done_missing() {
    let w = World::new("").await;
    let t = w.task("PL-60", "ORCH-360", Stage::Development).await;
    w.pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    let comments = w.comments("PL-60").await.len();
    let r = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(
        r.ok && r.note.to_string().starts_with("already-terminal"),
        "{r:?}"
    );
    assert_eq!(
        w.comments("PL-60").await.len(),
        comments,
        "no second notification"
    );
    let t2 = w.task("PL-61", "ORCH-361", Stage::Done).await;
    let r2 = w
        .pipeline
        .cancel_task(t2.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert_eq!(r2.note.to_string(), "already-terminal:done");
    let r3 = w
        .pipeline
        .cancel_task(
            TaskId(999_999),
            "STOP",
            orch_core::cancel::CancelCause::Stop,
            "test",
        )
        .await;
    assert_eq!(r3.note.to_string(), "no-task");
}

#[tokio::test]
async fn tc08_kill_switch_off_handle_stop_noop() {
    let w = World::new("[features]\nstop_status = false\n").await;
    let t = w.task("PL-70", "ORCH-370", Stage::Development).await;
    let (_j, pid) = w.running_with_process(&t, AgentKind::Developer).await;
    let r = w.pipeline.handle_stop("PL-70", "tracker").await;
    assert_eq!(r.stopped, 0);
    assert_eq!(w.stage(&t).await, Stage::Development);
    assert!(is_alive_pid(pid), "the agent was left alone");
    w.pipeline
        .cancel_task(
            t.id,
            "cleanup",
            orch_core::cancel::CancelCause::DeferredStop,
            "test",
        )
        .await;
}

fn is_alive_pid(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn tc08_scope_csv() {
    let w = World::new("[features]\nstop_status_repos = [\"enduro-trails\"]\n").await;
    let t = w.task("PL-71", "ORCH-371", Stage::Development).await;
    let r = w.pipeline.handle_stop("PL-71", "tracker").await;
    assert_eq!(r.note, CancelNote::Disabled);
    assert_eq!(
        w.stage(&t).await,
        Stage::Development,
        "orchestrator is out of scope"
    );
}

#[tokio::test]
async fn tc10_relaunch_hole_closed_midpipeline() {
    let w = World::new("").await;
    let t = w.task("PL-80", "ORCH-380", Stage::Development).await;
    w.pipeline
        .on_item_state("PL-80", "To Analyse", None, "tracker")
        .await
        .unwrap();
    assert!(
        w.store.jobs_for_task(t.id).await.unwrap().is_empty(),
        "no agent relaunched"
    );
    assert!(
        w.comments("PL-80")
            .await
            .iter()
            .any(|c| c.contains("starts nothing"))
    );
}

#[tokio::test]
async fn tc11_analysis_idle_relaunches_analyst() {
    let w = World::new("").await;
    let t = w.task("PL-90", "ORCH-390", Stage::Analysis).await;
    w.pipeline
        .on_item_state("PL-90", "To Analyse", None, "tracker")
        .await
        .unwrap();
    let agents: Vec<AgentKind> = w
        .store
        .jobs_for_task(t.id)
        .await
        .unwrap()
        .iter()
        .map(|j| j.agent)
        .collect();
    assert_eq!(agents, vec![AgentKind::Analyst]);
}

#[tokio::test]
async fn tc11_new_task_starts_pipeline() {
    let w = World::new("").await;
    w.store
        .create_item(&TrackerItem {
            id: "PL-NEW".into(),
            project: "orchestrator".into(),
            title: "fresh".into(),
            body: String::new(),
            state: "To Analyse".into(),
            labels: vec![],
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        })
        .await
        .unwrap();
    w.pipeline
        .on_item_state("PL-NEW", "To Analyse", None, "tracker")
        .await
        .unwrap();
    let t = w
        .store
        .find_live_task_by_tracker_id("PL-NEW")
        .await
        .unwrap()
        .expect("started");
    assert_eq!(t.stage, Stage::Analysis);
    let jobs = w.store.jobs_for_task(t.id).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].agent, AgentKind::Analyst);
}

#[tokio::test]
async fn tc12_reconciler_skips_cancelled() {
    let w = World::new("").await;
    let t = w.task("PL-100", "ORCH-400", Stage::Development).await;
    w.pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    let rep = w.pipeline.reconcile_once().await.unwrap();
    assert_eq!(rep.skipped_terminal, 1);
    assert_eq!(rep.repaired, 0);
}

#[tokio::test]
async fn tc12_reconciler_repairs_a_missed_gate() {
    let w = World::new("").await;
    let t = w.task("PL-102", "ORCH-402", Stage::AwaitingApproval).await;
    // The item was moved to Approved but nobody told orch.
    w.store.set_item_state("PL-102", "Approved").await.unwrap();
    let rep = w.pipeline.reconcile_once().await.unwrap();
    assert_eq!(rep.repaired, 1);
    assert_eq!(w.stage(&t).await, Stage::Development);
}

#[tokio::test]
async fn tc13_end_to_end_stop() {
    let w = World::new("").await;
    let t = w.task("PL-110", "ORCH-410", Stage::Review).await;
    w.push_branch(&t, "work/e2e.md").await;
    let (jr, pid) = w.running_with_process(&t, AgentKind::Reviewer).await;
    let jq = w.queued(&t, AgentKind::Developer).await;
    let r = w
        .pipeline
        .cancel_task(
            t.id,
            "Plane STOP status",
            orch_core::cancel::CancelCause::Stop,
            "tracker",
        )
        .await;
    assert!(r.ok && !r.deferred);
    assert!(gone(pid).await, "agent stopped");
    assert_eq!(w.status(&jr).await, JobStatus::Cancelled);
    assert_eq!(w.status(&jq).await, JobStatus::Cancelled);
    assert!(!w.remote_has(&t.branch));
    let got = w.store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(got.stage, Stage::Cancelled);
    assert!(got.cancelled_at.is_some());
    let tomb = format!("#cancelled-{}", t.id);
    assert!(got.tracker_id.as_deref().unwrap().ends_with(&tomb));
    assert!(got.work_item_id.ends_with(&tomb));
    assert_eq!(got.original_tracker_id(), Some("PL-110"));
    assert!(
        w.store
            .find_live_task_by_tracker_id("PL-110")
            .await
            .unwrap()
            .is_none(),
        "freed for a fresh start"
    );
    let item = w.store.get_item("PL-110").await.unwrap().unwrap();
    assert_eq!(item.state, "Cancelled");
    assert!(
        w.comments("PL-110")
            .await
            .iter()
            .any(|c| c.contains("cancelled")),
        "notified"
    );
}

#[tokio::test]
async fn d7_stop_in_critical_window_defers() {
    let w = World::new("").await;
    let t = w.task("PL-130", "ORCH-430", Stage::Deploy).await;
    w.store
        .write_marker(t.id, "orchestrator", MarkerStep::Deploy, "phase B")
        .await
        .unwrap();
    let (jr, pid) = w.running_with_process(&t, AgentKind::Deployer).await;
    let jq = w.queued(&t, AgentKind::Developer).await;
    let r = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(r.deferred && r.ok);
    assert_eq!(w.status(&jq).await, JobStatus::Cancelled);
    assert_eq!(w.status(&jr).await, JobStatus::Running);
    assert!(is_alive(
        &orch_engine::supervisor::handle_of(
            &w.store
                .get_run(jr.run_id.as_ref().unwrap())
                .await
                .unwrap()
                .unwrap(),
            &w.pipeline.config().runs_dir()
        )
        .unwrap()
    ));
    assert!(is_alive_pid(pid), "the deploy actor is not killed");
    let got = w.store.get_task(t.id).await.unwrap().unwrap();
    assert!(got.cancel_requested_at.is_some());
    assert_eq!(got.stage, Stage::Deploy);
    w.pipeline
        .cancel_task(
            t.id,
            "cleanup",
            orch_core::cancel::CancelCause::DeferredStop,
            "test",
        )
        .await;
}

#[tokio::test]
async fn d7_in_critical_window_detection() {
    let w = World::new("").await;
    let t = w.task("PL-131", "ORCH-431", Stage::Merge).await;
    let r = orch_engine::pipeline::task_view(w.store.as_ref(), &t)
        .await
        .unwrap();
    assert!(!r.in_critical_window);
    w.store
        .write_marker(t.id, "orchestrator", MarkerStep::Merge, "{}")
        .await
        .unwrap();
    let r = orch_engine::pipeline::task_view(w.store.as_ref(), &t)
        .await
        .unwrap();
    assert!(r.in_critical_window);
}

#[tokio::test]
async fn d7_lease_held_idle_parking_is_not_critical() {
    let w = World::new("").await;
    let t = w.task("PL-432", "ORCH-432", Stage::Deploy).await;
    let got = w
        .store
        .acquire_merge_lease("orchestrator", t.id, &t.branch)
        .await
        .unwrap();
    assert!(matches!(got, LeaseAcquire::Acquired { .. }));
    let v = orch_engine::pipeline::task_view(w.store.as_ref(), &t)
        .await
        .unwrap();
    assert!(v.holds_lease && !v.in_critical_window);
}

#[tokio::test]
async fn d7_lease_held_with_running_actor_still_critical() {
    let w = World::new("").await;
    let t = w.task("PL-433", "ORCH-433", Stage::Deploy).await;
    w.store
        .acquire_merge_lease("orchestrator", t.id, &t.branch)
        .await
        .unwrap();
    w.running(&t, AgentKind::Deployer).await;
    let v = orch_engine::pipeline::task_view(w.store.as_ref(), &t)
        .await
        .unwrap();
    assert!(v.in_critical_window);
    let r = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(r.deferred);
}

#[tokio::test]
async fn d7_stop_on_deploy_awaiting_confirm_full_resets() {
    let w = World::new("").await;
    let t = w.task("PL-434", "ORCH-434", Stage::Deploy).await;
    w.push_branch(&t, "work/park.md").await;
    w.store
        .acquire_merge_lease("orchestrator", t.id, &t.branch)
        .await
        .unwrap();
    let r = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(r.ok && !r.deferred);
    assert_eq!(r.note, CancelNote::Cancelled);
    assert_eq!(w.stage(&t).await, Stage::Cancelled);
    assert!(
        !w.remote_has(&t.branch),
        "full reset deletes the remote feature branch"
    );
    assert!(
        w.store.merge_lease("orchestrator").await.unwrap().is_none(),
        "lease released"
    );
}

#[tokio::test]
async fn d7_repeated_stop_in_critical_window_no_duplicate_notify() {
    let w = World::new("").await;
    let t = w.task("PL-435", "ORCH-435", Stage::Deploy).await;
    w.store
        .write_marker(t.id, "orchestrator", MarkerStep::Deploy, "phase B")
        .await
        .unwrap();
    let before = w.comments("PL-435").await.len();
    let r1 = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    let r2 = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(r1.deferred && r1.note.to_string() == "deferred-critical-window");
    assert!(r2.deferred && r2.note.to_string() == "deferred-already-pending");
    let comments = w.comments("PL-435").await;
    assert_eq!(
        comments.len(),
        before + 1,
        "only the first deferral notifies: {comments:#?}"
    );
    let events = w.store.events(t.id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::CancelRequested)
            .count(),
        1
    );
}

#[tokio::test]
async fn d7_deferred_applied_by_finalizer() {
    let w = World::new("").await;
    let t = w.task("PL-140", "ORCH-440", Stage::Development).await;
    w.store
        .set_cancel_requested(
            t.id,
            orch_core::EventInput::new(
                "test",
                orch_core::EventKind::CancelRequested,
                "STOP deferred",
            ),
        )
        .await
        .unwrap();
    let r = w
        .pipeline
        .cancel_task(
            t.id,
            "deferred",
            orch_core::cancel::CancelCause::DeferredStop,
            "deferred",
        )
        .await;
    assert!(r.ok && !r.deferred);
    assert_eq!(w.stage(&t).await, Stage::Cancelled);
}

#[tokio::test]
async fn d7_deferred_cancel_applies_when_the_window_closes() {
    // The real finalizer path: a deploy in flight defers the STOP; once phase B
    // ended (its job succeeded, the marker completed), the tick applies it.
    let w = World::new("[repos.deploy]\nrun = [\"true\"]\n").await;
    let t = w.task("PL-141", "ORCH-441", Stage::Deploy).await;
    w.store
        .acquire_merge_lease("orchestrator", t.id, &t.branch)
        .await
        .unwrap();
    w.store
        .write_marker(t.id, "orchestrator", MarkerStep::Deploy, "phase B")
        .await
        .unwrap();
    let jr = w.running(&t, AgentKind::Deployer).await;
    let r = w
        .pipeline
        .cancel_task(t.id, "STOP", orch_core::cancel::CancelCause::Stop, "test")
        .await;
    assert!(r.deferred);
    w.store
        .complete(jr.id, jr.run_id.as_ref().unwrap())
        .await
        .unwrap();
    w.pipeline.tick(t.id).await.unwrap();
    assert_eq!(w.stage(&t).await, Stage::Cancelled);
    assert!(
        w.store
            .initiated_markers(Some(t.id))
            .await
            .unwrap()
            .is_empty(),
        "marker completed"
    );
    assert!(
        w.store.merge_lease("orchestrator").await.unwrap().is_none(),
        "lease released"
    );
}
