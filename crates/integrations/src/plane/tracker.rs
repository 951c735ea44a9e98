//! Plane behind the engine's `Tracker` port. Items are Plane work items,
//! named by their uuid in every API call; the task made from one is keyed
//! `<PROJECT IDENTIFIER>-<sequence_id>` (`ORCH-42`), the key people see in
//! Plane, so branches and docs paths read `feature/ORCH-42-…`. orch's gate
//! and stage names map to each project's states by name (`[tracker.states]`).

use super::client::{CommentOutcome, EXTERNAL_SOURCE, PlaneClient, WorkItem, html_to_text};
use super::states::StateCache;
use crate::webhook::StateRef;
use async_trait::async_trait;
use orch_core::Timestamp;
use orch_engine::ports::{PortError, PortResult, Tracker};
use orch_store::TrackerItem;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct PlaneTracker {
    client: Arc<PlaneClient>,
    states: StateCache,
    /// Plane project uuid → orch repo name.
    projects: BTreeMap<String, String>,
    /// Which project each known item is in: the API needs both ids, the
    /// engine names an item by one. Learned from webhooks and listings.
    item_projects: Mutex<HashMap<String, String>>,
    /// Each known item's `sequence_id` (learned when it is read).
    sequences: Mutex<HashMap<String, u64>>,
    /// Each project's `identifier`, read once.
    identifiers: tokio::sync::Mutex<HashMap<String, String>>,
}

impl PlaneTracker {
    pub fn new(client: Arc<PlaneClient>, projects: BTreeMap<String, String>) -> PlaneTracker {
        PlaneTracker {
            client,
            states: StateCache::new(Duration::from_secs(10)),
            projects,
            item_projects: Mutex::new(HashMap::new()),
            sequences: Mutex::new(HashMap::new()),
            identifiers: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &Arc<PlaneClient> {
        &self.client
    }

    pub fn projects(&self) -> &BTreeMap<String, String> {
        &self.projects
    }

    pub fn state_cache(&self) -> &StateCache {
        &self.states
    }

    /// The orch repo of a Plane project, if orch serves it.
    pub fn repo_of(&self, project: &str) -> Option<&str> {
        self.projects.get(project).map(String::as_str)
    }

    pub fn remember(&self, item: &str, project: &str) {
        self.item_projects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(item.to_owned(), project.to_owned());
    }

    fn known_project(&self, item: &str) -> Option<String> {
        self.item_projects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(item)
            .cloned()
    }

    /// The state name a webhook's state reference stands for.
    pub async fn state_name(&self, project: &str, state: &StateRef) -> PortResult<Option<String>> {
        match state {
            StateRef::Name(n) => Ok(Some(n.clone())),
            // Plane names one state; a label set is never Plane's.
            StateRef::Labels(_) => Ok(None),
            StateRef::Id { id, name } => match self.states.name_of(&self.client, project, id).await
            {
                Ok(Some(n)) => Ok(Some(n)),
                Ok(None) => Ok(None),
                // Plane unreachable: the payload's own name is the best we have.
                Err(e) if name.is_some() => {
                    tracing::warn!(error = %e, "Plane states unavailable; using the name in the webhook");
                    Ok(name.clone())
                }
                Err(e) => Err(PortError::from(e)),
            },
        }
    }

    /// The item and its project: the remembered project first, else each
    /// served project in turn (404 = not there).
    async fn locate(&self, id: &str) -> PortResult<Option<(String, WorkItem)>> {
        if let Some(p) = self.known_project(id)
            && let Some(w) = self
                .client
                .get_work_item(&p, id)
                .await
                .map_err(PortError::from)?
        {
            return Ok(Some((p, w)));
        }
        for p in self.projects.keys() {
            if let Some(w) = self
                .client
                .get_work_item(p, id)
                .await
                .map_err(PortError::from)?
            {
                self.remember(id, p);
                return Ok(Some((p.clone(), w)));
            }
        }
        Ok(None)
    }

    async fn project_of(&self, id: &str) -> PortResult<String> {
        if let Some(p) = self.known_project(id) {
            return Ok(p);
        }
        self.locate(id).await?.map(|(p, _)| p).ok_or_else(|| {
            PortError::not_found(format!(
                "Plane has no work item {id} in the projects orch serves"
            ))
        })
    }

    /// A project's `identifier` (cached: it is read once per project).
    async fn identifier(&self, project: &str) -> PortResult<String> {
        let mut ids = self.identifiers.lock().await;
        if let Some(i) = ids.get(project) {
            return Ok(i.clone());
        }
        let ident = self
            .client
            .project_identifier(project)
            .await
            .map_err(PortError::from)?;
        ids.insert(project.to_owned(), ident.clone());
        Ok(ident)
    }

    /// A listed or fetched work item as the engine sees it.
    pub async fn to_item(&self, project: &str, w: &WorkItem) -> PortResult<TrackerItem> {
        if let Some(seq) = w.sequence_id {
            self.sequences
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(w.id.clone(), seq);
        }
        let state = match &w.state {
            Some(id) => self
                .states
                .name_of(&self.client, project, id)
                .await
                .map_err(PortError::from)?
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(TrackerItem {
            id: w.id.clone(),
            project: self.repo_of(project).unwrap_or(project).to_owned(),
            title: w.name.clone(),
            body: w.description_stripped.clone().unwrap_or_default(),
            state,
            labels: Vec::new(),
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        })
    }
}

#[async_trait]
impl Tracker for PlaneTracker {
    async fn item(&self, id: &str) -> PortResult<Option<TrackerItem>> {
        match self.locate(id).await? {
            Some((p, w)) => self.to_item(&p, &w).await.map(Some),
            None => Ok(None),
        }
    }

    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        let project = self.project_of(id).await?;
        let state_id = self
            .states
            .id_of(&self.client, &project, state)
            .await
            .map_err(PortError::from)?
            .ok_or_else(|| {
                PortError::invalid(format!(
                    "Plane project {project} has no state named {state:?}; add it in Plane or change [tracker.states]"
                ))
            })?;
        self.client
            .set_state(&project, id, &state_id)
            .await
            .map_err(PortError::from)
    }

    /// Plane labels are per-project uuids that orch does not manage; the
    /// item's state already shows the stage, so labels are left alone.
    async fn set_labels(&self, _id: &str, _labels: &[String]) -> PortResult<()> {
        Ok(())
    }

    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()> {
        let project = self.project_of(id).await?;
        // One external id per logical comment: the client's retries reuse it,
        // so a retry after a lost answer adds nothing (409).
        let external_id = match dedupe_key {
            Some(k) => k.to_owned(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        match self
            .client
            .add_comment(&project, id, body, &external_id)
            .await
            .map_err(PortError::from)?
        {
            CommentOutcome::Added | CommentOutcome::AlreadyThere => Ok(()),
        }
    }

    /// orch's own comments carry `external_source = "orch"`; any other is a
    /// person's (or another integration's, which speaks for a person too).
    /// A comment without a readable `created_at` cannot be placed after
    /// `since` and is left out; so is a deleted one.
    async fn person_comment_since(&self, id: &str, since: Timestamp) -> PortResult<Option<String>> {
        let project = self.project_of(id).await?;
        let comments = self
            .client
            .list_comments(&project, id)
            .await
            .map_err(PortError::from)?;
        Ok(comments
            .into_iter()
            .filter(|c| c.deleted_at.is_none())
            .filter(|c| c.external_source.as_deref() != Some(EXTERNAL_SOURCE))
            .filter_map(|c| {
                let at = c
                    .created_at
                    .as_deref()
                    .and_then(crate::timestamps::parse_millis)?;
                (at > since.millis()).then_some((at, c.comment_html))
            })
            .max_by_key(|(at, _)| *at)
            .map(|(_, html)| html_to_text(&html)))
    }

    /// `<PROJECT IDENTIFIER>-<sequence_id>`, e.g. `ORCH-42`: the key Plane
    /// shows for the item. The uuid stays the item's id for API calls. An
    /// item or project without them (an old or odd server) keeps its uuid.
    async fn task_key(&self, item: &TrackerItem) -> PortResult<String> {
        let known = self
            .sequences
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&item.id)
            .copied();
        let (project, seq) = match (known, self.known_project(&item.id)) {
            (Some(seq), Some(p)) => (p, Some(seq)),
            _ => match self.locate(&item.id).await? {
                Some((p, w)) => (p, w.sequence_id),
                None => return Ok(item.id.clone()),
            },
        };
        let ident = self.identifier(&project).await?;
        match seq {
            Some(seq) if !ident.trim().is_empty() => Ok(format!("{}-{seq}", ident.trim())),
            _ => {
                tracing::warn!(item = %item.id, project, "Plane gave no project identifier or sequence id; the task is keyed by the item's uuid");
                Ok(item.id.clone())
            }
        }
    }
}
