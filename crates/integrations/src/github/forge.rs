//! GitHub behind the engine's `Forge` port: the rules of every pull-request
//! forge (`crate::pr_forge`) over GitHub's REST API. The merge names the
//! verified head (`sha`); refusals are classified by `crate::refusals`.

use super::client::{GhMerge, GhPull, GithubClient};
use crate::pr_forge::{BranchInfo, PrForge, PullRequestApi, PullRequestInfo};
use async_trait::async_trait;
use orch_core::ci::{Check, CheckState};
use orch_core::people::{PersonReview, ReviewComment, ReviewVerdict};
use orch_engine::ports::{MergeOutcome, PortError, PortResult};
use orch_git::{DeleteOutcome, RepoStore};
use std::collections::BTreeMap;
use std::sync::Arc;

/// GitHub's pull-request calls.
pub struct GithubPrApi {
    client: Arc<GithubClient>,
    merge_method: String,
}

pub type GithubForge = PrForge<GithubPrApi>;

impl PrForge<GithubPrApi> {
    pub fn new(
        client: Arc<GithubClient>,
        repos: RepoStore,
        names: BTreeMap<String, String>,
        merge_method: &str,
    ) -> GithubForge {
        let api = GithubPrApi {
            client,
            merge_method: merge_method.to_owned(),
        };
        PrForge::over(api, repos, names)
    }

    pub fn client(&self) -> &Arc<GithubClient> {
        &self.api().client
    }
}

fn info(p: &GhPull) -> PullRequestInfo {
    PullRequestInfo {
        number: p.number,
        head_sha: p.head.sha.clone(),
        merged: p.merged_at.is_some(),
        merge_sha: p.merge_commit_sha.clone(),
        draft: p.draft,
        url: p.html_url.clone(),
        node_id: p.node_id.clone(),
    }
}

#[async_trait]
impl PullRequestApi for GithubPrApi {
    fn provider(&self) -> &'static str {
        "GitHub"
    }

    fn config_section(&self) -> &'static str {
        "forge.github"
    }

    fn browse_path(&self, branch: &str, path: &str) -> String {
        format!("tree/{branch}/{path}")
    }

    async fn branch(&self, full: &str, branch: &str) -> PortResult<Option<BranchInfo>> {
        let b = self.client.branch(full, branch).await?;
        Ok(b.map(|b| BranchInfo {
            sha: Some(b.sha),
            protected: b.protected,
            required_checks: b.required_checks,
        }))
    }

    async fn default_branch(&self, full: &str) -> PortResult<String> {
        Ok(self.client.default_branch(full).await?)
    }

    async fn create_or_find_pr(
        &self,
        full: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
        draft: bool,
    ) -> PortResult<PullRequestInfo> {
        let pr = self
            .client
            .create_or_find_pr(full, head, base, title, body, draft)
            .await?;
        Ok(info(&pr))
    }

    async fn find_open_pr(
        &self,
        full: &str,
        head: &str,
        base: &str,
    ) -> PortResult<Option<PullRequestInfo>> {
        Ok(self
            .client
            .find_open_pr(full, head, base)
            .await?
            .map(|p| info(&p)))
    }

    async fn mark_ready(&self, _: &str, pr: &PullRequestInfo, _: &str) -> PortResult<()> {
        let id = pr.node_id.as_deref().ok_or_else(|| {
            PortError::invalid(format!(
                "GitHub gave no node_id for pull request #{}; mark it ready for review by hand",
                pr.number
            ))
        })?;
        Ok(self.client.mark_ready(id).await?)
    }

    /// `APPROVED` and `CHANGES_REQUESTED` are verdicts, `COMMENTED` none;
    /// dismissed and pending reviews do not count. Inline comments come
    /// from one listing and go to the review that made them.
    async fn reviews(&self, full: &str, pr: &PullRequestInfo) -> PortResult<Vec<PersonReview>> {
        let reviews = self.client.reviews(full, pr.number).await?;
        // A comment-only review's inline comments ask for changes too.
        let wants_comments = reviews
            .iter()
            .any(|r| r.state == "CHANGES_REQUESTED" || r.state == "COMMENTED");
        let comments = if wants_comments {
            self.client.review_comments(full, pr.number).await?
        } else {
            Vec::new()
        };
        Ok(reviews
            .into_iter()
            .filter_map(|r| {
                let verdict = match r.state.as_str() {
                    "APPROVED" => ReviewVerdict::Approved,
                    "CHANGES_REQUESTED" => ReviewVerdict::ChangesRequested,
                    "COMMENTED" => ReviewVerdict::Commented,
                    _ => return None,
                };
                Some(PersonReview {
                    author: r.user.map(|u| u.login).unwrap_or_default(),
                    verdict,
                    body: r.body.unwrap_or_default(),
                    commit: r.commit_id.unwrap_or_default(),
                    comments: comments
                        .iter()
                        .filter(|c| c.pull_request_review_id == Some(r.id))
                        .map(|c| ReviewComment {
                            path: c.path.clone(),
                            line: c.line,
                            body: c.body.clone(),
                        })
                        .collect(),
                })
            })
            .collect())
    }

    async fn merge(
        &self,
        full: &str,
        pr: &PullRequestInfo,
        head: &str,
        branch: &str,
    ) -> PortResult<MergeOutcome> {
        let title = format!("Merge {branch} (orch)");
        match self
            .client
            .merge(full, pr.number, &self.merge_method, head, &title)
            .await?
        {
            GhMerge::Merged { sha } => Ok(MergeOutcome::Merged { sha }),
            GhMerge::NotMerged { status, reason } => {
                crate::refusals::github_merge_refusal(pr.number, status, &reason)
            }
        }
    }

    async fn closed_prs(&self, full: &str, base: &str) -> PortResult<Vec<PullRequestInfo>> {
        let prs = self.client.closed_prs(full, base).await?;
        Ok(prs.iter().map(info).collect())
    }

    async fn delete_branch(&self, full: &str, branch: &str) -> PortResult<DeleteOutcome> {
        let (status, reason) = self.client.delete_branch(full, branch).await?;
        Ok(match status {
            204 => DeleteOutcome::Deleted,
            404 | 422 => DeleteOutcome::NotFound,
            _ => DeleteOutcome::Refused {
                reason: format!("GitHub refused ({status}): {reason}"),
            },
        })
    }

    async fn create_status(
        &self,
        full: &str,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
    ) -> PortResult<()> {
        self.client
            .create_status(full, sha, state, context, description)
            .await
            .map_err(PortError::from)
    }

    /// Check runs first (their output says what failed), then the commit
    /// statuses. A run passes as `success`, `neutral` or `skipped` (as
    /// GitHub's required checks count them) and waits until `completed`; a
    /// status passes as `success` and waits while `pending`.
    async fn checks(&self, full: &str, sha: &str) -> PortResult<Vec<Check>> {
        let mut checks: Vec<Check> = self
            .client
            .check_runs(full, sha)
            .await?
            .into_iter()
            .map(|run| {
                let conclusion = run.conclusion.unwrap_or_default();
                let state = match (run.status.as_str(), conclusion.as_str()) {
                    ("completed", "success" | "neutral" | "skipped") => CheckState::Success,
                    ("completed", _) => CheckState::Failure,
                    _ => CheckState::Pending,
                };
                let out = run.output.unwrap_or_default();
                let detail = [out.title, out.summary, out.text]
                    .into_iter()
                    .flatten()
                    .filter(|t| !t.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join("\n\n");
                Check {
                    name: run.name,
                    state,
                    conclusion: if conclusion.is_empty() {
                        run.status
                    } else {
                        conclusion
                    },
                    detail,
                    url: run.html_url,
                }
            })
            .collect();
        for s in self.client.statuses(full, sha).await? {
            checks.push(Check {
                state: match s.state.as_str() {
                    "success" => CheckState::Success,
                    "pending" => CheckState::Pending,
                    _ => CheckState::Failure,
                },
                name: s.context,
                conclusion: s.state,
                detail: s.description.unwrap_or_default(),
                url: s.target_url.filter(|u| !u.is_empty()),
            });
        }
        Ok(checks)
    }
}
