//! The repo store and its per-repo bare mirrors.
//!
//! Layout under `repos_dir`:
//! - `<repo>.git` — a bare repository whose `origin` is the configured remote; the
//!   remote's branches live under `refs/remotes/origin/*` (so a task's local branch
//!   and the remote's copy of it can differ), task branches under `refs/heads/*`,
//!   archives under `refs/orch/archive/*`;
//! - `worktrees/<repo>/<branch folder>` — one worktree per task branch, sharing the
//!   mirror's object store (see `worktree.rs`).
//!
//! Operations that change the mirror's shared state (fetch, push, adding or
//! removing worktrees) take a per-repo async lock so concurrent tasks of the same
//! repo do not race on git's ref and worktree lock files.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use orch_core::keys::validate_repo_name;
use tokio::sync::OwnedMutexGuard;

use crate::control::{Scoped, admin_dir, control_path, ensure_control};
use crate::error::{GitError, Result};
use crate::runner::Git;

/// Where orch keeps its repository mirrors and task worktrees.
#[derive(Debug, Clone)]
pub struct RepoStore {
    repos_dir: PathBuf,
    git: Git,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// What the mirror fetches: every branch as a remote-tracking ref, and tags as they
/// are on the remote (forced, so a moved tag never fails a fetch).
pub(crate) const FETCH_REFSPECS: [&str; 2] = [
    "+refs/heads/*:refs/remotes/origin/*",
    "+refs/tags/*:refs/tags/*",
];

/// How long a fetch waits for a lock in the mirror that a live process
/// holds before it gives up (the attempt fails and is retried later).
const HELD_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl RepoStore {
    /// A store rooted at `repos_dir` using `git` from `PATH`. Nothing is touched on
    /// disk until the first operation.
    pub fn new(repos_dir: impl AsRef<Path>) -> Self {
        Self::with_git(repos_dir, Git::new())
    }

    pub fn with_git(repos_dir: impl AsRef<Path>, git: Git) -> Self {
        let dir = repos_dir.as_ref();
        // Absolute, because paths are handed to git run in other directories and are
        // compared with the absolute paths `git worktree list` prints.
        let repos_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        RepoStore {
            repos_dir,
            git,
            locks: Arc::default(),
        }
    }

    pub fn repos_dir(&self) -> &Path {
        &self.repos_dir
    }

    pub fn git(&self) -> &Git {
        &self.git
    }

    /// `repos_dir/<repo>.git`, whether or not it exists yet.
    pub fn mirror_path(&self, repo: &str) -> Result<PathBuf> {
        validate_repo_name(repo)?;
        Ok(self.repos_dir.join(format!("{repo}.git")))
    }

    /// The mirror of `repo`, which must already exist, with its control dir
    /// (made here if a mirror from before control dirs has none yet).
    pub(crate) fn existing_mirror(&self, repo: &str) -> Result<PathBuf> {
        let path = self.mirror_path(repo)?;
        if path.is_dir() {
            if !control_path(&path).join("config").is_file() {
                ensure_control(&path, None)?;
            }
            Ok(path)
        } else {
            Err(GitError::NoMirror {
                repo: repo.to_owned(),
                path,
            })
        }
    }

    /// git acting on the mirror, through its control dir (`control.rs`).
    pub(crate) fn at_mirror(&self, mirror: &Path) -> Scoped<'_> {
        Scoped::mirror(&self.git, mirror, &control_path(mirror))
    }

    /// git acting in the worktree at `path` of `mirror`, through the control dir,
    /// with the worktree's admin dir found from the mirror's side.
    pub(crate) fn at_worktree(&self, mirror: &Path, path: &Path) -> Result<Scoped<'_>> {
        let admin = admin_dir(mirror, path)?;
        Ok(Scoped::worktree(
            &self.git,
            &admin,
            &control_path(mirror),
            path,
        ))
    }

    /// Run a git command that only reads (`ls-tree`, `show`, `diff`, `rev-parse`,
    /// `for-each-ref`) on the mirror of `repo`, through its control dir like every
    /// other call: the API's and the dashboard's view of branches and archives.
    pub async fn read(&self, repo: &str, args: &[std::ffi::OsString]) -> Result<crate::GitOutput> {
        let mirror = self.existing_mirror(repo)?;
        self.at_mirror(&mirror).output(args, &[]).await
    }

    /// Serialises mirror-changing operations of one repo within this process.
    pub(crate) async fn lock_repo(&self, repo: &str) -> OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(repo.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Make sure `repos_dir/<repo>.git` is a bare mirror of `remote_url` with fresh
    /// remote-tracking branches, and return its path.
    ///
    /// A new mirror is built in a temporary folder and renamed into place, so a
    /// crash never leaves a half-initialised mirror that looks complete. An existing
    /// mirror gets its `origin` URL updated if the configuration changed, then is
    /// fetched.
    pub async fn ensure_mirror(&self, repo: &str, remote_url: &str) -> Result<PathBuf> {
        validate_remote_url(remote_url)?;
        let path = self.mirror_path(repo)?;
        let _guard = self.lock_repo(repo).await;

        if path.exists() {
            // A bare repository has HEAD, objects/ and refs/ at its top; checked on
            // the files so that nothing in its config is read.
            if !(path.join("HEAD").is_file()
                && path.join("objects").is_dir()
                && path.join("refs").is_dir())
            {
                return Err(GitError::NotAMirror { path });
            }
            self.update_agents_origin(&path, remote_url).await?;
        } else {
            self.create_mirror(repo, &path, remote_url).await?;
        }
        // The remote orch uses is the configured one, written to the control dir
        // on every call; `remote.origin.*` in the mirror's own config is never read.
        ensure_control(&path, Some(remote_url))?;
        self.fetch_locked(&path).await?;
        Ok(path)
    }

    async fn create_mirror(&self, repo: &str, path: &Path, remote_url: &str) -> Result<()> {
        tokio::fs::create_dir_all(&self.repos_dir)
            .await
            .map_err(|e| GitError::io("create", &self.repos_dir, e))?;
        let tmp = self.repos_dir.join(format!(".{repo}.git.tmp"));
        if tmp.exists() {
            // Left by a crash during a previous ensure_mirror; it never held work.
            tokio::fs::remove_dir_all(&tmp)
                .await
                .map_err(|e| GitError::io("remove", &tmp, e))?;
        }
        self.git
            .run(
                &self.repos_dir,
                [
                    OsStr::new("init"),
                    "--bare".as_ref(),
                    "--quiet".as_ref(),
                    // The control dir's config assumes git's classic object format.
                    "--object-format=sha1".as_ref(),
                    "--".as_ref(),
                    tmp.as_os_str(),
                ],
            )
            .await?;
        // The mirror's own config only serves the agents' git (their worktrees
        // read it); orch's calls read the control dir's, which says the same.
        let tmp_config = tmp.join("config");
        self.git
            .run(
                &self.repos_dir,
                [
                    OsStr::new("config"),
                    "--file".as_ref(),
                    tmp_config.as_os_str(),
                    "remote.origin.url".as_ref(),
                    remote_url.as_ref(),
                ],
            )
            .await?;
        for (i, spec) in FETCH_REFSPECS.iter().enumerate() {
            let mode = if i == 0 { "--replace-all" } else { "--add" };
            self.git
                .run(
                    &self.repos_dir,
                    [
                        OsStr::new("config"),
                        "--file".as_ref(),
                        tmp_config.as_os_str(),
                        mode.as_ref(),
                        "remote.origin.fetch".as_ref(),
                        spec.as_ref(),
                    ],
                )
                .await?;
        }
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(|e| GitError::io("move into place", path, e))?;
        tracing::info!(repo, path = %path.display(), "created mirror");
        Ok(())
    }

    /// Keep `remote.origin.url` of the mirror's own config (the one agents' git
    /// reads in their worktrees) at the configured URL. Only that one file is read
    /// and written, by `git config --file`, which runs nothing.
    async fn update_agents_origin(&self, mirror: &Path, remote_url: &str) -> Result<()> {
        let file = mirror.join("config");
        let get: Vec<std::ffi::OsString> = vec![
            "config".into(),
            "--file".into(),
            file.clone().into(),
            "--get".into(),
            "remote.origin.url".into(),
        ];
        let current = self.git.output(&self.repos_dir, &get, &[]).await?;
        if current.stdout.trim() != remote_url {
            tracing::info!(mirror = %mirror.display(), "remote URL changed; updating the mirror's origin for the agents");
            self.git
                .run(
                    &self.repos_dir,
                    [
                        OsStr::new("config"),
                        "--file".as_ref(),
                        file.as_os_str(),
                        "remote.origin.url".as_ref(),
                        remote_url.as_ref(),
                    ],
                )
                .await?;
        }
        Ok(())
    }

    /// Fetch the remote's branches and tags into the mirror (pruning deleted ones).
    pub async fn fetch(&self, repo: &str) -> Result<()> {
        let path = self.existing_mirror(repo)?;
        let _guard = self.lock_repo(repo).await;
        self.fetch_locked(&path).await
    }

    /// Fetch while the caller holds the repo lock. A git killed midway (with
    /// the orch before this one) left a lock: what no live process holds is
    /// cleared, and the fetch tried once more. A lock a live process holds (a
    /// git of an orch killed a moment ago, still finishing) is waited for,
    /// briefly. Every fetch of orch's goes through here: the chaos run found
    /// a worktree's creation failing on such a lock until the task parked,
    /// because only `fetch` cleared them and start-up had found them held.
    pub(crate) async fn fetch_locked(&self, mirror: &Path) -> Result<()> {
        match self.fetch_once(mirror).await {
            Err(e) if e.to_string().contains(".lock': File exists") => {
                let deadline = std::time::Instant::now() + HELD_LOCK_WAIT;
                loop {
                    if !crate::locks::clear_stale_locks_at(mirror)?.is_empty() {
                        return self.fetch_once(mirror).await;
                    }
                    let held = crate::locks::held_locks_at(mirror);
                    if held.is_empty() {
                        // Released meanwhile: its holder finished.
                        return self.fetch_once(mirror).await;
                    }
                    if std::time::Instant::now() >= deadline {
                        return Err(
                            e.with_note(&format!("the lock is held by {}", held.join(", ")))
                        );
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
            other => other,
        }
    }

    async fn fetch_once(&self, mirror: &Path) -> Result<()> {
        self.at_mirror(mirror)
            .run(["fetch", "--prune", "--quiet", "--", "origin"])
            .await?;
        Ok(())
    }

    /// The commit a branch points at on the remote right now (`ls-remote`), `None`
    /// if the remote has no such branch. For the caller that needs the expected
    /// base of [`RepoStore::fast_forward_base`].
    pub async fn remote_branch_sha(&self, repo: &str, branch: &str) -> Result<Option<String>> {
        crate::refs::validate_branch_name(branch)?;
        let mirror = self.existing_mirror(repo)?;
        self.ls_remote_branch(&mirror, branch).await
    }

    /// `ls-remote` of one (validated) branch from the mirror.
    pub(crate) async fn ls_remote_branch(
        &self,
        mirror: &Path,
        branch: &str,
    ) -> Result<Option<String>> {
        let full = crate::refs::local_ref(branch);
        let out = self
            .at_mirror(mirror)
            .run(["ls-remote", "--", "origin", full.as_str()])
            .await?;
        Ok(out.lines().find_map(|line| {
            let (sha, name) = line.split_once('\t')?;
            (name == full).then(|| sha.to_owned())
        }))
    }

    /// The commit a ref (or revision) names, seen from a mirror or a worktree;
    /// `None` if there is none.
    pub(crate) async fn ref_sha(&self, at: &Scoped<'_>, full_ref: &str) -> Result<Option<String>> {
        let spec = format!("{full_ref}^{{commit}}");
        let out = at
            .output(
                &[
                    "rev-parse".into(),
                    "--verify".into(),
                    "--quiet".into(),
                    spec.into(),
                ],
                &[],
            )
            .await?;
        Ok(match out.code() {
            Some(0) => Some(out.stdout.trim().to_owned()),
            _ => None,
        })
    }
}

/// A remote URL or path must not be mistaken for an option, nor smuggle control
/// characters into config files.
fn validate_remote_url(url: &str) -> Result<()> {
    let why = if url.is_empty() {
        Some("must not be empty")
    } else if url.starts_with('-') {
        Some("must not start with '-'")
    } else if url.chars().any(|c| c.is_control()) {
        Some("must not contain control characters")
    } else if url.starts_with("ext::") {
        Some("the ext:: transport runs commands and is not allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(GitError::InvalidUrl {
            url: crate::runner::redact(url),
            why,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls() {
        assert!(validate_remote_url("/srv/git/demo.git").is_ok());
        assert!(validate_remote_url("https://example.test/x.git").is_ok());
        for bad in ["", "--upload-pack=x", "a\nb", "ext::sh -c x"] {
            assert!(validate_remote_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        let store = RepoStore::new("/srv/orch/repos");
        assert_eq!(
            store.mirror_path("demo").ok(),
            Some(PathBuf::from("/srv/orch/repos/demo.git"))
        );
        assert!(store.mirror_path("../x").is_err());
    }
}
