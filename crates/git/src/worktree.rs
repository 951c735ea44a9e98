//! One git worktree per task, sharing the repo mirror's object store.
//!
//! A worktree is created on a task's first stage and reused by every later stage
//! (same path, same branch); it is removed on done or cancel, and removal always
//! archives first, so the API offers no way to drop uncommitted work.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use orch_core::keys::{validate_repo_name, validate_work_item_id};
use serde::Serialize;

use crate::archive::Archive;
use crate::control::admin_dir;
use crate::error::{GitError, Result};
use crate::mirror::RepoStore;
use crate::refs::{folder_name, local_ref, remote_ref, validate_branch_name};

/// A task's checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Worktree {
    pub repo: String,
    pub path: PathBuf,
    pub branch: String,
    /// `true` if this call created the worktree, `false` if it reused one.
    pub created: bool,
}

/// What [`RepoStore::remove_worktree`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// The archive holding the branch tip and any uncommitted work; `None` only if
    /// there was neither a worktree nor a local branch (nothing to save).
    pub archive: Option<Archive>,
    pub worktree_removed: bool,
    /// The local branch is deleted once archived, so the same work item can start
    /// afresh from the base later; the remote branch is left alone.
    pub local_branch_deleted: bool,
}

/// What [`RepoStore::prune_stale`] cleaned up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// Worktree folders git no longer knew about, now deleted (each archived
    /// first, see `orphan_archives`).
    pub removed_folders: Vec<PathBuf>,
    /// For each removed folder, the ref that holds its files
    /// (`refs/orch/orphaned/<n>`), in the same order.
    pub orphan_archives: Vec<String>,
}

/// One record of `git worktree list --porcelain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorktreeEntry {
    pub path: PathBuf,
    /// Full ref (`refs/heads/…`), `None` when detached or bare.
    pub branch: Option<String>,
    pub bare: bool,
}

impl RepoStore {
    /// `repos_dir/worktrees/<repo>/<branch folder>`, whether or not it exists.
    pub fn worktree_path(&self, repo: &str, branch: &str) -> Result<PathBuf> {
        validate_repo_name(repo)?;
        validate_branch_name(branch)?;
        Ok(self.worktrees_dir(repo).join(folder_name(branch)?))
    }

    fn worktrees_dir(&self, repo: &str) -> PathBuf {
        self.repos_dir().join("worktrees").join(repo)
    }

    /// The task's worktree for `branch`, created on first use.
    ///
    /// - A worktree already registered at the branch's path is reused as is
    ///   (`created: false`), without touching the network.
    /// - Otherwise the mirror is fetched, and the worktree checks out the local
    ///   branch if it exists, else a new local branch from the remote branch if that
    ///   exists, else a new branch from `origin/<base_branch>`.
    pub async fn create_or_reuse_worktree(
        &self,
        repo: &str,
        branch: &str,
        base_branch: &str,
    ) -> Result<Worktree> {
        validate_branch_name(base_branch)?;
        let path = self.worktree_path(repo, branch)?;
        let mirror = self.existing_mirror(repo)?;
        let _guard = self.lock_repo(repo).await;

        let wanted = local_ref(branch);
        if let Some(admin) = registered_on(&mirror, &path, &wanted) {
            ensure_gitfile(&path, &admin).await?;
            return Ok(Worktree {
                repo: repo.to_owned(),
                path,
                branch: branch.to_owned(),
                created: false,
            });
        }
        let entries = self.live_worktrees(&mirror).await?;
        if let Some(entry) = find_by_path(&entries, &path) {
            return if entry.branch.as_deref() == Some(wanted.as_str()) {
                ensure_gitfile(&path, &admin_dir(&mirror, &path)?).await?;
                Ok(Worktree {
                    repo: repo.to_owned(),
                    path,
                    branch: branch.to_owned(),
                    created: false,
                })
            } else {
                Err(GitError::WorktreeOnOtherBranch {
                    path,
                    branch: branch.to_owned(),
                    found: entry
                        .branch
                        .clone()
                        .unwrap_or_else(|| "a detached HEAD".to_owned()),
                })
            };
        }
        if let Some(other) = entries
            .iter()
            .find(|e| e.branch.as_deref() == Some(wanted.as_str()))
        {
            return Err(GitError::BranchCheckedOutElsewhere {
                branch: branch.to_owned(),
                other: other.path.clone(),
            });
        }
        if tokio::fs::symlink_metadata(&path).await.is_ok() {
            return Err(GitError::StaleFolder { path });
        }

        self.fetch_locked(&mirror).await?;
        let parent = self.worktrees_dir(repo);
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(|e| GitError::io("create", &parent, e))?;

        let at = self.at_mirror(&mirror);
        // --no-checkout: the files are written below, in the worktree's own frame.
        let mut args: Vec<OsString> = vec![
            "worktree".into(),
            "add".into(),
            "--quiet".into(),
            "--no-checkout".into(),
        ];
        if self.ref_sha(&at, &wanted).await?.is_some() {
            args.extend(["--".into(), path.clone().into(), branch.into()]);
        } else {
            let start = if self.ref_sha(&at, &remote_ref(branch)).await?.is_some() {
                remote_ref(branch)
            } else if self.ref_sha(&at, &remote_ref(base_branch)).await?.is_some() {
                remote_ref(base_branch)
            } else {
                return Err(GitError::BaseNotFound {
                    repo: repo.to_owned(),
                    base: base_branch.to_owned(),
                });
            };
            // --no-track: pushes always name their destination explicitly, and an
            // upstream of origin/<base> would make a bare `git push` by an agent
            // target the base branch.
            args.extend([
                "--no-track".into(),
                "-b".into(),
                branch.into(),
                "--".into(),
                path.clone().into(),
                start.into(),
            ]);
        }
        at.run(&args).await?;
        let admin = admin_dir(&mirror, &path)?;
        // git wrote the control dir's path into the worktree's `.git` file; the
        // agent's own git must see the mirror under its real name.
        ensure_gitfile(&path, &admin).await?;
        self.at_worktree(&mirror, &path)?
            .run(["reset", "--hard", "--quiet", "--no-recurse-submodules"])
            .await?;
        tracing::info!(repo, branch, path = %path.display(), "created worktree");
        Ok(Worktree {
            repo: repo.to_owned(),
            path,
            branch: branch.to_owned(),
            created: true,
        })
    }

    /// Archive, then remove the worktree of `branch` and delete its local branch.
    ///
    /// The archive (`refs/orch/archive/<work_item_id>/<n>`) is always written when
    /// there is a worktree or a local branch — even when the worktree is clean — so
    /// the branch tip survives the deletion of the local (and later the remote)
    /// branch. Stop every process writing into the worktree first: changes made
    /// between the archive and the removal are not saved.
    ///
    /// Idempotent: removing what is already gone returns an empty [`Removal`].
    pub async fn remove_worktree(
        &self,
        repo: &str,
        branch: &str,
        work_item_id: &str,
    ) -> Result<Removal> {
        validate_work_item_id(work_item_id)?;
        let path = self.worktree_path(repo, branch)?;
        let mirror = match self.existing_mirror(repo) {
            Ok(m) => m,
            Err(GitError::NoMirror { .. }) if tokio::fs::symlink_metadata(&path).await.is_err() => {
                return Ok(Removal::default());
            }
            Err(e) => return Err(e),
        };
        let _guard = self.lock_repo(repo).await;

        let entries = self.live_worktrees(&mirror).await?;
        let mut removal = Removal::default();
        // Read before archiving: the branch deletion below is conditional on this
        // value, so a commit landing after it makes the deletion fail instead of
        // dropping a commit no archive holds.
        let local = local_ref(branch);
        let at = self.at_mirror(&mirror);
        let tip = self.ref_sha(&at, &local).await?;
        let registered = find_by_path(&entries, &path).is_some();
        if registered {
            removal.archive = Some(
                self.write_archive(&mirror, Some(&path), branch, work_item_id)
                    .await?,
            );
            // --force: the worktree may hold modified and untracked files, which the
            // archive above has just saved.
            at.run([
                OsStr::new("worktree"),
                "remove".as_ref(),
                "--force".as_ref(),
                "--".as_ref(),
                path.as_os_str(),
            ])
            .await?;
            removal.worktree_removed = true;
        } else if tokio::fs::symlink_metadata(&path).await.is_ok() {
            return Err(GitError::StaleFolder { path });
        }

        if let Some(tip) = tip {
            if removal.archive.is_none() {
                removal.archive = Some(
                    self.write_archive(&mirror, None, branch, work_item_id)
                        .await?,
                );
            }
            at.run(["update-ref", "-d", local.as_str(), tip.as_str()])
                .await?;
            removal.local_branch_deleted = true;
        }
        if removal.worktree_removed || removal.local_branch_deleted {
            tracing::info!(
                repo,
                branch,
                work_item_id,
                "removed worktree and local branch after archiving"
            );
        }
        Ok(removal)
    }

    /// Startup cleanup: `git worktree prune` in every mirror (forgets worktrees
    /// whose folders vanished), then remove worktree folders git no longer knows
    /// (left by a crash mid-creation). Such a folder may still hold someone's
    /// work, so its files are first committed to `refs/orch/orphaned/<n>` of the
    /// repo's mirror; a folder that cannot be archived (no mirror, unreadable) is
    /// left in place and logged, never deleted.
    pub async fn prune_stale(&self) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let root = self.repos_dir().join("worktrees");
        let repos = match tokio::fs::read_dir(&root).await {
            Ok(rd) => list_dir(rd, &root).await?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(GitError::io("read", &root, e)),
        };
        // Mirrors without worktrees still get `worktree prune`.
        let mut repo_names: Vec<String> = repos
            .iter()
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        if let Ok(rd) = tokio::fs::read_dir(self.repos_dir()).await {
            for p in list_dir(rd, self.repos_dir()).await? {
                if let Some(name) = p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".git"))
                {
                    repo_names.push(name.to_owned());
                }
            }
        }
        repo_names.sort();
        repo_names.dedup();

        for repo in repo_names {
            if validate_repo_name(&repo).is_err() {
                continue;
            }
            let _guard = self.lock_repo(&repo).await;
            let mirror = self.existing_mirror(&repo).ok();
            let known: HashSet<PathBuf> = match &mirror {
                Some(mirror) => {
                    self.at_mirror(mirror).run(["worktree", "prune"]).await?;
                    self.list_worktrees(mirror)
                        .await?
                        .into_iter()
                        .map(|e| canonical(&e.path))
                        .collect()
                }
                None => HashSet::new(),
            };
            let dir = self.worktrees_dir(&repo);
            let folders = match tokio::fs::read_dir(&dir).await {
                Ok(rd) => list_dir(rd, &dir).await?,
                Err(_) => continue,
            };
            for folder in folders {
                if known.contains(&canonical(&folder)) {
                    continue;
                }
                let archived = match &mirror {
                    Some(mirror) => self.archive_orphan(mirror, &folder).await,
                    None => Err(GitError::NoMirror {
                        repo: repo.clone(),
                        path: self.repos_dir().join(format!("{repo}.git")),
                    }),
                };
                let archive = match archived {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(repo, folder = %folder.display(), error = %e, "a worktree folder git no longer knows could not be archived; it is left in place");
                        continue;
                    }
                };
                tracing::warn!(repo, folder = %folder.display(), archive = %archive, "deleting a worktree folder git no longer knows, after archiving its files");
                let removed = match tokio::fs::symlink_metadata(&folder).await {
                    Ok(m) if m.is_dir() => tokio::fs::remove_dir_all(&folder).await,
                    _ => tokio::fs::remove_file(&folder).await,
                };
                removed.map_err(|e| GitError::io("remove", &folder, e))?;
                report.removed_folders.push(folder);
                report.orphan_archives.push(archive);
            }
        }
        Ok(report)
    }

    /// The worktrees of a mirror after forgetting those whose folder was deleted
    /// behind git's back: otherwise such an entry would be "reused" at a path that
    /// no longer exists, or block its branch from being checked out again.
    pub(crate) async fn live_worktrees(&self, mirror: &Path) -> Result<Vec<WorktreeEntry>> {
        let entries = self.list_worktrees(mirror).await?;
        if entries.iter().all(|e| e.bare || e.path.exists()) {
            return Ok(entries);
        }
        self.at_mirror(mirror).run(["worktree", "prune"]).await?;
        self.list_worktrees(mirror).await
    }

    /// The worktrees git knows for a mirror (the mirror itself comes first, bare).
    pub(crate) async fn list_worktrees(&self, mirror: &Path) -> Result<Vec<WorktreeEntry>> {
        let out = self
            .at_mirror(mirror)
            .run(["worktree", "list", "--porcelain", "-z"])
            .await?;
        Ok(parse_worktree_list(&out))
    }
}

/// Parse `git worktree list --porcelain -z`: NUL-terminated `key value` fields,
/// records separated by an empty field.
pub(crate) fn parse_worktree_list(out: &str) -> Vec<WorktreeEntry> {
    let mut entries = Vec::new();
    let mut current: Option<WorktreeEntry> = None;
    for field in out.split('\0') {
        if field.is_empty() {
            entries.extend(current.take());
            continue;
        }
        let (key, value) = field.split_once(' ').unwrap_or((field, ""));
        match key {
            "worktree" => {
                entries.extend(current.take());
                current = Some(WorktreeEntry {
                    path: PathBuf::from(value),
                    branch: None,
                    bare: false,
                });
            }
            "branch" => {
                if let Some(e) = current.as_mut() {
                    e.branch = Some(value.to_owned());
                }
            }
            "bare" => {
                if let Some(e) = current.as_mut() {
                    e.bare = true;
                }
            }
            _ => {}
        }
    }
    entries.extend(current);
    entries
}

/// The worktree's `.git` file names its admin dir under the mirror's real
/// name, for the agent's own git. It is replaced whole (written beside the
/// admin dir's files, then renamed over `.git`): an orch killed in a plain
/// write left it empty, and every run in that worktree then failed ("not a
/// git worktree") until the task parked. A reused worktree gets it rewritten
/// when it says anything else (such a crash, or an agent's edit).
async fn ensure_gitfile(path: &Path, admin: &Path) -> Result<()> {
    let dot_git = path.join(".git");
    let want = format!("gitdir: {}\n", admin.display());
    if tokio::fs::read_to_string(&dot_git).await.ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    // Not in the worktree: a leftover there would be the agent's to commit.
    let tmp = admin.join("orch-gitfile.tmp");
    tokio::fs::write(&tmp, &want)
        .await
        .map_err(|e| GitError::io("write", &tmp, e))?;
    if let Err(e) = tokio::fs::rename(&tmp, &dot_git).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(GitError::io("move into place", &dot_git, e));
    }
    Ok(())
}

/// The fast reuse check, from the files `git worktree list` itself reads: an
/// admin folder under the mirror's `worktrees/` points at `path/.git` and has
/// `wanted` checked out. Every later stage of a task takes this path, which
/// saves spawning git before each agent start. The answer is that admin
/// folder; anything unexpected answers None and the full check runs.
fn registered_on(mirror: &Path, path: &Path, wanted: &str) -> Option<PathBuf> {
    // A folder deleted behind git's back is not reusable (its admin dir lingers).
    if !path.join(".git").is_file() {
        return None;
    }
    let admin = admin_dir(mirror, path).ok()?;
    std::fs::read_to_string(admin.join("HEAD"))
        .is_ok_and(|h| h.trim_end() == format!("ref: {wanted}"))
        .then_some(admin)
}

fn find_by_path<'a>(entries: &'a [WorktreeEntry], path: &Path) -> Option<&'a WorktreeEntry> {
    let wanted = canonical(path);
    entries
        .iter()
        .find(|e| !e.bare && (e.path == path || canonical(&e.path) == wanted))
}

/// The real path if it exists (symlinked temp dirs, `..`), else the path as given.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

async fn list_dir(mut rd: tokio::fs::ReadDir, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    while let Some(entry) = rd
        .next_entry()
        .await
        .map_err(|e| GitError::io("read", dir, e))?
    {
        out.push(entry.path());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the chaos run (seed 0xde02583133eaf6f2, iteration 172): orch
    /// was killed while it rewrote a new worktree's `.git` file, which was
    /// left empty. The worktree was reused as it was, and every analyst run
    /// in it failed ("not a git worktree") until the task parked. A reused
    /// worktree's `.git` is now rewritten when it is not what orch wrote.
    #[tokio::test]
    async fn a_worktree_whose_gitfile_a_kill_left_empty_is_repaired_on_reuse() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, wt, _seed) = crate::test_world::world(tmp.path()).await;
        let dot_git = wt.path.join(".git");
        let good = std::fs::read_to_string(&dot_git).unwrap();
        assert!(good.starts_with("gitdir: "), "{good}");
        for broken in ["", "gitdir: /nowhere\n"] {
            std::fs::write(&dot_git, broken).unwrap();
            let again = store
                .create_or_reuse_worktree("demo", "feature/x", "main")
                .await
                .unwrap();
            assert!(!again.created, "reused, not made anew");
            assert_eq!(std::fs::read_to_string(&dot_git).unwrap(), good);
            assert_eq!(
                crate::test_world::git(&wt.path, &["rev-parse", "--abbrev-ref", "HEAD"]),
                "feature/x",
                "the agent's git finds its repository"
            );
        }
    }

    #[test]
    fn parses_porcelain_z() {
        let out = "worktree /r/demo.git\0bare\0\0worktree /r/worktrees/demo/feature+x\0HEAD abc\0branch refs/heads/feature/x\0\0worktree /r/w/d\0HEAD abc\0detached\0\0";
        let entries = parse_worktree_list(out);
        assert_eq!(entries.len(), 3);
        assert!(entries[0].bare);
        assert_eq!(entries[1].branch.as_deref(), Some("refs/heads/feature/x"));
        assert_eq!(
            entries[1].path,
            PathBuf::from("/r/worktrees/demo/feature+x")
        );
        assert_eq!(entries[2].branch, None);
    }

    #[test]
    fn fast_reuse_check_reads_the_admin_files_git_uses() {
        let tmp = tempfile::tempdir().unwrap();
        let mirror = tmp.path().join("mirrors/demo.git");
        let admin = mirror.join("worktrees/feature+x");
        let wt = tmp.path().join("worktrees/demo/feature+x");
        std::fs::create_dir_all(&admin).unwrap();
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", admin.display())).unwrap();
        std::fs::write(
            admin.join("gitdir"),
            format!("{}\n", wt.join(".git").display()),
        )
        .unwrap();
        std::fs::write(admin.join("HEAD"), "ref: refs/heads/feature/x\n").unwrap();
        assert_eq!(
            registered_on(&mirror, &wt, "refs/heads/feature/x"),
            Some(admin.clone())
        );
        // Another branch checked out there: not a match (the full check decides).
        assert!(registered_on(&mirror, &wt, "refs/heads/feature/y").is_none());
        // Registered for another folder: not a match.
        std::fs::write(admin.join("gitdir"), "/elsewhere/.git\n").unwrap();
        assert!(registered_on(&mirror, &wt, "refs/heads/feature/x").is_none());
        // Another repo's admin folder: not a match.
        let other = tmp.path().join("mirrors/other.git");
        assert!(registered_on(&other, &wt, "refs/heads/feature/x").is_none());
        // No worktree at all.
        assert!(registered_on(&mirror, &tmp.path().join("nope"), "refs/heads/feature/x").is_none());
    }
}
