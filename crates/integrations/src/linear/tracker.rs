//! Linear issues as the tracker. An item is an issue, named by its
//! identifier (`ENG-42`: the team's key and the issue's number), which
//! Linear's `issue(id:)` and `issueUpdate(id:)` accept as they accept the
//! uuid. The state is the issue's workflow state: orch's gates and stages
//! map to each team's states by name (`[tracker.linear.teams.<KEY>]
//! workflow_states`, else the names of `[tracker.states]`), resolved to
//! state ids through the team's state list (`states::TeamStates`).
//!
//! orch's comments end with the hidden marker the other trackers use
//! (`labels::marked_comment`); Linear keeps Markdown, and an HTML comment
//! in it is not shown. orch's stage labels (`auto_labels`) are not set on
//! Linear: the workflow state already shows the stage, and Linear labels
//! would need ids per team.

use super::client::{LinearClient, LnComment, LnIssue};
use super::states::TeamStates;
use crate::labels::{comment_marker, marked_comment, newest_person_comment, parse_item};
use async_trait::async_trait;
use orch_config::TrackerStates;
use orch_core::Timestamp;
use orch_engine::ports::{PortError, PortResult, Tracker};
use orch_store::TrackerItem;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Comment pages read at most (100 comments a page).
const MAX_COMMENT_PAGES: u32 = 30;

/// One served team: its orch repo and what each gate and stage is called
/// in it.
#[derive(Debug, Clone)]
pub struct Team {
    pub repo: String,
    /// `[tracker.states]` with the team's Linear names in place.
    pub names: TrackerStates,
}

pub struct LinearTracker {
    client: Arc<LinearClient>,
    /// Team key (upper case) → team.
    teams: BTreeMap<String, Team>,
    /// orch's own names (`[tracker.states]`): what the engine speaks.
    states: TrackerStates,
    cache: TeamStates,
}

impl LinearTracker {
    pub fn new(
        client: Arc<LinearClient>,
        teams: BTreeMap<String, Team>,
        states: TrackerStates,
    ) -> LinearTracker {
        LinearTracker {
            client,
            teams: teams
                .into_iter()
                .map(|(k, t)| (k.to_ascii_uppercase(), t))
                .collect(),
            states,
            cache: TeamStates::new(Duration::from_secs(10)),
        }
    }

    pub fn client(&self) -> &Arc<LinearClient> {
        &self.client
    }

    pub fn teams(&self) -> &BTreeMap<String, Team> {
        &self.teams
    }

    pub fn team_states(&self) -> &TeamStates {
        &self.cache
    }

    /// The served team of an identifier (`ENG-42` → `ENG`).
    pub fn team_of(&self, identifier: &str) -> Option<(&str, &Team)> {
        let (key, _) = parse_item(identifier)?;
        self.teams
            .get_key_value(&key.to_ascii_uppercase())
            .map(|(k, t)| (k.as_str(), t))
    }

    /// orch's name of the team's Linear state `linear` (`None`: a state
    /// orch has no gate or stage for).
    pub fn orch_state(&self, team: &Team, linear: &str) -> Option<String> {
        team.names.name_in(linear, &self.states).map(str::to_owned)
    }

    /// The team's Linear name of orch's state `orch`.
    pub fn linear_state<'a>(&self, team: &'a Team, orch: &'a str) -> &'a str {
        self.states.name_in(orch, &team.names).unwrap_or(orch)
    }

    /// orch's state of a Linear state reference of team `key` (a webhook's
    /// or a listing's): the id decides (a renamed state keeps its id), the
    /// name is the fallback when the states cannot be read.
    pub async fn state_of_ref(
        &self,
        key: &str,
        id: &str,
        name: Option<&str>,
    ) -> PortResult<Option<String>> {
        let Some((key, team)) = self.teams.get_key_value(&key.to_ascii_uppercase()) else {
            return Ok(None);
        };
        let linear = match self.cache.name_of(&self.client, key, id).await {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(None),
            Err(e) => match name {
                Some(n) => {
                    tracing::warn!(error = %e, "Linear states unavailable; using the name sent");
                    n.to_owned()
                }
                None => return Err(PortError::from(e)),
            },
        };
        Ok(self.orch_state(team, &linear))
    }

    /// An issue as the engine sees it.
    pub fn to_item(&self, team: &Team, issue: LnIssue) -> TrackerItem {
        let state = issue
            .state
            .as_ref()
            .and_then(|s| self.orch_state(team, &s.name))
            .unwrap_or_default();
        TrackerItem {
            id: issue.identifier,
            project: team.repo.clone(),
            title: issue.title,
            body: issue.description.unwrap_or_default(),
            state,
            labels: Vec::new(),
            created_at: Timestamp::EPOCH,
            updated_at: Timestamp::EPOCH,
        }
    }

    fn served(&self, id: &str) -> PortResult<(&str, &Team)> {
        self.team_of(id).ok_or_else(|| {
            PortError::invalid(format!(
                "{id:?} is not an issue of a team the Linear tracker serves ([tracker.linear.teams])"
            ))
        })
    }

    async fn issue(&self, id: &str) -> PortResult<LnIssue> {
        self.client
            .issue(id)
            .await
            .map_err(PortError::from)?
            .ok_or_else(|| PortError::not_found(format!("Linear has no issue {id}")))
    }

    /// Every comment of the issue (a bounded walk of its pages).
    async fn comments(&self, id: &str) -> PortResult<Vec<LnComment>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_COMMENT_PAGES {
            let p = self
                .client
                .comments_page(id, after.as_deref())
                .await
                .map_err(PortError::from)?;
            out.extend(p.items);
            match p.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Tracker for LinearTracker {
    async fn item(&self, id: &str) -> PortResult<Option<TrackerItem>> {
        let Some((_, team)) = self.team_of(id) else {
            return Ok(None);
        };
        Ok(self
            .client
            .issue(id)
            .await
            .map_err(PortError::from)?
            .map(|i| self.to_item(team, i)))
    }

    /// `issueUpdate` with the id of the team's state that stands for
    /// `state`; a name the team lacks is a clear error, nothing changed.
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        let (key, team) = self.served(id)?;
        let linear = self.linear_state(team, state);
        let found = self
            .cache
            .by_name(&self.client, key, linear)
            .await
            .map_err(PortError::from)?
            .ok_or_else(|| {
                PortError::invalid(format!(
                    "Linear team {key} has no workflow state named {linear:?} (for orch's {state:?}); add it in Linear or map it in [tracker.linear.teams.{key}] workflow_states"
                ))
            })?;
        self.client
            .set_state(id, &found.id)
            .await
            .map_err(PortError::from)
    }

    async fn set_labels(&self, _id: &str, _labels: &[String]) -> PortResult<()> {
        Ok(())
    }

    /// A hidden marker says the comment is orch's and carries the dedupe
    /// key; an existing marker means "already there".
    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()> {
        self.served(id)?;
        if dedupe_key.is_some() {
            let marker = comment_marker(dedupe_key);
            if self
                .comments(id)
                .await?
                .iter()
                .any(|c| c.body.contains(&marker))
            {
                return Ok(());
            }
        }
        // `commentCreate` takes the issue's id, not its identifier.
        let issue = self.issue(id).await?;
        self.client
            .add_comment(&issue.id, &marked_comment(body, dedupe_key))
            .await
            .map_err(PortError::from)
    }

    /// The newest comment without orch's marker created at or after `since`.
    async fn person_comment_since(&self, id: &str, since: Timestamp) -> PortResult<Option<String>> {
        self.served(id)?;
        let comments = self.comments(id).await?;
        Ok(newest_person_comment(
            comments.into_iter().map(|c| (c.body, c.created_at)),
            since.millis(),
        ))
    }
}
