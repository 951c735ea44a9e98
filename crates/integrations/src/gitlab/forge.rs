//! GitLab behind the engine's `Forge` port: the rules of every pull-request
//! forge (`crate::pr_forge`) over GitLab's merge requests. The merge names
//! the verified head (`sha`); refusals are classified by `crate::refusals`.

use super::client::{GitlabClient, GlMerge, GlMergeRequest};
use crate::pr_forge::{BranchInfo, PrForge, PullRequestApi, PullRequestInfo};
use async_trait::async_trait;
use orch_core::ci::{Check, CheckState};
use orch_core::people::{PersonReview, ReviewVerdict};
use orch_engine::ports::{MergeOutcome, PortError, PortResult};
use orch_git::{DeleteOutcome, RepoStore};
use std::collections::BTreeMap;
use std::sync::Arc;

/// GitLab's merge-request calls.
pub struct GitlabMrApi {
    client: Arc<GitlabClient>,
    squash: bool,
}

pub type GitlabForge = PrForge<GitlabMrApi>;

impl PrForge<GitlabMrApi> {
    /// `names`: orch repo → the project's path or numeric id.
    pub fn new(
        client: Arc<GitlabClient>,
        repos: RepoStore,
        names: BTreeMap<String, String>,
        squash: bool,
    ) -> GitlabForge {
        PrForge::over(GitlabMrApi { client, squash }, repos, names)
    }

    pub fn client(&self) -> &Arc<GitlabClient> {
        &self.api().client
    }
}

fn info(mr: &GlMergeRequest) -> PullRequestInfo {
    PullRequestInfo {
        number: mr.iid,
        head_sha: mr.sha.clone().unwrap_or_default(),
        merged: mr.merged(),
        merge_sha: mr.landed_sha().filter(|_| mr.merged()),
        draft: mr.draft || mr.title.starts_with(DRAFT),
        url: mr.web_url.clone(),
        node_id: None,
    }
}

/// The title prefix that makes a GitLab merge request a draft.
const DRAFT: &str = "Draft: ";

/// orch's status states are GitHub's words; GitLab says `failed`.
fn gitlab_state(state: &str) -> &str {
    match state {
        "failure" | "error" => "failed",
        other => other,
    }
}

#[async_trait]
impl PullRequestApi for GitlabMrApi {
    fn provider(&self) -> &'static str {
        "GitLab"
    }

    fn config_section(&self) -> &'static str {
        "forge.gitlab"
    }

    fn browse_path(&self, branch: &str, path: &str) -> String {
        format!("-/tree/{branch}/{path}")
    }

    async fn branch(&self, project: &str, branch: &str) -> PortResult<Option<BranchInfo>> {
        let b = self.client.branch(project, branch).await?;
        // GitLab's protection names no checks: "pipelines must succeed" is
        // a project setting, and the pipeline's statuses are read as checks.
        Ok(b.map(|b| BranchInfo {
            sha: Some(b.commit.id),
            protected: b.protected,
            required_checks: Vec::new(),
        }))
    }

    async fn default_branch(&self, project: &str) -> PortResult<String> {
        Ok(self.client.default_branch(project).await?)
    }

    async fn create_or_find_pr(
        &self,
        project: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
        draft: bool,
    ) -> PortResult<PullRequestInfo> {
        let title = if draft {
            format!("{DRAFT}{title}")
        } else {
            title.to_owned()
        };
        let mr = self
            .client
            .create_or_find_mr(project, head, base, &title, body)
            .await?;
        Ok(info(&mr))
    }

    async fn find_open_pr(
        &self,
        project: &str,
        head: &str,
        base: &str,
    ) -> PortResult<Option<PullRequestInfo>> {
        Ok(self
            .client
            .find_open_mr(project, head, base)
            .await?
            .map(|m| info(&m)))
    }

    async fn mark_ready(&self, project: &str, pr: &PullRequestInfo, title: &str) -> PortResult<()> {
        Ok(self.client.set_mr_title(project, pr.number, title).await?)
    }

    /// GitLab has approvals and reviewers' states rather than reviews with
    /// a verdict: an approval is an approving review of the merge request's
    /// head (GitLab resets approvals on a push where the project says so),
    /// a reviewer in `requested_changes` a change request. Their words are
    /// in discussions, which orch does not read yet.
    async fn reviews(&self, project: &str, pr: &PullRequestInfo) -> PortResult<Vec<PersonReview>> {
        let review = |author: String, verdict| PersonReview {
            author,
            verdict,
            body: String::new(),
            commit: pr.head_sha.clone(),
            comments: Vec::new(),
        };
        let mut out: Vec<PersonReview> = self
            .client
            .reviewers(project, pr.number)
            .await?
            .into_iter()
            .filter(|(_, state)| state == "requested_changes")
            .map(|(user, _)| review(user, ReviewVerdict::ChangesRequested))
            .collect();
        out.extend(
            self.client
                .approved_by(project, pr.number)
                .await?
                .into_iter()
                .map(|user| review(user, ReviewVerdict::Approved)),
        );
        Ok(out)
    }

    /// Commit statuses (pipelines' jobs report as statuses too):
    /// `success` and `skipped` pass, `failed` and `canceled` fail, the rest
    /// (`pending`, `running`, `created`, `manual`, …) wait.
    async fn checks(&self, project: &str, sha: &str) -> PortResult<Vec<Check>> {
        Ok(self
            .client
            .statuses(project, sha)
            .await?
            .into_iter()
            .map(|(name, status, description, url)| Check {
                state: match status.as_str() {
                    "success" | "skipped" => CheckState::Success,
                    "failed" | "canceled" => CheckState::Failure,
                    _ => CheckState::Pending,
                },
                name,
                conclusion: status,
                detail: description,
                url,
            })
            .collect())
    }

    async fn merge(
        &self,
        project: &str,
        pr: &PullRequestInfo,
        head: &str,
        branch: &str,
    ) -> PortResult<MergeOutcome> {
        let message = format!("Merge {branch} (orch)");
        match self
            .client
            .merge(project, pr.number, head, self.squash, &message)
            .await?
        {
            GlMerge::Merged { sha } => Ok(MergeOutcome::Merged { sha }),
            GlMerge::NotMerged { status, reason } => {
                crate::refusals::gitlab_merge_refusal(pr.number, status, &reason)
            }
        }
    }

    async fn closed_prs(&self, project: &str, base: &str) -> PortResult<Vec<PullRequestInfo>> {
        let mrs = self.client.merged_mrs(project, base).await?;
        Ok(mrs.iter().map(info).collect())
    }

    async fn delete_branch(&self, project: &str, branch: &str) -> PortResult<DeleteOutcome> {
        let (status, reason) = self.client.delete_branch(project, branch).await?;
        Ok(match status {
            204 => DeleteOutcome::Deleted,
            404 => DeleteOutcome::NotFound,
            _ => DeleteOutcome::Refused {
                reason: format!("GitLab refused ({status}): {reason}"),
            },
        })
    }

    async fn create_status(
        &self,
        project: &str,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
    ) -> PortResult<()> {
        self.client
            .create_status(project, sha, gitlab_state(state), context, description)
            .await
            .map_err(PortError::from)
    }
}
