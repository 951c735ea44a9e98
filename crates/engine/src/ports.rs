//! The pipeline's ports to the outside world: the tracker (where people see
//! and move work items) and the forge (where branches live and get merged).
//! The embedded defaults are here too: the builtin tracker (items in orch's
//! own store) and the local forge (a bare repository on disk is the remote).

use async_trait::async_trait;
use orch_core::Timestamp;
use orch_git::{DeleteOutcome, FastForward, GitError, ProtectedBranches, RepoStore};
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

/// Whether asking the forge again can change its answer: what the merge gate
/// decides from (bounded merges, R-6, R-41).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// An outage or a pause: a 5xx, a timeout, a refused connection, a rate
    /// limit, a forge still computing whether it can merge. The step is
    /// retried with backoff, at most `merge.max_attempts` times.
    Transient,
    /// A refusal that asking again cannot change: branch protection, a
    /// conflict verify cannot fix, a bad remote, bad credentials. The task
    /// parks for a person with the forge's words.
    Permanent,
}

/// A forge call that failed, classified (see [`Failure`]). The message is the
/// forge's own words plus what orch was doing; it never holds a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ForgeError {
    pub failure: Failure,
    pub message: String,
}

impl ForgeError {
    pub fn transient(message: impl std::fmt::Display) -> ForgeError {
        ForgeError {
            failure: Failure::Transient,
            message: message.to_string(),
        }
    }

    pub fn permanent(message: impl std::fmt::Display) -> ForgeError {
        ForgeError {
            failure: Failure::Permanent,
            message: message.to_string(),
        }
    }

    pub fn is_permanent(&self) -> bool {
        self.failure == Failure::Permanent
    }
}

/// An unclassified port failure counts as transient: it is retried, and the
/// retries are bounded by `merge.max_attempts` like any other.
impl From<PortError> for ForgeError {
    fn from(e: PortError) -> ForgeError {
        ForgeError::transient(e.0)
    }
}

/// A git call of a forge (push, fetch, ls-remote) or of the merge step in the
/// worktree: see [`git_failure`].
impl From<GitError> for ForgeError {
    fn from(e: GitError) -> ForgeError {
        ForgeError {
            failure: git_failure(&e),
            message: e.to_string(),
        }
    }
}

pub type ForgeResult<T> = Result<T, ForgeError>;

/// How a failed git call bears on retrying it. git exits 128 for a refused
/// push and for an unreachable host alike, so a failed command is told apart
/// by its words: the network's troubles are transient, everything else (a
/// hook or a protection rejecting the push, a path or URL that is no
/// repository, refused credentials, a push that is not a fast-forward) is a
/// refusal a person must look at. Local problems orch cannot cure by itself
/// (no mirror, an invalid ref, a missing git binary) are permanent too; a
/// timeout or an IO error may pass.
pub fn git_failure(e: &GitError) -> Failure {
    match e {
        GitError::Timeout { .. } | GitError::Io { .. } => Failure::Transient,
        GitError::Failed { stderr_tail, .. } => {
            let words = stderr_tail.to_ascii_lowercase();
            if TRANSIENT_GIT_WORDS.iter().any(|w| words.contains(w)) {
                Failure::Transient
            } else {
                Failure::Permanent
            }
        }
        _ => Failure::Permanent,
    }
}

/// What git (and curl, ssh beneath it) says when the network, not the
/// remote's will, failed the call; or when another git held a lock a moment.
const TRANSIENT_GIT_WORDS: &[&str] = &[
    "connection refused",
    "connection timed out",
    "connection reset",
    "operation timed out",
    "timed out after",
    "could not resolve host",
    "temporary failure in name resolution",
    "network is unreachable",
    "no route to host",
    "couldn't connect to server",
    "failed to connect to",
    "the remote end hung up unexpectedly",
    "early eof",
    "rpc failed",
    "the requested url returned error: 5",
    "the requested url returned error: 429",
    "the requested url returned error: 408",
    "cannot lock ref",
    ".lock': file exists",
];

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
            .add_item_comment(id, ORCH_AUTHOR, body, dedupe_key)
            .await
            .map(|_| ())
            .map_err(PortError::new)
    }
    async fn person_comment_since(&self, id: &str, since: Timestamp) -> PortResult<Option<String>> {
        let comments = self.store.item_comments(id).await.map_err(PortError::new)?;
        Ok(comments
            .into_iter()
            .filter(|c| c.author != ORCH_AUTHOR && c.created_at > since)
            .max_by_key(|c| (c.created_at, c.id))
            .map(|c| c.body))
    }
}

/// The author of the builtin tracker's comments that orch writes.
pub const ORCH_AUTHOR: &str = "orch";

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
/// classified ([`ForgeError`]): the merge gate retries what may pass and
/// parks the task on a refusal.
#[async_trait]
pub trait Forge: Send + Sync {
    /// Push the task branch; returns the pushed head.
    async fn push_branch(&self, repo: &str, branch: &str) -> ForgeResult<String>;
    /// The base branch's current head on the remote.
    async fn base_head(&self, repo: &str, base: &str) -> ForgeResult<Option<String>>;
    /// Merge exactly `head` (already pushed on `branch`) into `base`, which must
    /// still be at `expected_base`. A refusal is an error: permanent when
    /// asking again cannot help (protection, a conflict), transient otherwise.
    async fn merge(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
        head: &str,
        expected_base: &str,
    ) -> ForgeResult<MergeOutcome>;
    /// Whether `base` on the remote already contains `head` (a merge proven done).
    async fn is_merged(&self, repo: &str, base: &str, head: &str) -> ForgeResult<bool>;
    /// Delete a task branch on the remote; protected branches are refused (TC-05).
    async fn delete_branch(
        &self,
        repo: &str,
        branch: &str,
        protected: &ProtectedBranches,
    ) -> ForgeResult<DeleteOutcome>;
    /// Show the verify result on the commit (a forge's commit status).
    /// Required, not defaulted: a wrapper that forgot it would drop it silently.
    async fn report_verify(
        &self,
        repo: &str,
        sha: &str,
        ok: bool,
        description: &str,
    ) -> ForgeResult<()>;
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
    async fn branch_tip(&self, repo: &str, branch: &str) -> ForgeResult<Option<String>> {
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
    async fn push_branch(&self, repo: &str, branch: &str) -> ForgeResult<String> {
        Ok(self.repos.push_branch(repo, branch).await?)
    }

    async fn base_head(&self, repo: &str, base: &str) -> ForgeResult<Option<String>> {
        self.repos.fetch(repo).await?;
        Ok(self.repos.remote_branch_sha(repo, base).await?)
    }

    /// A push to the base that the remote rejects (a hook, a protection) is
    /// a permanent refusal; a base that moved meanwhile is stale.
    async fn merge(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
        head: &str,
        expected_base: &str,
    ) -> ForgeResult<MergeOutcome> {
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
                Err(ForgeError::permanent(format!(
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

    async fn is_merged(&self, repo: &str, base: &str, head: &str) -> ForgeResult<bool> {
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
    ) -> ForgeResult<DeleteOutcome> {
        Ok(self
            .repos
            .delete_remote_branch(repo, branch, protected)
            .await?)
    }

    /// A bare repository on disk has no commit statuses.
    async fn report_verify(&self, _: &str, _: &str, _: bool, _: &str) -> ForgeResult<()> {
        Ok(())
    }

    /// Nor a web view: the dashboard shows the branch's files.
    fn browse_url(&self, _: &str, _: &str, _: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(stderr: &str) -> GitError {
        GitError::Failed {
            command: "git push --quiet -- origin x".into(),
            dir: "/srv/repos/demo.git".into(),
            status: "exit status: 128".into(),
            stderr_tail: stderr.into(),
        }
    }

    #[test]
    fn git_failures_of_the_network_are_transient_and_refusals_permanent() {
        for words in [
            "ssh: connect to host git.example.org port 22: Connection refused\nfatal: Could not read from remote repository.",
            "fatal: unable to access 'https://git.example.org/a/b.git/': Failed to connect to git.example.org port 443 after 3 ms: Couldn't connect to server",
            "fatal: unable to access 'https://git.example.org/a/b.git/': Could not resolve host: git.example.org",
            "error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502\nfatal: the remote end hung up unexpectedly",
            "fatal: unable to access 'https://x/': The requested URL returned error: 503",
            "ssh: connect to host x port 22: Connection timed out",
            "error: cannot lock ref 'refs/remotes/origin/main': Unable to create '/srv/repos/demo.git/refs/remotes/origin/main.lock': File exists.",
        ] {
            assert_eq!(git_failure(&failed(words)), Failure::Transient, "{words}");
        }
        for words in [
            "remote: this repository is frozen\nTo /srv/remotes/demo.git\n ! [remote rejected] x -> x (pre-receive hook declined)\nerror: failed to push some refs",
            "fatal: '/srv/remotes/gone.git' does not appear to be a git repository\nfatal: Could not read from remote repository.",
            "remote: Repository not found.\nfatal: repository 'https://github.com/a/b.git/' not found",
            "git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.",
            "fatal: Authentication failed for 'https://git.example.org/a/b.git/'",
            "fatal: unable to access 'https://x/': The requested URL returned error: 403",
            " ! [rejected]        x -> x (non-fast-forward)",
            "remote: error: GH006: Protected branch update failed for refs/heads/main.",
        ] {
            assert_eq!(git_failure(&failed(words)), Failure::Permanent, "{words}");
        }
        let timeout = GitError::Timeout {
            command: "git push".into(),
            dir: "/srv".into(),
            timeout: std::time::Duration::from_secs(1),
        };
        assert_eq!(git_failure(&timeout), Failure::Transient);
        let no_mirror = GitError::NoMirror {
            repo: "demo".into(),
            path: "/srv/repos/demo.git".into(),
        };
        assert_eq!(git_failure(&no_mirror), Failure::Permanent);
        // The conversion keeps git's words.
        let e = ForgeError::from(failed("remote: frozen\n ! [remote rejected] x -> x"));
        assert!(
            e.is_permanent() && e.message.contains("remote: frozen"),
            "{e}"
        );
        // An unclassified port error may pass: retried, within the bound.
        assert!(!ForgeError::from(PortError::new("?")).is_permanent());
    }
}
