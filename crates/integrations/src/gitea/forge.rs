//! Gitea/Forgejo behind the engine's `Forge` port.
//!
//! Branches travel by git (the repo's remote is the Gitea clone URL); pull
//! requests, merges, branch deletion and commit statuses go through the API.
//! The merge names the verified head (`head_commit_id`), so Gitea refuses it
//! (409) if the branch moved after verification; a 409 sends the task back to
//! the merge gate, a 405 (protection, required checks) parks it with Gitea's
//! reason (`crate::refusals`).

use super::client::{GiteaClient, MergeAnswer};
use async_trait::async_trait;
use orch_engine::ports::{Forge, MergeOutcome, PortError, PortResult};
use orch_git::{DeleteOutcome, ProtectedBranches, RepoStore};
use orch_store::MergeLeaseProof;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct GiteaForge {
    client: Arc<GiteaClient>,
    repos: RepoStore,
    /// orch repo → `owner/name`.
    names: BTreeMap<String, String>,
    merge_style: String,
    /// The forge's web address (`https://host`), for links people open.
    web_base: Option<String>,
}

impl GiteaForge {
    pub fn new(
        client: Arc<GiteaClient>,
        repos: RepoStore,
        names: BTreeMap<String, String>,
        merge_style: &str,
    ) -> GiteaForge {
        GiteaForge {
            client,
            repos,
            names,
            merge_style: merge_style.to_owned(),
            web_base: None,
        }
    }

    /// Where the forge's web pages are (links in tracker comments).
    pub fn with_web_base(mut self, url: &str) -> GiteaForge {
        self.web_base = Some(url.trim_end_matches('/').to_owned());
        self
    }

    pub fn client(&self) -> &Arc<GiteaClient> {
        &self.client
    }

    fn full(&self, repo: &str) -> PortResult<&str> {
        self.names.get(repo).map(String::as_str).ok_or_else(|| {
            PortError::invalid(format!(
                "repo {repo:?} has no Gitea `owner/name`; add it to [forge.gitea.repos]"
            ))
        })
    }

    async fn ensure_pr(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
    ) -> PortResult<super::client::PullRequest> {
        let full = self.full(repo)?;
        let title = format!("orch: {branch}");
        self.client
            .create_or_find_pr(
                full,
                branch,
                base,
                &title,
                "Opened by orch; merged when the pipeline's merge gate passes.",
            )
            .await
            .map_err(PortError::from)
    }
}

/// `owner/name` from a remote URL (`https://host/owner/name.git`,
/// `git@host:owner/name.git`), for repos not mapped in the config.
pub fn full_name_from_remote(remote: &str) -> Option<String> {
    let trimmed = remote.trim_end_matches('/').trim_end_matches(".git");
    let path = trimmed.rsplit_once(':').map(|(_, p)| p).unwrap_or(trimmed);
    let mut parts = path.rsplit('/').filter(|p| !p.is_empty());
    let name = parts.next()?;
    let owner = parts.next()?;
    Some(format!("{owner}/{name}"))
}

#[async_trait]
impl Forge for GiteaForge {
    async fn push_branch(&self, repo: &str, branch: &str) -> PortResult<String> {
        let sha = self
            .repos
            .push_branch(repo, branch)
            .await
            .map_err(PortError::from)?;
        Ok(sha)
    }

    async fn base_head(&self, repo: &str, base: &str) -> PortResult<Option<String>> {
        let full = self.full(repo)?;
        let b = self
            .client
            .branch(full, base)
            .await
            .map_err(PortError::from)?;
        Ok(b.and_then(|b| b.commit).map(|c| c.id))
    }

    /// Gitea cannot make the merge conditional on the base's commit; the
    /// verified head (`head_commit_id`) is the guard instead, and a base that
    /// moved is merged in by Gitea or refused with 409 (conflict).
    async fn merge(
        &self,
        lease: &MergeLeaseProof,
        base: &str,
        head: &str,
        _expected_base: &str,
    ) -> PortResult<MergeOutcome> {
        let (repo, branch) = (lease.repo(), lease.branch());
        let full = self.full(repo)?;
        let pr = self.ensure_pr(repo, branch, base).await?;
        if pr.merged {
            return Ok(MergeOutcome::Merged {
                sha: pr.merge_commit_sha.unwrap_or_else(|| head.to_owned()),
            });
        }
        if pr.head.sha != head && !pr.head.sha.is_empty() {
            return Ok(MergeOutcome::Stale(format!(
                "pull request #{} is at {}, not the verified {head}",
                pr.number, pr.head.sha
            )));
        }
        let title = format!("Merge {branch} (orch)");
        let message = format!("Merged by orch after verify passed on {head}.");
        match self
            .client
            .merge(full, pr.number, &self.merge_style, head, &title, &message)
            .await
            .map_err(PortError::from)?
        {
            MergeAnswer::Merged => {
                let merged = self.client.get_pr(full, pr.number).await.ok();
                let sha = merged
                    .and_then(|p| p.merge_commit_sha)
                    .unwrap_or_else(|| head.to_owned());
                Ok(MergeOutcome::Merged { sha })
            }
            MergeAnswer::NotMerged { status, reason } => {
                crate::refusals::gitea_merge_refusal(pr.number, status, &reason)
            }
        }
    }

    /// Merged means: a closed pull request into `base` whose head is `head`
    /// and that Gitea marks merged (a squash leaves `head` outside the base's
    /// history, so ancestry alone cannot tell).
    async fn is_merged(&self, repo: &str, base: &str, head: &str) -> PortResult<bool> {
        let full = self.full(repo)?;
        let prs = self
            .client
            .closed_prs(full, base)
            .await
            .map_err(PortError::from)?;
        Ok(prs.iter().any(|p| p.merged && p.head.sha == head))
    }

    /// Never the default or a protected branch: checked here first (orch's
    /// list, the repo's default, Gitea's protection), and Gitea's own 403 is a
    /// refusal too, not a failure.
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
        let default = self
            .client
            .default_branch(full)
            .await
            .map_err(PortError::from)?;
        if default == branch {
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
            Some(b) if b.protected => {
                return Ok(DeleteOutcome::Refused {
                    reason: format!("{branch} is protected on Gitea"),
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
            204 | 200 => DeleteOutcome::Deleted,
            404 => DeleteOutcome::NotFound,
            _ => DeleteOutcome::Refused {
                reason: format!("Gitea refused ({status}): {reason}"),
            },
        })
    }

    /// Report the verify result on a commit (`orch/verify`).
    async fn report_verify(
        &self,
        repo: &str,
        sha: &str,
        ok: bool,
        description: &str,
    ) -> PortResult<()> {
        let full = self.full(repo)?;
        let state = if ok { "success" } else { "failure" };
        self.client
            .create_status(full, sha, state, "orch/verify", description)
            .await
            .map_err(PortError::from)
    }

    fn browse_url(&self, repo: &str, branch: &str, path: &str) -> Option<String> {
        let base = self.web_base.as_deref()?;
        let full = self.names.get(repo)?;
        Some(format!("{base}/{full}/src/branch/{branch}/{path}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn full_names_from_remotes() {
        use super::full_name_from_remote as f;
        assert_eq!(
            f("https://git.example.org/team/app.git").as_deref(),
            Some("team/app")
        );
        assert_eq!(
            f("git@git.example.org:team/app.git").as_deref(),
            Some("team/app")
        );
        assert_eq!(
            f("ssh://git@host:2222/team/app").as_deref(),
            Some("team/app")
        );
        assert_eq!(f("app").as_deref(), None);
    }
}
