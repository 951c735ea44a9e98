//! Gitea and Forgejo webhooks (`X-Gitea-*`, `X-Forgejo-*`; Forgejo sends both).
//!
//! Dispatch is on the fine-grained `X-Gitea-Event-Type` with `X-Gitea-Event`
//! as the fallback (Gitea 1.23.0–1.23.7 sent an empty `X-Gitea-Event` for
//! status deliveries). A merge is `pull_request` + `action: "closed"` +
//! `pull_request.merged: true`; there is no separate "merged" action.

use super::{ParseError, PullRequestClosed, WebhookEvent, json_object, opt_str, req_str};
use serde_json::Value;

/// Parse a verified Gitea/Forgejo delivery; `event` is the event type header.
pub fn parse(body: &[u8], event: Option<&str>) -> Result<WebhookEvent, ParseError> {
    let v = json_object(body)?;
    let event = event.unwrap_or("");
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
