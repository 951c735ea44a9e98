//! SQLite-only checks: the schema itself and the migration files' additive
//! discipline. (Claimers on one file: `claimers.rs`, with PostgreSQL's.)

use orch_core::NewTask;
use orch_store::{SqliteOptions, SqliteStore, Store, TaskStore};

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

/// Migrations are additive, SQLite's and PostgreSQL's: no file drops or
/// renames anything, and a column added to an existing table is nullable or
/// has a default (else the ALTER fails on a database that already holds rows).
#[test]
fn migrations_are_additive() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    let mut files: Vec<_> = ["sqlite", "postgres"]
        .iter()
        .flat_map(|d| std::fs::read_dir(format!("{root}/{d}")).unwrap())
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

/// A column a newer version adds changes nothing for this one (as on
/// PostgreSQL, `pg_specific.rs`): the queries name their columns. SQLite
/// itself would map a `SELECT *` by name all the same; this guards that the
/// named lists and the added column coexist, and that the store never
/// fetches a column it does not read.
#[tokio::test]
async fn a_column_from_a_newer_version_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orch.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    for table in [
        "tasks",
        "task_events",
        "jobs",
        "runs",
        "merge_leases",
        "markers",
        "tracker_items",
        "tracker_comments",
        "notifications",
    ] {
        conn.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN from_a_newer_version BLOB"
        ))
        .unwrap();
    }
    drop(conn);
    let tasks = orch_store::testing::populate(&store).await;
    orch_store::testing::read_back(&store, &tasks).await;
}
