//! `/api/tasks`: list, create, show, and the gates and STOP of one task.

use crate::AppState;
use crate::error::{ApiError, ApiResult, JsonBody, OptionalJsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use orch_config::TrackerKind;
use orch_core::pipeline::Gate;
use orch_core::{Stage, Task, TaskId, Timestamp, keys};
use orch_engine::pipeline::{CancelResult, GateResult, Pipeline};
use orch_store::{Store, StoreError, TaskFilter, TrackerItem};
use serde::{Deserialize, Serialize};

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
const MAX_TITLE: usize = 500;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    repo: String,
    title: String,
    #[serde(default)]
    body: String,
    /// The work item key; minted as `<REPO>-<n>` when absent.
    #[serde(default)]
    key: Option<String>,
    /// Create the work item only; start it later with `POST /api/tasks/{key}/start`.
    #[serde(default)]
    hold: bool,
}

#[derive(Debug, Serialize)]
pub struct Created {
    item: TrackerItem,
    result: Option<GateResult>,
}

pub async fn create(
    State(s): State<AppState>,
    JsonBody(req): JsonBody<CreateTask>,
) -> ApiResult<(StatusCode, Json<Created>)> {
    let created = create_task(s.pipeline(), req).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Create a work item of the builtin tracker and, unless held, start its
/// pipeline as moving it to To Analyse would.
pub async fn create_task(p: &Pipeline, req: CreateTask) -> ApiResult<Created> {
    let cfg = p.config();
    if cfg.tracker.kind != TrackerKind::Builtin {
        return Err(ApiError::bad_request(format!(
            "work items live in the {} tracker; create the item there and move it to To Analyse",
            cfg.tracker.kind.as_str()
        )));
    }
    let title = req.title.trim();
    if title.is_empty() {
        return Err(ApiError::bad_request("title must not be empty"));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(ApiError::bad_request(format!(
            "title is longer than {MAX_TITLE} characters; put the details in body"
        )));
    }
    if cfg.repo(&req.repo).is_none() {
        let known: Vec<&str> = cfg.repos.iter().map(|r| r.name.as_str()).collect();
        return Err(ApiError::bad_request(format!(
            "unknown repo {:?}; orch.toml defines: {}. Add a [[repos]] entry for it first",
            req.repo,
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )));
    }
    let mut item = TrackerItem {
        id: String::new(),
        project: req.repo.clone(),
        title: title.to_owned(),
        body: req.body,
        state: "Backlog".into(),
        labels: Vec::new(),
        created_at: Timestamp::EPOCH,
        updated_at: Timestamp::EPOCH,
    };
    let store = p.store().as_ref();
    match req.key {
        Some(key) => {
            keys::validate_work_item_id(&key).map_err(|e| ApiError::bad_request(e.to_string()))?;
            item.id = key;
            store.create_item(&item).await?;
        }
        None => insert_minted(store, &mut item).await?,
    }
    let item = store.get_item(&item.id).await?.unwrap_or(item);
    if req.hold {
        return Ok(Created { item, result: None });
    }
    let result = p.start_item(&item.id).await.map_err(|e| {
        ApiError::from(e).context(format!(
            "work item {} was created but not started (start it with POST /api/tasks/{}/start)",
            item.id, item.id
        ))
    })?;
    Ok(Created {
        item,
        result: Some(result),
    })
}

/// Insert `item` under the next free key `<REPO>-<n>`; retried when a
/// concurrent create took the same key.
async fn insert_minted(store: &dyn Store, item: &mut TrackerItem) -> ApiResult<()> {
    let prefix = format!("{}-", item.project.to_ascii_uppercase());
    let used = |id: &str| -> Option<u64> { id.strip_prefix(&prefix)?.parse().ok() };
    let items = store.list_items(None).await?;
    let tasks = store.list_tasks(&TaskFilter::default()).await?;
    let mut n = items
        .iter()
        .map(|i| i.id.as_str())
        .chain(tasks.iter().map(|t| t.original_work_item_id()))
        .filter_map(used)
        .max()
        .unwrap_or(0);
    for _ in 0..5 {
        n += 1;
        item.id = format!("{prefix}{n}");
        keys::validate_work_item_id(&item.id).map_err(|e| {
            ApiError::bad_request(format!("{e}; pass a key in the request instead"))
        })?;
        match store.create_item(item).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Duplicate { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "could not find a free work item key; retry, or pass a key",
    ))
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
            "stop" => Action::Stop,
            _ => {
                return Err(ApiError::not_found(format!(
                    "unknown action {s:?}; use one of start, approve, reject, confirm-deploy, stop, retry"
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
