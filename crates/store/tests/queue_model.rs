//! Model-based property test of the job queue: random sequences of queue
//! operations run against a store and a plain in-memory model whose claim
//! rule is `orch_core::gates::next_claimable`. After every step the store
//! must agree with the model, and the job-state invariants must hold. The
//! same test runs on the SQLite store and on the PostgreSQL store (a fresh
//! schema per case, `ORCH_TEST_PG_URL`).

use orch_core::EventKind;
use orch_core::gates::{GateContext, Gates, Limits, next_claimable};
use orch_core::retry::{FailureDecision, RetryPolicy, after_failure};
use orch_core::{AgentKind, EventInput, Job, JobStatus, NewJob, NewTask, Stage, TaskId, Timestamp};
use orch_store::testing::PgScratch;
use orch_store::*;
use proptest::prelude::*;
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        task: usize,
        agent: usize,
        delay: u64,
        max_attempts: u32,
        priority: i32,
    },
    Claim {
        limits: usize,
    },
    Complete {
        k: usize,
    },
    Fail {
        k: usize,
    },
    Heartbeat {
        k: usize,
    },
    CancelTask {
        task: usize,
        only_queued: bool,
    },
    FinishTask {
        task: usize,
    },
    Advance {
        secs: u64,
    },
    Reap,
    Lease {
        task: usize,
        acquire: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..5usize, 0..3u64, 1..4u32, 0..3i32).prop_map(|(task, agent, delay, max_attempts, priority)| Op::Enqueue { task, agent, delay, max_attempts, priority }),
        4 => (0..4usize).prop_map(|limits| Op::Claim { limits }),
        2 => (0..4usize).prop_map(|k| Op::Complete { k }),
        2 => (0..4usize).prop_map(|k| Op::Fail { k }),
        1 => (0..4usize).prop_map(|k| Op::Heartbeat { k }),
        1 => (0..3usize, any::<bool>()).prop_map(|(task, only_queued)| Op::CancelTask { task, only_queued }),
        1 => (0..3usize).prop_map(|task| Op::FinishTask { task }),
        2 => (0..40u64).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Reap),
        1 => (0..3usize, any::<bool>()).prop_map(|(task, acquire)| Op::Lease { task, acquire }),
    ]
}

fn limits(v: usize) -> Limits {
    match v {
        0 => Limits::default(),
        1 => Limits {
            global: Some(2),
            ..Limits::default()
        },
        2 => Limits {
            per_repo: Some(1),
            ..Limits::default()
        },
        _ => Limits {
            per_agent: [(AgentKind::Developer, 1), (AgentKind::Merger, 1)].into(),
            ..Limits::default()
        },
    }
}

const LEASE: Duration = Duration::from_secs(30);

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_secs(5),
        cap: Duration::from_secs(60),
        factor: 2.0,
        jitter: 0.0,
    }
}

struct Model {
    jobs: BTreeMap<i64, Job>,
    stages: Vec<Stage>,
    lease_holder: BTreeMap<String, usize>,
}

impl Model {
    fn ctx(&self, tasks: &[TaskId], repos: &[&str]) -> GateContext {
        let mut ctx = GateContext::default();
        ctx.count_running(self.jobs.values());
        for (i, st) in self.stages.iter().enumerate() {
            if st.is_terminal() {
                ctx.terminal_tasks.insert(tasks[i]);
            }
        }
        // Task 2 depends on task 0.
        if self.stages[0] != Stage::Done && !self.stages[2].is_terminal() {
            ctx.waiting_on_deps.insert(tasks[2]);
        }
        for (repo, holder) in &self.lease_holder {
            if !self.stages[*holder].is_terminal() {
                ctx.lease_holders.insert(repo.clone(), tasks[*holder]);
            }
        }
        let _ = repos;
        ctx
    }

    fn running(&self) -> Vec<Job> {
        self.jobs
            .values()
            .filter(|j| j.status == JobStatus::Running)
            .cloned()
            .collect()
    }
}

/// Which store a case runs against: SQLite, or PostgreSQL at this URL.
#[derive(Clone, Copy)]
enum Backend<'a> {
    Sqlite,
    Postgres(&'a str),
}

/// A fresh, migrated store on `clock`, and what keeps it alive.
async fn open(backend: Backend<'_>, clock: &ManualClock) -> (Arc<dyn Store>, Box<dyn Any>) {
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let (store, guard): (Arc<dyn Store>, Box<dyn Any>) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let opts = SqliteOptions {
                clock,
                ..SqliteOptions::default()
            };
            let store = SqliteStore::open(dir.path().join("q.db"), opts)
                .await
                .unwrap();
            (Arc::new(store), Box::new(dir))
        }
        Backend::Postgres(url) => {
            let scratch = PgScratch::create(url).await;
            let opts = PgOptions {
                clock,
                max_connections: 2,
                ..PgOptions::default()
            };
            let store = PgStore::open(scratch.url(), opts).await.unwrap();
            (Arc::new(store), Box::new(scratch))
        }
    };
    store.migrate().await.unwrap();
    (store, guard)
}

async fn run_case(backend: Backend<'_>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = ManualClock::new(Timestamp(1_000_000));
    let (store, _guard) = open(backend, &clock).await;
    let repos = ["alpha", "alpha", "beta"];
    let mut tasks = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        let mut t = NewTask::new(*repo, format!("t{i}"));
        t.work_item_id = Some(format!("T-{i}"));
        t.stage = Stage::Merge;
        if i == 2 {
            t.depends_on = vec![tasks[0]];
        }
        tasks.push(store.create_task(t, "prop").await.unwrap().id);
    }
    let mut m = Model {
        jobs: BTreeMap::new(),
        stages: vec![Stage::Merge; 3],
        lease_holder: BTreeMap::new(),
    };

    for op in ops {
        let now = clock.now();
        match op {
            Op::Enqueue {
                task,
                agent,
                delay,
                max_attempts,
                priority,
            } => {
                let mut nj = NewJob::new(
                    tasks[task],
                    AgentKind::ALL[agent],
                    repos[task],
                    now.plus(Duration::from_secs(delay)),
                );
                nj.max_attempts = max_attempts;
                nj.priority = priority;
                let j = store.enqueue(nj).await.unwrap();
                m.jobs.insert(j.id.0, j);
            }
            Op::Claim { limits: l } => {
                let req = ClaimRequest {
                    lease: LEASE,
                    limits: limits(l),
                    gates: Gates::default(),
                    ..ClaimRequest::new("w")
                };
                let all: Vec<Job> = m.jobs.values().cloned().collect();
                let expected =
                    next_claimable(&all, &m.ctx(&tasks, &repos), &req.limits, req.gates, now)
                        .map(|j| j.id);
                let got = store.claim(&req).await.unwrap();
                prop_assert_eq!(
                    got.as_ref().map(|j| j.id),
                    expected,
                    "claim disagrees with the gate model"
                );
                if let Some(j) = got {
                    let mj = m.jobs.get_mut(&j.id.0).unwrap();
                    mj.status = JobStatus::Running;
                    mj.attempts += 1;
                    mj.run_id = j.run_id.clone();
                    mj.lease_expires_at = Some(now.plus(LEASE));
                }
            }
            Op::Complete { k } => {
                let running = m.running();
                if let Some(j) = running.get(k) {
                    prop_assert!(
                        store
                            .complete(j.id, j.run_id.as_ref().unwrap())
                            .await
                            .unwrap()
                    );
                    m.jobs.get_mut(&j.id.0).unwrap().status = JobStatus::Succeeded;
                }
            }
            Op::Fail { k } => {
                let running = m.running();
                if let Some(j) = running.get(k) {
                    let task_i = tasks.iter().position(|t| *t == j.task_id).unwrap();
                    let want = after_failure(
                        j.attempts,
                        j.max_attempts,
                        m.stages[task_i],
                        now,
                        &policy(),
                        0.0,
                    );
                    let got = store
                        .fail(j.id, j.run_id.as_ref().unwrap(), "boom", &policy())
                        .await
                        .unwrap();
                    prop_assert_eq!(got, Some(want));
                    let mj = m.jobs.get_mut(&j.id.0).unwrap();
                    match want {
                        FailureDecision::Retry { run_after } => {
                            mj.status = JobStatus::Queued;
                            mj.run_after = run_after;
                        }
                        FailureDecision::GiveUp => mj.status = JobStatus::Failed,
                        FailureDecision::Cancel => mj.status = JobStatus::Cancelled,
                    }
                }
            }
            Op::Heartbeat { k } => {
                let running = m.running();
                if let Some(j) = running.get(k) {
                    prop_assert!(
                        store
                            .heartbeat(j.id, j.run_id.as_ref().unwrap(), LEASE)
                            .await
                            .unwrap()
                    );
                    m.jobs.get_mut(&j.id.0).unwrap().lease_expires_at = Some(now.plus(LEASE));
                }
            }
            Op::CancelTask { task, only_queued } => {
                let n = store
                    .cancel_jobs_for_task(tasks[task], only_queued)
                    .await
                    .unwrap();
                let mut want = 0;
                for j in m.jobs.values_mut().filter(|j| j.task_id == tasks[task]) {
                    if j.status == JobStatus::Queued
                        || (!only_queued && j.status == JobStatus::Running)
                    {
                        j.status = JobStatus::Cancelled;
                        want += 1;
                    }
                }
                prop_assert_eq!(n, want);
                if !only_queued && !m.stages[task].is_terminal() {
                    store
                        .mark_cancelled(tasks[task], EventInput::new("p", EventKind::Cancelled, ""))
                        .await
                        .unwrap();
                    m.stages[task] = Stage::Cancelled;
                }
            }
            Op::FinishTask { task } => {
                if m.stages[task] == Stage::Merge {
                    store
                        .set_stage(
                            tasks[task],
                            Stage::Done,
                            Some(Stage::Merge),
                            EventInput::new("p", EventKind::Done, ""),
                        )
                        .await
                        .unwrap();
                    m.stages[task] = Stage::Done;
                }
            }
            Op::Advance { secs } => clock.advance(Duration::from_secs(secs)),
            Op::Reap => {
                let expired = store.expired_jobs().await.unwrap();
                let want: Vec<i64> = m
                    .running()
                    .iter()
                    .filter(|j| j.lease_expires_at.unwrap() < now)
                    .map(|j| j.id.0)
                    .collect();
                prop_assert_eq!(expired.iter().map(|j| j.id.0).collect::<Vec<_>>(), want);
                for j in expired {
                    let mj = m.jobs.get(&j.id.0).unwrap().clone();
                    let task_i = tasks.iter().position(|t| *t == j.task_id).unwrap();
                    let want = after_failure(
                        mj.attempts,
                        mj.max_attempts,
                        m.stages[task_i],
                        now,
                        &policy(),
                        0.0,
                    );
                    let got = store
                        .reap_unknown_outcome(
                            j.id,
                            j.run_id.as_ref().unwrap(),
                            "lease expired",
                            &policy(),
                        )
                        .await
                        .unwrap();
                    prop_assert_eq!(got, Some(want));
                    let mj = m.jobs.get_mut(&j.id.0).unwrap();
                    match want {
                        FailureDecision::Retry { run_after } => {
                            mj.status = JobStatus::Queued;
                            mj.run_after = run_after;
                        }
                        FailureDecision::GiveUp => mj.status = JobStatus::Failed,
                        FailureDecision::Cancel => mj.status = JobStatus::Cancelled,
                    }
                }
            }
            Op::Lease { task, acquire } => {
                let repo = repos[task];
                if acquire {
                    let got = store
                        .acquire_merge_lease(repo, tasks[task], "b")
                        .await
                        .unwrap();
                    let free = match m.lease_holder.get(repo) {
                        None => true,
                        Some(h) => *h == task || m.stages[*h].is_terminal(),
                    };
                    prop_assert_eq!(matches!(got, LeaseAcquire::Acquired { .. }), free);
                    if free {
                        m.lease_holder.insert(repo.to_owned(), task);
                    }
                } else {
                    let released = store.release_merge_lease(repo, tasks[task]).await.unwrap();
                    prop_assert_eq!(released, m.lease_holder.get(repo) == Some(&task));
                    if released {
                        m.lease_holder.remove(repo);
                    }
                }
            }
        }
        // The store agrees with the model, and the invariants hold. (One
        // listing per step, not a read per job: a round trip to PostgreSQL
        // costs far more than one to SQLite.)
        let stored: BTreeMap<i64, Job> = store
            .list_jobs(None, u32::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|j| (j.id.0, j))
            .collect();
        prop_assert_eq!(
            stored.len(),
            m.jobs.len(),
            "the store holds the model's jobs"
        );
        for (id, mj) in &m.jobs {
            let sj = &stored[id];
            prop_assert_eq!(sj.status, mj.status, "status of job {}", id);
            prop_assert_eq!(sj.attempts, mj.attempts);
            prop_assert!(sj.attempts <= sj.max_attempts, "attempts never exceed max");
            if sj.status == JobStatus::Queued {
                prop_assert_eq!(sj.run_after, mj.run_after);
            }
            if sj.status == JobStatus::Running {
                prop_assert!(sj.run_id.is_some() && sj.lease_expires_at.is_some());
            }
        }
    }
    Ok(())
}

/// The PostgreSQL server, asked once (a note when unset, a failure under CI).
static PG_URL: LazyLock<Option<String>> = LazyLock::new(orch_store::testing::pg_url);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn queue_matches_model(ops in proptest::collection::vec(op(), 5..60)) {
        runtime().block_on(run_case(Backend::Sqlite, ops))?;
    }

    #[test]
    fn pg_queue_matches_model(ops in proptest::collection::vec(op(), 5..60)) {
        let Some(url) = PG_URL.as_deref() else {
            return Ok(());
        };
        runtime().block_on(run_case(Backend::Postgres(url), ops))?;
    }
}
