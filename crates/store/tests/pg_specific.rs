//! PostgreSQL-only checks: `orch_store::open` of a postgres URL, migrations
//! run again by another process, and the audit log's protection in the
//! database itself. Each test works in a fresh schema (`ORCH_TEST_PG_URL`).

use orch_core::NewTask;
use orch_store::testing::{PgScratch, pg_url};
use orch_store::{PgOptions, PgStore, SqliteOptions, Store, TaskStore};

/// `orch_store::open` gives a working PostgreSQL store for a postgres URL
/// (what `store.url = "postgres://…"` in orch.toml reaches).
#[tokio::test]
async fn open_gives_the_postgres_store() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let store = orch_store::open(scratch.url(), SqliteOptions::default())
        .await
        .expect("open postgres://");
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    let t = store
        .create_task(NewTask::new("demo", "over postgres"), "test")
        .await
        .unwrap();
    assert_eq!(
        store.get_task(t.id).await.unwrap().unwrap().title,
        "over postgres"
    );
}

/// An unreachable server is an `Open` error naming the URL without its password.
#[tokio::test]
async fn open_error_hides_the_password() {
    let err = PgStore::open(
        "postgres://orch:s3cret@127.0.0.1:1/orch",
        PgOptions {
            acquire_timeout: std::time::Duration::from_secs(2),
            ..PgOptions::default()
        },
    )
    .await
    .expect_err("nothing listens on port 1");
    let msg = err.to_string();
    assert!(
        msg.contains("postgres://orch:***@127.0.0.1:1/orch"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");
}

/// TC-14 on PostgreSQL: migrating again, also from another pool (another
/// node), changes nothing, and the columns the STOP feature needs are there.
#[tokio::test]
async fn migrations_idempotent_and_columns_present() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let store = PgStore::open(scratch.url(), PgOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let again = PgStore::open(scratch.url(), PgOptions::default())
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
    assert!(
        again
            .columns("runs")
            .await
            .unwrap()
            .iter()
            .any(|c| c == "final_text")
    );
}

/// The audit log is append-only in the database itself: UPDATE, DELETE and
/// TRUNCATE are refused.
#[tokio::test]
async fn task_events_cannot_be_rewritten() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let store = PgStore::open(scratch.url(), PgOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
        .create_task(NewTask::new("demo", "x"), "test")
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(scratch.url()).await.unwrap();
    for sql in [
        "UPDATE task_events SET message = 'forged'",
        "DELETE FROM task_events",
        "TRUNCATE task_events",
    ] {
        assert!(
            sqlx::query(sql).execute(&pool).await.is_err(),
            "{sql} was allowed"
        );
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM task_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    pool.close().await;
}
