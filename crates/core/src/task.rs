//! Tasks (one work item driven through the pipeline) and their append-only event log.

use crate::event::EventKind;
use crate::ids::TaskId;
use crate::stage::Stage;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    /// The tracker's id of the item (Plane's work-item UUID, the builtin tracker's key).
    /// Tombstoned (`<id>#cancelled-<task>`) when the task is cancelled, and
    /// retired (`<id>#retired-<task>`) when its done or failed item starts afresh.
    pub tracker_id: Option<String>,
    /// Human key such as `ORCH-090`; tombstoned like `tracker_id` on cancel.
    pub work_item_id: String,
    pub repo: String,
    pub branch: String,
    pub stage: Stage,
    pub title: String,
    pub body: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub cancel_requested_at: Option<Timestamp>,
    pub cancelled_at: Option<Timestamp>,
}

impl Task {
    /// The tracker id this task was created with, also after a cancel tombstoned it.
    pub fn original_tracker_id(&self) -> Option<&str> {
        self.tracker_id.as_deref().map(crate::keys::original_key)
    }

    /// The work item id this task was created with, also after a cancel tombstoned it.
    pub fn original_work_item_id(&self) -> &str {
        crate::keys::original_key(&self.work_item_id)
    }
}

/// What a caller supplies to create a task. `work_item_id = None` lets the store
/// mint one (`<REPO>-<task id>`); the branch is derived from the key and title.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    pub tracker_id: Option<String>,
    pub work_item_id: Option<String>,
    pub repo: String,
    pub title: String,
    pub body: String,
    pub stage: Stage,
    pub depends_on: Vec<TaskId>,
    /// The previous task of the same item, now terminal, that this one runs
    /// after: a done or failed one has its keys retired in the same
    /// transaction (a cancelled one's are free already), and if it failed or
    /// was cancelled, the live tasks that depended on it depend on this one
    /// instead (they waited for the item's work, which this task now does).
    pub replaces: Option<TaskId>,
}

impl NewTask {
    pub fn new(repo: impl Into<String>, title: impl Into<String>) -> Self {
        NewTask {
            tracker_id: None,
            work_item_id: None,
            repo: repo.into(),
            title: title.into(),
            body: String::new(),
            stage: Stage::Analysis,
            depends_on: Vec::new(),
            replaces: None,
        }
    }
}

/// One line of a task's audit log: who did what, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub id: i64,
    pub task_id: TaskId,
    pub at: Timestamp,
    /// `system`, `cli`, `api`, `tracker:plane`, `worker:<id>`, …
    pub actor: String,
    /// What happened (stored as its stable name: `created`, `merged`, …).
    pub kind: EventKind,
    pub from_stage: Option<Stage>,
    pub to_stage: Option<Stage>,
    pub message: String,
}

/// The caller's part of an event; the store adds id, task and stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInput {
    pub actor: String,
    pub kind: EventKind,
    pub message: String,
    /// A comment orch posts on the task's tracker item for this event. The
    /// store writes it to the tracker outbox in the event's own transaction
    /// (after a move's stage write), so a crash right after cannot lose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker_comment: Option<String>,
}

impl EventInput {
    pub fn new(actor: impl Into<String>, kind: EventKind, message: impl Into<String>) -> Self {
        EventInput {
            actor: actor.into(),
            kind,
            message: message.into(),
            tracker_comment: None,
        }
    }

    /// The same event, with a comment for the task's tracker item.
    pub fn with_tracker_comment(mut self, comment: impl Into<String>) -> Self {
        self.tracker_comment = Some(comment.into());
        self
    }
}
