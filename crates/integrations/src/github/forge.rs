//! GitHub behind the engine's `Forge` port: the same rules as Gitea's forge
//! (pull request created or found, merge of exactly the verified head with
//! `sha`, refusals classified by `crate::refusals`, careful branch deletion,
//! commit status), over GitHub's REST API.

use super::client::{GhMerge, GithubClient};
use async_trait::async_trait;
use orch_engine::ports::{Forge, MergeOutcome, PortError, PortResult};
use orch_git::{DeleteOutcome, ProtectedBranches, RepoStore};
use orch_store::MergeLeaseProof;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct GithubForge {
    client: Arc<GithubClient>,
    repos: RepoStore,
    names: BTreeMap<String, String>,
    merge_method: String,
    /// The forge's web address (`https://host`), for links people open.
    web_base: Option<String>,
}

impl GithubForge {
    pub fn new(
        client: Arc<GithubClient>,
        repos: RepoStore,
        names: BTreeMap<String, String>,
        merge_method: &str,
    ) -> GithubForge {
        GithubForge {
            client,
            repos,
            names,
            merge_method: merge_method.to_owned(),
            web_base: None,
        }
    }

    /// Where the forge's web pages are (links in tracker comments).
    pub fn with_web_base(mut self, url: &str) -> GithubForge {
        self.web_base = Some(url.trim_end_matches('/').to_owned());
        self
    }

    pub fn client(&self) -> &Arc<GithubClient> {
        &self.client
    }

    fn full(&self, repo: &str) -> PortResult<&str> {
        self.names.get(repo).map(String::as_str).ok_or_else(|| {
            PortError::invalid(format!(
                "repo {repo:?} has no GitHub `owner/name`; add it to [forge.github.repos]"
            ))
        })
    }
}

#[async_trait]
impl Forge for GithubForge {
    async fn push_branch(&self, repo: &str, branch: &str) -> PortResult<String> {
        self.repos
            .push_branch(repo, branch)
            .await
            .map_err(PortError::from)
    }

    async fn base_head(&self, repo: &str, base: &str) -> PortResult<Option<String>> {
        let full = self.full(repo)?;
        Ok(self
            .client
            .branch(full, base)
            .await
            .map_err(PortError::from)?
            .map(|(sha, _)| sha))
    }

    async fn merge(
        &self,
        lease: &MergeLeaseProof,
        base: &str,
        head: &str,
        _expected_base: &str,
    ) -> PortResult<MergeOutcome> {
        let (repo, branch) = (lease.repo(), lease.branch());
        let full = self.full(repo)?;
        let pr = self
            .client
            .create_or_find_pr(
                full,
                branch,
                base,
                &format!("orch: {branch}"),
                "Opened by orch; merged when the pipeline's merge gate passes.",
            )
            .await
            .map_err(PortError::from)?;
        if !pr.head.sha.is_empty() && pr.head.sha != head {
            return Ok(MergeOutcome::Stale(format!(
                "pull request #{} is at {}, not the verified {head}",
                pr.number, pr.head.sha
            )));
        }
        match self
            .client
            .merge(
                full,
                pr.number,
                &self.merge_method,
                head,
                &format!("Merge {branch} (orch)"),
            )
            .await
            .map_err(PortError::from)?
        {
            GhMerge::Merged { sha } => Ok(MergeOutcome::Merged { sha }),
            GhMerge::NotMerged { status, reason } => {
                crate::refusals::github_merge_refusal(pr.number, status, &reason)
            }
        }
    }

    async fn is_merged(&self, repo: &str, base: &str, head: &str) -> PortResult<bool> {
        let full = self.full(repo)?;
        let prs = self
            .client
            .closed_prs(full, base)
            .await
            .map_err(PortError::from)?;
        Ok(prs
            .iter()
            .any(|p| p.merged_at.is_some() && p.head.sha == head))
    }

    async fn delete_branch(
        &self,
        repo: &str,
        branch: &str,
        protected: &ProtectedBranches,
    ) -> PortResult<DeleteOutcome> {
        if let Some(reason) = protected.refusal(branch) {
            return Ok(DeleteOutcome::Refused { reason });
        }
        let full = self.full(repo)?;
        if self
            .client
            .default_branch(full)
            .await
            .map_err(PortError::from)?
            == branch
        {
            return Ok(DeleteOutcome::Refused {
                reason: format!("{branch} is the repository's default branch"),
            });
        }
        match self
            .client
            .branch(full, branch)
            .await
            .map_err(PortError::from)?
        {
            None => return Ok(DeleteOutcome::NotFound),
            Some((_, true)) => {
                return Ok(DeleteOutcome::Refused {
                    reason: format!("{branch} is protected on GitHub"),
                });
            }
            Some(_) => {}
        }
        let (status, reason) = self
            .client
            .delete_branch(full, branch)
            .await
            .map_err(PortError::from)?;
        Ok(match status {
            204 => DeleteOutcome::Deleted,
            404 | 422 => DeleteOutcome::NotFound,
            _ => DeleteOutcome::Refused {
                reason: format!("GitHub refused ({status}): {reason}"),
            },
        })
    }

    async fn report_verify(
        &self,
        repo: &str,
        sha: &str,
        ok: bool,
        description: &str,
    ) -> PortResult<()> {
        let full = self.full(repo)?;
        self.client
            .create_status(
                full,
                sha,
                if ok { "success" } else { "failure" },
                "orch/verify",
                description,
            )
            .await
            .map_err(PortError::from)
    }

    fn browse_url(&self, repo: &str, branch: &str, path: &str) -> Option<String> {
        let base = self.web_base.as_deref()?;
        let full = self.names.get(repo)?;
        Some(format!("{base}/{full}/tree/{branch}/{path}"))
    }
}
