//! Jira Cloud webhooks (admin webhooks with a secret: `X-Hub-Signature:
//! sha256=<hex>`, checked before this runs; `X-Atlassian-Webhook-Identifier`
//! names the delivery, the same on Jira's retries of it).
//!
//! One kind matters: `jira:issue_created`, and `jira:issue_updated` whose
//! changelog has a `status` item (the changelog lists the fields that
//! changed). It becomes an [`ItemState`] naming the project by key, the
//! issue by key and the status by name (`StateRef::Name`: Jira's workflow
//! transitions, and orch's mapping, speak status names). Everything else
//! (comments, other fields, deletions) is ignored.

use super::{ItemState, ParseError, StateRef, WebhookEvent, json_object, opt_str, req_str};
use serde_json::Value;

/// Parse a verified Jira delivery.
pub fn parse(body: &[u8], _event: Option<&str>) -> Result<WebhookEvent, ParseError> {
    let v = json_object(body)?;
    let event = opt_str(&v, "/webhookEvent").unwrap_or("");
    let status_item = v
        .pointer("/changelog/items")
        .and_then(Value::as_array)
        .and_then(|items| {
            items
                .iter()
                .find(|i| i.get("field").and_then(Value::as_str) == Some("status"))
        });
    let (status, change) = match (event, status_item) {
        ("jira:issue_created", _) => (
            req_str(&v, "/issue/fields/status/name")?,
            format!("created|{}", opt_str(&v, "/issue/id").unwrap_or("")),
        ),
        ("jira:issue_updated", Some(item)) => {
            let to = item
                .get("toString")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| req_str(&v, "/issue/fields/status/name"), Ok)?;
            // The changelog's id names this one change, whichever delivery
            // (or retry) brings it; without one, the status and the time.
            let change = match v.pointer("/changelog/id") {
                Some(Value::String(s)) if !s.is_empty() => format!("changelog|{s}"),
                Some(Value::Number(n)) => format!("changelog|{n}"),
                _ => format!(
                    "{to}|{}",
                    v.get("timestamp").map(Value::to_string).unwrap_or_default()
                ),
            };
            (to, change)
        }
        ("jira:issue_updated", None) => {
            return Ok(WebhookEvent::ignored(
                "the Jira issue update changes no status",
            ));
        }
        (other, _) => {
            return Ok(WebhookEvent::ignored(format!(
                "Jira {other:?} events need nothing from orch"
            )));
        }
    };
    let key = req_str(&v, "/issue/key")?;
    let project = match opt_str(&v, "/issue/fields/project/key") {
        Some(p) => p,
        None => key
            .rsplit_once('-')
            .map(|(p, _)| p)
            .ok_or_else(|| ParseError::new("the payload names no project"))?,
    };
    Ok(WebhookEvent::ItemState(ItemState {
        project: project.to_owned(),
        item: key.to_owned(),
        change_key: format!("{key}|{change}"),
        state: StateRef::Name(status.to_owned()),
    }))
}
