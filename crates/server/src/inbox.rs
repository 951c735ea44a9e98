//! The dashboard's "needs you" inbox: everything that waits for a person,
//! oldest first, each with the one thing to do about it.
//!
//! ```text
//! GET  /api/inbox                  the items and their count
//! POST /api/outbox/{id}/resend     send a given-up tracker write again
//! ```
//!
//! What waits for a person:
//!
//! - `approval`: a task in awaiting approval (approve, or reject with a comment);
//! - `confirm_deploy`: a task in deploy that orch asked to confirm;
//! - `needs_attention`: a parked task, with the reason it was parked (retry);
//! - `agent_question`: a task parked on its agent's question, with the
//!   question (answer: the agent's session resumes with it);
//! - `tracker_write`: a write to the tracker orch gave up on after its
//!   attempts (`orch outbox list`), which a person sends again once the
//!   tracker is fixed (resend).
//!
//! A task whose STOP is pending waits for nobody: it is not listed.
//! Computed here on every call from a few stage-filtered reads; only parked
//! and deploying tasks (few) cost a read of their events each.

use crate::AppState;
use crate::board::{park, stage_name};
use crate::error::{ApiError, ApiResult, PathParams};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orch_config::Config;
use orch_core::{Stage, Task, TaskId, Timestamp};
use orch_engine::pipeline::Pipeline;
use orch_store::{Notification, Store, TRACKER_SINK, TaskFilter};
use serde::Serialize;

/// At most this many tasks of one kind, and of given-up writes, are listed.
const LIMIT: u32 = 500;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InboxItem {
    /// `approval`, `confirm_deploy`, `needs_attention` or `tracker_write`.
    pub kind: &'static str,
    /// The task it is about (a given-up write may have none).
    pub task: Option<TaskRef>,
    /// Since when it waits: the move into its stage, the Confirm Deploy
    /// request, the park, or the moment the write was given up.
    pub since: Timestamp,
    /// What it is about, in a sentence: the park's reason, the write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What a person does about it: `approve` and `reject`,
    /// `confirm-deploy`, `retry` (task actions) or `resend` (a write).
    pub actions: Vec<&'static str>,
    /// The given-up write, for `resend`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskRef {
    pub id: TaskId,
    pub key: String,
    pub repo: String,
    pub title: String,
    pub stage: Stage,
    pub stage_name: String,
}

impl TaskRef {
    fn of(t: &Task, cfg: &Config) -> TaskRef {
        TaskRef {
            id: t.id,
            key: t.original_work_item_id().to_owned(),
            repo: t.repo.clone(),
            title: t.title.clone(),
            stage: t.stage,
            stage_name: stage_name(cfg, t.stage),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Inbox {
    pub count: usize,
    pub items: Vec<InboxItem>,
}

pub async fn inbox(State(s): State<AppState>) -> ApiResult<Json<Inbox>> {
    Ok(Json(compute(s.pipeline()).await?))
}

/// Everything that waits for a person, oldest first.
pub async fn compute(p: &Pipeline) -> ApiResult<Inbox> {
    let store = p.store().as_ref();
    let cfg = p.config();
    let mut items = Vec::new();
    for t in waiting(store, Stage::AwaitingApproval).await? {
        items.push(InboxItem {
            kind: "approval",
            task: Some(TaskRef::of(&t, cfg)),
            // The task row changes with its stage (and a STOP, not listed).
            since: t.updated_at,
            detail: None,
            actions: vec!["approve", "reject"],
            write_id: None,
        });
    }
    for t in waiting(store, Stage::NeedsAttention).await? {
        let (asked, why) = park(store, &t).await?;
        items.push(InboxItem {
            // An agent's question is answered (its session resumes with
            // the answer); any other park is retried.
            kind: if asked {
                "agent_question"
            } else {
                "needs_attention"
            },
            since: t.updated_at,
            detail: Some(why),
            task: Some(TaskRef::of(&t, cfg)),
            actions: vec![if asked { "answer" } else { "retry" }],
            write_id: None,
        });
    }
    for t in waiting(store, Stage::Deploy).await? {
        // The engine's own reading of "Confirm Deploy was asked since the
        // task entered deploy", so the two never disagree.
        let view = orch_engine::pipeline::task_view(store, &t).await?;
        if !view.confirm_deploy_asked {
            continue;
        }
        // The request is the task's newest event, unless something was
        // logged after it; either way it waits since about then.
        let events = store.events(t.id).await?;
        let asked = events.last().map_or(t.updated_at, |e| e.at);
        items.push(InboxItem {
            kind: "confirm_deploy",
            task: Some(TaskRef::of(&t, cfg)),
            since: asked,
            detail: Some("the deploy is prepared and waits for Confirm Deploy".into()),
            actions: vec!["confirm-deploy"],
            write_id: None,
        });
    }
    for n in store.given_up_notifications(TRACKER_SINK, LIMIT).await? {
        let task = match n.task_id {
            Some(id) => store.get_task(id).await?.map(|t| TaskRef::of(&t, cfg)),
            None => None,
        };
        items.push(InboxItem {
            kind: "tracker_write",
            task,
            since: n.failed_at.unwrap_or(n.created_at),
            detail: Some(write_detail(&n)),
            actions: vec!["resend"],
            write_id: Some(n.id),
        });
    }
    items.sort_by_key(|i| (i.since, i.task.as_ref().map(|t| t.id)));
    Ok(Inbox {
        count: items.len(),
        items,
    })
}

/// The live tasks of `stage` no STOP is pending for.
async fn waiting(store: &dyn Store, stage: Stage) -> ApiResult<Vec<Task>> {
    let filter = TaskFilter {
        stage: Some(stage),
        limit: Some(LIMIT),
        ..TaskFilter::default()
    };
    let mut tasks = store.list_tasks(&filter).await?;
    tasks.retain(|t| t.cancel_requested_at.is_none());
    Ok(tasks)
}

/// `the tracker never got: comment "…" (last error: 503)`.
fn write_detail(n: &Notification) -> String {
    let p = &n.payload;
    let s = |k: &str| p[k].as_str().unwrap_or("").to_owned();
    let what = match p["op"].as_str() {
        Some("stage") => format!("the item's state for stage {}", s("stage")),
        Some("comment") => {
            let body = s("body");
            let short: String = body.chars().take(80).collect();
            let more = if short.len() < body.len() { "…" } else { "" };
            format!("the comment \"{short}{more}\"")
        }
        _ => "a write".into(),
    };
    let item = s("item");
    let mut out = format!("the tracker never got {what} on {item}");
    if let Some(e) = &n.last_error {
        out.push_str(&format!(" (last error: {e})"));
    }
    out
}

/// `POST /api/outbox/{id}/resend`: a given-up tracker write is due again,
/// its attempts counted afresh, and delivery starts at once.
pub async fn resend(
    State(s): State<AppState>,
    PathParams(id): PathParams<i64>,
) -> ApiResult<Json<serde_json::Value>> {
    let store = s.store();
    let item = store
        .given_up_notifications(TRACKER_SINK, 10_000)
        .await?
        .into_iter()
        .find(|n| n.id == id)
        .and_then(|n| n.payload["item"].as_str().map(str::to_owned));
    if !store.resend_notification(id).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "tracker write {id} is not given up (sent, still being retried, or no such id)"
            ),
        ));
    }
    // The outbox's loop would take it within seconds; delivering now shows
    // the person the result while they look.
    let outbox = s.pipeline().tracker_outbox();
    tokio::spawn(async move {
        outbox.deliver(item.as_deref()).await;
    });
    Ok(Json(serde_json::json!({"resent": id})))
}
