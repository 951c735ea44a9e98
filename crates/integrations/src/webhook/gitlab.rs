//! GitLab webhooks (`X-Gitlab-Event`, `X-Gitlab-Token`: the shared secret
//! itself, checked before this runs).
//!
//! Two kinds matter. An "Issue Hook" (`object_kind: issue`) opened,
//! reopened, or updated with a change of its labels carries every label
//! the issue has after the change (top-level `labels`, each with its
//! `title`); the state is the one its `orch::` labels name
//! (`gitlab::tracker::state_of`), so it becomes an [`ItemState`] with
//! [`StateRef::Labels`]. A "Merge Request Hook" (`object_kind:
//! merge_request`) with action `merge` or `close` is a pull request closed
//! for the forge. Everything else is ignored.

use super::{
    ItemState, ParseError, PullRequestClosed, StateRef, WebhookEvent, json_object, opt_str, req_str,
};
use serde_json::Value;

/// Parse a verified GitLab delivery; `event` is `X-Gitlab-Event`.
pub fn parse(body: &[u8], event: Option<&str>) -> Result<WebhookEvent, ParseError> {
    let v = json_object(body)?;
    // The body names its kind; the header is the fallback for a body
    // without one.
    let kind = opt_str(&v, "/object_kind").unwrap_or(match event.unwrap_or("") {
        "Issue Hook" | "Confidential Issue Hook" => "issue",
        "Merge Request Hook" => "merge_request",
        _ => "",
    });
    match kind {
        "issue" => issue(&v),
        "merge_request" => merge_request(&v),
        other => Ok(WebhookEvent::ignored(format!(
            "GitLab event {other:?} needs nothing from orch"
        ))),
    }
}

fn titles(v: &Value, at: &str) -> Result<Option<Vec<String>>, ParseError> {
    match v.pointer(at) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(ls)) => ls
            .iter()
            .map(|l| {
                l.get("title")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| ParseError::new(format!("a label of {at} has no title")))
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(_) => Err(ParseError::new(format!("{at} is not a list"))),
    }
}

fn issue(v: &Value) -> Result<WebhookEvent, ParseError> {
    let action = opt_str(v, "/object_attributes/action").unwrap_or("");
    let labels_changed = v.pointer("/changes/labels").is_some_and(|c| !c.is_null());
    let routed = match action {
        "open" | "reopen" => true,
        "update" => labels_changed,
        _ => false,
    };
    if !routed {
        return Ok(WebhookEvent::ignored(format!(
            "GitLab issue action {action:?} changes no label orch reads"
        )));
    }
    let project = req_str(v, "/project/path_with_namespace")?;
    let iid = v
        .pointer("/object_attributes/iid")
        .and_then(Value::as_u64)
        .ok_or_else(|| ParseError::new("the payload has no object_attributes.iid"))?;
    // The top-level `labels` are the issue's labels after the change;
    // older payloads only have them under `object_attributes`.
    let labels = match titles(v, "/labels")? {
        Some(l) => l,
        None => titles(v, "/object_attributes/labels")?.unwrap_or_default(),
    };
    let mut sorted = labels.clone();
    sorted.sort();
    let updated = opt_str(v, "/object_attributes/updated_at").unwrap_or("");
    Ok(WebhookEvent::ItemState(ItemState {
        project: project.to_owned(),
        item: iid.to_string(),
        // The same label set at the same moment is the same change, however
        // often (or under whichever delivery id) it arrives.
        change_key: format!("{project}#{iid}|{}|{updated}", sorted.join("\u{1f}")),
        state: StateRef::Labels(labels),
    }))
}

fn merge_request(v: &Value) -> Result<WebhookEvent, ParseError> {
    let action = opt_str(v, "/object_attributes/action").unwrap_or("");
    let merged = match action {
        "merge" => true,
        "close" => false,
        other => {
            return Ok(WebhookEvent::ignored(format!(
                "merge request action {other:?} needs nothing from orch"
            )));
        }
    };
    let a = v
        .get("object_attributes")
        .filter(|a| a.is_object())
        .ok_or_else(|| ParseError::new("the payload has no object_attributes"))?;
    Ok(WebhookEvent::PullRequestClosed(PullRequestClosed {
        repo: req_str(v, "/project/path_with_namespace")?.to_owned(),
        number: a
            .get("iid")
            .and_then(Value::as_u64)
            .ok_or_else(|| ParseError::new("the payload has no object_attributes.iid"))?,
        branch: req_str(a, "/source_branch")?.to_owned(),
        head_sha: opt_str(a, "/last_commit/id").unwrap_or("").to_owned(),
        base: opt_str(a, "/target_branch").unwrap_or("").to_owned(),
        merged,
        merge_commit_sha: opt_str(a, "/merge_commit_sha").map(str::to_owned),
    }))
}
