//! Gitea/Forgejo behind the engine's `Forge` port: the rules of every
//! pull-request forge (`crate::pr_forge`) over Gitea's API.
//!
//! The merge names the verified head (`head_commit_id`), so Gitea refuses it
//! (409) if the branch moved after verification; a 409 sends the task back to
//! the merge gate, a 405 (protection, required checks) parks it with Gitea's
//! reason (`crate::refusals`). Gitea cannot make the merge conditional on the
//! base's commit; the verified head is the guard instead, and a base that
//! moved is merged in by Gitea or refused with 409 (conflict).

use super::client::{GiteaClient, MergeAnswer, PullRequest};
use crate::pr_forge::{BranchInfo, PrForge, PullRequestApi, PullRequestInfo};
use async_trait::async_trait;
use orch_core::ci::{CHECK_DETAIL_MAX, Check, CheckState};
use orch_core::people::{PersonReview, ReviewComment, ReviewVerdict};
use orch_engine::ports::{MergeOutcome, PortError, PortResult};
use orch_git::{DeleteOutcome, RepoStore};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Failed checks whose Actions log one look reads at most: each costs three
/// calls, and a handful of failures already tells the developer enough.
const MAX_LOGS: usize = 3;

/// Gitea's pull-request calls.
pub struct GiteaPrApi {
    client: Arc<GiteaClient>,
    merge_style: String,
}

pub type GiteaForge = PrForge<GiteaPrApi>;

impl PrForge<GiteaPrApi> {
    pub fn new(
        client: Arc<GiteaClient>,
        repos: RepoStore,
        names: BTreeMap<String, String>,
        merge_style: &str,
    ) -> GiteaForge {
        let api = GiteaPrApi {
            client,
            merge_style: merge_style.to_owned(),
        };
        PrForge::over(api, repos, names)
    }

    pub fn client(&self) -> &Arc<GiteaClient> {
        &self.api().client
    }
}

fn info(p: &PullRequest) -> PullRequestInfo {
    PullRequestInfo {
        number: p.number,
        head_sha: p.head.sha.clone(),
        merged: p.merged,
        merge_sha: p.merge_commit_sha.clone(),
        draft: p.draft || p.title.starts_with(WIP),
        url: p.html_url.clone(),
        node_id: None,
    }
}

/// The title prefix that makes a Gitea pull request a draft (one of
/// Gitea's default `WORK_IN_PROGRESS_PREFIXES`).
const WIP: &str = "WIP: ";

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
impl PullRequestApi for GiteaPrApi {
    fn provider(&self) -> &'static str {
        "Gitea"
    }

    fn config_section(&self) -> &'static str {
        "forge.gitea"
    }

    fn browse_path(&self, branch: &str, path: &str) -> String {
        format!("src/branch/{branch}/{path}")
    }

    async fn branch(&self, full: &str, branch: &str) -> PortResult<Option<BranchInfo>> {
        let b = self.client.branch(full, branch).await?;
        Ok(b.map(|b| BranchInfo {
            sha: b.commit.map(|c| c.id),
            protected: b.protected,
            required_checks: if b.enable_status_check {
                b.status_check_contexts
            } else {
                Vec::new()
            },
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
        let title = if draft {
            format!("{WIP}{title}")
        } else {
            title.to_owned()
        };
        let pr = self
            .client
            .create_or_find_pr(full, head, base, &title, body)
            .await?;
        Ok(info(&pr))
    }

    async fn find_open_pr(
        &self,
        full: &str,
        head: &str,
        base: &str,
    ) -> PortResult<Option<PullRequestInfo>> {
        let pr = self.client.find_pr(full, head, base).await?;
        Ok(pr.filter(|p| p.state == "open").map(|p| info(&p)))
    }

    async fn mark_ready(&self, full: &str, pr: &PullRequestInfo, title: &str) -> PortResult<()> {
        Ok(self.client.set_pr_title(full, pr.number, title).await?)
    }

    /// `APPROVED` and `REQUEST_CHANGES` are verdicts; a dismissed or
    /// pending review is none. Inline comments are read for change requests
    /// only (what the developer needs).
    async fn reviews(&self, full: &str, pr: &PullRequestInfo) -> PortResult<Vec<PersonReview>> {
        let mut out = Vec::new();
        for r in self.client.reviews(full, pr.number).await? {
            let verdict = match r.state.as_str() {
                _ if r.dismissed => continue,
                "APPROVED" => ReviewVerdict::Approved,
                "REQUEST_CHANGES" => ReviewVerdict::ChangesRequested,
                "COMMENT" => ReviewVerdict::Commented,
                _ => continue,
            };
            // A comment-only review asks for changes by its inline
            // comments; only those on the head can still be answered.
            let wants_comments = verdict == ReviewVerdict::ChangesRequested
                || (verdict == ReviewVerdict::Commented && r.commit_id == pr.head_sha);
            let comments = if wants_comments {
                self.client
                    .review_comments(full, pr.number, r.id)
                    .await?
                    .into_iter()
                    .map(|c| ReviewComment {
                        path: c.path,
                        line: c.position.filter(|&l| l > 0),
                        body: c.body,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            out.push(PersonReview {
                author: r.user.map(|u| u.login).unwrap_or_default(),
                verdict,
                body: r.body,
                commit: r.commit_id,
                comments,
            });
        }
        Ok(out)
    }

    async fn merge(
        &self,
        full: &str,
        pr: &PullRequestInfo,
        head: &str,
        branch: &str,
    ) -> PortResult<MergeOutcome> {
        let title = format!("Merge {branch} (orch)");
        let message = format!("Merged by orch after verify passed on {head}.");
        match self
            .client
            .merge(full, pr.number, &self.merge_style, head, &title, &message)
            .await?
        {
            MergeAnswer::Merged => {
                // Gitea's answer has no commit: the pull request has it.
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

    async fn closed_prs(&self, full: &str, base: &str) -> PortResult<Vec<PullRequestInfo>> {
        let prs = self.client.closed_prs(full, base).await?;
        Ok(prs.iter().map(info).collect())
    }

    async fn delete_branch(&self, full: &str, branch: &str) -> PortResult<DeleteOutcome> {
        let (status, reason) = self.client.delete_branch(full, branch).await?;
        Ok(match status {
            204 | 200 => DeleteOutcome::Deleted,
            404 => DeleteOutcome::NotFound,
            _ => DeleteOutcome::Refused {
                reason: format!("Gitea refused ({status}): {reason}"),
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

    /// Commit statuses: `success`, `warning` and `skipped` pass (Gitea's
    /// own required-check rule lets them through), `pending` waits, the rest
    /// (`failure`, `error`) fail. A status has only its description for
    /// text; a failed Gitea Actions job's log is fetched too (its tail
    /// follows the description), for the newest failures only.
    async fn checks(&self, full: &str, sha: &str) -> PortResult<Vec<Check>> {
        let statuses = self.client.statuses(full, sha).await?;
        let mut checks: Vec<Check> = statuses
            .into_iter()
            .map(|s| Check {
                state: match s.status.as_str() {
                    "success" | "warning" | "skipped" => CheckState::Success,
                    "pending" | "" => CheckState::Pending,
                    _ => CheckState::Failure,
                },
                name: s.context,
                conclusion: s.status,
                detail: s.description,
                url: (!s.target_url.is_empty()).then_some(s.target_url),
            })
            .collect();
        let mut logs_read = 0;
        for i in 0..checks.len() {
            let c = &checks[i];
            // The newest report of a name decides; older ones need no log.
            let newest = checks[..i].iter().all(|o| o.name != c.name);
            if c.state != CheckState::Failure || !newest || logs_read == MAX_LOGS {
                continue;
            }
            let Some(url) = c.url.clone() else { continue };
            match self.client.job_log(full, sha, &url).await {
                Ok(Some(log)) => {
                    logs_read += 1;
                    let c = &mut checks[i];
                    let tail = orch_core::ci::tail(log.trim_end(), CHECK_DETAIL_MAX);
                    c.detail = if c.detail.is_empty() {
                        tail.to_owned()
                    } else {
                        format!("{}\n\n{tail}", c.detail)
                    };
                }
                Ok(None) => {}
                // The check's verdict stands without its log.
                Err(e) => {
                    tracing::warn!(check = %c.name, error = %e, "reading a failed Actions job's log failed; the check keeps its description")
                }
            }
        }
        Ok(checks)
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
