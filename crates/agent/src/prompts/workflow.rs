//! The developer's prompt from a Symphony-style `WORKFLOW.md` body (issue 13):
//! rendered with Symphony's variables, `issue` and `attempt` (SPEC §5.4,
//! §12), strictly: an unknown variable or filter fails the render, and so
//! the attempt, with a message naming the file and line.
//!
//! Symphony's template language is Liquid; orch renders it with MiniJinja,
//! whose `{{ … }}`, `{% if %}`, `{% for %}` and dotted access read the same.
//! Besides `issue` and `attempt` the template may use `orch`: every variable
//! orch's own templates see ([`PromptContext`]).
//!
//! A workflow prompt knows nothing of orch's review loop, so when the run is
//! a round the reviewer, the CI or a person's comment asked for, orch's own
//! section of that feedback (`defaults/workflow_feedback.md.j2`) follows the
//! rendered prompt: the developer always sees what it must change.

use super::context::PromptContext;
use serde::Serialize;

/// The built-in section appended for a round with feedback.
pub(super) const FEEDBACK_TEMPLATE: &str = include_str!("defaults/workflow_feedback.md.j2");
pub(super) const FEEDBACK_NAME: &str = "builtin:workflow_feedback.md.j2";

/// Symphony's normalized issue (SPEC §4.1.1), filled from what orch knows of
/// the task; what it does not know is null or empty, never missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowIssue {
    pub id: String,
    /// The work item's key (`ABC-123`).
    pub identifier: String,
    pub title: String,
    pub description: Option<String>,
    pub priority: Option<i64>,
    /// The task's stage (`development`).
    pub state: String,
    pub branch_name: Option<String>,
    pub url: Option<String>,
    pub assignee_id: Option<String>,
    /// Lower case.
    pub labels: Vec<String>,
    pub blocked_by: Vec<BlockerRef>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockerRef {
    pub id: Option<String>,
    pub identifier: Option<String>,
    pub state: Option<String>,
}

/// What a workflow template is rendered with.
#[derive(Debug, Serialize)]
pub(super) struct WorkflowVars<'a> {
    pub issue: WorkflowIssue,
    /// `None` on the developer's first run of the task; from 2 on a retry or
    /// a continuation (a review or CI round).
    pub attempt: Option<u32>,
    pub orch: &'a PromptContext,
}

impl<'a> WorkflowVars<'a> {
    pub fn of(ctx: &'a PromptContext) -> WorkflowVars<'a> {
        let task = &ctx.task;
        WorkflowVars {
            issue: WorkflowIssue {
                id: task.id.to_string(),
                identifier: task.work_item_id.clone(),
                title: task.title.clone(),
                description: Some(task.body.clone()).filter(|b| !b.trim().is_empty()),
                priority: None,
                state: task.stage.as_str().to_owned(),
                branch_name: Some(task.branch.clone()),
                url: None,
                assignee_id: None,
                labels: Vec::new(),
                blocked_by: Vec::new(),
                created_at: None,
                updated_at: None,
            },
            attempt: run_number(ctx),
            orch: ctx,
        }
    }
}

/// Symphony's `attempt`: null on the first run, else the run's number. A
/// retry of the job counts, and so does each earlier review round and CI
/// round that sent the work back.
fn run_number(ctx: &PromptContext) -> Option<u32> {
    let ci = if ctx.ci_failures.is_empty() {
        0
    } else {
        ctx.ci_round
    };
    let n = ctx.attempt.max(1) + ctx.review_round.max(1) - 1 + ci;
    (n > 1).then_some(n)
}

/// Whether the run carries feedback the workflow prompt cannot know of.
pub(super) fn has_feedback(ctx: &PromptContext) -> bool {
    !ctx.reviewer_comments.is_empty() || !ctx.ci_failures.is_empty() || ctx.gate_comment.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::{AgentKind, Stage, Task, TaskId, Timestamp};

    fn ctx() -> PromptContext {
        let task = Task {
            id: TaskId(7),
            tracker_id: None,
            work_item_id: "SYM-1".into(),
            repo: "demo".into(),
            branch: "orch/SYM-1".into(),
            stage: Stage::Development,
            title: "Fix it".into(),
            body: String::new(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            cancel_requested_at: None,
            cancelled_at: None,
        };
        PromptContext::new(&task, "main", AgentKind::Developer).unwrap()
    }

    #[test]
    fn attempt_is_null_first_then_counts_retries_and_rounds() {
        let mut c = ctx();
        assert_eq!(run_number(&c), None);
        c.attempt = 2;
        assert_eq!(run_number(&c), Some(2));
        c.attempt = 1;
        c.review_round = 3;
        assert_eq!(run_number(&c), Some(3));
        c.review_round = 1;
        c.ci_failures = vec!["check".into()];
        assert_eq!(run_number(&c), Some(2));
    }

    #[test]
    fn the_issue_says_null_for_what_orch_does_not_know() {
        let c = ctx();
        let v = WorkflowVars::of(&c);
        assert_eq!(v.issue.identifier, "SYM-1");
        assert_eq!(v.issue.description, None, "an empty body is no description");
        assert_eq!(v.issue.state, "development");
    }
}
