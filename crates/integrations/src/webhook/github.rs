//! GitHub webhooks (`X-GitHub-Event`, `X-Hub-Signature-256: sha256=<hex>`).
//!
//! Two kinds matter: a pull request closed (merged or not) for the forge, and
//! an issue labelled with a gate's name for the issues-as-labels tracker.

use super::{ItemState, ParseError, StateRef, WebhookEvent, json_object, opt_str, req_str};
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
        (e, a) => Ok(WebhookEvent::ignored(format!(
            "GitHub event {e:?} (action {a:?}) needs nothing from orch"
        ))),
    }
}
