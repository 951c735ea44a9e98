//! Incoming webhooks: what a verified delivery means to orch.
//!
//! Each provider's parser is a pure function from the raw body (and its event
//! header) to a [`WebhookEvent`]. Nothing here does IO: the server verifies
//! the signature, calls the parser, records the delivery and hands the event
//! to [`crate::ingest`] on a background task.

pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod jira;
pub mod linear;
pub mod plane;
pub mod receive;

pub use receive::{Accepted, Provider, Rejection, Verify, receive};

use serde::Serialize;

/// A body that is not what the provider sends: answered with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub(crate) fn new(msg: impl Into<String>) -> ParseError {
        ParseError(msg.into())
    }
}

/// How a tracker names the state an item moved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "by", content = "value", rename_all = "snake_case")]
pub enum StateRef {
    /// Plane and Linear: a state id of the item's project (team); the name,
    /// when the payload carries one, is only a hint (a renamed state keeps
    /// its id).
    Id { id: String, name: Option<String> },
    /// GitHub issues: the name of the label added, the gate's name itself.
    /// Jira: the name of the new status (its project's name for it).
    Name(String),
    /// Gitea/Forgejo and GitLab issues: every label the issue has after the
    /// change (their label events do not say which one was added); the
    /// state is the one `labels::state_of` picks under `[tracker.states]`
    /// (on GitLab among the `orch::` labels: `gitlab::tracker::state_of`).
    Labels(Vec<String>),
}

/// A tracker item moved to a state (or was created in one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemState {
    /// The tracker's project: a Plane project uuid, or `owner/name`.
    pub project: String,
    /// The item as orch's tracker port knows it.
    pub item: String,
    pub state: StateRef,
    /// What identifies this change, for de-duplication: the same change
    /// delivered twice (retries, one delivery per changed field) has the same key.
    pub change_key: String,
}

/// A pull request closed on the forge, by orch or by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequestClosed {
    /// `owner/name`.
    pub repo: String,
    pub number: u64,
    /// The head branch's name (Gitea: `head.label`, which survives the
    /// branch's deletion; `head.ref` becomes `refs/pull/<n>/head`).
    pub branch: String,
    pub head_sha: String,
    pub base: String,
    pub merged: bool,
    pub merge_commit_sha: Option<String>,
}

/// The forge reported a CI check of a commit (a Gitea commit status; a
/// GitHub `status`, `check_run` or `check_suite`): the merge gate of the
/// repo's tasks looks at their required checks again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReported {
    /// `owner/name`.
    pub repo: String,
    pub sha: String,
    /// The status context or check name (for logs and de-duplication).
    pub name: String,
    /// The forge's word for where it stands.
    pub state: String,
}

/// A person reviewed a pull request (a verdict or comments): the repo's
/// tasks in review or merge look at the pull request's reviews again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewReported {
    /// `owner/name`.
    pub repo: String,
    pub number: u64,
    /// The forge's word (`approved`, `rejected`, `changes_requested`, …).
    pub state: String,
    /// What identifies this review, for de-duplication.
    pub review_key: String,
}

/// What a verified delivery means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WebhookEvent {
    ItemState(ItemState),
    PullRequestClosed(PullRequestClosed),
    CheckReported(CheckReported),
    ReviewReported(ReviewReported),
    /// A delivery orch does not act on; answered with 202.
    Ignored {
        reason: String,
    },
}

impl WebhookEvent {
    pub(crate) fn ignored(reason: impl Into<String>) -> WebhookEvent {
        WebhookEvent::Ignored {
            reason: reason.into(),
        }
    }
}

/// Parse a body as a JSON object (a webhook body is never anything else).
pub(crate) fn json_object(body: &[u8]) -> Result<serde_json::Value, ParseError> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ParseError::new(format!("the body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ParseError::new("the body is JSON but not an object"));
    }
    Ok(v)
}

/// A string field, or a clear error naming it.
pub(crate) fn req_str<'a>(v: &'a serde_json::Value, path: &str) -> Result<&'a str, ParseError> {
    v.pointer(path)
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ParseError::new(format!("the payload has no string at {path}")))
}

pub(crate) fn opt_str<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a str> {
    v.pointer(path)
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
}
