//! Plane webhooks: v1 (Plane CE) and v2 (`"version": "v2"`).
//!
//! Traps handled here (see docs/integrations.md):
//! - v1 `data.state` is an object `{id, name, color, group}`; v2 has `data.state_id`.
//! - One delivery per changed field, and older servers send both a `state` and
//!   a `state_id` delivery for one change; `X-Plane-Delivery` changes on every
//!   retry. So the change key is (item, state, `updated_at`), never the delivery id.
//! - `action` is `created`/`updated` today and `create`/`update` on old servers.
//! - v2's `event` is dot notation (`workitem.updated`), but one example of
//!   Plane's own docs shows the enum (`WebhookScope.ScopeChoices.WORK_ITEM_UPDATED`):
//!   both are read, then `X-Plane-Event`, then `entity_type`.

use super::{ItemState, ParseError, StateRef, WebhookEvent, json_object, opt_str, req_str};
use serde_json::Value;

/// Parse a verified Plane delivery. `event_header` is `X-Plane-Event`.
pub fn parse(body: &[u8], event_header: Option<&str>) -> Result<WebhookEvent, ParseError> {
    let v = json_object(body)?;
    if v.get("version").and_then(Value::as_str) == Some("v2") {
        return parse_v2(&v, event_header);
    }
    parse_v1(&v, event_header)
}

fn parse_v1(v: &Value, event_header: Option<&str>) -> Result<WebhookEvent, ParseError> {
    let event = opt_str(v, "/event").or(event_header).unwrap_or("");
    if event != "issue" {
        return Ok(WebhookEvent::ignored(format!(
            "Plane event {event:?} is not about work items"
        )));
    }
    let action = opt_str(v, "/action").unwrap_or("");
    match action {
        "created" | "create" => {}
        "updated" | "update" => {
            let field = v.pointer("/activity/field").and_then(Value::as_str);
            if !matches!(field, Some("state" | "state_id")) {
                return Ok(WebhookEvent::ignored(format!(
                    "a change of {:?}, not of the state",
                    field.unwrap_or("(none)")
                )));
            }
        }
        // Issue deletes: Plane CE sends none; old servers did, with only an id.
        // orch never cancels a task because an item vanished (STOP does that).
        other => {
            return Ok(WebhookEvent::ignored(format!(
                "work item action {other:?} needs nothing from orch"
            )));
        }
    }
    let item = req_str(v, "/data/id")?;
    let project = req_str(v, "/data/project")?;
    // `data` is serialised at send time, so it holds the state after the
    // change; it is authoritative over `activity.new_value`.
    let state = match v.pointer("/data/state") {
        Some(Value::Object(_)) => StateRef::Id {
            id: req_str(v, "/data/state/id")?.to_owned(),
            name: opt_str(v, "/data/state/name").map(str::to_owned),
        },
        // Defensive: a server that sends the id as a plain string.
        Some(Value::String(s)) if !s.is_empty() => StateRef::Id {
            id: s.clone(),
            name: None,
        },
        Some(Value::Null) | None => {
            return Ok(WebhookEvent::ignored("the work item has no state"));
        }
        Some(_) => return Err(ParseError::new("data.state is neither an object nor an id")),
    };
    Ok(item_state(
        item,
        project,
        state,
        opt_str(v, "/data/updated_at"),
    ))
}

/// `(entity, action)` of a v2 event name. Plane documents dot notation
/// (`workitem.updated`, `workitem.comment.created`), and one of its own
/// examples shows the Python enum instead
/// (`WebhookScope.ScopeChoices.WORK_ITEM_UPDATED`); both are read. `None`:
/// not an event name orch can read.
fn v2_event(name: &str) -> Option<(String, String)> {
    let name = name.trim();
    let last = name.rsplit('.').next().unwrap_or(name);
    if last.chars().any(|c| c.is_ascii_uppercase()) {
        // The enum's member: `WORK_ITEM_UPDATED` → (`work_item`, `updated`).
        let lower = last.to_ascii_lowercase();
        let (entity, action) = lower.rsplit_once('_')?;
        return (!entity.is_empty() && !action.is_empty())
            .then(|| (entity.to_owned(), action.to_owned()));
    }
    let (entity, action) = name.rsplit_once('.')?;
    (!entity.is_empty() && !action.is_empty()).then(|| (entity.to_owned(), action.to_owned()))
}

fn is_work_item(entity: &str) -> bool {
    matches!(entity, "workitem" | "work_item" | "issue")
}

fn parse_v2(v: &Value, event_header: Option<&str>) -> Result<WebhookEvent, ParseError> {
    let event = opt_str(v, "/event").unwrap_or("");
    // The body's event name first; when it cannot be read, the
    // `X-Plane-Event` header; when neither can, the body's `entity_type`
    // (an `issue` whose data carries a state: created if nothing changed
    // before, else updated).
    let named = v2_event(event).or_else(|| event_header.and_then(v2_event));
    let (entity, action) = match named {
        Some(ea) => ea,
        None => {
            let entity = opt_str(v, "/entity_type").unwrap_or("");
            let has_state = opt_str(v, "/data/state_id").is_some()
                || v.pointer("/data/state").is_some_and(|s| !s.is_null());
            if !is_work_item(entity) || !has_state {
                return Ok(WebhookEvent::ignored(format!(
                    "Plane event {event:?} (entity {entity:?}) is not a work item state orch can read"
                )));
            }
            let changed = v
                .get("previous_attributes")
                .and_then(Value::as_object)
                .is_some_and(|p| !p.is_empty());
            let action = if changed { "updated" } else { "created" };
            (entity.to_owned(), action.to_owned())
        }
    };
    if !is_work_item(&entity) {
        return Ok(WebhookEvent::ignored(format!(
            "Plane event {event:?} is not about work items"
        )));
    }
    match action.as_str() {
        "created" | "create" => {}
        "updated" | "update" => {
            // v2 lists the changed fields' old values; a change that did not
            // touch the state is not for orch.
            if let Some(prev) = v.get("previous_attributes").and_then(Value::as_object)
                && !prev.contains_key("state_id")
                && !prev.contains_key("state")
            {
                return Ok(WebhookEvent::ignored(
                    "a change that did not touch the state",
                ));
            }
        }
        other => {
            return Ok(WebhookEvent::ignored(format!(
                "work item action {other:?} needs nothing from orch"
            )));
        }
    }
    let item = opt_str(v, "/data/id")
        .or_else(|| opt_str(v, "/entity_id"))
        .ok_or_else(|| ParseError::new("the payload has no data.id or entity_id"))?;
    let project = opt_str(v, "/data/project_id")
        .or_else(|| opt_str(v, "/data/project"))
        .ok_or_else(|| ParseError::new("the payload has no data.project_id"))?;
    let state = match (v.pointer("/data/state_id"), v.pointer("/data/state")) {
        (Some(Value::String(id)), _) if !id.is_empty() => StateRef::Id {
            id: id.clone(),
            name: opt_str(v, "/data/state/name").map(str::to_owned),
        },
        (_, Some(Value::Object(_))) => StateRef::Id {
            id: req_str(v, "/data/state/id")?.to_owned(),
            name: opt_str(v, "/data/state/name").map(str::to_owned),
        },
        (_, Some(Value::String(id))) if !id.is_empty() => StateRef::Id {
            id: id.clone(),
            name: None,
        },
        _ => return Ok(WebhookEvent::ignored("the work item has no state")),
    };
    Ok(item_state(
        item,
        project,
        state,
        opt_str(v, "/data/updated_at"),
    ))
}

fn item_state(
    item: &str,
    project: &str,
    state: StateRef,
    updated_at: Option<&str>,
) -> WebhookEvent {
    let state_id = match &state {
        StateRef::Id { id, .. } => id.as_str(),
        StateRef::Name(n) => n.as_str(),
        StateRef::Labels(_) => "",
    };
    WebhookEvent::ItemState(ItemState {
        project: project.to_owned(),
        item: item.to_owned(),
        change_key: format!("{item}|{state_id}|{}", updated_at.unwrap_or("")),
        state,
    })
}
