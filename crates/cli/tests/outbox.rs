//! `orch outbox list|retry` and the tracker-writes line of `orch status`
//! through the binary, over a real SQLite store: a tracker write given up
//! after its last attempt is shown (with its last error), counted, and sent
//! again on request; a write that is not given up is refused by id.

mod common;

use common::{ok, orch};
use orch_store::{NewNotification, NotificationStore, SqliteOptions, SqliteStore, TRACKER_SINK};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

async fn store(dir: &Path) -> SqliteStore {
    SqliteStore::open(dir.join(".orch/orch.db"), SqliteOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_up_tracker_write_is_listed_counted_and_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("orch.toml"), "data_dir = \".orch\"\n").unwrap();
    ok(dir, &["db", "migrate"]);
    let s = store(dir).await;
    let write = |body: &str| NewNotification {
        sink: TRACKER_SINK.into(),
        task_id: None,
        payload: serde_json::json!({"item": "PROJ-7", "op": "comment", "body": body, "key": body}),
        dedupe_key: None,
    };
    s.enqueue_notification(&write("given up")).await.unwrap();
    s.enqueue_notification(&write("still trying"))
        .await
        .unwrap();
    let pending = s.pending_notifications(TRACKER_SINK, 10).await.unwrap();
    let (gone, trying) = (pending[0].id, pending[1].id);
    s.notification_failed(gone, "Plane answered 503", None)
        .await
        .unwrap();
    s.notification_failed(trying, "Plane answered 503", Some(Duration::from_secs(60)))
        .await
        .unwrap();

    let status: Value = serde_json::from_str(&ok(dir, &["status", "--json"])).unwrap();
    assert_eq!(
        status["tracker_outbox"],
        serde_json::json!({"waiting": 0, "retrying": 1, "given_up": 1})
    );
    let human = ok(dir, &["status"]);
    assert!(
        human.contains("tracker writes: 0 waiting · 1 retrying · 1 given up"),
        "{human}"
    );
    let listed: Value = serde_json::from_str(&ok(dir, &["outbox", "list", "--json"])).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], gone);
    assert_eq!(listed[0]["last_error"], "Plane answered 503");
    let table = ok(dir, &["outbox", "list"]);
    assert!(
        table.contains("PROJ-7") && table.contains("comment given up"),
        "{table}"
    );

    // The one still being retried is not "given up": refused, exit 2.
    let out = orch(dir, &["outbox", "retry", &trying.to_string()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not given up"),
        "{out:?}"
    );
    let said = ok(dir, &["outbox", "retry", "--all"]);
    assert!(said.contains("1 tracker write(s) queued again"), "{said}");
    let again = s.pending_notifications(TRACKER_SINK, 10).await.unwrap();
    let back = again.iter().find(|n| n.id == gone).expect("pending again");
    assert_eq!((back.attempts, back.failed_at), (0, None));
    assert_eq!(
        ok(dir, &["outbox", "list"]).trim(),
        "no tracker write was given up"
    );
}
