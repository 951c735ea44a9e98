//! The routes of an agent's `orch mcp` tools (issue 16 point 5):
//!
//! ```text
//! GET  /api/agent/tasks/{id}            the work item and its comments
//! POST /api/agent/tasks/{id}/notes      {"text": "..."}      a progress note
//! POST /api/agent/tasks/{id}/question   {"question": "..."}  ask a person
//! ```
//!
//! They authenticate by the run's own token (`Authorization: Bearer`), never
//! the API token, so they sit outside the API's token layer. A token is
//! valid while its run is watched and only for its run's task: another
//! task's id or key is refused (403) even when it exists, and a run that
//! ended has no token any more (401).

use crate::AppState;
use crate::error::{ApiError, ApiResult, JsonBody, PathParams};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use orch_engine::pipeline::agent_tools::AgentWorkItem;
use orch_engine::supervisor::AgentSession;
use serde::Deserialize;

/// The session of the request's run token, bound to the task the path names.
async fn session(s: &AppState, headers: &HeaderMap, what: &str) -> ApiResult<AgentSession> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "an agent tool needs its run's token: `Authorization: Bearer <token>`",
            )
        })?;
    let session = s.pipeline().agent_session(token).ok_or_else(|| {
        ApiError::unauthorized(
            "this token belongs to no running agent run (the run has ended, and its tools with it)",
        )
    })?;
    let task = crate::tasks::find(s.store(), what)
        .await
        .map_err(|_| forbidden(what))?;
    if task.id != session.task {
        return Err(forbidden(what));
    }
    Ok(session)
}

fn forbidden(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!("this run's tools are bound to its own task; {what:?} is not it"),
    )
}

pub async fn work_item(
    State(s): State<AppState>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<AgentWorkItem>> {
    let session = session(&s, &headers, &id).await?;
    Ok(Json(s.pipeline().agent_work_item(&session).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    text: String,
}

pub async fn note(
    State(s): State<AppState>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<NoteBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let session = session(&s, &headers, &id).await?;
    s.pipeline().agent_note(&session, &body.text).await?;
    Ok(Json(serde_json::json!({ "posted": true })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionBody {
    question: String,
}

pub async fn question(
    State(s): State<AppState>,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<QuestionBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let session = session(&s, &headers, &id).await?;
    s.pipeline().agent_ask(&session, &body.question)?;
    Ok(Json(serde_json::json!({ "asked": true })))
}
