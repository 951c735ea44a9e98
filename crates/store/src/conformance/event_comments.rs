//! Conformance: an event's tracker comment is written to the tracker outbox
//! in the event's own transaction, after the move's stage write.

use super::{Harness, task};
use orch_core::{EventInput, EventKind, NewTask, Stage};

/// Found as a gap by issue 10: the engine queued a move's comment after the
/// move's transaction, so a `kill -9` between the two lost the comment while
/// the item's state still arrived. Now the comment is a part of the event.
pub async fn an_events_tracker_comment_goes_out_with_it(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::AwaitingApproval).await;
    let pending = || async {
        h.store
            .pending_notifications(crate::TRACKER_SINK, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.payload)
            .collect::<Vec<_>>()
    };
    let before = pending().await.len();
    h.store
        .set_stage(
            t.id,
            Stage::Development,
            Some(Stage::AwaitingApproval),
            EventInput::new("test", EventKind::Approved, "go")
                .with_tracker_comment("orch: approved, developing"),
        )
        .await
        .unwrap();
    // A no-move step and a plain event carry theirs too.
    let (_, _) = h
        .store
        .advance(
            t.id,
            Stage::Development,
            Stage::Development,
            EventInput::new("test", EventKind::Queued, "again").with_tracker_comment("second"),
            None,
        )
        .await
        .unwrap();
    h.store
        .append_event(
            t.id,
            EventInput::new("test", EventKind::Comment, "note").with_tracker_comment("third"),
        )
        .await
        .unwrap();
    // An event without one writes none.
    h.store
        .append_event(t.id, EventInput::new("test", EventKind::Comment, "quiet"))
        .await
        .unwrap();
    let events = h.store.events(t.id).await.unwrap();
    let id_of = |message: &str| events.iter().find(|e| e.message == message).unwrap().id;
    let comment = |body: &str, event: &str| {
        serde_json::json!({
            "item": "PL-ORCH-1",
            "op": "comment",
            "body": body,
            "key": format!("orch-event-{}", id_of(event)),
        })
    };
    let written = pending().await;
    assert_eq!(
        written[before..],
        [
            serde_json::json!({ "item": "PL-ORCH-1", "op": "stage", "stage": "development" }),
            comment("orch: approved, developing", "go"),
            comment("second", "again"),
            comment("third", "note"),
        ],
        "the state first, then each comment once, in order"
    );
    // A cancel's comment follows its state, on the item's own key (the
    // task's keys are tombstoned in the same transaction).
    h.store
        .mark_cancelled(
            t.id,
            EventInput::new("test", EventKind::Cancelled, "STOP").with_tracker_comment("stopped"),
        )
        .await
        .unwrap();
    let events = h.store.events(t.id).await.unwrap();
    let stop = events.iter().find(|e| e.message == "STOP").unwrap().id;
    assert_eq!(
        pending().await[written.len()..],
        [
            serde_json::json!({ "item": "PL-ORCH-1", "op": "stage", "stage": "cancelled" }),
            serde_json::json!({
                "item": "PL-ORCH-1",
                "op": "comment",
                "body": "stopped",
                "key": format!("orch-event-{stop}"),
            }),
        ]
    );
    // A task with no tracker item has nothing to tell.
    let mut local = NewTask::new("demo", "local");
    local.work_item_id = Some("LOCAL-1".into());
    let local = h.store.create_task(local, "test").await.unwrap();
    let count = pending().await.len();
    h.store
        .append_event(
            local.id,
            EventInput::new("test", EventKind::Comment, "n").with_tracker_comment("nobody"),
        )
        .await
        .unwrap();
    assert_eq!(pending().await.len(), count);
}

/// Found as a gap by issue 10: a deferred STOP's one comment was queued
/// after the stamp's transaction, so a `kill -9` between the two lost it
/// while the STOP stayed pending. The first stamp now writes it; a second
/// STOP while the first waits writes none (D7: one notification).
pub async fn a_deferred_stops_comment_goes_out_with_its_stamp(h: Harness) {
    let t = task(&h, "ORCH-2", Stage::Deploy).await;
    let comments = || async {
        h.store
            .pending_notifications(crate::TRACKER_SINK, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|n| n.payload["op"] == "comment")
            .map(|n| n.payload)
            .collect::<Vec<_>>()
    };
    let before = comments().await.len();
    let asked = |body: &str| {
        EventInput::new("test", EventKind::CancelRequested, "STOP deferred")
            .with_tracker_comment(body)
    };
    assert!(
        h.store
            .set_cancel_requested(t.id, asked("first"))
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .set_cancel_requested(t.id, asked("second"))
            .await
            .unwrap()
    );
    let events = h.store.events(t.id).await.unwrap();
    let stamps: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::CancelRequested)
        .collect();
    assert_eq!(stamps.len(), 1, "one cancel_requested event: {events:?}");
    assert_eq!(
        comments().await[before..],
        [serde_json::json!({
            "item": "PL-ORCH-2",
            "op": "comment",
            "body": "first",
            "key": format!("orch-event-{}", stamps[0].id),
        })],
        "the first stamp's comment, once"
    );
}
