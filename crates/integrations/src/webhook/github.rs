//! GitHub webhooks (`X-GitHub-Event`, `X-Hub-Signature-256: sha256=<hex>`).
//!
//! What matters: a pull request closed (merged or not) and a CI check
//! reported (`status`, `check_run`, `check_suite`) for the forge, and an
//! issue labelled with a gate's name for the issues-as-labels tracker.

use super::{
    CheckReported, ItemState, ParseError, ReviewReported, StateRef, WebhookEvent, json_object,
    opt_str, req_str,
};
use serde_json::Value;

/// Parse a verified GitHub delivery; `event` is `X-GitHub-Event`.
pub fn parse(body: &[u8], event: Option<&str>) -> Result<WebhookEvent, ParseError> {
    let v = json_object(body)?;
    let action = opt_str(&v, "/action").unwrap_or("");
    match (event.unwrap_or(""), action) {
        ("pull_request", "closed") => super::gitea::pull_request_closed(&v, "/head/ref"),
        ("issues", "labeled") => {
            let repo = req_str(&v, "/repository/full_name")?;
            let number = v
                .pointer("/issue/number")
                .and_then(Value::as_u64)
                .ok_or_else(|| ParseError::new("the payload has no issue.number"))?;
            let label = req_str(&v, "/label/name")?;
            let updated = opt_str(&v, "/issue/updated_at").unwrap_or("");
            Ok(WebhookEvent::ItemState(ItemState {
                project: repo.to_owned(),
                item: number.to_string(),
                state: StateRef::Name(label.to_owned()),
                change_key: format!("{repo}#{number}|{label}|{updated}"),
            }))
        }
        // A commit status (`sha`, `context`, `state`), a check run or a
        // check suite finished or changed: the merge gate looks again.
        ("status", _) => Ok(WebhookEvent::CheckReported(CheckReported {
            repo: req_str(&v, "/repository/full_name")?.to_owned(),
            sha: req_str(&v, "/sha")?.to_owned(),
            name: opt_str(&v, "/context").unwrap_or("").to_owned(),
            state: opt_str(&v, "/state").unwrap_or("").to_owned(),
        })),
        ("check_run" | "check_suite", _) => {
            let at = if event == Some("check_run") {
                "/check_run"
            } else {
                "/check_suite"
            };
            let state = opt_str(&v, &format!("{at}/conclusion"))
                .or_else(|| opt_str(&v, &format!("{at}/status")))
                .unwrap_or(action);
            Ok(WebhookEvent::CheckReported(CheckReported {
                repo: req_str(&v, "/repository/full_name")?.to_owned(),
                sha: req_str(&v, &format!("{at}/head_sha"))?.to_owned(),
                name: opt_str(&v, &format!("{at}/name")).unwrap_or("").to_owned(),
                state: state.to_owned(),
            }))
        }
        // A person's review (or an inline comment of one).
        ("pull_request_review" | "pull_request_review_comment", _) => {
            let repo = req_str(&v, "/repository/full_name")?;
            let number = v
                .pointer("/pull_request/number")
                .and_then(Value::as_u64)
                .ok_or_else(|| ParseError::new("the payload has no pull_request.number"))?;
            let state = opt_str(&v, "/review/state").unwrap_or(action);
            let id = v
                .pointer("/review/id")
                .or_else(|| v.pointer("/comment/id"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            Ok(WebhookEvent::ReviewReported(ReviewReported {
                repo: repo.to_owned(),
                number,
                state: state.to_owned(),
                review_key: format!("{repo}#{number}|{id}|{action}|{state}"),
            }))
        }
        (e, a) => Ok(WebhookEvent::ignored(format!(
            "GitHub event {e:?} (action {a:?}) needs nothing from orch"
        ))),
    }
}
