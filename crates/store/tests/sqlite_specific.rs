//! SQLite-only checks: many connections on one file, the schema itself, and the
//! migration files' additive discipline.

use orch_core::{AgentKind, JobStatus, NewJob, NewTask, Timestamp};
use orch_store::{ClaimRequest, JobQueue, SqliteOptions, SqliteStore, Store, TaskStore};
use std::collections::HashSet;

/// 8 claimers, each with its own connections to one SQLite file (as 8 worker
/// processes would have), drain 2,000 jobs: every job is claimed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_claimers_on_one_file_claim_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orch.db");
    let setup = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    setup.migrate().await.unwrap();
    let mut task_ids = Vec::new();
    for i in 0..10 {
        let mut t = NewTask::new(format!("repo{i}"), "load");
        t.work_item_id = Some(format!("LOAD-{i}"));
        task_ids.push(setup.create_task(t, "test").await.unwrap());
    }
    for n in 0..2000 {
        let t = &task_ids[n % task_ids.len()];
        let mut j = NewJob::new(t.id, AgentKind::ALL[n % 5], t.repo.clone(), Timestamp(0));
        j.priority = (n % 3) as i32;
        setup.enqueue(j).await.unwrap();
    }
    let mut claimers = Vec::new();
    for w in 0..8 {
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap();
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

/// TC-14: the columns the STOP feature needs are present after (re-)migration.
#[tokio::test]
async fn tc14_migration_idempotent_and_columns_present() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orch.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    // A new process opening the same file and migrating again changes nothing.
    let again = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    again.migrate().await.unwrap();
    let cols = again.columns("tasks").await.unwrap();
    for c in [
        "cancelled_at",
        "cancel_requested_at",
        "tracker_id",
        "work_item_id",
    ] {
        assert!(cols.iter().any(|x| x == c), "tasks.{c} missing: {cols:?}");
    }
    let job_cols = again.columns("jobs").await.unwrap();
    for c in [
        "run_id",
        "worker_id",
        "lease_expires_at",
        "attempts",
        "max_attempts",
        "run_after",
    ] {
        assert!(job_cols.iter().any(|x| x == c), "jobs.{c} missing");
    }
}

/// The audit log is append-only in the database itself.
#[tokio::test]
async fn task_events_cannot_be_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orch.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
        .create_task(NewTask::new("demo", "x"), "test")
        .await
        .unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(
        sqlx::query("UPDATE task_events SET message = 'forged'")
            .execute(&pool)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DELETE FROM task_events")
            .execute(&pool)
            .await
            .is_err()
    );
}

/// Migrations are additive: no file drops or renames anything, and a column
/// added to an existing table is nullable or has a default (else the ALTER fails
/// on a database that already holds rows).
#[test]
fn migrations_are_additive() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        let sql = std::fs::read_to_string(&f).unwrap().to_uppercase();
        let name = f.display().to_string();
        for banned in ["DROP TABLE", "DROP COLUMN", "RENAME TO", "RENAME COLUMN"] {
            assert!(!sql.contains(banned), "{name}: {banned} is not additive");
        }
        for stmt in sql.split(';') {
            if stmt.contains("ADD COLUMN") && stmt.contains("NOT NULL") {
                assert!(
                    stmt.contains("DEFAULT"),
                    "{name}: NOT NULL column added without a default: {stmt}"
                );
            }
        }
    }
}
