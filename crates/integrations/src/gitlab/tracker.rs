//! GitLab issues as the tracker: the state is a scoped label
//! `orch::<state name>` (`orch::To Analyse`, `orch::Approved`); a person
//! moves an item by choosing another `orch::` label. Moving an item adds the
//! new state label and removes the other state labels in one
//! `add_labels`/`remove_labels` edit: never a replaced list, so a label a
//! person adds meanwhile stays. On GitLab tiers with scoped labels, GitLab
//! itself keeps one `orch::` label per issue; orch removes the others
//! anyway, so it works the same where scoped labels are plain labels.
//!
//! orch's own stage labels stay `orch:<stage>` (one colon: not scoped).
//! Items are named `<repo>-<issue iid>`, e.g. `demo-42`.

use super::client::GitlabClient;
use crate::labels::{comment_marker, marked_comment, newest_person_comment, parse_item};
use async_trait::async_trait;
use orch_config::{TrackerStates, same_state};
use orch_core::Timestamp;
use orch_engine::ports::{PortError, PortResult, Tracker};
use orch_store::TrackerItem;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The scope of the labels that carry an item's state.
pub const STATE_SCOPE: &str = "orch::";

/// The label that carries `state`.
pub fn state_label(state: &str) -> String {
    format!("{STATE_SCOPE}{state}")
}

/// The state an issue's labels name: among its `orch::` labels, by the rule
/// of every label tracker (`labels::state_of`: a gate over a stage, STOP
/// over everything, names compared trimmed and case-insensitively).
pub fn state_of(labels: &[String], states: &TrackerStates) -> Option<String> {
    let scoped: Vec<String> = labels
        .iter()
        .filter_map(|l| l.strip_prefix(STATE_SCOPE).map(str::to_owned))
        .collect();
    crate::labels::state_of(&scoped, states)
}

/// orch's own `orch:<stage>` label (one colon), not a scoped state label.
fn is_orch_stage_label(label: &str) -> bool {
    label.starts_with("orch:") && !label.starts_with(STATE_SCOPE)
}

/// Notes pages read at most when looking for a comment (100 notes a page).
const MAX_NOTE_PAGES: u32 = 30;

pub struct GitlabIssuesTracker {
    client: Arc<GitlabClient>,
    /// orch repo → project path (or numeric id).
    projects: BTreeMap<String, String>,
    states: TrackerStates,
}

impl GitlabIssuesTracker {
    pub fn new(
        client: Arc<GitlabClient>,
        projects: BTreeMap<String, String>,
        states: TrackerStates,
    ) -> GitlabIssuesTracker {
        GitlabIssuesTracker {
            client,
            projects,
            states,
        }
    }

    pub fn client(&self) -> &Arc<GitlabClient> {
        &self.client
    }

    /// orch repo → project path (or numeric id).
    pub fn projects(&self) -> &BTreeMap<String, String> {
        &self.projects
    }

    /// The item id of issue `iid` of `project`, if orch serves that project.
    pub fn item_id(&self, project: &str, iid: u64) -> Option<String> {
        self.projects
            .iter()
            .find(|(_, p)| p.as_str() == project)
            .map(|(r, _)| format!("{r}-{iid}"))
    }

    fn locate<'a>(&'a self, id: &'a str) -> PortResult<(&'a str, &'a str, u64)> {
        let (repo, n) = parse_item(id).ok_or_else(|| {
            PortError::invalid(format!("{id:?} is not a GitLab item id (<repo>-<iid>)"))
        })?;
        let project = self.projects.get(repo).ok_or_else(|| {
            PortError::invalid(format!("repo {repo:?} is not served by the GitLab tracker"))
        })?;
        Ok((repo, project, n))
    }

    async fn labels(&self, project: &str, iid: u64) -> PortResult<Vec<String>> {
        let issue = self
            .client
            .issue(project, iid)
            .await
            .map_err(PortError::from)?
            .ok_or_else(|| PortError::not_found(format!("GitLab has no issue {project}#{iid}")))?;
        Ok(issue.labels)
    }

    /// Every note of the issue, newest first, until `stop` says the rest
    /// is older than wanted (a bounded walk).
    async fn notes_until(
        &self,
        project: &str,
        iid: u64,
        stop: impl Fn(&super::issues::GlNote) -> bool,
    ) -> PortResult<Vec<super::issues::GlNote>> {
        let mut out = Vec::new();
        let mut page = 1;
        for _ in 0..MAX_NOTE_PAGES {
            let p = self
                .client
                .notes_page(project, iid, page)
                .await
                .map_err(PortError::from)?;
            let done = p.items.iter().any(&stop);
            out.extend(p.items);
            match p.next {
                Some(n) if !done => page = n,
                _ => break,
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Tracker for GitlabIssuesTracker {
    async fn item(&self, id: &str) -> PortResult<Option<TrackerItem>> {
        let Ok((repo, project, n)) = self.locate(id) else {
            return Ok(None);
        };
        let Some(issue) = self
            .client
            .issue(project, n)
            .await
            .map_err(PortError::from)?
        else {
            return Ok(None);
        };
        Ok(Some(TrackerItem {
            id: id.to_owned(),
            project: repo.to_owned(),
            title: issue.title,
            body: issue.description.unwrap_or_default(),
            state: state_of(&issue.labels, &self.states).unwrap_or_default(),
            labels: issue.labels,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        }))
    }

    /// Make `orch::<state>` the issue's state label: added, and the other
    /// state labels removed, in one edit.
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        let (_, project, n) = self.locate(id)?;
        let labels = self.labels(project, n).await?;
        let has = labels
            .iter()
            .filter_map(|l| l.strip_prefix(STATE_SCOPE))
            .any(|s| same_state(s, state));
        let add = if has {
            vec![]
        } else {
            vec![state_label(state)]
        };
        let remove: Vec<String> = labels
            .iter()
            .filter(|l| {
                l.strip_prefix(STATE_SCOPE)
                    .is_some_and(|s| self.states.key_of(s).is_some() && !same_state(s, state))
            })
            .cloned()
            .collect();
        self.client
            .edit_labels(project, n, &add, &remove)
            .await
            .map_err(PortError::from)
    }

    /// orch's own `orch:<stage>` labels: the new ones added, the old ones
    /// removed, in one edit; other labels (scoped state labels included)
    /// are never touched.
    async fn set_labels(&self, id: &str, orch_labels: &[String]) -> PortResult<()> {
        let (_, project, n) = self.locate(id)?;
        let labels = self.labels(project, n).await?;
        let add: Vec<String> = orch_labels
            .iter()
            .filter(|w| !labels.iter().any(|l| l.eq_ignore_ascii_case(w)))
            .cloned()
            .collect();
        let remove: Vec<String> = labels
            .iter()
            .filter(|l| is_orch_stage_label(l) && !orch_labels.contains(l))
            .cloned()
            .collect();
        self.client
            .edit_labels(project, n, &add, &remove)
            .await
            .map_err(PortError::from)
    }

    /// Notes have no external id: a hidden marker says the note is orch's
    /// and carries the dedupe key; an existing marker means "already there".
    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()> {
        let (_, project, n) = self.locate(id)?;
        if dedupe_key.is_some() {
            let marker = comment_marker(dedupe_key);
            let notes = self.notes_until(project, n, |_| false).await?;
            if notes.iter().any(|c| c.body.contains(&marker)) {
                return Ok(());
            }
        }
        self.client
            .add_note(project, n, &marked_comment(body, dedupe_key))
            .await
            .map_err(PortError::from)
    }

    /// A person's comment: a note that is neither GitLab's own (`system`)
    /// nor orch's (marked), created at or after `since`. Notes come newest
    /// first, so the walk stops at the first page reaching back past `since`.
    async fn person_comment_since(&self, id: &str, since: Timestamp) -> PortResult<Option<String>> {
        let (_, project, n) = self.locate(id)?;
        let from = since.millis();
        let older = |c: &super::issues::GlNote| {
            c.created_at
                .as_deref()
                .and_then(crate::timestamps::parse_millis)
                .is_some_and(|at| at < from)
        };
        let notes = self.notes_until(project, n, older).await?;
        Ok(newest_person_comment(
            notes
                .into_iter()
                .filter(|c| !c.system)
                .map(|c| (c.body, c.created_at)),
            from,
        ))
    }
}
