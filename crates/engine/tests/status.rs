//! TC-09: the `/queue` snapshot keeps its blocks, carries the `stop` block, and a
//! store error inside one block degrades only that block.

use orch_core::EventKind;
use orch_core::{EventInput, NewTask};
use orch_engine::status::{StatusPolicy, snapshot};
use orch_store::{SqliteOptions, SqliteStore, Store, TaskStore};

async fn store(dir: &std::path::Path) -> SqliteStore {
    let s = SqliteStore::open(dir.join("orch.db"), SqliteOptions::default())
        .await
        .unwrap();
    s.migrate().await.unwrap();
    s
}

#[tokio::test]
async fn tc09_queue_has_stop_block_and_keeps_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let mut t = NewTask::new("demo", "x");
    t.work_item_id = Some("ORCH-1".into());
    let t = s.create_task(t, "test").await.unwrap();
    s.mark_cancelled(t.id, EventInput::new("test", EventKind::Cancelled, "STOP"))
        .await
        .unwrap();
    let snap = snapshot(&s, &StatusPolicy::default()).await;
    let json = serde_json::to_value(&snap).unwrap();
    for key in [
        "counts",
        "serial_gate",
        "task_deps",
        "auto_labels",
        "recent",
        "stop",
    ] {
        assert!(
            json.get(key).is_some(),
            "existing /queue key {key} preserved"
        );
    }
    let stop = &json["stop"];
    assert_eq!(stop["enabled"], true);
    assert_eq!(stop["cancelled_count"], 1);
    assert_eq!(
        stop["recent"][0]["work_item_id"], "ORCH-1",
        "the original key, not the tombstone"
    );
    assert!(stop.get("repos").is_some());
    assert_eq!(json["counts"]["tasks"]["cancelled"], 1);
}

#[tokio::test]
async fn tc09_snapshot_never_raises() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    s.create_task(NewTask::new("demo", "x"), "test")
        .await
        .unwrap();
    // Break two tables behind the store's back: a real database error, not a mock.
    let raw = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("orch.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("ALTER TABLE merge_leases RENAME TO merge_leases_gone")
        .execute(&raw)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE tasks RENAME COLUMN cancelled_at TO cancelled_at_gone")
        .execute(&raw)
        .await
        .unwrap();
    let snap = snapshot(&s, &StatusPolicy::default()).await;
    assert!(snap.serial_gate.error.is_some(), "the broken block says so");
    assert!(snap.serial_gate.leases.is_empty());
    assert!(snap.stop.error.is_some());
    assert!(snap.stop.enabled);
    assert_eq!(snap.stop.cancelled_count, 0, "minimal stop block");
    assert!(snap.counts.error.is_none(), "other blocks are intact");
    assert_eq!(snap.counts.tasks.values().sum::<u64>(), 1);
    assert!(snap.recent.error.is_none());
}
