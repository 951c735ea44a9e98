//! Queue throughput benchmark: the full enqueue → claim → complete cycle with
//! 1, 4 and 16 concurrent workers sharing one store (as the worker tasks of one
//! `orch serve` do), on the store a URL names.
//!
//! Run: `cargo bench -p orch-store --bench queue -- [JOBS] [--url URL] [--table N]…`
//! - no `--url`: SQLite (a fresh file per row) under `synchronous=NORMAL` and `FULL`;
//! - `--url postgres://…`: PostgreSQL, each row in a fresh schema of that
//!   database, dropped after it;
//! - `--table N` (repeatable): N finished jobs already in the table before
//!   the row's JOBS cycles, to show that the cost stays flat as it grows;
//! - `--global N`: claim under a global limit of N running jobs (set it
//!   above 16 to measure what a limit costs without making workers wait:
//!   on PostgreSQL, claims under a limit take turns on an advisory lock).
//!
//! Reports jobs/s and claim latency percentiles.

use hdrhistogram::Histogram;
use orch_core::{AgentKind, NewJob, NewTask, Timestamp};
use orch_store::testing::PgScratch;
use orch_store::{
    ClaimRequest, PgOptions, PgStore, SqliteOptions, SqliteStore, Store, Synchronous,
};
use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Latencies in µs of each step of the cycle, merged over all workers.
struct Latencies {
    claim: Histogram<u64>,
    enqueue: Histogram<u64>,
    complete: Histogram<u64>,
}

/// The store a row runs on.
#[derive(Clone, Copy)]
enum Target<'a> {
    Sqlite(Synchronous),
    Postgres(&'a str),
}

/// A fresh, migrated store holding `table` finished jobs of `task`, and what
/// keeps it alive.
async fn open(target: Target<'_>, workers: usize) -> (Arc<dyn Store>, Box<dyn Any>) {
    match target {
        Target::Sqlite(sync) => {
            let dir = tempfile::tempdir().expect("tempdir");
            let opts = SqliteOptions {
                synchronous: sync,
                ..SqliteOptions::default()
            };
            let store = SqliteStore::open(dir.path().join("bench.db"), opts)
                .await
                .expect("open");
            store.migrate().await.expect("migrate");
            (Arc::new(store), Box::new(dir))
        }
        Target::Postgres(url) => {
            let scratch = PgScratch::create(url).await;
            let opts = PgOptions {
                max_connections: workers.clamp(2, 16) as u32,
                ..PgOptions::default()
            };
            let store = PgStore::open(scratch.url(), opts).await.expect("open");
            store.migrate().await.expect("migrate");
            (Arc::new(store), Box::new(scratch))
        }
    }
}

/// Put `n` finished jobs of task 1 in the table, in one statement.
async fn prefill(target: Target<'_>, guard: &dyn Any, n: usize) {
    if n == 0 {
        return;
    }
    let n = n as i64;
    match target {
        Target::Sqlite(_) => {
            let dir = guard.downcast_ref::<tempfile::TempDir>().expect("dir");
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
            sqlx::query(
                "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?1)
                 INSERT INTO jobs (task_id, agent, repo, status, attempts, run_after, created_at, updated_at)
                 SELECT 1, 'developer', 'bench', 'succeeded', 1, 0, 0, 0 FROM k",
            )
            .bind(n)
            .execute(&pool)
            .await
            .expect("prefill");
            sqlx::query("ANALYZE")
                .execute(&pool)
                .await
                .expect("analyze");
            pool.close().await;
        }
        Target::Postgres(_) => {
            let scratch = guard.downcast_ref::<PgScratch>().expect("scratch");
            let pool = sqlx::PgPool::connect(scratch.url()).await.expect("connect");
            sqlx::query(
                "INSERT INTO jobs (task_id, agent, repo, status, attempts, run_after, created_at, updated_at)
                 SELECT 1, 'developer', 'bench', 'succeeded', 1, 0, 0, 0 FROM generate_series(1, $1)",
            )
            .bind(n)
            .execute(&pool)
            .await
            .expect("prefill");
            sqlx::query("ANALYZE")
                .execute(&pool)
                .await
                .expect("analyze");
            pool.close().await;
        }
    }
}

async fn run(
    target: Target<'_>,
    workers: usize,
    jobs: usize,
    table: usize,
    global: Option<u32>,
) -> (f64, Latencies) {
    let (store, guard) = open(target, workers).await;
    let mut tasks = Vec::new();
    for i in 0..workers {
        let mut t = NewTask::new("bench", format!("t{i}"));
        t.work_item_id = Some(format!("B-{i}"));
        tasks.push(store.create_task(t, "bench").await.expect("task"));
    }
    prefill(target, guard.as_ref(), table).await;
    let remaining = Arc::new(AtomicUsize::new(jobs));
    let start = Instant::now();
    let mut handles = Vec::new();
    for (w, task) in tasks.into_iter().enumerate() {
        let store = store.clone();
        let remaining = remaining.clone();
        handles.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let mut eh = Histogram::<u64>::new(3).expect("histogram");
            let mut ch = Histogram::<u64>::new(3).expect("histogram");
            let mut req = ClaimRequest::new(format!("w{w}"));
            req.limits.global = global;
            while remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let nj = NewJob::new(task.id, AgentKind::Developer, "bench", Timestamp(0));
                let te = Instant::now();
                store.enqueue(nj).await.expect("enqueue");
                eh.record(te.elapsed().as_micros() as u64).expect("record");
                let t0 = Instant::now();
                // Another worker may have taken "our" job; any job will do.
                let job = loop {
                    if let Some(j) = store.claim(&req).await.expect("claim") {
                        break j;
                    }
                    tokio::task::yield_now().await;
                };
                hist.record(t0.elapsed().as_micros() as u64)
                    .expect("record");
                let run = job.run_id.as_ref().expect("run id");
                let tc = Instant::now();
                assert!(store.complete(job.id, run).await.expect("complete"));
                ch.record(tc.elapsed().as_micros() as u64).expect("record");
            }
            [hist, eh, ch]
        }));
    }
    let new = || Histogram::<u64>::new(3).expect("histogram");
    let mut total = Latencies {
        claim: new(),
        enqueue: new(),
        complete: new(),
    };
    for h in handles {
        let [c, e, d] = h.await.expect("worker");
        total.claim.add(c).expect("merge");
        total.enqueue.add(e).expect("merge");
        total.complete.add(d).expect("merge");
    }
    let secs = start.elapsed().as_secs_f64();
    drop(store);
    drop(guard);
    (jobs as f64 / secs, total)
}

fn main() {
    let mut jobs = 20_000;
    let mut url = None;
    let mut tables = Vec::new();
    let mut global = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--url" => url = args.next(),
            "--global" => global = args.next().and_then(|v| v.parse::<u32>().ok()),
            "--table" => tables.extend(args.next().and_then(|v| v.parse::<usize>().ok())),
            other => {
                if let Ok(n) = other.parse() {
                    jobs = n;
                }
            }
        }
    }
    if tables.is_empty() {
        tables.push(0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let targets: Vec<(&str, Target<'_>)> = match url.as_deref() {
        Some(u) if u.starts_with("postgres") => vec![("postgres", Target::Postgres(u))],
        Some(u) => panic!("--url {u}: give a postgres:// URL, or none for SQLite"),
        None => vec![
            ("NORMAL", Target::Sqlite(Synchronous::Normal)),
            ("FULL", Target::Sqlite(Synchronous::Full)),
        ],
    };
    let limit = global.map_or("no limits".to_owned(), |g| format!("global limit {g}"));
    println!("queue benchmark: enqueue → claim → complete, {jobs} jobs per row, {limit}");
    println!(
        "{:<9} {:>9} {:>8} {:>10} {:>12} {:>12} {:>12} {:>14} {:>15}",
        "store",
        "in table",
        "workers",
        "jobs/s",
        "claim p50",
        "claim p99",
        "claim max",
        "enqueue p50",
        "complete p50"
    );
    for (name, target) in targets {
        for &table in &tables {
            for workers in [1, 4, 16] {
                // FULL fsyncs every commit: fewer jobs keep the run short.
                let n = match target {
                    Target::Sqlite(Synchronous::Full) => jobs / 4,
                    _ => jobs,
                };
                let (rate, h) = rt.block_on(run(target, workers, n, table, global));
                println!(
                    "{:<9} {:>9} {:>8} {:>10.0} {:>10}µs {:>10}µs {:>10}µs {:>12}µs {:>13}µs",
                    name,
                    table,
                    workers,
                    rate,
                    h.claim.value_at_quantile(0.50),
                    h.claim.value_at_quantile(0.99),
                    h.claim.max(),
                    h.enqueue.value_at_quantile(0.50),
                    h.complete.value_at_quantile(0.50)
                );
            }
        }
    }
}
