//! The pipeline's ports to the outside world: the tracker (where people see
//! and move work items) and the forge (where branches live and get merged).
//! The embedded defaults are here too: the builtin tracker (items in orch's
//! own store) and the local forge (a bare repository on disk is the remote).

use async_trait::async_trait;
use orch_core::Timestamp;
use orch_git::{DeleteOutcome, FastForward, ProtectedBranches, RepoStore};
use orch_store::{MergeLeaseProof, Store, TrackerItem};
use std::sync::Arc;

mod error;

pub use error::{Failure, PortError, PortResult};

/// Where people see and move work items.
#[async_trait]
pub trait Tracker: Send + Sync {
    /// The item, if the tracker knows it.
    async fn item(&self, id: &str) -> PortResult<Option<TrackerItem>>;
    /// Move the item to a state (a gate or stage name from the config).
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()>;
    /// Replace the item's orch labels (`auto_labels`).
    async fn set_labels(&self, id: &str, labels: &[String]) -> PortResult<()>;
    /// Comment on the item; a repeated `dedupe_key` adds nothing.
    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()>;
    /// The newest comment a person (anyone but orch) left on the item after
    /// `since`, as plain text: the reason of a gate move made on the tracker,
    /// which reaches the agent as the CLI's `--comment` does. `None`
    /// when nobody commented since. Required, not defaulted: a tracker that
    /// forgot it would silently lose people's reasons again.
    async fn person_comment_since(&self, id: &str, since: Timestamp) -> PortResult<Option<String>>;
    /// The human key of a task made from `item`, which names its branch and
    /// docs path (`ORCH-42`). The item id by default; a tracker whose ids are
    /// opaque (Plane's uuids) gives its own. The item id stays what the
    /// tracker is called with.
    async fn task_key(&self, item: &TrackerItem) -> PortResult<String> {
        Ok(item.id.clone())
    }
}

/// Where outgoing notifications go: a POST of JSON to a webhook URL.
/// What one reconcile pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileSummary {
    pub repaired: u32,
    pub errors: u32,
    /// Requests the pass sent to the tracker.
    pub api_calls: u64,
}

/// A tracker's listing reconciler (Plane, GitHub Issues): one pass lists the
/// tracker's items and repairs the gate moves no webhook reported.
#[async_trait]
pub trait TrackerReconciler: Send + Sync {
    async fn run_once(&self) -> ReconcileSummary;
}

#[async_trait]
pub trait NotifyPoster: Send + Sync {
    /// Post `body`; an answer other than 2xx is an error. The error must not
    /// contain the URL (it carries a token).
    async fn post(&self, url: &str, body: &serde_json::Value) -> PortResult<()>;
}

/// The builtin tracker: items live in orch's store.
pub struct BuiltinTracker {
    store: Arc<dyn Store>,
}

impl BuiltinTracker {
    pub fn new(store: Arc<dyn Store>) -> BuiltinTracker {
        BuiltinTracker { store }
    }
}

#[async_trait]
impl Tracker for BuiltinTracker {
    async fn item(&self, id: &str) -> PortResult<Option<TrackerItem>> {
        self.store.get_item(id).await.map_err(PortError::from)
    }
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        self.store
            .set_item_state(id, state)
            .await
            .map(|_| ())
            .map_err(PortError::from)
    }
    async fn set_labels(&self, id: &str, labels: &[String]) -> PortResult<()> {
        self.store
            .set_item_labels(id, labels)
            .await
            .map(|_| ())
            .map_err(PortError::from)
    }
    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()> {
        self.store
            .add_item_comment(id, ORCH_AUTHOR, body, dedupe_key)
            .await
            .map(|_| ())
            .map_err(PortError::from)
    }
    async fn person_comment_since(&self, id: &str, since: Timestamp) -> PortResult<Option<String>> {
        let comments = self
            .store
            .item_comments(id)
            .await
            .map_err(PortError::from)?;
        Ok(comments
            .into_iter()
            .filter(|c| c.author != ORCH_AUTHOR && c.created_at > since)
            .max_by_key(|c| (c.created_at, c.id))
            .map(|c| c.body))
    }
}

/// The author of the builtin tracker's comments that orch writes.
pub const ORCH_AUTHOR: &str = "orch";

/// A pull request orch opened, as people find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestLink {
    pub number: u64,
    /// Its web page, when the forge said.
    pub url: Option<String>,
}

/// How a merge request ended, when the forge did not fail or refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The base now contains the verified head.
    Merged { sha: String },
    /// The base moved or the head no longer fits: merge the base in and verify
    /// again. Counted against `merge.max_attempts` like a failure, so a forge
    /// that keeps answering this cannot hold the merge lease forever.
    Stale(String),
}

/// Where branches live and get merged. Every call's failure is
/// classified ([`PortError`]): the merge gate retries what may pass
/// ([`Failure::Transient`]) and parks the task on the rest.
#[async_trait]
pub trait Forge: Send + Sync {
    /// Push the task branch; returns the pushed head.
    async fn push_branch(&self, repo: &str, branch: &str) -> PortResult<String>;
    /// The base branch's current head on the remote.
    async fn base_head(&self, repo: &str, base: &str) -> PortResult<Option<String>>;
    /// Merge exactly `head` (already pushed on the task's branch) into
    /// `base`, which must still be at `expected_base`. Only the holder of the
    /// repo's merge lease merges: the proof names the repo and the
    /// branch, so no other can be merged with it. A refusal is an error of
    /// its kind: [`PortError::Refused`] with the forge's words when asking
    /// again cannot help (protection, a conflict),
    /// [`PortError::Unavailable`] when it may.
    async fn merge(
        &self,
        lease: &MergeLeaseProof,
        base: &str,
        head: &str,
        expected_base: &str,
    ) -> PortResult<MergeOutcome>;
    /// Whether `base` on the remote already contains `head` (a merge proven done).
    async fn is_merged(&self, repo: &str, base: &str, head: &str) -> PortResult<bool>;
    /// Delete a task branch on the remote; protected branches are refused (TC-05).
    async fn delete_branch(
        &self,
        repo: &str,
        branch: &str,
        protected: &ProtectedBranches,
    ) -> PortResult<DeleteOutcome>;
    /// Show the verify result on the commit (a forge's commit status).
    /// Required, not defaulted: a wrapper that forgot it would drop it silently.
    async fn report_verify(
        &self,
        repo: &str,
        sha: &str,
        ok: bool,
        description: &str,
    ) -> PortResult<()>;
    /// Open the task branch's pull request into `base` early (when
    /// development first ends), as a draft until the merge gate merges it,
    /// or find the one already open; later pushes update it. `None` for the
    /// local forge, which has no pull requests (its record is the branch
    /// and `orch task show`).
    async fn open_pull_request(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
    ) -> PortResult<Option<PullRequestLink>>;
    /// People's reviews of the branch's open pull request into `base`,
    /// oldest first, with their inline comments; none when it has no open
    /// pull request (or the forge has none). orch itself posts no reviews,
    /// so every review is a person's.
    async fn reviews(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
    ) -> PortResult<Vec<orch_core::people::PersonReview>>;
    /// The CI checks the forge has for commit `sha` (commit statuses and
    /// check runs), newest report of a name first. The local forge has no
    /// CI and reports none (`repos.required_checks` is refused with it).
    /// Required, as `report_verify`: a forge that forgot it would let the
    /// merge gate wait forever or, worse, merge past a failure.
    async fn checks(&self, repo: &str, sha: &str) -> PortResult<Vec<orch_core::ci::Check>>;
    /// The checks the forge's protection of `base` requires before a merge
    /// into it (names, or Gitea's wildcard patterns of names); none when the
    /// branch is unprotected or the forge has no CI. The merge gate requires
    /// them besides `repos.required_checks`: the forge would refuse the
    /// merge without them anyway. Required, as `checks`.
    async fn required_checks(&self, repo: &str, base: &str) -> PortResult<Vec<String>>;
    /// Where a person reads `path` on `branch` in a browser, when the forge
    /// has a web view; `None` for the local forge (links then go to the
    /// dashboard). Required, as `report_verify`.
    fn browse_url(&self, repo: &str, branch: &str, path: &str) -> Option<String>;
}

/// The local forge: the remote is a bare repository on disk; merging is a
/// lease-checked fast-forward of the base branch.
pub struct LocalForge {
    repos: RepoStore,
}

impl LocalForge {
    pub fn new(repos: RepoStore) -> LocalForge {
        LocalForge { repos }
    }

    /// The commit the mirror's local `branch` points at, if it exists.
    async fn branch_tip(&self, repo: &str, branch: &str) -> PortResult<Option<String>> {
        let args: Vec<std::ffi::OsString> = vec![
            "rev-parse".into(),
            "--verify".into(),
            "--quiet".into(),
            format!("refs/heads/{branch}^{{commit}}").into(),
        ];
        let out = self.repos.read(repo, &args).await?;
        match out.code() {
            Some(0) => Ok(Some(out.stdout.trim().to_owned())),
            Some(1) => Ok(None),
            _ => {
                let mirror = self.repos.mirror_path(repo)?;
                Err(self.repos.git().failure(&mirror, &args, &out).into())
            }
        }
    }
}

#[async_trait]
impl Forge for LocalForge {
    async fn push_branch(&self, repo: &str, branch: &str) -> PortResult<String> {
        Ok(self.repos.push_branch(repo, branch).await?)
    }

    async fn base_head(&self, repo: &str, base: &str) -> PortResult<Option<String>> {
        self.repos.fetch(repo).await?;
        Ok(self.repos.remote_branch_sha(repo, base).await?)
    }

    /// A push to the base that the remote rejects (a hook, a protection) is
    /// a permanent refusal; a base that moved meanwhile is stale.
    async fn merge(
        &self,
        lease: &MergeLeaseProof,
        base: &str,
        head: &str,
        expected_base: &str,
    ) -> PortResult<MergeOutcome> {
        let (repo, branch) = (lease.repo(), lease.branch());
        // Merge exactly the verified head. The fast-forward moves the
        // base to the branch's tip, so a branch that moved since verify (a
        // commit after the merger's run) is verified again, never merged.
        let tip = self.branch_tip(repo, branch).await?;
        if tip.as_deref() != Some(head) {
            return Ok(MergeOutcome::Stale(format!(
                "{branch} moved since it was verified (now {}, verified {head})",
                tip.as_deref().unwrap_or("deleted")
            )));
        }
        match self
            .repos
            .fast_forward_base(repo, branch, base, expected_base)
            .await?
        {
            FastForward::Pushed { sha } if sha == head => Ok(MergeOutcome::Merged { sha }),
            // The branch moved between the check above and the push: what
            // reached the base is not what was verified. Never report that as
            // the verified merge; the merger verifies the new head first.
            FastForward::Pushed { sha } => Ok(MergeOutcome::Stale(format!(
                "{base} was moved to {sha}, not to the verified head {head}: {branch} moved during the merge"
            ))),
            // The remote's base is where it was, yet the push was rejected:
            // a hook or a protection refuses it, and asking again will not help.
            FastForward::BaseMoved { current } if current.as_deref() == Some(expected_base) => {
                Err(PortError::refused(format!(
                    "the remote refused to move {base} to {head} although {base} is still at {expected_base}: a hook or a protection rejects orch's push; allow it, or merge by hand"
                )))
            }
            FastForward::BaseMoved { current } => Ok(MergeOutcome::Stale(format!(
                "{base} moved to {} meanwhile",
                current.as_deref().unwrap_or("(deleted)")
            ))),
            FastForward::NotFastForward => Ok(MergeOutcome::Stale(format!(
                "the branch does not contain {base} any more"
            ))),
        }
    }

    async fn is_merged(&self, repo: &str, base: &str, head: &str) -> PortResult<bool> {
        let mirror = self.repos.mirror_path(repo)?;
        self.repos.fetch(repo).await?;
        let base_ref = format!("refs/remotes/origin/{base}");
        let args: Vec<std::ffi::OsString> = vec![
            "merge-base".into(),
            "--is-ancestor".into(),
            head.into(),
            base_ref.into(),
        ];
        let out = self.repos.git().output(&mirror, &args, &[]).await?;
        match out.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            // 128: the head is unknown here, so it cannot be in the base.
            Some(128) => Ok(false),
            _ => Err(self.repos.git().failure(&mirror, &args, &out).into()),
        }
    }

    async fn delete_branch(
        &self,
        repo: &str,
        branch: &str,
        protected: &ProtectedBranches,
    ) -> PortResult<DeleteOutcome> {
        Ok(self
            .repos
            .delete_remote_branch(repo, branch, protected)
            .await?)
    }

    /// A bare repository on disk has no commit statuses.
    async fn report_verify(&self, _: &str, _: &str, _: bool, _: &str) -> PortResult<()> {
        Ok(())
    }

    /// No pull requests on a bare repository.
    async fn open_pull_request(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> PortResult<Option<PullRequestLink>> {
        Ok(None)
    }

    async fn reviews(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> PortResult<Vec<orch_core::people::PersonReview>> {
        Ok(Vec::new())
    }

    /// No CI runs on a bare repository.
    async fn checks(&self, _: &str, _: &str) -> PortResult<Vec<orch_core::ci::Check>> {
        Ok(Vec::new())
    }

    /// Nor a protection that names checks.
    async fn required_checks(&self, _: &str, _: &str) -> PortResult<Vec<String>> {
        Ok(Vec::new())
    }

    /// Nor a web view: the dashboard shows the branch's files.
    fn browse_url(&self, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }
}
