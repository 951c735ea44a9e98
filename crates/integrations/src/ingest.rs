//! What a verified webhook does, off the request path: the handler records
//! the delivery and returns; this runs on a background task and routes the
//! event into the pipeline. Failures are logged (and on the task's event log
//! where there is a task); the reconciler repairs what they left undone.

use crate::gitea::GiteaIssuesTracker;
use crate::github::GithubIssuesTracker;
use crate::gitlab::GitlabIssuesTracker;
use crate::jira::JiraTracker;
use crate::linear::LinearTracker;
use crate::plane::PlaneTracker;
use crate::webhook::{
    CheckReported, ItemState, Provider, PullRequestClosed, ReviewReported, WebhookEvent,
};
use async_trait::async_trait;
use orch_core::EventKind;
use orch_core::{EventInput, Stage};
use orch_engine::pipeline::Pipeline;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Takes verified events (the server's background side).
#[async_trait]
pub trait WebhookSink: Send + Sync {
    async fn handle(&self, provider: Provider, event: WebhookEvent);
}

/// What handling an event did, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    Routed(String),
    Ignored(String),
    Failed(String),
}

/// The real sink: routes tracker states and forge events into the pipeline.
pub struct Ingest {
    pipeline: Arc<Pipeline>,
    plane: Option<Arc<PlaneTracker>>,
    /// Forge `owner/name` → orch repo.
    forge_repos: BTreeMap<String, String>,
    github_issues: Option<Arc<GithubIssuesTracker>>,
    gitea_issues: Option<Arc<GiteaIssuesTracker>>,
    gitlab_issues: Option<Arc<GitlabIssuesTracker>>,
    linear: Option<Arc<LinearTracker>>,
    jira: Option<Arc<JiraTracker>>,
}

impl Ingest {
    pub fn new(
        pipeline: Arc<Pipeline>,
        plane: Option<Arc<PlaneTracker>>,
        forge_repos: BTreeMap<String, String>,
    ) -> Ingest {
        Ingest {
            pipeline,
            plane,
            forge_repos,
            github_issues: None,
            gitea_issues: None,
            gitlab_issues: None,
            linear: None,
            jira: None,
        }
    }

    /// Route GitHub `issues` label events to this tracker.
    pub fn with_github_issues(mut self, t: Option<Arc<GithubIssuesTracker>>) -> Ingest {
        self.github_issues = t;
        self
    }

    /// Route Gitea/Forgejo issue label events to this tracker.
    pub fn with_gitea_issues(mut self, t: Option<Arc<GiteaIssuesTracker>>) -> Ingest {
        self.gitea_issues = t;
        self
    }

    /// Route GitLab issue label events to this tracker.
    pub fn with_gitlab_issues(mut self, t: Option<Arc<GitlabIssuesTracker>>) -> Ingest {
        self.gitlab_issues = t;
        self
    }

    /// Route Linear issue state events to this tracker.
    pub fn with_linear(mut self, t: Option<Arc<LinearTracker>>) -> Ingest {
        self.linear = t;
        self
    }

    /// Route Jira issue status events to this tracker.
    pub fn with_jira(mut self, t: Option<Arc<JiraTracker>>) -> Ingest {
        self.jira = t;
        self
    }

    pub async fn process(&self, provider: Provider, event: WebhookEvent) -> Handled {
        match (provider, event) {
            (_, WebhookEvent::Ignored { reason }) => Handled::Ignored(reason),
            (Provider::Plane, WebhookEvent::ItemState(s)) => self.plane_state(s).await,
            (Provider::Github, WebhookEvent::ItemState(s)) if self.github_issues.is_some() => {
                self.github_label(s).await
            }
            (Provider::Gitea, WebhookEvent::ItemState(s)) if self.gitea_issues.is_some() => {
                self.gitea_labels(s).await
            }
            (Provider::Gitlab, WebhookEvent::ItemState(s)) if self.gitlab_issues.is_some() => {
                self.gitlab_labels(s).await
            }
            (Provider::Linear, WebhookEvent::ItemState(s)) if self.linear.is_some() => {
                self.linear_state(s).await
            }
            (Provider::Jira, WebhookEvent::ItemState(s)) if self.jira.is_some() => {
                self.jira_state(s).await
            }
            (p, WebhookEvent::ItemState(_)) => Handled::Ignored(format!(
                "{} issues are not orch's tracker here (tracker.kind)",
                p.as_str()
            )),
            (_, WebhookEvent::PullRequestClosed(pr)) => self.pull_request_closed(pr).await,
            (_, WebhookEvent::CheckReported(c)) => self.check_reported(c).await,
            (_, WebhookEvent::ReviewReported(r)) => self.review_reported(r).await,
        }
    }

    async fn plane_state(&self, s: ItemState) -> Handled {
        let Some(plane) = &self.plane else {
            return Handled::Ignored("Plane is not orch's tracker (tracker.kind)".into());
        };
        if plane.repo_of(&s.project).is_none() {
            return Handled::Ignored(format!(
                "Plane project {} is not served (tracker.plane.repos)",
                s.project
            ));
        }
        plane.remember(&s.item, &s.project);
        let state = match plane.state_name(&s.project, &s.state).await {
            Ok(Some(n)) => n,
            Ok(None) => return Handled::Ignored("a state Plane does not list".into()),
            Err(e) => return Handled::Failed(format!("resolving the state: {e}")),
        };
        match self
            .pipeline
            .on_item_state(&s.item, &state, None, "webhook:plane")
            .await
        {
            Ok(r) => Handled::Routed(format!("{state}: {r:?}")),
            Err(e) => Handled::Failed(format!("{state}: {e}")),
        }
    }

    /// A gate label added to a GitHub issue: the label is the state.
    async fn github_label(&self, s: ItemState) -> Handled {
        let Some(t) = &self.github_issues else {
            return Handled::Ignored("GitHub Issues is not orch's tracker".into());
        };
        let number: u64 = match s.item.parse() {
            Ok(n) => n,
            Err(_) => return Handled::Ignored(format!("issue {:?} is not a number", s.item)),
        };
        let Some(item) = t.item_id(&s.project, number) else {
            return Handled::Ignored(format!("repository {} is not served", s.project));
        };
        let crate::webhook::StateRef::Name(state) = &s.state else {
            return Handled::Ignored("a GitHub state is a label name".into());
        };
        // On GitHub only the labels that name a state are states; any other
        // label ("bug") is just a label, not an unmapped state.
        if self
            .pipeline
            .config()
            .tracker
            .states
            .key_of(state)
            .is_none()
        {
            return Handled::Ignored(format!(
                "label {state:?} names no state of [tracker.states]"
            ));
        }
        match self
            .pipeline
            .on_item_state(&item, state, None, "webhook:github")
            .await
        {
            Ok(r) => Handled::Routed(format!("{state}: {r:?}")),
            Err(e) => Handled::Failed(format!("{state}: {e}")),
        }
    }

    /// A Gitea issue's labels changed: the state is the one its labels name
    /// now (a gate over a stage, STOP over all: `labels::state_of`).
    async fn gitea_labels(&self, s: ItemState) -> Handled {
        let Some(t) = &self.gitea_issues else {
            return Handled::Ignored("Gitea issues are not orch's tracker".into());
        };
        let number: u64 = match s.item.parse() {
            Ok(n) => n,
            Err(_) => return Handled::Ignored(format!("issue {:?} is not a number", s.item)),
        };
        let Some(item) = t.item_id(&s.project, number) else {
            return Handled::Ignored(format!("repository {} is not served", s.project));
        };
        let crate::webhook::StateRef::Labels(labels) = &s.state else {
            return Handled::Ignored("a Gitea state is the issue's label set".into());
        };
        let states = &self.pipeline.config().tracker.states;
        let Some(state) = crate::labels::state_of(labels, states) else {
            return Handled::Ignored(format!(
                "no label of {labels:?} names a state of [tracker.states]"
            ));
        };
        match self
            .pipeline
            .on_item_state(&item, &state, None, "webhook:gitea")
            .await
        {
            Ok(r) => Handled::Routed(format!("{state}: {r:?}")),
            Err(e) => Handled::Failed(format!("{state}: {e}")),
        }
    }

    /// A CI check of a commit was reported: the repo's tasks the merge gate
    /// holds look at their required checks again (read from the forge, so
    /// this delivery's own words decide nothing).
    async fn check_reported(&self, c: CheckReported) -> Handled {
        let Some(repo) = self.forge_repos.get(&c.repo) else {
            return Handled::Ignored(format!("repository {} is not served", c.repo));
        };
        match self.pipeline.forge_reported(repo).await {
            Ok(n) => Handled::Routed(format!(
                "check {:?} is {} on {}: {n} task(s) in review or merge looked again",
                c.name, c.state, c.sha
            )),
            Err(e) => Handled::Failed(e.to_string()),
        }
    }

    /// A person reviewed a pull request: the repo's tasks in review or
    /// merge read the reviews again (from the forge: this delivery's words
    /// decide nothing).
    async fn review_reported(&self, r: ReviewReported) -> Handled {
        let Some(repo) = self.forge_repos.get(&r.repo) else {
            return Handled::Ignored(format!("repository {} is not served", r.repo));
        };
        match self.pipeline.forge_reported(repo).await {
            Ok(n) => Handled::Routed(format!(
                "review ({}) of pull request #{}: {n} task(s) in review or merge looked again",
                r.state, r.number
            )),
            Err(e) => Handled::Failed(e.to_string()),
        }
    }

    /// A GitLab issue's labels changed: the state is the one its `orch::`
    /// labels name now (`gitlab::tracker::state_of`).
    async fn gitlab_labels(&self, s: ItemState) -> Handled {
        let Some(t) = &self.gitlab_issues else {
            return Handled::Ignored("GitLab issues are not orch's tracker".into());
        };
        let iid: u64 = match s.item.parse() {
            Ok(n) => n,
            Err(_) => return Handled::Ignored(format!("issue {:?} is not a number", s.item)),
        };
        let Some(item) = t.item_id(&s.project, iid) else {
            return Handled::Ignored(format!("project {} is not served", s.project));
        };
        let crate::webhook::StateRef::Labels(labels) = &s.state else {
            return Handled::Ignored("a GitLab state is the issue's label set".into());
        };
        let states = &self.pipeline.config().tracker.states;
        let Some(state) = crate::gitlab::tracker::state_of(labels, states) else {
            return Handled::Ignored(format!(
                "no orch:: label of {labels:?} names a state of [tracker.states]"
            ));
        };
        self.route(&item, &state, "webhook:gitlab").await
    }

    /// A Linear issue moved to a workflow state: orch's state is the one the
    /// team's mapping gives the state's name (looked up by id).
    async fn linear_state(&self, s: ItemState) -> Handled {
        let Some(t) = &self.linear else {
            return Handled::Ignored("Linear is not orch's tracker".into());
        };
        if t.team_of(&s.item).is_none() {
            return Handled::Ignored(format!("Linear team {} is not served", s.project));
        }
        let crate::webhook::StateRef::Id { id, name } = &s.state else {
            return Handled::Ignored("a Linear state is named by its id".into());
        };
        let state = match t.state_of_ref(&s.project, id, name.as_deref()).await {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Handled::Ignored(format!(
                    "Linear state {name:?} stands for no gate or stage of team {}",
                    s.project
                ));
            }
            Err(e) => return Handled::Failed(format!("resolving the state: {e}")),
        };
        self.route(&s.item, &state, "webhook:linear").await
    }

    /// A Jira issue moved to a status: orch's state is the one the
    /// project's mapping gives that status name.
    async fn jira_state(&self, s: ItemState) -> Handled {
        let Some(t) = &self.jira else {
            return Handled::Ignored("Jira is not orch's tracker".into());
        };
        let Some((key, project)) = t.project_of(&s.item) else {
            return Handled::Ignored(format!("Jira project {} is not served", s.project));
        };
        let crate::webhook::StateRef::Name(name) = &s.state else {
            return Handled::Ignored("a Jira status is named by its name".into());
        };
        let Some(state) = t.orch_state(project, name) else {
            return Handled::Ignored(format!(
                "Jira status {name:?} stands for no gate or stage of project {key}"
            ));
        };
        self.route(&s.item, &state, "webhook:jira").await
    }

    /// Hand a tracker item's new state to the pipeline.
    async fn route(&self, item: &str, state: &str, via: &str) -> Handled {
        match self.pipeline.on_item_state(item, state, None, via).await {
            Ok(r) => Handled::Routed(format!("{state}: {r:?}")),
            Err(e) => Handled::Failed(format!("{state}: {e}")),
        }
    }

    /// A pull request closed on the forge. Merged: the merge step can be
    /// proven done, so the task is ticked (a merge in flight finishes through
    /// its marker). Closed unmerged by someone else: noted on the task, which
    /// a person then moves on; orch never cancels because of it.
    async fn pull_request_closed(&self, pr: PullRequestClosed) -> Handled {
        let Some(repo) = self.forge_repos.get(&pr.repo) else {
            return Handled::Ignored(format!("repository {} is not served", pr.repo));
        };
        let store = self.pipeline.store();
        let tasks = match store
            .list_tasks(&orch_store::TaskFilter {
                repo: Some(repo.clone()),
                ..Default::default()
            })
            .await
        {
            Ok(t) => t,
            Err(e) => return Handled::Failed(e.to_string()),
        };
        let Some(task) = tasks
            .into_iter()
            .find(|t| t.branch == pr.branch && !t.stage.is_terminal())
        else {
            return Handled::Ignored(format!("no live task has branch {}", pr.branch));
        };
        let (kind, msg) = if pr.merged {
            (
                EventKind::PrMerged,
                format!("pull request #{} was merged on the forge", pr.number),
            )
        } else {
            (
                EventKind::PrClosed,
                format!(
                    "pull request #{} was closed without merging on the forge; a person decides what next",
                    pr.number
                ),
            )
        };
        let _ = store
            .append_event(task.id, EventInput::new("webhook", kind, msg.clone()))
            .await;
        let result = if pr.merged {
            // A merge in flight finishes (or is proven done) through its marker.
            if task.stage == Stage::Merge {
                self.pipeline.tick(task.id).await.map(|_| ())
            } else {
                Ok(())
            }
        } else {
            self.pipeline
                .pull_request_closed(task.id, &msg)
                .await
                .map(|_| ())
        };
        if let Err(e) = result {
            return Handled::Failed(e.to_string());
        }
        Handled::Routed(msg)
    }
}

#[async_trait]
impl WebhookSink for Ingest {
    async fn handle(&self, provider: Provider, event: WebhookEvent) {
        match self.process(provider, event).await {
            Handled::Routed(m) => tracing::info!(provider = provider.as_str(), "webhook: {m}"),
            Handled::Ignored(m) => {
                tracing::debug!(provider = provider.as_str(), "webhook ignored: {m}")
            }
            Handled::Failed(m) => {
                tracing::warn!(
                    provider = provider.as_str(),
                    "webhook handling failed (the reconciler repairs it): {m}"
                )
            }
        }
    }
}
