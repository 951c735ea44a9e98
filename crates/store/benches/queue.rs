//! Queue throughput benchmark: the full enqueue → claim → complete cycle on the
//! SQLite store, with 1, 4 and 16 concurrent workers sharing one store (as the
//! worker tasks of one `orch serve` do), under `synchronous=NORMAL` and `FULL`.
//!
//! Run: `cargo bench -p orch-store --bench queue` (optionally `-- JOBS`).
//! Reports jobs/s and claim latency percentiles.

use hdrhistogram::Histogram;
use orch_core::{AgentKind, NewJob, NewTask, Timestamp};
use orch_store::{
    ClaimRequest, JobQueue, SqliteOptions, SqliteStore, Store, Synchronous, TaskStore,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Latencies in µs of each step of the cycle, merged over all workers.
struct Latencies {
    claim: Histogram<u64>,
    enqueue: Histogram<u64>,
    complete: Histogram<u64>,
}

async fn run(sync: Synchronous, workers: usize, jobs: usize) -> (f64, Latencies) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = SqliteOptions {
        synchronous: sync,
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("bench.db"), opts)
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    let mut tasks = Vec::new();
    for i in 0..workers {
        let mut t = NewTask::new("bench", format!("t{i}"));
        t.work_item_id = Some(format!("B-{i}"));
        tasks.push(store.create_task(t, "bench").await.expect("task"));
    }
    let store = Arc::new(store);
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
            let req = ClaimRequest::new(format!("w{w}"));
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
    store.close().await;
    (jobs as f64 / secs, total)
}

fn main() {
    let jobs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("queue benchmark: enqueue → claim → complete, {jobs} jobs per row, SQLite WAL");
    println!(
        "{:<8} {:>8} {:>10} {:>12} {:>12} {:>12} {:>14} {:>15}",
        "sync",
        "workers",
        "jobs/s",
        "claim p50",
        "claim p99",
        "claim max",
        "enqueue p50",
        "complete p50"
    );
    for (name, sync) in [("NORMAL", Synchronous::Normal), ("FULL", Synchronous::Full)] {
        for workers in [1, 4, 16] {
            // FULL fsyncs every commit: fewer jobs keep the run short.
            let n = if sync == Synchronous::Full {
                jobs / 4
            } else {
                jobs
            };
            let (rate, h) = rt.block_on(run(sync, workers, n));
            println!(
                "{:<8} {:>8} {:>10.0} {:>10}µs {:>10}µs {:>10}µs {:>12}µs {:>13}µs",
                name,
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
