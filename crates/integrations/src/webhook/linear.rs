//! Linear webhooks (`Linear-Signature`, `Linear-Delivery`, `Linear-Event`;
//! the signature and the `webhookTimestamp` are checked before this runs).
//!
//! One kind matters: an `Issue` created, or updated with a change of its
//! workflow state (`updatedFrom.stateId` present: `updatedFrom` holds the
//! previous values of the fields that changed). It becomes an
//! [`ItemState`] naming the team by key, the issue by identifier and the
//! state by id (the name as a hint: a renamed state keeps its id).
//! Everything else (comments, labels, other fields) is ignored.

use super::{ItemState, ParseError, StateRef, WebhookEvent, json_object, opt_str, req_str};

/// Parse a verified Linear delivery.
pub fn parse(body: &[u8], _event: Option<&str>) -> Result<WebhookEvent, ParseError> {
    let v = json_object(body)?;
    let kind = opt_str(&v, "/type").unwrap_or("");
    if kind != "Issue" {
        return Ok(WebhookEvent::ignored(format!(
            "Linear {kind:?} events need nothing from orch"
        )));
    }
    let action = opt_str(&v, "/action").unwrap_or("");
    let routed = match action {
        "create" => true,
        "update" => v
            .pointer("/updatedFrom")
            .and_then(|u| u.as_object())
            .is_some_and(|u| u.contains_key("stateId")),
        _ => false,
    };
    if !routed {
        return Ok(WebhookEvent::ignored(format!(
            "Linear issue {action:?} changes no workflow state"
        )));
    }
    let identifier = req_str(&v, "/data/identifier")?;
    let team = match opt_str(&v, "/data/team/key") {
        Some(k) => k,
        None => identifier
            .rsplit_once('-')
            .map(|(k, _)| k)
            .ok_or_else(|| ParseError::new("the payload names no team"))?,
    };
    let state_id = match opt_str(&v, "/data/stateId") {
        Some(s) => s,
        None => req_str(&v, "/data/state/id")?,
    };
    let updated = opt_str(&v, "/data/updatedAt").unwrap_or("");
    Ok(WebhookEvent::ItemState(ItemState {
        project: team.to_owned(),
        item: identifier.to_owned(),
        // The same state at the same moment is the same change, whichever
        // delivery brings it.
        change_key: format!("{identifier}|{state_id}|{updated}"),
        state: StateRef::Id {
            id: state_id.to_owned(),
            name: opt_str(&v, "/data/state/name").map(str::to_owned),
        },
    }))
}
