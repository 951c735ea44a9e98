//! `/api/tasks`: list, create, show, and the gates and STOP of one task.

use crate::AppState;
use crate::error::{ApiError, ApiResult, JsonBody, OptionalJsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orch_core::pipeline::Gate;
use orch_core::{Stage, Task, TaskId};
use orch_engine::pipeline::intake::{AddedWorkItem, NewWorkItem};
use orch_engine::pipeline::{CancelResult, GateResult, Pipeline};
use orch_store::{Store, TaskFilter};
use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

// ---- GET /api/tasks ---------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    repo: Option<String>,
    stage: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ListParams>,
) -> ApiResult<Json<Vec<Task>>> {
    let filter = task_filter(p)?;
    Ok(Json(s.store().list_tasks(&filter).await?))
}

fn task_filter(p: ListParams) -> ApiResult<TaskFilter> {
    let stage = p
        .stage
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<Stage>())
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("stage: {e}")))?;
    Ok(TaskFilter {
        repo: p.repo.filter(|r| !r.is_empty()),
        stage,
        limit: Some(p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)),
    })
}

// ---- POST /api/tasks --------------------------------------------------------

/// Create a work item of the builtin tracker and, unless held, start it
/// (`Pipeline::add_work_item`: the same rule as `orch task add`).
pub async fn create(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<NewWorkItem>,
) -> ApiResult<(StatusCode, Json<AddedWorkItem>)> {
    let added = s.pipeline().add_work_item(req).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

// ---- GET /api/tasks/{id} ----------------------------------------------------

#[derive(Debug, Serialize)]
pub struct TaskDetail {
    task: Task,
    depends_on: Vec<TaskId>,
    jobs: Vec<orch_core::Job>,
    runs: Vec<orch_core::Run>,
    usage: orch_core::run::Usage,
    events: Vec<orch_core::TaskEvent>,
    /// Saved states of its worktree (`refs/orch/archive/<key>/<n>`), with files.
    archives: Vec<orch_git::ArchiveListing>,
}

pub async fn show(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<TaskDetail>> {
    let store = s.store();
    let task = find(store, &id).await?;
    Ok(Json(TaskDetail {
        depends_on: store.dependencies(task.id).await?,
        jobs: store.jobs_for_task(task.id).await?,
        runs: store.runs_for_task(task.id).await?,
        usage: store.task_usage(task.id).await?,
        events: store.events(task.id).await?,
        archives: archives_of(&s, &task).await,
        task,
    }))
}

/// The task's archives with their files; none when its repo left orch.toml.
/// A git failure is logged and shows as no archives, not as a failed page.
async fn archives_of(s: &AppState, task: &Task) -> Vec<orch_git::ArchiveListing> {
    let Some(repo) = s.pipeline().config().repo(&task.repo) else {
        return Vec::new();
    };
    s.pipeline()
        .repos()
        .archive_listings(
            &task.repo,
            task.original_work_item_id(),
            &repo.default_branch,
        )
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(task = %task.id, error = %e, "listing the task's archives");
            Vec::new()
        })
}

/// A task by numeric id, or by work item key: the key's live task, else the
/// newest task that had the key before it was released (a STOP, or its done
/// or failed item started afresh), as `orch task show` finds it.
pub async fn find(store: &dyn Store, what: &str) -> ApiResult<Task> {
    lookup(store, what).await?.ok_or_else(|| not_found(what))
}

async fn lookup(store: &dyn Store, what: &str) -> ApiResult<Option<Task>> {
    Ok(match what.parse::<i64>() {
        Ok(id) => store.get_task(TaskId(id)).await?,
        Err(_) => store.find_task_by_key(what).await?,
    })
}

fn not_found(what: &str) -> ApiError {
    ApiError::not_found(format!(
        "no task with id or key {what:?}; GET /api/tasks lists the tasks"
    ))
}

// ---- POST /api/tasks/{id}/{action} ------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Gate(Gate),
    Stop,
}

impl Action {
    fn parse(s: &str) -> ApiResult<Action> {
        Ok(match s {
            "start" => Action::Gate(Gate::Start),
            "approve" => Action::Gate(Gate::Approve),
            "reject" => Action::Gate(Gate::Reject),
            "confirm-deploy" => Action::Gate(Gate::ConfirmDeploy),
            "retry" => Action::Gate(Gate::Retry),
            "answer" => Action::Gate(Gate::Answer),
            "stop" => Action::Stop,
            _ => {
                return Err(ApiError::not_found(format!(
                    "unknown action {s:?}; use one of start, approve, reject, confirm-deploy, stop, retry, answer"
                )));
            }
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    #[serde(default)]
    comment: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ActionResult {
    Gate(GateResult),
    Stop(CancelResult),
}

pub async fn action(
    State(s): State<AppState>,
    PathParams((id, action)): PathParams<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<ActionBody>,
) -> ApiResult<(StatusCode, Json<ActionResult>)> {
    let action = Action::parse(&action)?;
    let comment = body
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let result = run_action(s.pipeline(), &id, action, comment).await?;
    // A gate the task's state refuses moves nothing: 409, with the reason.
    let status = match &result {
        ActionResult::Gate(g) if !g.applied => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    Ok((status, Json(result)))
}

/// Apply one gate or STOP to a task. Start on a work item key is To Analyse on
/// the item: its live task gets the Start gate (a done or failed one runs the
/// item again as a new task), and a key with no live task starts its pipeline
/// (an item created with `"hold": true`, or a STOPped one).
pub async fn run_action(
    p: &Pipeline,
    what: &str,
    action: Action,
    comment: Option<&str>,
) -> ApiResult<ActionResult> {
    if action == Action::Gate(Gate::Reject) && comment.is_none() {
        return Err(ApiError::bad_request(
            "reject needs a comment saying what to change: send {\"comment\": \"...\"}",
        ));
    }
    if action == Action::Gate(Gate::Answer) && comment.is_none() {
        return Err(ApiError::bad_request(
            "answer needs the answer for the agent: send {\"comment\": \"...\"}",
        ));
    }
    if action == Action::Gate(Gate::Start) && what.parse::<i64>().is_err() {
        return Ok(ActionResult::Gate(
            match p.store().find_live_task_by_work_item(what).await? {
                Some(t) => p.gate(t.id, Gate::Start, comment).await?,
                None => p.start_item(what).await?,
            },
        ));
    }
    let task = lookup(p.store().as_ref(), what)
        .await?
        .ok_or_else(|| not_found(what))?;
    Ok(match action {
        Action::Gate(gate) => ActionResult::Gate(p.gate(task.id, gate, comment).await?),
        Action::Stop => ActionResult::Stop(p.stop_task(task.id, "api").await),
    })
}
