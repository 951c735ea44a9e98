//! One pull-request forge (issue 13): the rules orch keeps on every forge
//! that merges through pull requests — the pull request created or found,
//! the merge of exactly the verified head, "merged" read from the forge's
//! closed pull requests, the careful branch deletion (never orch's
//! protected list, the repository's default or a branch the forge
//! protects), the `orch/verify` commit status, links into the forge's web
//! pages — written once, over a small [`PullRequestApi`] each provider
//! implements with its own calls and its own classification of refusals.
//! A third forge is a thin adapter.

use async_trait::async_trait;
use orch_core::ci::Check;
use orch_core::people::PersonReview;
use orch_engine::ports::{Forge, MergeOutcome, PortError, PortResult, PullRequestLink};
use orch_git::{DeleteOutcome, ProtectedBranches, RepoStore};
use orch_store::MergeLeaseProof;
use std::collections::BTreeMap;

/// A pull request as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestInfo {
    pub number: u64,
    /// The head commit the forge has for it (empty when it did not say).
    pub head_sha: String,
    pub merged: bool,
    pub merge_sha: Option<String>,
    /// A draft (GitHub's flag; Gitea's `WIP:` title): no forge merges one.
    pub draft: bool,
    /// Its web page.
    pub url: Option<String>,
    /// The forge's global id where it has one (GitHub's `node_id`).
    pub node_id: Option<String>,
}

/// A branch as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchInfo {
    /// Its commit (`None` when the forge did not say).
    pub sha: Option<String>,
    /// Protected by the forge's own branch protection.
    pub protected: bool,
    /// The checks that protection requires before a merge into the branch
    /// (empty when it requires none).
    pub required_checks: Vec<String>,
}

/// The calls a pull-request forge offers; `full` is the repository's
/// `owner/name` there. Failures are classified by the provider
/// (`crate::refusals`), so the rules decide from the kind.
#[async_trait]
pub trait PullRequestApi: Send + Sync {
    /// The forge's name in messages ("GitHub", "Gitea").
    fn provider(&self) -> &'static str;
    /// Where its repositories are mapped in orch.toml (`forge.github`).
    fn config_section(&self) -> &'static str;
    /// The web page of `path` on `branch`, below `<web base>/<full>/`.
    fn browse_path(&self, branch: &str, path: &str) -> String;

    async fn branch(&self, full: &str, branch: &str) -> PortResult<Option<BranchInfo>>;
    async fn default_branch(&self, full: &str) -> PortResult<String>;
    /// The open pull request of `head` into `base`, created if none is
    /// (as a draft when `draft`).
    async fn create_or_find_pr(
        &self,
        full: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
        draft: bool,
    ) -> PortResult<PullRequestInfo>;
    /// The open pull request of `head` into `base`, if one is.
    async fn find_open_pr(
        &self,
        full: &str,
        head: &str,
        base: &str,
    ) -> PortResult<Option<PullRequestInfo>>;
    /// Make a draft ready for review, so that it can be merged.
    async fn mark_ready(&self, full: &str, pr: &PullRequestInfo, title: &str) -> PortResult<()>;
    /// The reviews of `pr`, oldest first, with their inline comments.
    async fn reviews(&self, full: &str, pr: &PullRequestInfo) -> PortResult<Vec<PersonReview>>;
    /// Merge pull request `pr` only at `head` (the verified commit), with
    /// the provider's answer classified: merged (with the merge commit),
    /// stale, or refused.
    async fn merge(
        &self,
        full: &str,
        pr: &PullRequestInfo,
        head: &str,
        branch: &str,
    ) -> PortResult<MergeOutcome>;
    /// The newest closed pull requests into `base`.
    async fn closed_prs(&self, full: &str, base: &str) -> PortResult<Vec<PullRequestInfo>>;
    /// Delete `branch` (already checked by the rules), its answer classified.
    async fn delete_branch(&self, full: &str, branch: &str) -> PortResult<DeleteOutcome>;
    async fn create_status(
        &self,
        full: &str,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
    ) -> PortResult<()>;
    /// The CI checks of `sha` (statuses, check runs), newest report of a
    /// name first.
    async fn checks(&self, full: &str, sha: &str) -> PortResult<Vec<Check>>;
}

/// A forge that merges through pull requests, over `A`'s API; branches
/// travel by git (the repo's remote is the forge's clone URL).
pub struct PrForge<A> {
    api: A,
    repos: RepoStore,
    /// orch repo → `owner/name`.
    names: BTreeMap<String, String>,
    /// The forge's web address (`https://host`), for links people open.
    web_base: Option<String>,
}

impl<A: PullRequestApi> PrForge<A> {
    pub fn over(api: A, repos: RepoStore, names: BTreeMap<String, String>) -> PrForge<A> {
        PrForge {
            api,
            repos,
            names,
            web_base: None,
        }
    }

    /// Where the forge's web pages are (links in tracker comments).
    pub fn with_web_base(mut self, url: &str) -> PrForge<A> {
        self.web_base = Some(url.trim_end_matches('/').to_owned());
        self
    }

    pub fn api(&self) -> &A {
        &self.api
    }

    fn full(&self, repo: &str) -> PortResult<&str> {
        self.names.get(repo).map(String::as_str).ok_or_else(|| {
            PortError::invalid(format!(
                "repo {repo:?} has no {} `owner/name`; add it to [{}.repos]",
                self.api.provider(),
                self.api.config_section()
            ))
        })
    }
}

/// The pull request's title and body orch opens.
fn pr_text(branch: &str) -> (String, &'static str) {
    (
        format!("orch: {branch}"),
        "Opened by orch when development ended; a draft until the pipeline's merge gate merges it. Review it here: a review asking for changes goes back to the developer.",
    )
}

#[async_trait]
impl<A: PullRequestApi> Forge for PrForge<A> {
    async fn push_branch(&self, repo: &str, branch: &str) -> PortResult<String> {
        self.repos
            .push_branch(repo, branch)
            .await
            .map_err(PortError::from)
    }

    async fn base_head(&self, repo: &str, base: &str) -> PortResult<Option<String>> {
        let full = self.full(repo)?;
        Ok(self.api.branch(full, base).await?.and_then(|b| b.sha))
    }

    /// The merge names the verified head, so the forge refuses it if the
    /// branch moved after verification; a pull request already merged (a
    /// crash after the merge) is the merge done.
    async fn merge(
        &self,
        lease: &MergeLeaseProof,
        base: &str,
        head: &str,
        _expected_base: &str,
    ) -> PortResult<MergeOutcome> {
        let (repo, branch) = (lease.repo(), lease.branch());
        let full = self.full(repo)?;
        let (title, body) = pr_text(branch);
        let pr = self
            .api
            .create_or_find_pr(full, branch, base, &title, body, false)
            .await?;
        if pr.draft && !pr.merged {
            // Opened early as a draft: no forge merges a draft.
            self.api.mark_ready(full, &pr, &title).await?;
        }
        if pr.merged {
            return Ok(MergeOutcome::Merged {
                sha: pr.merge_sha.unwrap_or_else(|| head.to_owned()),
            });
        }
        if !pr.head_sha.is_empty() && pr.head_sha != head {
            return Ok(MergeOutcome::Stale(format!(
                "pull request #{} is at {}, not the verified {head}",
                pr.number, pr.head_sha
            )));
        }
        self.api.merge(full, &pr, head, branch).await
    }

    /// Merged means: a closed pull request into `base` whose head is `head`
    /// and that the forge marks merged (a squash leaves `head` outside the
    /// base's history, so ancestry alone cannot tell).
    async fn is_merged(&self, repo: &str, base: &str, head: &str) -> PortResult<bool> {
        let full = self.full(repo)?;
        let prs = self.api.closed_prs(full, base).await?;
        Ok(prs.iter().any(|p| p.merged && p.head_sha == head))
    }

    /// Never the default or a protected branch: checked here first (orch's
    /// list, the repository's default, the forge's protection), and the
    /// forge's own refusal is a refusal too, not a failure.
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
        if self.api.default_branch(full).await? == branch {
            return Ok(DeleteOutcome::Refused {
                reason: format!("{branch} is the repository's default branch"),
            });
        }
        match self.api.branch(full, branch).await? {
            None => Ok(DeleteOutcome::NotFound),
            Some(b) if b.protected => Ok(DeleteOutcome::Refused {
                reason: format!("{branch} is protected on {}", self.api.provider()),
            }),
            Some(_) => self.api.delete_branch(full, branch).await,
        }
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
        self.api
            .create_status(full, sha, state, "orch/verify", description)
            .await
    }

    async fn checks(&self, repo: &str, sha: &str) -> PortResult<Vec<Check>> {
        let full = self.full(repo)?;
        self.api.checks(full, sha).await
    }

    /// Read from the base branch itself, which any reader of the repository
    /// may see (the protection rules' own endpoints want an admin).
    async fn required_checks(&self, repo: &str, base: &str) -> PortResult<Vec<String>> {
        let full = self.full(repo)?;
        Ok(self
            .api
            .branch(full, base)
            .await?
            .map(|b| b.required_checks)
            .unwrap_or_default())
    }

    async fn open_pull_request(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
    ) -> PortResult<Option<PullRequestLink>> {
        let full = self.full(repo)?;
        let (title, body) = pr_text(branch);
        let pr = self
            .api
            .create_or_find_pr(full, branch, base, &title, body, true)
            .await?;
        Ok(Some(PullRequestLink {
            number: pr.number,
            url: pr.url,
        }))
    }

    async fn reviews(&self, repo: &str, branch: &str, base: &str) -> PortResult<Vec<PersonReview>> {
        let full = self.full(repo)?;
        match self.api.find_open_pr(full, branch, base).await? {
            Some(pr) => self.api.reviews(full, &pr).await,
            None => Ok(Vec::new()),
        }
    }

    fn browse_url(&self, repo: &str, branch: &str, path: &str) -> Option<String> {
        let base = self.web_base.as_deref()?;
        let full = self.names.get(repo)?;
        Some(format!(
            "{base}/{full}/{}",
            self.api.browse_path(branch, path)
        ))
    }
}

#[cfg(test)]
mod tests {
    //! The rules over an in-memory forge: what a third provider's adapter
    //! gets without writing any of it.
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Memory {
        branches: BTreeMap<String, BranchInfo>,
        closed: Vec<PullRequestInfo>,
        calls: Mutex<Vec<String>>,
    }

    impl Memory {
        fn called(&self, what: String) {
            self.calls.lock().unwrap().push(what);
        }
    }

    #[async_trait]
    impl PullRequestApi for Memory {
        fn provider(&self) -> &'static str {
            "Memory"
        }
        fn config_section(&self) -> &'static str {
            "forge.memory"
        }
        fn browse_path(&self, branch: &str, path: &str) -> String {
            format!("at/{branch}/{path}")
        }
        async fn branch(&self, _: &str, branch: &str) -> PortResult<Option<BranchInfo>> {
            Ok(self.branches.get(branch).cloned())
        }
        async fn default_branch(&self, _: &str) -> PortResult<String> {
            Ok("trunk".into())
        }
        async fn create_or_find_pr(
            &self,
            _: &str,
            head: &str,
            _: &str,
            _: &str,
            _: &str,
            _: bool,
        ) -> PortResult<PullRequestInfo> {
            Err(PortError::invalid(format!("no pull request for {head}")))
        }
        async fn merge(
            &self,
            _: &str,
            _: &PullRequestInfo,
            _: &str,
            _: &str,
        ) -> PortResult<MergeOutcome> {
            Err(PortError::invalid("not in this test"))
        }
        async fn closed_prs(&self, _: &str, _: &str) -> PortResult<Vec<PullRequestInfo>> {
            Ok(self.closed.clone())
        }
        async fn delete_branch(&self, _: &str, branch: &str) -> PortResult<DeleteOutcome> {
            self.called(format!("delete {branch}"));
            Ok(DeleteOutcome::Deleted)
        }
        async fn create_status(
            &self,
            full: &str,
            sha: &str,
            state: &str,
            context: &str,
            _: &str,
        ) -> PortResult<()> {
            self.called(format!("status {full} {sha} {state} {context}"));
            Ok(())
        }
        async fn checks(&self, full: &str, sha: &str) -> PortResult<Vec<Check>> {
            self.called(format!("checks {full} {sha}"));
            Ok(Vec::new())
        }
        async fn find_open_pr(
            &self,
            full: &str,
            head: &str,
            _: &str,
        ) -> PortResult<Option<PullRequestInfo>> {
            self.called(format!("find {full} {head}"));
            Ok(None)
        }
        async fn mark_ready(&self, full: &str, pr: &PullRequestInfo, _: &str) -> PortResult<()> {
            self.called(format!("ready {full} #{}", pr.number));
            Ok(())
        }
        async fn reviews(&self, full: &str, pr: &PullRequestInfo) -> PortResult<Vec<PersonReview>> {
            self.called(format!("reviews {full} #{}", pr.number));
            Ok(Vec::new())
        }
    }

    fn forge(api: Memory) -> (tempfile::TempDir, PrForge<Memory>) {
        let dir = tempfile::tempdir().unwrap();
        let names = BTreeMap::from([("app".to_owned(), "team/app".to_owned())]);
        let f = PrForge::over(api, RepoStore::new(dir.path()), names)
            .with_web_base("https://forge.test/");
        (dir, f)
    }

    fn branch(protected: bool) -> BranchInfo {
        BranchInfo {
            sha: Some("abc".into()),
            protected,
            required_checks: Vec::new(),
        }
    }

    #[tokio::test]
    async fn only_an_unprotected_feature_branch_is_ever_deleted() {
        let mut api = Memory::default();
        api.branches.insert("trunk".into(), branch(false));
        api.branches.insert("release".into(), branch(true));
        api.branches.insert("feature/x".into(), branch(false));
        let (_dir, f) = forge(api);
        let ours = ProtectedBranches::new(vec!["main".to_owned()]);
        let refused = |o: DeleteOutcome| matches!(o, DeleteOutcome::Refused { .. });
        assert!(refused(
            f.delete_branch("app", "main", &ours).await.unwrap()
        ));
        assert!(refused(
            f.delete_branch("app", "trunk", &ours).await.unwrap()
        ));
        let o = f.delete_branch("app", "release", &ours).await.unwrap();
        assert_eq!(
            o,
            DeleteOutcome::Refused {
                reason: "release is protected on Memory".into()
            }
        );
        assert_eq!(
            f.delete_branch("app", "gone", &ours).await.unwrap(),
            DeleteOutcome::NotFound
        );
        assert_eq!(
            f.delete_branch("app", "feature/x", &ours).await.unwrap(),
            DeleteOutcome::Deleted
        );
        assert_eq!(
            *f.api().calls.lock().unwrap(),
            ["delete feature/x"],
            "the API is asked to delete only the one branch the rules let through"
        );
    }

    #[tokio::test]
    async fn merged_is_a_merged_pull_request_at_the_head_and_links_and_statuses_are_the_rules() {
        let mut api = Memory::default();
        api.branches.insert("trunk".into(), branch(false));
        let pr = |head: &str, merged: bool| PullRequestInfo {
            number: 1,
            head_sha: head.into(),
            merged,
            merge_sha: None,
            draft: false,
            url: None,
            node_id: None,
        };
        api.closed = vec![pr("closed-unmerged", false), pr("squashed", true)];
        let (_dir, f) = forge(api);
        assert!(f.is_merged("app", "trunk", "squashed").await.unwrap());
        assert!(
            !f.is_merged("app", "trunk", "closed-unmerged")
                .await
                .unwrap()
        );
        assert_eq!(
            f.base_head("app", "trunk").await.unwrap().as_deref(),
            Some("abc")
        );
        assert_eq!(
            f.browse_url("app", "feature/x", "docs/a.md").as_deref(),
            Some("https://forge.test/team/app/at/feature/x/docs/a.md")
        );
        f.report_verify("app", "abc", false, "verify failed")
            .await
            .unwrap();
        assert_eq!(
            *f.api().calls.lock().unwrap(),
            ["status team/app abc failure orch/verify"]
        );
        let unmapped = f.is_merged("other", "trunk", "x").await.unwrap_err();
        assert!(
            unmapped.to_string().contains("[forge.memory.repos]"),
            "{unmapped}"
        );
    }
}
