//! Gitea and Forgejo webhooks (`X-Gitea-*`, `X-Forgejo-*`; Forgejo sends both).
//!
//! Dispatch is on the fine-grained `X-Gitea-Event-Type` with `X-Gitea-Event`
//! as the fallback (Gitea 1.23.0–1.23.7 sent an empty `X-Gitea-Event` for
//! status deliveries). A merge is `pull_request` + `action: "closed"` +
//! `pull_request.merged: true`; there is no separate "merged" action.
//!
//! A `status` delivery (a commit status created, by CI or by orch) becomes
//! [`WebhookEvent::CheckReported`]; a review (`pull_request_review_approved`,
//! `…_rejected`, `…_comment`) becomes [`WebhookEvent::ReviewReported`].
//!
//! For the issues tracker: `issue_label` (`X-Gitea-Event: issues`, action
//! `label_updated` or `label_cleared`) and `issues` (`opened`, `reopened`)
//! carry Gitea's `IssuePayload`, whose `issue.labels` are every label the
//! issue has after the change; they become an [`ItemState`] with
//! [`StateRef::Labels`]. Labels on pull requests come as
//! `pull_request_label` and mean nothing to orch.

use super::{
    CheckReported, ItemState, ParseError, PullRequestClosed, ReviewReported, StateRef,
    WebhookEvent, json_object, opt_str, req_str,
};
use serde_json::Value;

/// Parse a verified Gitea/Forgejo delivery; `event` is the event type header.
pub fn parse(body: &[u8], event: Option<&str>) -> Result<WebhookEvent, ParseError> {
    let v = json_object(body)?;
    let event = event.unwrap_or("");
    if event == "issue_label" || event == "issues" {
        return issue_labels(&v, event);
    }
    if event == "status" {
        return commit_status(&v);
    }
    if let Some(kind) = event.strip_prefix("pull_request_review_") {
        return review(&v, kind);
    }
    if event != "pull_request" {
        return Ok(WebhookEvent::ignored(format!(
            "Gitea event {event:?} needs nothing from orch"
        )));
    }
    if opt_str(&v, "/action") != Some("closed") {
        return Ok(WebhookEvent::ignored(format!(
            "pull request action {:?} needs nothing from orch",
            opt_str(&v, "/action").unwrap_or("")
        )));
    }
    pull_request_closed(&v, "/head/label")
}

/// A commit status was created (Gitea's `CommitStatusPayload`: `sha`,
/// `context`, `state`, `repository`).
fn commit_status(v: &Value) -> Result<WebhookEvent, ParseError> {
    Ok(WebhookEvent::CheckReported(CheckReported {
        repo: req_str(v, "/repository/full_name")?.to_owned(),
        sha: req_str(v, "/sha")?.to_owned(),
        name: opt_str(v, "/context").unwrap_or("").to_owned(),
        state: opt_str(v, "/state").unwrap_or("").to_owned(),
    }))
}

/// A review of a pull request (`X-Gitea-Event-Type`
/// `pull_request_review_approved`, `…_rejected`, `…_comment`; Gitea's
/// `PullRequestPayload` with `review`).
fn review(v: &Value, kind: &str) -> Result<WebhookEvent, ParseError> {
    let repo = req_str(v, "/repository/full_name")?;
    let number = v
        .pointer("/pull_request/number")
        .and_then(Value::as_u64)
        .or_else(|| v.get("number").and_then(Value::as_u64))
        .ok_or_else(|| ParseError::new("the payload has no pull request number"))?;
    let content = opt_str(v, "/review/content").unwrap_or("");
    let head = opt_str(v, "/pull_request/head/sha").unwrap_or("");
    Ok(WebhookEvent::ReviewReported(ReviewReported {
        repo: repo.to_owned(),
        number,
        state: kind.to_owned(),
        review_key: format!("{repo}#{number}|{kind}|{head}|{content}"),
    }))
}

/// An issue's labels after a label change (or on opening, with the labels
/// it was created with).
fn issue_labels(v: &Value, event: &str) -> Result<WebhookEvent, ParseError> {
    let action = opt_str(v, "/action").unwrap_or("");
    if !matches!(
        action,
        "label_updated" | "label_cleared" | "opened" | "reopened"
    ) {
        return Ok(WebhookEvent::ignored(format!(
            "Gitea {event} action {action:?} needs nothing from orch"
        )));
    }
    let issue = v
        .get("issue")
        .filter(|i| i.is_object())
        .ok_or_else(|| ParseError::new("the payload has no issue object"))?;
    if issue.get("pull_request").is_some_and(|p| !p.is_null()) {
        return Ok(WebhookEvent::ignored(
            "labels of a pull request need nothing from orch",
        ));
    }
    let repo = req_str(v, "/repository/full_name")?;
    let number = issue
        .get("number")
        .and_then(Value::as_u64)
        .or_else(|| v.get("number").and_then(Value::as_u64))
        .ok_or_else(|| ParseError::new("the payload has no issue number"))?;
    let labels: Vec<String> = match issue.get("labels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ls)) => ls
            .iter()
            .map(|l| {
                l.get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| ParseError::new("a label of issue.labels has no name"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ParseError::new("issue.labels is not a list")),
    };
    let mut sorted = labels.clone();
    sorted.sort();
    let updated = opt_str(issue, "/updated_at").unwrap_or("");
    Ok(WebhookEvent::ItemState(ItemState {
        project: repo.to_owned(),
        item: number.to_string(),
        // The same label set at the same moment is the same change, however
        // often (or under whichever delivery id) it arrives.
        change_key: format!("{repo}#{number}|{}|{updated}", sorted.join("\u{1f}")),
        state: StateRef::Labels(labels),
    }))
}

/// The `closed` pull request shared by Gitea and GitHub payloads; `branch_at`
/// says where the head branch's name is (Gitea: `head.label`, GitHub: `head.ref`).
pub(crate) fn pull_request_closed(v: &Value, branch_at: &str) -> Result<WebhookEvent, ParseError> {
    let pr = v
        .get("pull_request")
        .filter(|p| p.is_object())
        .ok_or_else(|| ParseError::new("the payload has no pull_request object"))?;
    let number = pr
        .get("number")
        .and_then(Value::as_u64)
        .or_else(|| v.get("number").and_then(Value::as_u64))
        .ok_or_else(|| ParseError::new("the payload has no pull request number"))?;
    let branch = opt_str(pr, branch_at)
        .or_else(|| opt_str(pr, "/head/ref"))
        .ok_or_else(|| ParseError::new(format!("the payload has no pull_request{branch_at}")))?;
    Ok(WebhookEvent::PullRequestClosed(PullRequestClosed {
        repo: req_str(v, "/repository/full_name")?.to_owned(),
        number,
        branch: branch.to_owned(),
        head_sha: opt_str(pr, "/head/sha").unwrap_or("").to_owned(),
        base: opt_str(pr, "/base/ref").unwrap_or("").to_owned(),
        merged: pr.get("merged").and_then(Value::as_bool).unwrap_or(false),
        merge_commit_sha: opt_str(pr, "/merge_commit_sha").map(str::to_owned),
    }))
}
