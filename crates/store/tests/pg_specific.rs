//! PostgreSQL-only checks: `orch_store::open` of a postgres URL, migrations
//! run again by another process, and the audit log's protection in the
//! database itself. Each test works in a fresh schema (`ORCH_TEST_PG_URL`).

use orch_core::NewTask;
use orch_store::testing::{PgScratch, pg_url, populate, read_back};
use orch_store::{PgOptions, PgStore, SqliteOptions, SqliteStore, Store, TaskStore};

/// `orch_store::open` gives a working PostgreSQL store for a postgres URL
/// (what `store.url = "postgres://…"` in orch.toml reaches).
#[tokio::test]
async fn open_gives_the_postgres_store() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let store = orch_store::open(scratch.url(), SqliteOptions::default(), None)
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
/// node), changes nothing; and every table has exactly SQLite's columns, which
/// the shared row mapping relies on (so the columns the STOP feature and the
/// fencing need, checked on SQLite, are here too).
#[tokio::test]
async fn migrations_idempotent_and_schema_same_as_sqlite() {
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
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("orch.db"), SqliteOptions::default())
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    for table in [
        "tasks",
        "task_deps",
        "task_events",
        "jobs",
        "runs",
        "merge_leases",
        "markers",
        "webhook_deliveries",
        "tracker_items",
        "tracker_comments",
        "notifications",
    ] {
        let mut pg = again.columns(table).await.unwrap();
        let mut lite = sqlite.columns(table).await.unwrap();
        pg.sort();
        lite.sort();
        assert!(!pg.is_empty(), "{table} missing on PostgreSQL");
        assert_eq!(pg, lite, "columns of {table}");
    }
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

/// A node of a newer version may add a column to any table of the database
/// this one shares (issue 11). This version must go on reading and writing
/// every table: its queries name the columns they map, so a column it does
/// not know is neither fetched nor described. The added column's type is a
/// multirange, which sqlx 0.9 cannot even describe: a `SELECT *` (or
/// `RETURNING *`) over such a table fails before any row is mapped.
#[tokio::test]
async fn a_column_from_a_newer_version_changes_nothing() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let store = PgStore::open(scratch.url(), PgOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let pool = sqlx::PgPool::connect(scratch.url()).await.unwrap();
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
        let sql = format!("ALTER TABLE {table} ADD COLUMN from_a_newer_version int8multirange");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    // In a task of its own, so that a failure still lets the store close
    // (roll back, release its locks) before the scratch schema is dropped.
    let store = std::sync::Arc::new(store);
    let s = store.clone();
    let done = tokio::spawn(async move {
        let tasks = populate(&*s).await;
        read_back(&*s, &tasks).await;
    })
    .await;
    store.close().await;
    if let Err(e) = done {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `store.max_connections` reaches the pool `orch_store::open` builds:
/// PostgreSQL's pool size, SQLite's read connections; absent, each
/// backend's default (8 and 4).
#[tokio::test]
async fn max_connections_reaches_the_pool() {
    use orch_store::{Opened, open_concrete};
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("orch.db").display());
    for (max, want) in [(Some(2), 2), (None, 4)] {
        match open_concrete(&sqlite_url, SqliteOptions::default(), max).await {
            Ok(Opened::Sqlite(s)) => assert_eq!(s.read_connections(), want),
            other => panic!("not a SQLite store: {other:?}"),
        }
    }
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    for (max, want) in [(Some(3), 3), (None, 8)] {
        match open_concrete(scratch.url(), SqliteOptions::default(), max).await {
            Ok(Opened::Pg(p)) => {
                assert_eq!(p.max_connections(), want);
                p.close().await;
            }
            other => panic!("not a PostgreSQL store: {other:?}"),
        }
    }
}

/// A task's step lock is one node's at a time: another node (its own
/// pool) cannot take it while it is held, other tasks' locks are free, and
/// a lock dropped without a release (a node that dies) is freed too.
#[tokio::test]
async fn a_tasks_step_lock_is_one_nodes_at_a_time() {
    use orch_core::TaskId;
    use orch_store::NodeStore;
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let one = PgStore::open(scratch.url(), PgOptions::default())
        .await
        .unwrap();
    one.migrate().await.unwrap();
    let two = PgStore::open(scratch.url(), PgOptions::default())
        .await
        .unwrap();

    let held = one.try_lock_task(TaskId(7)).await.unwrap().expect("free");
    assert!(
        two.try_lock_task(TaskId(7)).await.unwrap().is_none(),
        "held by one"
    );
    let other = two
        .try_lock_task(TaskId(8))
        .await
        .unwrap()
        .expect("another task's is free");
    other.release().await;
    held.release().await;
    let taken = two
        .try_lock_task(TaskId(7))
        .await
        .unwrap()
        .expect("released");
    drop(taken);
    // A dropped lock's transaction is rolled back when its connection goes
    // back to the pool: wait for that, not for a fixed time.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(l) = one.try_lock_task(TaskId(7)).await.unwrap() {
            l.release().await;
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "a dropped lock is never freed"
        );
        tokio::task::yield_now().await;
    }
}

/// A rolling upgrade: a newer node migrated the database, then a node of
/// this version (re)starts on it. Its migration run leaves the newer
/// migration alone instead of refusing to start.
#[tokio::test]
async fn a_node_starts_on_a_database_a_newer_version_migrated() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let store = PgStore::open(scratch.url(), PgOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let pool = sqlx::PgPool::connect(scratch.url()).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
         VALUES (99990101000000, 'from a newer orch', now(), true, '\\x00'::bytea, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("CREATE TABLE from_a_newer_version (id BIGINT)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let again = PgStore::open(scratch.url(), PgOptions::default())
        .await
        .unwrap();
    again
        .migrate()
        .await
        .expect("a newer version's migration is left alone");
    again.ping().await.unwrap();
    again.close().await;
    store.close().await;
}
