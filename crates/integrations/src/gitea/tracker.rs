//! Gitea/Forgejo issues as the tracker, with gate and stage names as labels
//! as GitHub Issues: moving an item adds its new state label and
//! removes the old one, label by label (never the replace-all `PUT`, which
//! would drop a label a person added meanwhile). Items are named
//! `<repo>-<issue number>`, e.g. `demo-42`.
//!
//! Gitea takes labels by id: the repository's labels are listed once and
//! kept; a name orch needs that the repository lacks (its own `orch:<stage>`
//! labels, a stage nobody created) is created, so a move never silently
//! sets nothing.

use super::client::GiteaClient;
use super::issues::{GtIssue, GtLabel};
use crate::labels::{
    comment_marker, marked_comment, newest_person_comment, parse_item, state_of, whole_second,
};
use async_trait::async_trait;
use orch_config::{TrackerStates, same_state};
use orch_core::Timestamp;
use orch_engine::ports::{PortError, PortResult, Tracker};
use orch_store::TrackerItem;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::Mutex;

pub struct GiteaIssuesTracker {
    client: Arc<GiteaClient>,
    /// orch repo → `owner/name`.
    repos: BTreeMap<String, String>,
    states: TrackerStates,
    /// `owner/name` → the repository's labels as last listed.
    labels: Mutex<HashMap<String, Vec<GtLabel>>>,
}

impl GiteaIssuesTracker {
    pub fn new(
        client: Arc<GiteaClient>,
        repos: BTreeMap<String, String>,
        states: TrackerStates,
    ) -> GiteaIssuesTracker {
        GiteaIssuesTracker {
            client,
            repos,
            states,
            labels: Mutex::new(HashMap::new()),
        }
    }

    pub fn client(&self) -> &Arc<GiteaClient> {
        &self.client
    }

    /// orch repo → `owner/name`.
    pub fn repos(&self) -> &BTreeMap<String, String> {
        &self.repos
    }

    pub fn states(&self) -> &TrackerStates {
        &self.states
    }

    /// The item id of issue `number` of `owner/name`, if orch serves that repo.
    pub fn item_id(&self, full: &str, number: u64) -> Option<String> {
        self.repos
            .iter()
            .find(|(_, f)| f.as_str() == full)
            .map(|(r, _)| format!("{r}-{number}"))
    }

    fn locate<'a>(&'a self, id: &'a str) -> PortResult<(&'a str, &'a str, u64)> {
        let (repo, n) = parse_item(id).ok_or_else(|| {
            PortError::invalid(format!("{id:?} is not a Gitea item id (<repo>-<number>)"))
        })?;
        let full = self.repos.get(repo).ok_or_else(|| {
            PortError::invalid(format!("repo {repo:?} is not served by the Gitea tracker"))
        })?;
        Ok((repo, full, n))
    }

    /// The issue as it is now.
    async fn issue(&self, full: &str, n: u64) -> PortResult<GtIssue> {
        self.client
            .issue(full, n)
            .await
            .map_err(PortError::from)?
            .ok_or_else(|| PortError::not_found(format!("Gitea has no issue {full}#{n}")))
    }

    fn is_state(&self, label: &str) -> bool {
        self.states.key_of(label).is_some()
    }

    /// The id of the repository's label `name` (compared as states are:
    /// trimmed, case-insensitive). Listed once per repository; listed again
    /// when a name is missing (a person may have created it since), and
    /// created when still missing.
    async fn label_id(&self, full: &str, name: &str) -> PortResult<i64> {
        let mut cache = self.labels.lock().await;
        let find = |ls: &[GtLabel]| ls.iter().find(|l| same_state(&l.name, name)).map(|l| l.id);
        if let Some(id) = cache.get(full).and_then(|ls| find(ls)) {
            return Ok(id);
        }
        let listed = self
            .client
            .repo_labels(full)
            .await
            .map_err(PortError::from)?;
        let found = find(&listed);
        let entry = cache.entry(full.to_owned()).or_default();
        *entry = listed;
        if let Some(id) = found {
            return Ok(id);
        }
        let created = self
            .client
            .create_label(full, name)
            .await
            .map_err(PortError::from)?;
        let id = created.id;
        entry.push(created);
        Ok(id)
    }

    async fn add(&self, full: &str, n: u64, names: &[String]) -> PortResult<()> {
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            ids.push(self.label_id(full, name).await?);
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.client
            .add_labels(full, n, &ids)
            .await
            .map_err(PortError::from)
    }
}

#[async_trait]
impl Tracker for GiteaIssuesTracker {
    async fn item(&self, id: &str) -> PortResult<Option<TrackerItem>> {
        let Ok((repo, full, n)) = self.locate(id) else {
            return Ok(None);
        };
        let Some(issue) = self.client.issue(full, n).await.map_err(PortError::from)? else {
            return Ok(None);
        };
        if issue.pull_request.is_some() {
            return Ok(None);
        }
        let labels = issue.label_names();
        Ok(Some(TrackerItem {
            id: id.to_owned(),
            project: repo.to_owned(),
            title: issue.title,
            body: issue.body.unwrap_or_default(),
            state: state_of(&labels, &self.states).unwrap_or_default(),
            labels,
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        }))
    }

    /// Make `state` the issue's state label: add it, then remove the other
    /// state labels one by one, so a label a person adds meanwhile stays.
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        let (_, full, n) = self.locate(id)?;
        let issue = self.issue(full, n).await?;
        if !issue.labels.iter().any(|l| same_state(&l.name, state)) {
            self.add(full, n, &[state.to_owned()]).await?;
        }
        for old in issue
            .labels
            .iter()
            .filter(|l| self.is_state(&l.name) && !same_state(&l.name, state))
        {
            self.client
                .remove_label(full, n, old.id)
                .await
                .map_err(PortError::from)?;
        }
        Ok(())
    }

    /// orch's own `orch:<stage>` labels: the new ones added, the old ones
    /// removed one by one; other labels are never touched.
    async fn set_labels(&self, id: &str, orch_labels: &[String]) -> PortResult<()> {
        let (_, full, n) = self.locate(id)?;
        let issue = self.issue(full, n).await?;
        let add: Vec<String> = orch_labels
            .iter()
            .filter(|w| !issue.labels.iter().any(|l| l.name.eq_ignore_ascii_case(w)))
            .cloned()
            .collect();
        self.add(full, n, &add).await?;
        for old in issue
            .labels
            .iter()
            .filter(|l| l.name.starts_with("orch:") && !orch_labels.contains(&l.name))
        {
            self.client
                .remove_label(full, n, old.id)
                .await
                .map_err(PortError::from)?;
        }
        Ok(())
    }

    /// Gitea has no external id on comments: a hidden marker says the
    /// comment is orch's and carries the dedupe key; an existing marker
    /// means "already there".
    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()> {
        let (_, full, n) = self.locate(id)?;
        if dedupe_key.is_some() {
            let marker = comment_marker(dedupe_key);
            let existing = self
                .client
                .comments_since(full, n, None)
                .await
                .map_err(PortError::from)?;
            if existing.iter().any(|c| c.body.contains(&marker)) {
                return Ok(());
            }
        }
        self.client
            .comment(full, n, &marked_comment(body, dedupe_key))
            .await
            .map_err(PortError::from)
    }

    /// A person's comment is one without orch's marker. `since` filters on
    /// the update time, so the creation time is checked too (an old comment
    /// edited later is not a new reason). Gitea's times are whole seconds: a
    /// comment in the second orch asked counts.
    async fn person_comment_since(&self, id: &str, since: Timestamp) -> PortResult<Option<String>> {
        let (_, full, n) = self.locate(id)?;
        let second = whole_second(since);
        let after = crate::timestamps::format_millis(second);
        let comments = self
            .client
            .comments_since(full, n, Some(&after))
            .await
            .map_err(PortError::from)?;
        Ok(newest_person_comment(
            comments.into_iter().map(|c| (c.body, c.created_at)),
            second,
        ))
    }
}
