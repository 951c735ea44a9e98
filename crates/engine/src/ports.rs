//! The pipeline's ports to the outside world: the tracker (where people see
//! and move work items) and the forge (where branches live and get merged).
//! The embedded defaults are here too: the builtin tracker (items in orch's
//! own store) and the local forge (a bare repository on disk is the remote).

use async_trait::async_trait;
use orch_git::{DeleteOutcome, FastForward, ProtectedBranches, RepoStore};
use orch_store::{Store, TrackerItem};
use std::sync::Arc;

/// A tracker or forge call failed; the message says what and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String);

impl PortError {
    pub fn new(e: impl std::fmt::Display) -> PortError {
        PortError(e.to_string())
    }
}

pub type PortResult<T> = Result<T, PortError>;

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
    /// The human key of a task made from `item`, which names its branch and
    /// docs path (`ORCH-42`). The item id by default; a tracker whose ids are
    /// opaque (Plane's uuids) gives its own. The item id stays what the
    /// tracker is called with.
    async fn task_key(&self, item: &TrackerItem) -> PortResult<String> {
        Ok(item.id.clone())
    }
}

/// Where outgoing notifications go: a POST of JSON to a webhook URL.
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
        self.store.get_item(id).await.map_err(PortError::new)
    }
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        self.store
            .set_item_state(id, state)
            .await
            .map(|_| ())
            .map_err(PortError::new)
    }
    async fn set_labels(&self, id: &str, labels: &[String]) -> PortResult<()> {
        self.store
            .set_item_labels(id, labels)
            .await
            .map(|_| ())
            .map_err(PortError::new)
    }
    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()> {
        self.store
            .add_item_comment(id, "orch", body, dedupe_key)
            .await
            .map(|_| ())
            .map_err(PortError::new)
    }
}

/// How a merge request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The base now contains the verified head.
    Merged { sha: String },
    /// The base moved or the head no longer fits: merge the base in and verify again.
    Stale(String),
}

/// Where branches live and get merged.
#[async_trait]
pub trait Forge: Send + Sync {
    /// Push the task branch; returns the pushed head.
    async fn push_branch(&self, repo: &str, branch: &str) -> PortResult<String>;
    /// The base branch's current head on the remote.
    async fn base_head(&self, repo: &str, base: &str) -> PortResult<Option<String>>;
    /// Merge exactly `head` (already pushed on `branch`) into `base`, which must
    /// still be at `expected_base`.
    async fn merge(
        &self,
        repo: &str,
        branch: &str,
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
}

#[async_trait]
impl Forge for LocalForge {
    async fn push_branch(&self, repo: &str, branch: &str) -> PortResult<String> {
        self.repos
            .push_branch(repo, branch)
            .await
            .map_err(PortError::new)
    }

    async fn base_head(&self, repo: &str, base: &str) -> PortResult<Option<String>> {
        self.repos.fetch(repo).await.map_err(PortError::new)?;
        self.repos
            .remote_branch_sha(repo, base)
            .await
            .map_err(PortError::new)
    }

    async fn merge(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
        head: &str,
        expected_base: &str,
    ) -> PortResult<MergeOutcome> {
        match self
            .repos
            .fast_forward_base(repo, branch, base, expected_base)
            .await
            .map_err(PortError::new)?
        {
            FastForward::Pushed { sha } if sha == head => Ok(MergeOutcome::Merged { sha }),
            FastForward::Pushed { sha } => Ok(MergeOutcome::Merged { sha }),
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
        let mirror = self.repos.mirror_path(repo).map_err(PortError::new)?;
        self.repos.fetch(repo).await.map_err(PortError::new)?;
        let base_ref = format!("refs/remotes/origin/{base}");
        let args: Vec<std::ffi::OsString> = vec![
            "merge-base".into(),
            "--is-ancestor".into(),
            head.into(),
            base_ref.into(),
        ];
        let out = self
            .repos
            .git()
            .output(&mirror, &args, &[])
            .await
            .map_err(PortError::new)?;
        match out.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            // 128: the head is unknown here, so it cannot be in the base.
            Some(128) => Ok(false),
            _ => Err(PortError(
                self.repos.git().failure(&mirror, &args, &out).to_string(),
            )),
        }
    }

    async fn delete_branch(
        &self,
        repo: &str,
        branch: &str,
        protected: &ProtectedBranches,
    ) -> PortResult<DeleteOutcome> {
        self.repos
            .delete_remote_branch(repo, branch, protected)
            .await
            .map_err(PortError::new)
    }

    /// A bare repository on disk has no commit statuses.
    async fn report_verify(&self, _: &str, _: &str, _: bool, _: &str) -> PortResult<()> {
        Ok(())
    }
}
