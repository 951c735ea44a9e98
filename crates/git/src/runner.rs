//! Running the git CLI: argv only, never a shell string.
//!
//! Every invocation gets the same hermetic frame so results do not depend on who
//! runs orch or where:
//! - `GIT_TERMINAL_PROMPT=0` and stdin closed: a credential problem fails fast
//!   instead of hanging a worker on a prompt nobody sees;
//! - `LC_ALL=C`: the few stderr/porcelain strings we inspect are stable;
//! - orch's own author/committer identity: commits orch makes (archives, merges,
//!   `commit_all`) are reproducible and never borrow a person's identity;
//! - repository-selecting variables inherited from a parent git (`GIT_DIR`, …)
//!   removed, and `GIT_CEILING_DIRECTORIES` set to the parent of the target dir,
//!   so a broken worktree folder can never make git act on a repository above it;
//! - a minimal environment: git starts with an empty environment plus the few
//!   variables it needs to reach a remote ([`PASSED_VARS`]) and those orch sets,
//!   so nothing git could be made to run ever sees orch's secrets;
//! - no system or global config (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL`), and
//!   only the transports orch needs (`GIT_ALLOW_PROTOCOL`, which overrides any
//!   `protocol.*` setting): never `ext::`, which runs commands;
//! - hooks, fsmonitor, credential helpers, pagers and automatic gc switched off on
//!   the command line, which outranks every config file.
//!
//! Which repository config a call reads is decided by its caller: the repo
//! store runs every call through its control dir (`control.rs`), never through
//! the config an agent can write. `docs/security.md` has the whole argument.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::error::{GitError, Result};

/// The author and committer of every commit orch itself makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            name: "orch".to_owned(),
            email: "orch@localhost".to_owned(),
        }
    }
}

/// How to run git: which binary, as whom, with which extra environment.
#[derive(Debug, Clone)]
pub struct Git {
    binary: PathBuf,
    identity: Identity,
    env: Vec<(OsString, OsString)>,
    timeout: Option<Duration>,
}

/// What a finished git process produced. Output is decoded lossily: git prints
/// paths and diffs in whatever encoding the repository uses.
#[derive(Debug, Clone)]
pub struct GitOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl GitOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, `None` if git was killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// The variables of orch's own environment that git may see: where programs are,
/// temporary files, the time zone, and what reaching a remote over SSH or HTTPS
/// needs (the SSH agent's socket, CA certificates, proxies). Everything else,
/// orch's tokens included, is left out. `HOME` is not passed: git's global config
/// is off anyway, and ssh finds the user's keys from the password database.
pub const PASSED_VARS: &[&str] = &[
    "PATH",
    "TMPDIR",
    "TZ",
    "SSH_AUTH_SOCK",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

/// The transports orch's remotes may use (`GIT_ALLOW_PROTOCOL`): local paths,
/// HTTP(S) and SSH. `ext::` (runs a command) and the others are refused whatever
/// a config says.
pub const ALLOWED_PROTOCOLS: &str = "file:https:http:ssh";

/// Settings given on every command line, where they outrank every config file:
/// nothing a repository config says can make orch's git run a hook, an fsmonitor,
/// a credential helper, a pager or a background gc, recurse into submodules, or
/// sign with an external program.
const COMMAND_LINE_CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.pager=cat",
    "credential.helper=",
    "protocol.ext.allow=never",
    "gc.auto=0",
    "maintenance.auto=false",
    "submodule.recurse=false",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "rerere.enabled=false",
];

/// Default wall-clock limit per git call: generous for a first clone of a big repo,
/// yet a hung network fetch does not hold a worker forever.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

const STDERR_TAIL_LINES: usize = 20;
const STDERR_TAIL_CHARS: usize = 2000;

impl Default for Git {
    fn default() -> Self {
        Git::new()
    }
}

impl Git {
    /// `git` from `PATH`, orch's default identity, a 30 minute timeout.
    pub fn new() -> Self {
        Git {
            binary: PathBuf::from("git"),
            identity: Identity::default(),
            env: Vec::new(),
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// Use this git binary (from the config) instead of the one on `PATH`.
    pub fn with_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = binary.into();
        self
    }

    pub fn with_identity(mut self, identity: Identity) -> Self {
        self.identity = identity;
        self
    }

    /// Add an environment variable to every git call (e.g. `GIT_SSH_COMMAND`).
    pub fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// `None` disables the limit.
    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// Use `home` as `HOME` (git ignores system and global config in any case):
    /// for tests and benchmarks.
    pub fn isolated(self, home: &Path) -> Self {
        self.with_env("HOME", home)
            .with_env("XDG_CONFIG_HOME", home.join(".config"))
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Run git and return its stdout; a non-zero exit becomes [`GitError::Failed`].
    pub async fn run<I, S>(&self, dir: &Path, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_env(dir, args, &[]).await
    }

    /// [`Git::run`] with extra environment for this call only.
    pub async fn run_env<I, S>(&self, dir: &Path, args: I, env: &[(&str, &OsStr)]) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let out = self.output(dir, &args, env).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(self.failure(dir, &args, &out))
        }
    }

    /// Run git and return whatever it produced, success or not. Only a failure to
    /// start or a timeout is an error: callers that read exit codes (e.g.
    /// `merge-base --is-ancestor`, a rejected push) use this.
    pub async fn output(
        &self,
        dir: &Path,
        args: &[OsString],
        env: &[(&str, &OsStr)],
    ) -> Result<GitOutput> {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.current_dir(dir)
            .args(COMMAND_LINE_CONFIG.iter().flat_map(|kv| ["-c", kv]))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out (dropped) call must not leave git running behind our back.
            .kill_on_drop(true);
        // Nothing of orch's environment reaches git but what it needs: repository-
        // selecting variables of a parent git, orch's tokens and everything else
        // stay behind.
        cmd.env_clear();
        for var in PASSED_VARS {
            if let Some(value) = std::env::var_os(var) {
                cmd.env(var, value);
            }
        }
        if let Some(parent) = dir.parent() {
            cmd.env("GIT_CEILING_DIRECTORIES", parent);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
            .env("GIT_PAGER", "cat")
            .env("LC_ALL", "C")
            .env("GIT_AUTHOR_NAME", &self.identity.name)
            .env("GIT_AUTHOR_EMAIL", &self.identity.email)
            .env("GIT_COMMITTER_NAME", &self.identity.name)
            .env("GIT_COMMITTER_EMAIL", &self.identity.email);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        tracing::debug!(dir = %dir.display(), command = %display_command(args), "git");

        let fut = cmd.output();
        let out = match self.timeout {
            Some(limit) => match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(GitError::Timeout {
                        command: display_command(args),
                        dir: dir.to_owned(),
                        timeout: limit,
                    });
                }
            },
            None => fut.await,
        }
        .map_err(|source| GitError::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        Ok(GitOutput {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// The typed error for a finished but unsuccessful call.
    pub fn failure(&self, dir: &Path, args: &[OsString], out: &GitOutput) -> GitError {
        GitError::Failed {
            command: display_command(args),
            dir: dir.to_owned(),
            status: out.status.to_string(),
            stderr_tail: redact(&tail(&out.stderr)),
        }
    }
}

/// `git a b c` for messages and logs, with URL credentials hidden.
fn display_command(args: &[OsString]) -> String {
    let mut s = String::from("git");
    for a in args {
        s.push(' ');
        s.push_str(&redact(&a.to_string_lossy()));
    }
    s
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    let joined = lines[start..].join("\n");
    let skip = joined.chars().count().saturating_sub(STDERR_TAIL_CHARS);
    joined.chars().skip(skip).collect()
}

/// Hide the user-info part of URLs (`https://user:token@host/…`) so remote
/// credentials never reach an error message, a log or a tracker comment.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, after) = rest.split_at(i + 3);
        out.push_str(head);
        let end = after
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_url_credentials() {
        assert_eq!(
            redact("fatal: could not read from 'https://bob:s3cret@example.test/x.git'"),
            "fatal: could not read from 'https://***@example.test/x.git'"
        );
        assert_eq!(redact("ssh://example.test/x"), "ssh://example.test/x");
        assert_eq!(redact("a://u@h b://v@i/"), "a://***@h b://***@i/");
        assert_eq!(redact("no url"), "no url");
    }

    #[test]
    fn tail_keeps_last_lines() {
        let text: String = (0..50).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert!(t.starts_with("line 30"));
        assert!(t.ends_with("line 49"));
    }

    #[tokio::test]
    async fn failure_carries_command_status_and_stderr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = Git::new().isolated(dir.path());
        let err = git
            .run(dir.path(), ["rev-parse", "--verify", "HEAD"])
            .await
            .expect_err("not a repository");
        match err {
            GitError::Failed {
                command,
                status,
                stderr_tail,
                ..
            } => {
                assert_eq!(command, "git rev-parse --verify HEAD");
                assert!(status.contains("128"), "{status}");
                assert!(
                    stderr_tail.contains("not a git repository"),
                    "{stderr_tail}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn never_acts_on_a_repository_above_the_target_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = Git::new().isolated(dir.path());
        git.run(dir.path(), ["init", "--quiet", "outer"])
            .await
            .expect("init");
        let broken = dir.path().join("outer/worktrees/demo/feature+x");
        std::fs::create_dir_all(&broken).expect("mkdir");
        let out = git.run(&broken, ["rev-parse", "--show-toplevel"]).await;
        assert!(out.is_err(), "git found the outer repository: {out:?}");
    }

    #[tokio::test]
    async fn missing_binary_is_a_spawn_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let git = Git::new().with_binary("/nonexistent/git");
        let err = git
            .run(dir.path(), ["version"])
            .await
            .expect_err("no binary");
        assert!(matches!(err, GitError::Spawn { .. }), "{err:?}");
        assert!(err.to_string().contains("git path"));
    }
}
