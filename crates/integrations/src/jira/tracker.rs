//! Jira Cloud issues as the tracker. An item is an issue, named by
//! its key (`ENG-42`: the project's key and the issue's number). The state
//! is the issue's status: orch's gates and stages map to each project's
//! statuses by name (`[tracker.jira.projects.<KEY>] statuses`, else the
//! names of `[tracker.states]`).
//!
//! Jira has no "set the status": an issue moves through a transition of its
//! workflow. orch takes the transition whose target status (`to.name`) is
//! the wanted one, among those the issue can take now; when none leads
//! there the move is a clear error naming the status (the workflow needs
//! that transition), unless the issue is already in it.
//!
//! Comments are ADF documents; orch's end with the marker the other
//! trackers use (`labels::marked_comment`) as a last line of text, which
//! ADF cannot hide, and are read back as text (`adf::to_text`). Labels are
//! not set: the status already shows the stage.

use super::adf;
use super::client::{JiraClient, JiraComment, JiraIssue, parse_time};
use crate::labels::{ORCH_MARKER, comment_marker, marked_comment, parse_item};
use async_trait::async_trait;
use orch_config::{TrackerStates, same_state};
use orch_core::Timestamp;
use orch_engine::ports::{PortError, PortResult, Tracker};
use orch_store::TrackerItem;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Comment pages read at most (100 comments a page).
const MAX_COMMENT_PAGES: u64 = 30;

/// One served project: its orch repo and what each gate and stage is
/// called in it.
#[derive(Debug, Clone)]
pub struct Project {
    pub repo: String,
    /// `[tracker.states]` with the project's status names in place.
    pub names: TrackerStates,
}

pub struct JiraTracker {
    client: Arc<JiraClient>,
    /// Project key (upper case) → project.
    projects: BTreeMap<String, Project>,
    /// orch's own names (`[tracker.states]`): what the engine speaks.
    states: TrackerStates,
}

impl JiraTracker {
    pub fn new(
        client: Arc<JiraClient>,
        projects: BTreeMap<String, Project>,
        states: TrackerStates,
    ) -> JiraTracker {
        JiraTracker {
            client,
            projects: projects
                .into_iter()
                .map(|(k, p)| (k.to_ascii_uppercase(), p))
                .collect(),
            states,
        }
    }

    pub fn client(&self) -> &Arc<JiraClient> {
        &self.client
    }

    pub fn projects(&self) -> &BTreeMap<String, Project> {
        &self.projects
    }

    /// The served project of an issue key (`ENG-42` → `ENG`). Jira keys are
    /// upper case; a key sent otherwise is matched as configured.
    pub fn project_of(&self, key: &str) -> Option<(&str, &Project)> {
        let (project, _) = parse_item(key)?;
        self.projects
            .get_key_value(&project.to_ascii_uppercase())
            .map(|(k, p)| (k.as_str(), p))
    }

    /// orch's name of the project's status `jira` (`None`: a status orch
    /// has no gate or stage for).
    pub fn orch_state(&self, project: &Project, jira: &str) -> Option<String> {
        project.names.name_in(jira, &self.states).map(str::to_owned)
    }

    /// The project's status name of orch's state `orch`.
    pub fn jira_state<'a>(&self, project: &'a Project, orch: &'a str) -> &'a str {
        self.states.name_in(orch, &project.names).unwrap_or(orch)
    }

    /// An issue as the engine sees it.
    pub fn to_item(&self, project: &Project, issue: JiraIssue) -> TrackerItem {
        let state = issue
            .fields
            .status
            .as_ref()
            .and_then(|s| self.orch_state(project, &s.name))
            .unwrap_or_default();
        let updated = issue
            .fields
            .updated
            .as_deref()
            .and_then(parse_time)
            .map_or(Timestamp::EPOCH, Timestamp);
        TrackerItem {
            id: issue.key,
            project: project.repo.clone(),
            title: issue.fields.summary.unwrap_or_default(),
            body: issue
                .fields
                .description
                .as_ref()
                .map(adf::to_text)
                .unwrap_or_default(),
            state,
            labels: Vec::new(),
            created_at: Timestamp::EPOCH,
            updated_at: updated,
        }
    }

    fn served(&self, key: &str) -> PortResult<(&str, &Project)> {
        self.project_of(key).ok_or_else(|| {
            PortError::invalid(format!(
                "{key:?} is not an issue of a project the Jira tracker serves ([tracker.jira.projects])"
            ))
        })
    }

    /// Every comment of the issue (a bounded walk of its pages).
    async fn comments(&self, key: &str) -> PortResult<Vec<JiraComment>> {
        let mut out = Vec::new();
        for _ in 0..MAX_COMMENT_PAGES {
            let (page, total) = self
                .client
                .comments_page(key, out.len() as u64)
                .await
                .map_err(PortError::from)?;
            let got = page.len();
            out.extend(page);
            if got == 0 || out.len() as u64 >= total {
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Tracker for JiraTracker {
    async fn item(&self, id: &str) -> PortResult<Option<TrackerItem>> {
        let Some((_, project)) = self.project_of(id) else {
            return Ok(None);
        };
        Ok(self
            .client
            .issue(id)
            .await
            .map_err(PortError::from)?
            .map(|i| self.to_item(project, i)))
    }

    /// The transition that leads to the project's status for `state`.
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        let (key, project) = self.served(id)?;
        let wanted = self.jira_state(project, state);
        let transitions = self.client.transitions(id).await.map_err(PortError::from)?;
        if let Some(t) = transitions.iter().find(|t| same_state(&t.to.name, wanted)) {
            return self
                .client
                .transition(id, &t.id)
                .await
                .map_err(PortError::from);
        }
        // No way there: fine if it is there already (a repeated move).
        let issue = self
            .client
            .issue(id)
            .await
            .map_err(PortError::from)?
            .ok_or_else(|| PortError::not_found(format!("Jira has no issue {id}")))?;
        if issue
            .fields
            .status
            .as_ref()
            .is_some_and(|s| same_state(&s.name, wanted))
        {
            return Ok(());
        }
        let reachable: Vec<&str> = transitions.iter().map(|t| t.to.name.as_str()).collect();
        Err(PortError::invalid(format!(
            "Jira issue {id} has no transition to the status {wanted:?} (for orch's {state:?}); it can move to {reachable:?}. Add a transition to {wanted:?} in project {key}'s workflow, or map orch's state to another status in [tracker.jira.projects.{key}] statuses"
        )))
    }

    async fn set_labels(&self, _id: &str, _labels: &[String]) -> PortResult<()> {
        Ok(())
    }

    /// orch's marker says the comment is orch's and carries the dedupe key;
    /// an existing marker means "already there".
    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()> {
        self.served(id)?;
        if dedupe_key.is_some() {
            let marker = comment_marker(dedupe_key);
            if self
                .comments(id)
                .await?
                .iter()
                .any(|c| adf::to_text(&c.body).contains(&marker))
            {
                return Ok(());
            }
        }
        self.client
            .add_comment(id, adf::from_text(&marked_comment(body, dedupe_key)))
            .await
            .map_err(PortError::from)
    }

    /// The newest comment without orch's marker created at or after `since`.
    async fn person_comment_since(&self, id: &str, since: Timestamp) -> PortResult<Option<String>> {
        self.served(id)?;
        let comments = self.comments(id).await?;
        // `labels::newest_person_comment`'s rule, on Jira's times (an
        // offset without a colon, milliseconds kept).
        Ok(comments
            .into_iter()
            .filter_map(|c| {
                let at = c.created.as_deref().and_then(parse_time)?;
                let text = adf::to_text(&c.body);
                (at >= since.millis() && !text.contains(ORCH_MARKER)).then_some((at, text))
            })
            .max_by_key(|(at, _)| *at)
            .map(|(_, text)| text))
    }
}
