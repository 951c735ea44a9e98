//! `orch_store::copy`: a populated store copied SQLite → PostgreSQL → SQLite
//! (and SQLite → SQLite) with every row, id and counter kept; the table
//! description matching both schemas; a target with data refused unless
//! replaced; a copy onto itself refused; the count check naming what differs.
//! The PostgreSQL cases work in fresh schemas (`ORCH_TEST_PG_URL`).

use orch_core::NewTask;
use orch_store::copy::{self, CopyError, CopyOptions, Db, Quiet, TABLES};
use orch_store::testing::{PgScratch, pg_url, populate};
use orch_store::{Store, TaskFilter};
use std::collections::BTreeSet;

/// The progress a copy reported.
#[derive(Default)]
struct Seen {
    started: Vec<&'static str>,
    steps: Vec<(&'static str, u64, u64)>,
}

impl copy::CopyProgress for Seen {
    fn table_started(&mut self, table: &'static str, _rows: u64) {
        self.started.push(table);
    }
    fn rows_copied(&mut self, table: &'static str, done: u64, total: u64) {
        self.steps.push((table, done, total));
    }
}

fn sqlite_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite://{}", dir.path().join(name).display())
}

async fn populated_sqlite(dir: &tempfile::TempDir) -> Db {
    let db = Db::open(&sqlite_url(dir, "source.db")).await.unwrap();
    db.store().migrate().await.unwrap();
    populate(db.store()).await;
    db
}

/// Every table holds the same rows on both sides (in key order; text keys
/// are sorted here, as the databases' collations may differ).
async fn assert_same_rows(a: &Db, b: &Db) {
    for t in TABLES {
        let sorted = |mut rows: Vec<copy::Row>| {
            rows.sort_by_key(|r| format!("{:?}", t.key_of_row(r)));
            rows
        };
        let left = sorted(a.rows(t).await.unwrap());
        let right = sorted(b.rows(t).await.unwrap());
        assert_eq!(left, right, "table {}", t.name);
    }
}

/// What orch itself reads back through the `Store` trait, as text.
async fn view(s: &dyn Store) -> String {
    let mut out = String::new();
    let tasks = s.list_tasks(&TaskFilter::default()).await.unwrap();
    for t in &tasks {
        out += &format!("{t:?}\n{:?}\n", s.events(t.id).await.unwrap());
        out += &format!("{:?}\n", s.jobs_for_task(t.id).await.unwrap());
        out += &format!("{:?}\n", s.runs_for_task(t.id).await.unwrap());
        out += &format!("{:?}\n", s.dependencies(t.id).await.unwrap());
        out += &format!("{:?}\n", s.initiated_markers(Some(t.id)).await.unwrap());
    }
    out += &format!("{:?}\n", s.merge_leases().await.unwrap());
    out += &format!("{:?}\n", s.worktree_disks().await.unwrap());
    for item in s.list_items(None).await.unwrap() {
        out += &format!("{item:?}\n{:?}\n", s.item_comments(&item.id).await.unwrap());
    }
    out += &format!("{:?}\n", s.job_counts().await.unwrap());
    out += &format!("{:?}\n", s.task_counts_by_stage().await.unwrap());
    out
}

/// The next task created gets the id after the largest copied one, and a
/// new row of every other table with an id counter takes an id past the
/// copied ones (a collision would be a primary key error).
async fn next_task_id_follows(db: &Db, expected: i64) {
    let max_id = |table: &'static str| async move {
        db.rows(copy::table(table).unwrap())
            .await
            .unwrap()
            .iter()
            .map(|r| match r[0] {
                copy::Value::Int(id) => id,
                ref other => panic!("{table}.id = {other:?}"),
            })
            .max()
            .unwrap_or(0)
    };
    let store = db.store();
    let (events, jobs, markers, comments, notes) = (
        max_id("task_events").await,
        max_id("jobs").await,
        max_id("markers").await,
        max_id("tracker_comments").await,
        max_id("notifications").await,
    );
    let t = store
        .create_task(NewTask::new("demo", "after the copy"), "test")
        .await
        .expect("a new task does not collide with a copied id");
    assert_eq!(t.id.0, expected);
    let event = store.events(t.id).await.unwrap();
    assert!(event[0].id > events, "{event:?}");
    let now = orch_core::Timestamp(0);
    let job = store
        .enqueue(orch_core::NewJob::new(
            t.id,
            orch_core::AgentKind::Analyst,
            "demo",
            now,
        ))
        .await
        .unwrap();
    assert!(job.id.0 > jobs);
    let marker = store
        .write_marker(t.id, "demo", orch_store::MarkerStep::Deploy, "new")
        .await
        .unwrap();
    assert!(marker.id > markers);
    assert!(
        store
            .add_item_comment("item-DEMO-1", "bob", "after the copy", None)
            .await
            .unwrap()
    );
    let comment = store.item_comments("item-DEMO-1").await.unwrap();
    assert!(comment.iter().map(|c| c.id).max().unwrap() > comments);
    let note = orch_store::NewNotification {
        sink: "team-chat".into(),
        task_id: None,
        payload: serde_json::json!({}),
        dedupe_key: None,
    };
    assert!(store.enqueue_notification(&note).await.unwrap());
    assert!(max_id("notifications").await > notes);
}

#[tokio::test]
async fn the_description_is_the_sqlite_schema_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&sqlite_url(&dir, "orch.db")).await.unwrap();
    db.store().migrate().await.unwrap();
    copy::check_schema(&db, "store").await.unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("orch.db")).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
        )
        .unwrap();
    let found: BTreeSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let known: BTreeSet<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(found, known, "a table the copy does not know would be lost");
}

#[tokio::test]
async fn the_description_is_the_postgres_schema_whole() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let db = Db::open(scratch.url()).await.unwrap();
    db.store().migrate().await.unwrap();
    copy::check_schema(&db, "store").await.unwrap();
    let found: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = $1 AND table_name <> '_sqlx_migrations'",
    )
    .bind(scratch.schema())
    .fetch_all(&sqlx::PgPool::connect(&base).await.unwrap())
    .await
    .unwrap()
    .into_iter()
    .collect();
    let known: BTreeSet<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
    assert_eq!(found, known, "a table the copy does not know would be lost");
    db.close().await;
}

#[tokio::test]
async fn sqlite_to_postgres_and_back_keeps_every_row() {
    let Some(base) = pg_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = populated_sqlite(&dir).await;
    let scratch = PgScratch::create(&base).await;
    let pg = Db::open(scratch.url()).await.unwrap();

    // Two rows a page: every table, whatever its key, is read page by page.
    let paged = CopyOptions {
        page: 2,
        ..CopyOptions::default()
    };
    let mut seen = Seen::default();
    let report = copy::copy_all(&source, &pg, paged, &mut seen)
        .await
        .unwrap();
    assert!(report.all_equal(), "{report:?}");
    assert_eq!(report.tables.len(), TABLES.len());
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    assert_eq!(seen.started, names, "progress for every table, in order");
    for c in &report.tables {
        let pages = c.source.div_ceil(2);
        let steps = seen.steps.iter().filter(|(t, ..)| *t == c.table);
        let last = steps
            .clone()
            .next_back()
            .map(|(_, done, total)| (*done, *total));
        assert_eq!(
            steps.count() as u64,
            pages,
            "{}: a progress step per page",
            c.table
        );
        assert_eq!(last, Some((c.source, c.source)), "{}", c.table);
    }
    let tasks = report.tables.iter().find(|c| c.table == "tasks").unwrap();
    assert_eq!((tasks.source, tasks.target), (5, 5));
    assert!(report.tables.iter().all(|c| c.source > 0), "{report:?}");
    assert_same_rows(&source, &pg).await;
    assert_eq!(view(source.store()).await, view(pg.store()).await);

    let back = Db::open(&sqlite_url(&dir, "back.db")).await.unwrap();
    let report = copy::copy_all(&pg, &back, paged, &mut Quiet).await.unwrap();
    assert!(report.all_equal(), "{report:?}");
    assert_same_rows(&source, &back).await;
    assert_eq!(view(source.store()).await, view(back.store()).await);

    // Ids go on where they stopped on every copy.
    next_task_id_follows(&pg, 6).await;
    next_task_id_follows(&back, 6).await;
    next_task_id_follows(&source, 6).await;
    pg.close().await;
}

#[tokio::test]
async fn sqlite_to_sqlite_keeps_every_row_and_counter() {
    let dir = tempfile::tempdir().unwrap();
    let source = populated_sqlite(&dir).await;
    let target = Db::open(&sqlite_url(&dir, "target.db")).await.unwrap();
    let paged = CopyOptions {
        page: 3,
        ..CopyOptions::default()
    };
    let report = copy::copy_all(&source, &target, paged, &mut Quiet)
        .await
        .unwrap();
    assert!(report.all_equal(), "{report:?}");
    assert_same_rows(&source, &target).await;
    assert_eq!(view(source.store()).await, view(target.store()).await);
    next_task_id_follows(&target, 6).await;
}

#[tokio::test]
async fn a_target_with_data_is_refused_unless_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let source = populated_sqlite(&dir).await;
    let target = Db::open(&sqlite_url(&dir, "target.db")).await.unwrap();
    target.store().migrate().await.unwrap();
    target
        .store()
        .create_task(NewTask::new("other", "someone else's"), "test")
        .await
        .unwrap();
    let before = view(target.store()).await;

    let err = copy::copy_all(&source, &target, CopyOptions::default(), &mut Quiet)
        .await
        .expect_err("the target holds a task");
    assert!(matches!(err, CopyError::TargetNotEmpty(_)), "{err}");
    assert!(err.to_string().contains("tasks: 1"), "{err}");
    assert!(err.to_string().contains("--replace"), "{err}");
    assert_eq!(
        view(target.store()).await,
        before,
        "the target is untouched"
    );

    let report = copy::copy_all(
        &source,
        &target,
        CopyOptions {
            replace: true,
            ..CopyOptions::default()
        },
        &mut Quiet,
    )
    .await
    .unwrap();
    assert!(report.all_equal(), "{report:?}");
    assert_same_rows(&source, &target).await;
    next_task_id_follows(&target, 6).await;
}

#[tokio::test]
async fn a_postgres_target_with_data_is_refused_unless_replaced() {
    let Some(base) = pg_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = populated_sqlite(&dir).await;
    let scratch = PgScratch::create(&base).await;
    let pg = Db::open(scratch.url()).await.unwrap();
    pg.store().migrate().await.unwrap();
    pg.store()
        .create_task(NewTask::new("other", "someone else's"), "test")
        .await
        .unwrap();
    let err = copy::copy_all(&source, &pg, CopyOptions::default(), &mut Quiet)
        .await
        .expect_err("the target holds a task");
    assert!(matches!(err, CopyError::TargetNotEmpty(_)), "{err}");
    let report = copy::copy_all(
        &source,
        &pg,
        CopyOptions {
            replace: true,
            ..CopyOptions::default()
        },
        &mut Quiet,
    )
    .await
    .unwrap();
    assert!(report.all_equal(), "{report:?}");
    assert_same_rows(&source, &pg).await;
    // The claim function, dropped with the tables, is back.
    pg.store()
        .claim(&orch_store::ClaimRequest::new("w"))
        .await
        .unwrap();
    pg.close().await;
}

#[tokio::test]
async fn a_copy_onto_itself_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let source = populated_sqlite(&dir).await;
    let again = format!("sqlite://{}/./source.db", dir.path().display());
    let same = Db::open(&again).await.unwrap();
    let err = copy::copy_all(
        &source,
        &same,
        CopyOptions {
            replace: true,
            ..CopyOptions::default()
        },
        &mut Quiet,
    )
    .await
    .expect_err("same file");
    assert!(matches!(err, CopyError::SameDatabase), "{err}");
    assert_eq!(
        source
            .store()
            .list_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .len(),
        5
    );
}

#[tokio::test]
async fn the_count_check_names_the_tables_that_differ() {
    let dir = tempfile::tempdir().unwrap();
    let source = populated_sqlite(&dir).await;
    let target = Db::open(&sqlite_url(&dir, "target.db")).await.unwrap();
    let report = copy::copy_all(&source, &target, CopyOptions::default(), &mut Quiet)
        .await
        .unwrap();
    assert!(report.all_equal());
    target
        .store()
        .create_task(NewTask::new("demo", "one more"), "test")
        .await
        .unwrap();
    let report = copy::compare_counts(&source, &target).await.unwrap();
    assert!(!report.all_equal());
    let differing: Vec<(&str, u64, u64)> = report
        .differing()
        .iter()
        .map(|c| (c.table, c.source, c.target))
        .collect();
    let events = report
        .tables
        .iter()
        .find(|c| c.table == "task_events")
        .unwrap()
        .source;
    assert_eq!(
        differing,
        [("tasks", 5, 6), ("task_events", events, events + 1)]
    );
}
