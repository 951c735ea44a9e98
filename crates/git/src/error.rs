//! The one error type of this crate. Every message names what went wrong and what
//! a person (or the caller) can do about it, because these end up in task comments
//! and `orch doctor` output.

use std::path::PathBuf;
use std::time::Duration;

use orch_core::keys::KeyError;

/// Why a ref name, branch name or object id was refused before reaching git.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {why}")]
pub struct RefError {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(
        "could not start git binary {binary:?}: {source}; install git or set the configured git path"
    )]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// git ran and exited unsuccessfully.
    #[error("`{command}` in {dir:?} failed ({status}): {stderr_tail}")]
    Failed {
        /// The argv as text (credentials in URLs redacted), for humans only.
        command: String,
        dir: PathBuf,
        /// `exit status: N` or `signal: N`.
        status: String,
        /// The last lines of stderr (credentials in URLs redacted).
        stderr_tail: String,
    },

    #[error(
        "`{command}` in {dir:?} did not finish within {timeout:?} and was killed; check the remote's reachability or raise the git timeout"
    )]
    Timeout {
        command: String,
        dir: PathBuf,
        timeout: Duration,
    },

    #[error(transparent)]
    InvalidRef(#[from] RefError),

    #[error("{0}; fix the repo or work item configuration")]
    InvalidKey(#[from] KeyError),

    #[error("invalid remote URL {url:?}: {why}")]
    InvalidUrl { url: String, why: &'static str },

    #[error("repo {repo:?} has no mirror at {path:?}; call ensure_mirror first")]
    NoMirror { repo: String, path: PathBuf },

    #[error(
        "{path:?} exists but is not a bare git repository; move it away (it may hold someone's data) so orch can create the mirror"
    )]
    NotAMirror { path: PathBuf },

    #[error(
        "base branch {base:?} does not exist on the remote of repo {repo:?}; check the repo's base branch setting or push it first"
    )]
    BaseNotFound { repo: String, base: String },

    #[error(
        "branch {branch:?} does not exist in the mirror of repo {repo:?}; create the task's worktree (which creates the branch) first"
    )]
    BranchNotFound { repo: String, branch: String },

    #[error(
        "folder {path:?} exists but git does not know it as a worktree; run prune_stale (it deletes the folder) after saving anything you need from it"
    )]
    StaleFolder { path: PathBuf },

    #[error(
        "branch {branch:?} is already checked out in another worktree at {other:?}; remove that worktree or run prune_stale if its folder is gone"
    )]
    BranchCheckedOutElsewhere { branch: String, other: PathBuf },

    #[error(
        "worktree {path:?} has {found} checked out, not branch {branch:?}; remove the worktree and create it again"
    )]
    WorktreeOnOtherBranch {
        path: PathBuf,
        branch: String,
        found: String,
    },

    #[error(
        "worktree {path:?} has uncommitted changes; commit them first (commit_all) so a merge abort cannot lose them"
    )]
    DirtyWorktree { path: PathBuf },

    #[error(
        "no archive {number} for work item {work_item_id:?} in repo {repo:?}; list_archives shows the ones that exist"
    )]
    ArchiveNotFound {
        repo: String,
        work_item_id: String,
        number: u32,
    },

    #[error(
        "branch {branch:?} already exists at another commit; delete or rename it before restoring there"
    )]
    BranchExists { branch: String },

    #[error("could not {action} {path:?}: {source}; check permissions and free disk space")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path:?} {why}; move it away so orch can recreate its control dir (see docs/security.md)"
    )]
    ControlDir { path: PathBuf, why: &'static str },

    #[error(
        "{path:?} is not a worktree of its repo's mirror (no admin dir under the mirror's worktrees/ names it); remove the folder and let orch create the worktree again"
    )]
    NotAWorktree { path: PathBuf },

    #[error(
        "unexpected output from `{command}`: {detail}; this is an orch bug or an unsupported git version"
    )]
    Parse { command: String, detail: String },
}

pub type Result<T, E = GitError> = std::result::Result<T, E>;

impl GitError {
    /// The same failure with `note` after git's words (what orch found).
    pub(crate) fn with_note(self, note: &str) -> Self {
        match self {
            GitError::Failed {
                command,
                dir,
                status,
                stderr_tail,
            } => GitError::Failed {
                command,
                dir,
                status,
                stderr_tail: format!("{stderr_tail} ({note})"),
            },
            other => other,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        GitError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
