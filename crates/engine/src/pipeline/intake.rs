//! New work: the start of an item's pipeline (R-1, from any tracker), and
//! work items made by orch itself (`orch task add`, `POST /api/tasks`): a
//! work item of the builtin tracker, started at once unless held. One rule
//! for both doors — validation, the key minted when none is given, what a
//! repeated key means — so the CLI and the API cannot drift apart.

use super::owner::{Command, Outcome};
use super::view::task_view;
use super::{GateResult, Pipeline, PipelineError, PipelineResult};
use orch_config::TrackerKind;
use orch_core::EventKind;
use orch_core::decide;
use orch_core::pipeline::{Gate, JobSpec};
use orch_core::{NewTask, Stage, TaskId, Timestamp, keys};
use orch_store::{Store, StoreError, TaskFilter, TrackerItem};
use serde::{Deserialize, Serialize};

/// Longest title accepted; the details belong in the body.
pub const MAX_TITLE: usize = 500;

/// A work item to create (the API's `POST /api/tasks` body).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorkItem {
    pub repo: String,
    pub title: String,
    #[serde(default)]
    pub body: String,
    /// The work item key; minted as `<REPO>-<n>` when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// Create the item only; start it later (`orch task start KEY`).
    #[serde(default)]
    pub hold: bool,
    /// Tasks the new one waits for.
    #[serde(default)]
    pub depends_on: Vec<TaskId>,
}

/// What `add_work_item` made.
#[derive(Debug, Clone, Serialize)]
pub struct AddedWorkItem {
    pub item: TrackerItem,
    /// The start, unless the item was held.
    pub result: Option<GateResult>,
}

/// What the tracker item hears when its analysis starts.
const STARTED_COMMENT: &str = "orch started the analysis.";

impl Pipeline {
    /// a tracker item moved to To Analyse. A live task of the item
    /// gets the Start gate (relaunch rules); an unknown item starts the pipeline.
    pub async fn start_item(&self, item_id: &str) -> PipelineResult<GateResult> {
        if let Some(task) = self.store.find_live_task_by_tracker_id(item_id).await? {
            return self.gate(task.id, Gate::Start, None).await;
        }
        self.start_pipeline(item_id).await
    }

    /// The only pipeline-start entry point: a task in `analysis` with
    /// its analyst queued. A terminal task the item had before is replaced:
    /// a done or failed one's keys are retired, and the live tasks that
    /// waited on a failed or cancelled one wait on the new task instead.
    pub async fn start_pipeline(&self, item_id: &str) -> PipelineResult<GateResult> {
        self.start_pipeline_after(item_id, Vec::new()).await
    }

    /// `start_pipeline` for a task that waits for `depends_on`: the
    /// dependencies are written with the task, before its first job can be
    /// claimed.
    pub(crate) async fn start_pipeline_after(
        &self,
        item_id: &str,
        depends_on: Vec<TaskId>,
    ) -> PipelineResult<GateResult> {
        let item = self.tracker.item(item_id).await?.ok_or_else(|| {
            PipelineError::NotFound(format!(
                "the tracker has no item {item_id:?}; create it first (`orch task add`)"
            ))
        })?;
        let repo = item.project.clone();
        if self.cfg.repo(&repo).is_none() {
            return Err(PipelineError::Invalid(format!(
                "item {item_id} belongs to repo {repo:?}, which orch.toml does not define; add a [[repos]] entry"
            )));
        }
        // The tracker's id stays the id the tracker is called with; the
        // human key (branch, docs path) is the tracker's own, e.g. `ORCH-42`
        // for a Plane item named by a uuid.
        let key = self.tracker.task_key(&item).await?;
        let key = match orch_core::keys::validate_work_item_id(&key) {
            Ok(()) => key,
            Err(e) => {
                tracing::warn!(item = %item.id, error = %e, "the tracker's key is not a valid task key; using the item id");
                item.id.clone()
            }
        };
        let mut new = NewTask::new(repo, item.title.clone());
        new.depends_on = depends_on;
        new.tracker_id = Some(item.id.clone());
        new.work_item_id = Some(key);
        new.body = item.body.clone();
        new.replaces = self
            .store
            .latest_task_of_item(&item.id)
            .await?
            .filter(|t| t.stage.is_terminal())
            .map(|t| t.id);
        let task = self.store.create_task(new, &self.actor).await?;
        match self.command(task.id, Command::Begin).await? {
            Outcome::Gate(r) => Ok(r),
            other => Err(super::unexpected("begin", other)),
        }
    }

    /// A new task's first move, applied by its owner: the core decides
    /// (`decide::on_begin`), `begin_with` carries it out.
    pub(super) async fn begin(&self, id: TaskId) -> PipelineResult<GateResult> {
        let task = self.task(id).await?;
        let view = task_view(self.store.as_ref(), &task).await?;
        let effects = self.decide_pipeline(&task, &view, &decide::Command::Begin);
        let note = self.apply(&task, effects).await?;
        let task = self.task(id).await?;
        Ok(GateResult {
            task: task.id,
            stage: task.stage,
            note,
            applied: true,
        })
    }

    /// The start logged (and told to the tracker) in `analysis`, with the
    /// analyst's job when the decision queues one.
    pub(super) async fn begin_with(
        &self,
        task: &orch_core::Task,
        job: Option<JobSpec>,
    ) -> PipelineResult<String> {
        let queues = job.is_some();
        let job = job.map(|spec| self.new_job(task, spec));
        let started = || {
            self.event(EventKind::Started, decide::STARTED)
                .with_tracker_comment(STARTED_COMMENT)
        };
        let advanced = self
            .store
            .advance(task.id, Stage::Analysis, Stage::Analysis, started(), job)
            .await;
        let (task, _) = match advanced {
            // Another node's tick (woken by the task's creation) queued the
            // analyst between the view and this write: the start is only
            // logged, as when the tick came first.
            Err(orch_store::StoreError::ActiveJob { .. }) => {
                self.store
                    .advance(task.id, Stage::Analysis, Stage::Analysis, started(), None)
                    .await?
            }
            other => other?,
        };
        if queues {
            self.job_queued.notify_one();
        }
        self.reflect(&task, STARTED_COMMENT).await;
        Ok(if queues {
            "started: the analyst is queued".into()
        } else {
            "started: the analyst was queued already".into()
        })
    }

    /// Create a builtin-tracker work item and, unless held, start its
    /// pipeline as a move to To Analyse would. A key whose task is
    /// done, failed or cancelled runs its item again as a new task; a key
    /// with a task still in the pipeline, or a held item never started, is a
    /// duplicate.
    pub async fn add_work_item(&self, req: NewWorkItem) -> PipelineResult<AddedWorkItem> {
        let cfg = &self.cfg;
        if cfg.tracker.kind != TrackerKind::Builtin {
            return Err(PipelineError::Invalid(format!(
                "work items live in the {} tracker; create the item there and move it to To Analyse",
                cfg.tracker.kind.as_str()
            )));
        }
        let title = req.title.trim();
        if title.is_empty() {
            return Err(PipelineError::Invalid("title must not be empty".into()));
        }
        if title.chars().count() > MAX_TITLE {
            return Err(PipelineError::Invalid(format!(
                "title is longer than {MAX_TITLE} characters; put the details in the body"
            )));
        }
        if cfg.repo(&req.repo).is_none() {
            let known: Vec<&str> = cfg.repos.iter().map(|r| r.name.as_str()).collect();
            return Err(PipelineError::Invalid(format!(
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
        let store = self.store.as_ref();
        match req.key {
            Some(key) => {
                keys::validate_work_item_id(&key)
                    .map_err(|e| PipelineError::Invalid(e.to_string()))?;
                item.id = key;
                self.claim_key(&item).await?;
            }
            None => insert_minted(store, &mut item).await?,
        }
        let item = store.get_item(&item.id).await?.unwrap_or(item);
        if req.hold {
            return Ok(AddedWorkItem { item, result: None });
        }
        let id = item.id.clone();
        let not_started = |e: PipelineError| {
            e.context(format!(
                "work item {id} was created but not started (start it with `orch task start {id}` or POST /api/tasks/{id}/start)"
            ))
        };
        let result = match store.find_live_task_by_tracker_id(&item.id).await? {
            // The usual case: a new task, its dependencies written with it
            // (before its analyst can be claimed).
            None => self
                .start_pipeline_after(&item.id, req.depends_on)
                .await
                .map_err(not_started)?,
            // A done or failed task's item runs again as a new task.
            Some(_) => {
                let result = self.start_item(&item.id).await.map_err(not_started)?;
                for on in req.depends_on {
                    store.add_dependency(result.task, on).await?;
                }
                result
            }
        };
        Ok(AddedWorkItem {
            item,
            result: Some(result),
        })
    }

    /// Create the item under its given key, or take over the item of a
    /// task that has ended (done, failed, cancelled): that runs it again.
    async fn claim_key(&self, item: &TrackerItem) -> PipelineResult<()> {
        let store = self.store.as_ref();
        let duplicate = || StoreError::Duplicate {
            key: "work item id",
            value: item.id.clone(),
        };
        if let Some(t) = store.find_live_task_by_work_item(&item.id).await?
            && !matches!(t.stage, Stage::Done | Stage::Failed)
        {
            return Err(duplicate().into());
        }
        if store.get_item(&item.id).await?.is_none() {
            return Ok(store.create_item(item).await?);
        }
        match store.find_task_by_key(&item.id).await? {
            Some(t) if t.stage.is_terminal() => Ok(()),
            // Held and never started: `orch task start` is the way.
            _ => Err(duplicate().into()),
        }
    }
}

/// `<REPO>-` of the keys minted for a repo's items.
fn key_prefix(repo: &str) -> String {
    format!("{}-", keys::repo_key_prefix(repo))
}

/// Insert `item` under the next free key `<REPO>-<n>` (past every key any
/// item or task of the repo ever had); retried when a concurrent create
/// took the same key.
async fn insert_minted(store: &dyn Store, item: &mut TrackerItem) -> PipelineResult<()> {
    let prefix = key_prefix(&item.project);
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
        keys::validate_work_item_id(&item.id)
            .map_err(|e| PipelineError::Invalid(format!("{e}; pass a key instead")))?;
        match store.create_item(item).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Duplicate { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Duplicate {
        key: "work item id",
        value: format!("{prefix}{n} (no free key after 5 tries; retry, or pass a key)"),
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::key_prefix;

    #[test]
    fn keys_are_minted_from_the_repo_name() {
        assert_eq!(key_prefix("demo"), "DEMO-");
        assert_eq!(key_prefix("my_repo.v2"), "MY-REPO-V2-");
    }
}
