//! The dashboard's "needs you" inbox and the board's cards over real HTTP:
//! exactly the tasks that wait for a person, oldest first, each with its
//! action; the actions work from it; a given-up tracker write is listed and
//! sent again; cards say what holds a task and why a parked one is parked.

use hyper::StatusCode;
use orch_core::EventKind;
use orch_core::{EventInput, NewTask, Stage, Task, TaskId};
use orch_store::{NewNotification, TRACKER_SINK};
use serde_json::{Value, json};

mod common;
use common::*;

async fn task_at(s: &Server, title: &str, stage: Stage) -> Task {
    let mut t = NewTask::new("demo", title);
    t.stage = stage;
    s.store.create_task(t, "test").await.unwrap()
}

async fn move_to(s: &Server, id: TaskId, to: Stage, why: &str) {
    s.store
        .set_stage(
            id,
            to,
            None,
            EventInput::new("test", EventKind::StageChanged, why),
        )
        .await
        .unwrap();
}

fn kinds_and_tasks(inbox: &Value) -> Vec<(String, i64)> {
    inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["task"]["id"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_inbox_lists_exactly_what_waits_for_a_person_oldest_first() {
    let s = Server::start().await;
    // Parked, with its reason.
    let parked = task_at(&s, "Parked one", Stage::Analysis).await;
    move_to(
        &s,
        parked.id,
        Stage::NeedsAttention,
        "verify failed: 2 tests fail",
    )
    .await;
    // Waiting for approval (twice: one to approve, one to reject).
    let approve = task_at(&s, "Approve me", Stage::AwaitingApproval).await;
    let reject = task_at(&s, "Reject me", Stage::AwaitingApproval).await;
    // In deploy and asked to confirm; another in deploy not (yet) asked.
    let confirm = task_at(&s, "Confirm my deploy", Stage::Deploy).await;
    s.store
        .append_event(
            confirm.id,
            EventInput::new(
                "system",
                EventKind::AwaitingConfirmDeploy,
                "deploy prepared; waiting for Confirm Deploy",
            ),
        )
        .await
        .unwrap();
    let deploying = task_at(&s, "Deploying", Stage::Deploy).await;
    // Not waiting for anyone: at work, or with a STOP pending.
    let busy = task_at(&s, "Busy", Stage::Development).await;
    let stopping = task_at(&s, "Stopping", Stage::AwaitingApproval).await;
    assert!(
        s.store
            .set_cancel_requested(
                stopping.id,
                orch_core::EventInput::new(
                    "test",
                    orch_core::EventKind::CancelRequested,
                    "STOP deferred"
                )
            )
            .await
            .unwrap()
    );
    // A tracker write orch gave up on.
    let note = NewNotification {
        sink: TRACKER_SINK.into(),
        task_id: Some(busy.id),
        payload: json!({"item": busy.work_item_id, "op": "comment", "body": "orch: the review passed", "key": "k1"}),
        dedupe_key: None,
    };
    assert!(s.store.enqueue_notification(&note).await.unwrap());
    let write = s
        .store
        .pending_notifications(TRACKER_SINK, 10)
        .await
        .unwrap()[0]
        .id;
    assert!(
        s.store
            .notification_failed(write, "503 from the tracker", None)
            .await
            .unwrap()
    );

    let (status, inbox) = s.get_json("/api/inbox").await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    let mut got = kinds_and_tasks(&inbox);
    got.sort();
    let mut want = vec![
        ("approval".to_owned(), approve.id.0),
        ("approval".to_owned(), reject.id.0),
        ("confirm_deploy".to_owned(), confirm.id.0),
        ("needs_attention".to_owned(), parked.id.0),
        ("tracker_write".to_owned(), busy.id.0),
    ];
    want.sort();
    assert_eq!(got, want, "{inbox}");
    assert_eq!(inbox["count"], 5);
    let items = inbox["items"].as_array().unwrap();
    let since: Vec<i64> = items.iter().map(|i| i["since"].as_i64().unwrap()).collect();
    assert!(
        since.windows(2).all(|w| w[0] <= w[1]),
        "oldest first: {since:?}"
    );
    let item = |kind: &str| items.iter().find(|i| i["kind"] == kind).unwrap();
    assert_eq!(item("approval")["actions"], json!(["approve", "reject"]));
    assert_eq!(item("confirm_deploy")["actions"], json!(["confirm-deploy"]));
    let na = item("needs_attention");
    assert_eq!(na["actions"], json!(["retry"]));
    assert_eq!(na["detail"], "verify failed: 2 tests fail");
    assert_eq!(na["task"]["stage_name"], "Needs Attention");
    let tw = item("tracker_write");
    assert_eq!(tw["actions"], json!(["resend"]));
    assert_eq!(tw["write_id"], write);
    let detail = tw["detail"].as_str().unwrap();
    assert!(
        detail.contains("orch: the review passed") && detail.contains("503 from the tracker"),
        "{detail}"
    );
    for t in [&deploying, &busy, &stopping] {
        assert!(
            !items
                .iter()
                .any(|i| i["task"]["id"] == t.id.0 && i["kind"] != "tracker_write"),
            "{} waits for nobody: {inbox}",
            t.title
        );
    }

    // The actions work, and what was done leaves the inbox.
    let (status, r) = s
        .post_json(&format!("/api/tasks/{}/approve", approve.id), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (status, r) = s
        .post_json(
            &format!("/api/tasks/{}/reject", reject.id),
            Some(json!({"comment": "split it in two"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (status, r) = s
        .post_json(&format!("/api/outbox/{write}/resend"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let (status, r) = s
        .post_json(&format!("/api/outbox/{write}/resend"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "only a given-up write: {r}");
    let (_, inbox) = s.get_json("/api/inbox").await;
    let mut got = kinds_and_tasks(&inbox);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("confirm_deploy".to_owned(), confirm.id.0),
            ("needs_attention".to_owned(), parked.id.0),
        ],
        "{inbox}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn cards_say_what_holds_a_task_and_use_the_trackers_stage_names() {
    let s = Server::start_full(
        Some(TOKEN.to_owned()),
        "[tracker.states]\nawaiting_approval = \"Ready for sign-off\"\n",
    )
    .await;
    let first = task_at(&s, "First", Stage::Development).await;
    let mut t = NewTask::new("demo", "Waits for the first");
    t.depends_on = vec![first.id];
    let waiting = s.store.create_task(t, "test").await.unwrap();
    let parked = task_at(&s, "Parked", Stage::Analysis).await;
    move_to(&s, parked.id, Stage::NeedsAttention, "the analyst gave up").await;

    let (status, b) = s.get_json("/api/board").await;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(b["stage_names"]["awaiting_approval"], "Ready for sign-off");
    assert_eq!(b["stage_names"]["needs_attention"], "Needs Attention");
    let card = |id: TaskId| {
        b["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.0)
            .unwrap()
            .clone()
    };
    let w = card(waiting.id);
    assert_eq!(w["blocked"]["kind"], "dependency", "{w}");
    let detail = w["blocked"]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&first.work_item_id) && detail.contains("Development"),
        "{detail}"
    );
    assert_eq!(card(parked.id)["parked"], "the analyst gave up");
    assert!(card(first.id).get("blocked").is_none());
    s.shutdown().await;
}
