//! GitHub Issues as the tracker, with gate and stage names as labels:
//! moving an item means adding its new state label and removing the old one,
//! label by label (never replacing the list, which would drop a label a
//! person added meanwhile). Items are named
//! `<repo>-<issue number>` (a valid work item key), e.g. `demo-42`.

use super::client::GithubClient;
use crate::labels::{comment_marker, marked_comment, newest_person_comment, whole_second};
pub use crate::labels::{parse_item, state_of};
use async_trait::async_trait;
use orch_config::{TrackerStates, same_state};
use orch_core::Timestamp;
use orch_engine::ports::{PortError, PortResult, Tracker};
use orch_store::TrackerItem;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct GithubIssuesTracker {
    client: Arc<GithubClient>,
    /// orch repo → `owner/name`.
    repos: BTreeMap<String, String>,
    states: TrackerStates,
}

impl GithubIssuesTracker {
    pub fn new(
        client: Arc<GithubClient>,
        repos: BTreeMap<String, String>,
        states: TrackerStates,
    ) -> GithubIssuesTracker {
        GithubIssuesTracker {
            client,
            repos,
            states,
        }
    }

    pub fn client(&self) -> &Arc<GithubClient> {
        &self.client
    }

    /// orch repo → `owner/name`.
    pub fn repos(&self) -> &BTreeMap<String, String> {
        &self.repos
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
            PortError::invalid(format!("{id:?} is not a GitHub item id (<repo>-<number>)"))
        })?;
        let full = self.repos.get(repo).ok_or_else(|| {
            PortError::invalid(format!("repo {repo:?} is not served by the GitHub tracker"))
        })?;
        Ok((repo, full, n))
    }

    /// The issue's labels as they are now.
    async fn labels(&self, full: &str, n: u64) -> PortResult<Vec<String>> {
        let issue = self
            .client
            .issue(full, n)
            .await
            .map_err(PortError::from)?
            .ok_or_else(|| PortError::not_found(format!("GitHub has no issue {full}#{n}")))?;
        Ok(issue.labels.into_iter().map(|l| l.name).collect())
    }

    fn is_state(&self, label: &str) -> bool {
        self.states.key_of(label).is_some()
    }
}

#[async_trait]
impl Tracker for GithubIssuesTracker {
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
        let labels: Vec<String> = issue.labels.iter().map(|l| l.name.clone()).collect();
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
    /// state labels one by one. Labels are edited, never replaced as a list,
    /// so a label a person adds meanwhile stays.
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        let (_, full, n) = self.locate(id)?;
        let labels = self.labels(full, n).await?;
        if !labels.iter().any(|l| same_state(l, state)) {
            self.client
                .add_labels(full, n, &[state.to_owned()])
                .await
                .map_err(PortError::from)?;
        }
        for old in labels
            .iter()
            .filter(|l| self.is_state(l) && !same_state(l, state))
        {
            self.client
                .remove_label(full, n, old)
                .await
                .map_err(PortError::from)?;
        }
        Ok(())
    }

    /// orch's own `orch:<stage>` labels: the new ones added, the old ones
    /// removed one by one; other labels are never touched.
    async fn set_labels(&self, id: &str, orch_labels: &[String]) -> PortResult<()> {
        let (_, full, n) = self.locate(id)?;
        let labels = self.labels(full, n).await?;
        let add: Vec<String> = orch_labels
            .iter()
            .filter(|w| !labels.iter().any(|l| l.eq_ignore_ascii_case(w)))
            .cloned()
            .collect();
        if !add.is_empty() {
            self.client
                .add_labels(full, n, &add)
                .await
                .map_err(PortError::from)?;
        }
        for old in labels
            .iter()
            .filter(|l| l.starts_with("orch:") && !orch_labels.iter().any(|w| w == *l))
        {
            self.client
                .remove_label(full, n, old)
                .await
                .map_err(PortError::from)?;
        }
        Ok(())
    }

    /// GitHub has no external id on comments: a hidden marker says the
    /// comment is orch's (so it is never taken for a person's reason) and
    /// carries the dedupe key; an existing marker means "already there".
    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()> {
        let (_, full, n) = self.locate(id)?;
        if dedupe_key.is_some() {
            let marker = comment_marker(dedupe_key);
            let existing = self
                .client
                .comments(full, n)
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

    /// A person's comment is one without orch's marker. GitHub's `since`
    /// filters on the update time, so the creation time is checked too: an
    /// old comment edited after orch asked is not a new reason. GitHub's
    /// times are whole seconds: a comment in the second orch asked counts.
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
