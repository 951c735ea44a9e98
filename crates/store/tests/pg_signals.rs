//! Queue signals (`Store::queue_signals`): on PostgreSQL a write through one
//! store ("node") reaches a subscriber of another at once, through
//! LISTEN/NOTIFY, also after the listener's connection was killed; SQLite
//! has none. Each PostgreSQL test works in a fresh schema (`ORCH_TEST_PG_URL`).

use orch_core::{
    AgentKind, EventInput, EventKind, JobId, NewJob, NewTask, Stage, TaskId, Timestamp,
};
use orch_store::postgres::listener_app_name;
use orch_store::testing::{PgScratch, pg_url};
use orch_store::{
    JobQueue, LeaseStore, PgOptions, PgStore, QueueSignal, QueueSignals, SqliteOptions,
    SqliteStore, Store, TaskStore,
};
use std::time::Duration;

/// How long a signal may take before the test fails (it takes milliseconds).
const DEADLINE: Duration = Duration::from_secs(10);

/// Two stores on one schema, as two nodes sharing one database.
async fn two_nodes(scratch: &PgScratch) -> (PgStore, PgStore) {
    let a = PgStore::open(scratch.url(), PgOptions::default())
        .await
        .expect("open a");
    a.migrate().await.expect("migrate");
    let b = PgStore::open(scratch.url(), PgOptions::default())
        .await
        .expect("open b");
    (a, b)
}

async fn subscribe(store: &PgStore) -> QueueSignals {
    store
        .queue_signals()
        .await
        .expect("subscribe")
        .expect("PostgreSQL has queue signals")
}

/// The first signal, within the deadline.
async fn next(signals: &mut QueueSignals) -> QueueSignal {
    tokio::time::timeout(DEADLINE, signals.recv())
        .await
        .expect("a signal within the deadline")
        .expect("the signals go on")
}

/// Create a task and queue its job through `store`; `signals` (another
/// node's) hears both, in that order.
async fn queue_job(store: &PgStore, key: &str, signals: &mut QueueSignals) -> (TaskId, JobId) {
    let mut new = NewTask::new("demo", key);
    new.work_item_id = Some(key.to_owned());
    let task = store.create_task(new, "test").await.unwrap();
    let job = store
        .enqueue(NewJob::new(
            task.id,
            AgentKind::Analyst,
            "demo",
            Timestamp(0),
        ))
        .await
        .unwrap();
    let task = task.id;
    assert_eq!(next(signals).await, QueueSignal::GateMoved { task });
    assert_eq!(
        next(signals).await,
        QueueSignal::JobQueued { task, job: job.id }
    );
    (task, job.id)
}

#[tokio::test]
async fn a_job_queued_on_one_node_is_signalled_to_another() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let (a, b) = two_nodes(&scratch).await;
    let mut signals = subscribe(&b).await;
    let _ = queue_job(&a, "K-1", &mut signals).await;
}

#[tokio::test]
async fn cancels_stage_moves_and_ends_are_signalled() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let (a, b) = two_nodes(&scratch).await;
    let mut signals = subscribe(&b).await;
    let (task, job) = queue_job(&a, "K-1", &mut signals).await;

    assert_eq!(a.cancel_jobs_for_task(task, false).await.unwrap(), 1);
    assert_eq!(
        next(&mut signals).await,
        QueueSignal::JobCancelled { task, job }
    );

    let ev = EventInput::new("test", EventKind::StageChanged, "moved");
    a.set_stage(task, Stage::AwaitingApproval, None, ev)
        .await
        .unwrap();
    assert_eq!(next(&mut signals).await, QueueSignal::GateMoved { task });

    // A running job that ends frees a limit's slot.
    let (task2, job2) = queue_job(&a, "K-2", &mut signals).await;
    let claimed = a
        .claim(&orch_store::ClaimRequest::new("w"))
        .await
        .unwrap()
        .expect("the job");
    assert_eq!(claimed.id, job2);
    assert!(
        a.complete(job2, claimed.run_id.as_ref().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(
        next(&mut signals).await,
        QueueSignal::JobEnded {
            task: task2,
            job: job2
        }
    );

    // A released merge lease opens the serial gate.
    a.acquire_merge_lease("demo", task2, "orch/k-2")
        .await
        .unwrap();
    assert!(a.release_merge_lease("demo", task2).await.unwrap());
    assert_eq!(
        next(&mut signals).await,
        QueueSignal::GateMoved { task: task2 }
    );
}

/// A rolled back write sends nothing: the next signal is the next commit's.
#[tokio::test]
async fn only_committed_writes_are_signalled() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let (a, b) = two_nodes(&scratch).await;
    let mut signals = subscribe(&b).await;
    let task = a
        .create_task(NewTask::new("demo", "rolled back"), "test")
        .await
        .unwrap();
    assert_eq!(
        next(&mut signals).await,
        QueueSignal::GateMoved { task: task.id }
    );
    // The stage moves, then the job's insert fails (no such task): the
    // transaction, its NOTIFY with it, is rolled back.
    let ev = EventInput::new("test", EventKind::StageChanged, "step");
    let orphan = NewJob::new(TaskId(i64::MAX), AgentKind::Analyst, "demo", Timestamp(0));
    let refused = a.advance(
        task.id,
        task.stage,
        Stage::AwaitingApproval,
        ev,
        Some(orphan),
    );
    assert!(refused.await.is_err());
    assert_eq!(
        a.get_task(task.id).await.unwrap().unwrap().stage,
        task.stage
    );
    // The next signal is the next commit's: K-2's creation, not the move.
    let _ = queue_job(&a, "K-2", &mut signals).await;
}

/// Stores in other schemas of the same database are not signalled: the
/// first signal of a subscriber in another schema is that schema's own write.
#[tokio::test]
async fn other_schemas_are_not_signalled() {
    let Some(base) = pg_url() else { return };
    let (s1, s2) = (
        PgScratch::create(&base).await,
        PgScratch::create(&base).await,
    );
    let (one, _) = two_nodes(&s1).await;
    let (two, _) = two_nodes(&s2).await;
    // Ids differ between the schemas, so a signal of one is never mistaken
    // for the other's.
    let first = NewTask::new("demo", "first elsewhere");
    one.create_task(first, "test").await.unwrap();
    let mut signals = subscribe(&two).await;
    let mut new = NewTask::new("demo", "elsewhere");
    new.work_item_id = Some("K-1".into());
    let other = one.create_task(new, "test").await.unwrap();
    assert_ne!(other.id, TaskId(1));
    one.enqueue(NewJob::new(
        other.id,
        AgentKind::Analyst,
        "demo",
        Timestamp(0),
    ))
    .await
    .unwrap();
    // Its own schema's writes are the first it hears of.
    let _ = queue_job(&two, "K-1", &mut signals).await;
}

/// The listener's connection is killed from outside: the subscriber says it
/// may have missed signals (`Resync`), listens again and signals new writes.
#[tokio::test]
async fn the_subscriber_survives_a_dropped_connection() {
    use sqlx::Connection;
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let (a, b) = two_nodes(&scratch).await;
    let mut signals = subscribe(&b).await;
    let _ = queue_job(&a, "K-1", &mut signals).await;

    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(listener_app_name(scratch.schema()))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "one listener connection, terminated");
    assert_eq!(next(&mut signals).await, QueueSignal::Resync);

    let _ = queue_job(&a, "K-2", &mut signals).await;
    let _ = admin.close().await;
}

#[tokio::test]
async fn sqlite_has_no_queue_signals() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("orch.db"), SqliteOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert!(store.queue_signals().await.unwrap().is_none());
}
