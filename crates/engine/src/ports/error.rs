//! The one error type of the ports (tracker, forge, notification poster):
//! what kind of failure it was, so callers decide from the kind and never
//! from the words (retry or give up, which HTTP status, which exit code).
//! The words are the provider's own plus what orch was doing; they never
//! hold a credential.

use orch_git::GitError;
use std::time::Duration;

/// A tracker, forge or webhook call that failed, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// What the call names does not exist there (a repository, a project, a
    /// branch, an item the write is for): asking again finds nothing either.
    #[error("{0}")]
    NotFound(String),
    /// The provider understood and said no: branch protection, a hook, bad
    /// credentials, a request it will not take. `reason` is its own words.
    #[error("{reason}")]
    Refused { reason: String },
    /// No usable answer: the network, a 5xx, a timeout, an answer orch could
    /// not read. Asking again later may work.
    #[error("{0}")]
    Unavailable(String),
    /// The provider asks orch to slow down; `retry_after` when it said how long.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    /// orch's input or setup is wrong for this call (a bad id, a missing
    /// setting, a credential that cannot be sent, local state git refuses):
    /// a person must fix it first.
    #[error("{0}")]
    Invalid(String),
    /// orch has no mirror of the repo (yet), so there is nothing local to
    /// work on: a cleanup that finds none has nothing to clean.
    #[error("{0}")]
    NoMirror(String),
}

pub type PortResult<T> = Result<T, PortError>;

/// Whether asking again can change the answer: what the merge gate and the
/// outboxes decide from (bounded merges, R-6, R-41, R-44).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// An outage or a pause ([`PortError::Unavailable`],
    /// [`PortError::RateLimited`]): retried with backoff, bounded.
    Transient,
    /// Every other kind: asking again cannot help; a person must act.
    Permanent,
}

impl PortError {
    pub fn refused(reason: impl std::fmt::Display) -> PortError {
        PortError::Refused {
            reason: reason.to_string(),
        }
    }

    pub fn unavailable(message: impl std::fmt::Display) -> PortError {
        PortError::Unavailable(message.to_string())
    }

    pub fn invalid(message: impl std::fmt::Display) -> PortError {
        PortError::Invalid(message.to_string())
    }

    pub fn not_found(message: impl std::fmt::Display) -> PortError {
        PortError::NotFound(message.to_string())
    }

    /// The kind's name, for logs, answers and dead letters (`not_found`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            PortError::NotFound(_) => "not_found",
            PortError::Refused { .. } => "refused",
            PortError::Unavailable(_) => "unavailable",
            PortError::RateLimited { .. } => "rate_limited",
            PortError::Invalid(_) => "invalid",
            PortError::NoMirror(_) => "no_mirror",
        }
    }

    pub fn failure(&self) -> Failure {
        match self {
            PortError::Unavailable(_) | PortError::RateLimited { .. } => Failure::Transient,
            _ => Failure::Permanent,
        }
    }

    pub fn is_permanent(&self) -> bool {
        self.failure() == Failure::Permanent
    }

    /// How long the provider asked orch to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PortError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The same kind with what orch was doing in front of the words.
    pub fn context(self, what: impl std::fmt::Display) -> PortError {
        let with = |m: String| format!("{what}: {m}");
        match self {
            PortError::NotFound(m) => PortError::NotFound(with(m)),
            PortError::Refused { reason } => PortError::Refused {
                reason: with(reason),
            },
            PortError::Unavailable(m) => PortError::Unavailable(with(m)),
            PortError::RateLimited {
                message,
                retry_after,
            } => PortError::RateLimited {
                message: with(message),
                retry_after,
            },
            PortError::Invalid(m) => PortError::Invalid(with(m)),
            PortError::NoMirror(m) => PortError::NoMirror(with(m)),
        }
    }
}

/// The builtin tracker's store: a key it refuses is bad input, a missing
/// task is not found, and anything else (a busy or unreachable database)
/// may pass.
impl From<orch_store::StoreError> for PortError {
    fn from(e: orch_store::StoreError) -> PortError {
        use orch_store::StoreError as S;
        match &e {
            S::InvalidKey(_) => PortError::invalid(e),
            S::TaskNotFound(_) | S::JobNotFound(_) => PortError::not_found(e),
            _ => PortError::unavailable(e),
        }
    }
}

/// A git call of a forge (push, fetch, ls-remote) or of a local step in a
/// mirror or worktree. git exits 128 for a refused push and for an
/// unreachable host alike, so a failed command is told apart by its words:
/// the network's troubles (and another git holding a lock a moment) are
/// [`PortError::Unavailable`]; a repository that is not there is
/// [`PortError::NotFound`]; everything else git or the remote said no to (a
/// hook, a protection, refused credentials, a push that is not a
/// fast-forward) is [`PortError::Refused`] with git's words. Local problems
/// orch cannot cure by itself (an invalid ref, a missing git binary, a
/// folder in the way) are [`PortError::Invalid`]; a timeout or an IO error
/// may pass.
impl From<GitError> for PortError {
    fn from(e: GitError) -> PortError {
        match &e {
            GitError::Timeout { .. } | GitError::Io { .. } => PortError::unavailable(e),
            GitError::Failed { stderr_tail, .. } => {
                let words = stderr_tail.to_ascii_lowercase();
                if TRANSIENT_GIT_WORDS.iter().any(|w| words.contains(w)) {
                    PortError::unavailable(e)
                } else if NOT_FOUND_GIT_WORDS.iter().any(|w| words.contains(w)) {
                    PortError::not_found(e)
                } else {
                    PortError::refused(e)
                }
            }
            GitError::NoMirror { .. } => PortError::NoMirror(e.to_string()),
            GitError::BaseNotFound { .. }
            | GitError::BranchNotFound { .. }
            | GitError::ArchiveNotFound { .. } => PortError::not_found(e),
            GitError::BranchExists { .. } => PortError::refused(e),
            GitError::Spawn { .. }
            | GitError::InvalidRef(_)
            | GitError::InvalidKey(_)
            | GitError::InvalidUrl { .. }
            | GitError::NotAMirror { .. }
            | GitError::StaleFolder { .. }
            | GitError::BranchCheckedOutElsewhere { .. }
            | GitError::WorktreeOnOtherBranch { .. }
            | GitError::DirtyWorktree { .. }
            | GitError::ControlDir { .. }
            | GitError::NotAWorktree { .. }
            | GitError::Parse { .. } => PortError::invalid(e),
        }
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

/// What git says when the remote repository is not there (a wrong path or
/// URL, or one that was deleted or renamed).
const NOT_FOUND_GIT_WORDS: &[&str] = &[
    "does not appear to be a git repository",
    "repository not found",
    "the requested url returned error: 404",
];

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
    fn git_failures_of_the_network_are_unavailable_and_refusals_keep_git_words() {
        for words in [
            "ssh: connect to host git.example.org port 22: Connection refused\nfatal: Could not read from remote repository.",
            "fatal: unable to access 'https://git.example.org/a/b.git/': Failed to connect to git.example.org port 443 after 3 ms: Couldn't connect to server",
            "fatal: unable to access 'https://git.example.org/a/b.git/': Could not resolve host: git.example.org",
            "error: RPC failed; HTTP 502 curl 22 The requested URL returned error: 502\nfatal: the remote end hung up unexpectedly",
            "fatal: unable to access 'https://x/': The requested URL returned error: 503",
            "ssh: connect to host x port 22: Connection timed out",
            "error: cannot lock ref 'refs/remotes/origin/main': Unable to create '/srv/repos/demo.git/refs/remotes/origin/main.lock': File exists.",
        ] {
            let e = PortError::from(failed(words));
            assert!(matches!(e, PortError::Unavailable(_)), "{words}: {e:?}");
            assert_eq!(e.failure(), Failure::Transient);
        }
        for words in [
            "fatal: '/srv/remotes/gone.git' does not appear to be a git repository\nfatal: Could not read from remote repository.",
            "remote: Repository not found.\nfatal: repository 'https://github.com/a/b.git/' not found",
        ] {
            let e = PortError::from(failed(words));
            assert!(matches!(e, PortError::NotFound(_)), "{words}: {e:?}");
            assert!(e.is_permanent());
        }
        for words in [
            "remote: this repository is frozen\nTo /srv/remotes/demo.git\n ! [remote rejected] x -> x (pre-receive hook declined)\nerror: failed to push some refs",
            "git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.",
            "fatal: Authentication failed for 'https://git.example.org/a/b.git/'",
            "fatal: unable to access 'https://x/': The requested URL returned error: 403",
            " ! [rejected]        x -> x (non-fast-forward)",
            "remote: error: GH006: Protected branch update failed for refs/heads/main.",
        ] {
            let e = PortError::from(failed(words));
            assert!(
                matches!(&e, PortError::Refused { reason } if reason.contains(words)),
                "{words}: {e:?}"
            );
            assert!(e.is_permanent());
        }
        let timeout = GitError::Timeout {
            command: "git push".into(),
            dir: "/srv".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            PortError::from(timeout),
            PortError::Unavailable(_)
        ));
        let no_mirror = GitError::NoMirror {
            repo: "demo".into(),
            path: "/srv/repos/demo.git".into(),
        };
        let e = PortError::from(no_mirror);
        assert!(matches!(e, PortError::NoMirror(_)) && e.is_permanent());
    }

    #[test]
    fn context_keeps_the_kind() {
        let e = PortError::RateLimited {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(7)),
        }
        .context("setting state");
        assert_eq!(e.kind(), "rate_limited");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(e.to_string(), "setting state: slow down");
        let e = PortError::refused("protected").context("merging");
        assert_eq!(e, PortError::refused("merging: protected"));
    }
}
