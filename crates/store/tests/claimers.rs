//! Concurrent claimers, each with connections of its own, as separate worker
//! processes on one SQLite file or separate orch nodes on one PostgreSQL
//! database would have: every job is claimed exactly once, and no limit is
//! ever exceeded, on both stores.

use orch_core::gates::Limits;
use orch_core::{AgentKind, JobStatus, NewJob, NewTask, Timestamp};
use orch_store::testing::{PgScratch, pg_url};
use orch_store::{ClaimRequest, PgOptions, PgStore, SqliteOptions, SqliteStore, Store};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Where the claimers' stores live.
enum Target {
    Sqlite(tempfile::TempDir),
    Postgres(PgScratch),
}

impl Target {
    fn sqlite() -> Target {
        Target::Sqlite(tempfile::tempdir().unwrap())
    }

    /// `None` when the PostgreSQL tests are skipped.
    async fn postgres() -> Option<Target> {
        Some(Target::Postgres(PgScratch::create(&pg_url()?).await))
    }

    /// A store with connections of its own.
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Target::Sqlite(dir) => {
                let path: PathBuf = dir.path().join("orch.db");
                Arc::new(
                    SqliteStore::open(path, SqliteOptions::default())
                        .await
                        .unwrap(),
                )
            }
            Target::Postgres(scratch) => {
                let opts = PgOptions {
                    max_connections: 2,
                    ..PgOptions::default()
                };
                Arc::new(PgStore::open(scratch.url(), opts).await.unwrap())
            }
        }
    }
}

/// A migrated store holding `jobs` queued jobs over 10 tasks in 10 repos
/// (`repos` of them distinct), of every agent kind and three priorities.
async fn fill(target: &Target, jobs: usize, repos: usize) -> Arc<dyn Store> {
    let setup = target.open().await;
    setup.migrate().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut t = NewTask::new(format!("repo{}", i % repos), "load");
        t.work_item_id = Some(format!("LOAD-{i}"));
        tasks.push(setup.create_task(t, "test").await.unwrap());
    }
    for n in 0..jobs {
        let t = &tasks[n % tasks.len()];
        let mut j = NewJob::new(t.id, AgentKind::ALL[n % 5], t.repo.clone(), Timestamp(0));
        j.priority = (n % 3) as i32;
        setup.enqueue(j).await.unwrap();
    }
    setup
}

/// 8 claimers drain 2,000 jobs: every job is claimed exactly once.
async fn eight_claimers_claim_each_job_once(target: Target) {
    let setup = fill(&target, 2000, 10).await;
    let mut claimers = Vec::new();
    for w in 0..8 {
        let store = target.open().await;
        claimers.push(tokio::spawn(async move {
            let req = ClaimRequest::new(format!("worker-{w}"));
            let mut mine = Vec::new();
            while let Some(job) = store
                .claim(&req)
                .await
                .expect("claim never errors under contention")
            {
                assert!(
                    store
                        .complete(job.id, job.run_id.as_ref().unwrap())
                        .await
                        .unwrap()
                );
                mine.push(job.id);
            }
            mine
        }));
    }
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut per_worker = Vec::new();
    for c in claimers {
        let mine = c.await.unwrap();
        per_worker.push(mine.len());
        total += mine.len();
        for id in mine {
            assert!(seen.insert(id), "job {id} claimed twice");
        }
    }
    assert_eq!(total, 2000, "claims per worker: {per_worker:?}");
    assert_eq!(seen.len(), 2000);
    let counts = setup.job_counts().await.unwrap();
    assert_eq!(counts[&JobStatus::Succeeded], 2000);
    assert_eq!(counts[&JobStatus::Queued], 0);
    assert_eq!(counts[&JobStatus::Running], 0);
}

/// 8 claimers under a limit of one (global, or per repo over 3 repos) drain
/// 150 jobs, each holding its job a moment: right after every claim, the
/// claimer counts the running jobs, and never sees more than the limit.
/// Claims that counted in stale snapshots would both pass and be seen here.
async fn limits_of_one_hold_under_concurrent_claims(target: Target, limits: Limits) {
    const JOBS: usize = 150;
    let setup = fill(&target, JOBS, 3).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut claimers = Vec::new();
    for w in 0..8 {
        let store = target.open().await;
        let done = done.clone();
        let limits = limits.clone();
        claimers.push(tokio::spawn(async move {
            let req = ClaimRequest {
                limits,
                ..ClaimRequest::new(format!("worker-{w}"))
            };
            let mut worst = 0;
            while done.load(Ordering::SeqCst) < JOBS {
                let Some(job) = store.claim(&req).await.expect("claim") else {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                let running = store.running_jobs(None).await.unwrap();
                let mut per_repo: BTreeMap<&str, usize> = BTreeMap::new();
                for j in &running {
                    *per_repo.entry(j.repo.as_str()).or_default() += 1;
                }
                let counted = if req.limits.global.is_some() {
                    running.len()
                } else {
                    per_repo.values().copied().max().unwrap_or(0)
                };
                worst = worst.max(counted);
                tokio::time::sleep(Duration::from_millis(2)).await;
                assert!(
                    store
                        .complete(job.id, job.run_id.as_ref().unwrap())
                        .await
                        .unwrap()
                );
                done.fetch_add(1, Ordering::SeqCst);
            }
            worst
        }));
    }
    for c in claimers {
        let worst = c.await.unwrap();
        assert!(
            worst <= 1,
            "a claimer saw {worst} running jobs under a limit of 1"
        );
    }
    let counts = setup.job_counts().await.unwrap();
    assert_eq!(counts[&JobStatus::Succeeded], JOBS as u64);
}

fn global_one() -> Limits {
    Limits {
        global: Some(1),
        ..Limits::default()
    }
}

fn per_repo_one() -> Limits {
    Limits {
        per_repo: Some(1),
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_eight_claimers_on_one_file_claim_each_job_once() {
    eight_claimers_claim_each_job_once(Target::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_eight_claimers_on_one_database_claim_each_job_once() {
    if let Some(target) = Target::postgres().await {
        eight_claimers_claim_each_job_once(target).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_global_limit_of_one_holds_under_concurrent_claims() {
    limits_of_one_hold_under_concurrent_claims(Target::sqlite(), global_one()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_global_limit_of_one_holds_under_concurrent_claims() {
    if let Some(target) = Target::postgres().await {
        limits_of_one_hold_under_concurrent_claims(target, global_one()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_repo_limit_of_one_holds_under_concurrent_claims() {
    limits_of_one_hold_under_concurrent_claims(Target::sqlite(), per_repo_one()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_repo_limit_of_one_holds_under_concurrent_claims() {
    if let Some(target) = Target::postgres().await {
        limits_of_one_hold_under_concurrent_claims(target, per_repo_one()).await;
    }
}
