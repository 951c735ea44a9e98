//! Archive refs: uncommitted work is never destroyed silently (R-21).
//!
//! Before a worktree goes away, its full state — tracked modifications and
//! untracked files (not ignored ones) — is committed to
//! `refs/orch/archive/<work_item_id>/<n>` with the worktree's HEAD (and the branch
//! tip, if it differs) as parents. The commit is built through a temporary index
//! (`GIT_INDEX_FILE` + `add -A` + `write-tree` + `commit-tree`), so the worktree's
//! own index, HEAD and branch are never touched: archiving is safe even while a
//! person is looking at the worktree.
//!
//! The refs live in the mirror (refs are shared by all worktrees), are kept by gc,
//! and are listed by `orch task show`; `restore_archive` turns one into a branch.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use orch_core::Timestamp;
use orch_core::keys::validate_work_item_id;
use serde::Serialize;

use crate::control::Scoped;
use crate::error::{GitError, Result};
use crate::mirror::RepoStore;
use crate::refs::{local_ref, validate_branch_name, validate_sha};
use crate::worktree::Worktree;

/// One saved state of a task's worktree or branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Archive {
    /// `refs/orch/archive/<work_item_id>/<number>`.
    pub ref_name: String,
    pub number: u32,
    pub commit: String,
    /// The branch the archived worktree had checked out.
    pub branch: String,
    pub created_at: Timestamp,
    /// `true` if the archive holds changes that were not committed on the branch;
    /// `false` if it only records the branch tip.
    pub had_uncommitted: bool,
}

/// An archive with the files it changed against the repo's base, as `orch task
/// show`, the API and the dashboard list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveListing {
    #[serde(flatten)]
    pub archive: Archive,
    /// At most [`ARCHIVE_FILES_SHOWN`] paths.
    pub files: Vec<String>,
    /// `true` when the archive changed more files than are listed.
    pub files_cut: bool,
}

/// How many changed files each listed archive names.
pub const ARCHIVE_FILES_SHOWN: usize = 50;

const TRAILER_BRANCH: &str = "Orch-Branch";
const TRAILER_UNCOMMITTED: &str = "Orch-Uncommitted";

/// A concurrent archive of the same work item may take the number we picked; we
/// then pick again, a bounded number of times.
const NUMBER_ATTEMPTS: usize = 8;

/// Where the files of folders that were no longer worktrees are kept.
const ORPHAN_PREFIX: &str = "refs/orch/orphaned/";

fn archive_prefix(work_item_id: &str) -> String {
    format!("refs/orch/archive/{work_item_id}/")
}

/// `restore/<work_item_id>-<n>`: where [`RepoStore::restore_archive`] puts an archive.
pub fn restore_branch_name(work_item_id: &str, number: u32) -> String {
    format!("restore/{work_item_id}-{number}")
}

impl RepoStore {
    /// Archive a worktree's current state without removing it (e.g. before a risky
    /// step). [`RepoStore::remove_worktree`] does this itself.
    pub async fn archive_worktree(
        &self,
        worktree: &Worktree,
        work_item_id: &str,
    ) -> Result<Archive> {
        validate_work_item_id(work_item_id)?;
        validate_branch_name(&worktree.branch)?;
        let mirror = self.existing_mirror(&worktree.repo)?;
        self.write_archive(
            &mirror,
            Some(&worktree.path),
            &worktree.branch,
            work_item_id,
        )
        .await
    }

    /// Write an archive commit and ref. With a worktree, its full state is saved;
    /// without one, only the local branch tip (which must exist).
    pub(crate) async fn write_archive(
        &self,
        mirror: &Path,
        worktree: Option<&Path>,
        branch: &str,
        work_item_id: &str,
    ) -> Result<Archive> {
        let at = self.at_mirror(mirror);
        let tip = self.ref_sha(&at, &local_ref(branch)).await?;
        let (tree, parents, had_uncommitted) = match worktree {
            Some(wt) => {
                let in_wt = self.at_worktree(mirror, wt)?;
                let head = self.ref_sha(&in_wt, "HEAD").await?;
                let tree = self.snapshot_tree(&in_wt, head.as_deref()).await?;
                let head_tree = match &head {
                    Some(h) => Some(in_wt.run(["rev-parse", &format!("{h}^{{tree}}")]).await?),
                    None => None,
                };
                let had = head_tree.as_deref().map(str::trim) != Some(tree.as_str());
                let mut parents: Vec<String> = head.into_iter().collect();
                if let Some(t) = &tip
                    && !parents.contains(t)
                {
                    parents.push(t.clone());
                }
                (tree, parents, had)
            }
            None => {
                let tip = tip.ok_or_else(|| GitError::Parse {
                    command: "write_archive".to_owned(),
                    detail: format!("branch {branch:?} has no local ref to archive"),
                })?;
                let tree = at
                    .run(["rev-parse", &format!("{tip}^{{tree}}")])
                    .await?
                    .trim()
                    .to_owned();
                (tree, vec![tip], false)
            }
        };

        let message = format!(
            "orch archive of {branch} ({work_item_id})\n\n{TRAILER_BRANCH}: {branch}\n{TRAILER_UNCOMMITTED}: {}\n",
            if had_uncommitted { "yes" } else { "no" }
        );
        let mut args: Vec<OsString> = vec!["commit-tree".into(), "--no-gpg-sign".into()];
        for p in &parents {
            args.extend(["-p".into(), p.into()]);
        }
        args.extend(["-m".into(), message.into(), tree.into()]);
        // One clock reading for the commit's dates and the returned `created_at`, so
        // the value equals what list_archives later reads back.
        let secs = now_secs();
        let date = OsString::from(format!("@{secs} +0000"));
        let env = [
            ("GIT_AUTHOR_DATE", date.as_os_str()),
            ("GIT_COMMITTER_DATE", date.as_os_str()),
        ];
        let commit = at.run_env(&args, &env).await?.trim().to_owned();

        for _ in 0..NUMBER_ATTEMPTS {
            let number = self.next_archive_number(mirror, work_item_id).await?;
            let ref_name = format!("{}{number}", archive_prefix(work_item_id));
            // Empty old value: create only, never overwrite an existing archive.
            let out = at
                .output(
                    &[
                        "update-ref".into(),
                        ref_name.clone().into(),
                        commit.clone().into(),
                        "".into(),
                    ],
                    &[],
                )
                .await?;
            if out.success() {
                tracing::info!(
                    work_item_id,
                    branch,
                    ref_name,
                    had_uncommitted,
                    "archived worktree state"
                );
                return Ok(Archive {
                    ref_name,
                    number,
                    commit,
                    branch: branch.to_owned(),
                    created_at: Timestamp(secs.saturating_mul(1000)),
                    had_uncommitted,
                });
            }
            if self.ref_sha(&at, &ref_name).await?.is_none() {
                let args: Vec<OsString> = vec!["update-ref".into(), ref_name.into(), commit.into()];
                return Err(at.failure(&args, &out));
            }
        }
        Err(GitError::Parse {
            command: "update-ref".to_owned(),
            detail: format!(
                "no free archive number for {work_item_id} after {NUMBER_ATTEMPTS} attempts"
            ),
        })
    }

    /// The tree of the worktree as `git add -A` would stage it, built in a
    /// throw-away index that starts as a copy of the worktree's index (so unchanged
    /// files are not re-hashed).
    async fn snapshot_tree(&self, in_wt: &Scoped<'_>, head: Option<&str>) -> Result<String> {
        let admin = in_wt
            .var("GIT_DIR")
            .map(PathBuf::from)
            .ok_or_else(|| GitError::Parse {
                command: "snapshot_tree".to_owned(),
                detail: "the worktree frame names no admin dir".to_owned(),
            })?;
        let index = TempIndex::new(&admin);
        let real = admin.join("index");
        let env = [("GIT_INDEX_FILE", index.path.as_os_str())];
        if tokio::fs::try_exists(&real).await.unwrap_or(false) {
            tokio::fs::copy(&real, &index.path)
                .await
                .map_err(|e| GitError::io("copy the index", &real, e))?;
        } else if let Some(h) = head {
            in_wt.run_env(["read-tree", h], &env).await?;
        }
        in_wt.run_env(["add", "-A"], &env).await?;
        Ok(in_wt.run_env(["write-tree"], &env).await?.trim().to_owned())
    }

    /// Commit the files of a folder git no longer knows as a worktree (as
    /// `git add -A` would see them there, `.gitignore` honoured) to the next
    /// `refs/orch/orphaned/<n>` of the mirror, and return that ref. The commit
    /// has no parent; its message names the folder.
    pub(crate) async fn archive_orphan(&self, mirror: &Path, folder: &Path) -> Result<String> {
        let at = self.at_mirror(mirror);
        let index = TempIndex::new(mirror);
        let env = [
            ("GIT_INDEX_FILE", index.path.as_os_str()),
            ("GIT_WORK_TREE", folder.as_os_str()),
        ];
        at.run_env(["add", "-A", "--", "."], &env).await?;
        let tree = at.run_env(["write-tree"], &env).await?.trim().to_owned();
        let message = format!(
            "orch archive of the orphaned folder {}\n\nThe folder was no longer a worktree git knew (left by a crash); its files were saved here before it was removed.\n",
            folder.display()
        );
        let commit = at
            .run(["commit-tree", "--no-gpg-sign", "-m", &message, &tree])
            .await?
            .trim()
            .to_owned();
        for _ in 0..NUMBER_ATTEMPTS {
            let listing = at
                .run(["for-each-ref", "--format=%(refname)", ORPHAN_PREFIX])
                .await?;
            let next = listing
                .lines()
                .filter_map(|r| r.strip_prefix(ORPHAN_PREFIX)?.parse::<u32>().ok())
                .max()
                .map_or(1, |n| n + 1);
            let ref_name = format!("{ORPHAN_PREFIX}{next}");
            let out = at
                .output(
                    &[
                        "update-ref".into(),
                        ref_name.clone().into(),
                        commit.clone().into(),
                        "".into(),
                    ],
                    &[],
                )
                .await?;
            if out.success() {
                return Ok(ref_name);
            }
        }
        Err(GitError::Parse {
            command: "update-ref".to_owned(),
            detail: format!("no free orphan archive number after {NUMBER_ATTEMPTS} attempts"),
        })
    }

    /// The files an archive changed relative to the remote's `base` (since
    /// their merge base), at most `limit` of them: what a person looks for in it.
    pub async fn archive_files(
        &self,
        repo: &str,
        archive: &Archive,
        base: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        validate_branch_name(base)?;
        validate_sha(&archive.commit)?;
        let mirror = self.existing_mirror(repo)?;
        let at = self.at_mirror(&mirror);
        let base_ref = crate::refs::remote_ref(base);
        let out = if self.ref_sha(&at, &base_ref).await?.is_some() {
            let range = format!("{base_ref}...{}", archive.commit);
            at.run(["diff", "--name-only", "-z", "--no-ext-diff", &range, "--"])
                .await?
        } else {
            // No base to compare with: everything the archive holds.
            let tree = format!("{}^{{tree}}", archive.commit);
            at.run(["ls-tree", "-r", "-z", "--name-only", &tree])
                .await?
        };
        Ok(out
            .split('\0')
            .filter(|f| !f.is_empty())
            .take(limit)
            .map(str::to_owned)
            .collect())
    }

    /// Every archive of a work item, oldest first, each with the files it
    /// changed against `base`. A repo without a mirror has none.
    pub async fn archive_listings(
        &self,
        repo: &str,
        work_item_id: &str,
        base: &str,
    ) -> Result<Vec<ArchiveListing>> {
        let archives = match self.list_archives(repo, work_item_id).await {
            Ok(a) => a,
            Err(GitError::NoMirror { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::with_capacity(archives.len());
        for archive in archives {
            let mut files = self
                .archive_files(repo, &archive, base, ARCHIVE_FILES_SHOWN + 1)
                .await?;
            let files_cut = files.len() > ARCHIVE_FILES_SHOWN;
            files.truncate(ARCHIVE_FILES_SHOWN);
            out.push(ArchiveListing {
                archive,
                files,
                files_cut,
            });
        }
        Ok(out)
    }

    async fn next_archive_number(&self, mirror: &Path, work_item_id: &str) -> Result<u32> {
        let existing = self.archive_refs(mirror, work_item_id).await?;
        Ok(existing.iter().map(|a| a.number).max().map_or(1, |n| n + 1))
    }

    /// Every archive of a work item, oldest (lowest number) first.
    pub async fn list_archives(&self, repo: &str, work_item_id: &str) -> Result<Vec<Archive>> {
        validate_work_item_id(work_item_id)?;
        let mirror = self.existing_mirror(repo)?;
        self.archive_refs(&mirror, work_item_id).await
    }

    async fn archive_refs(&self, mirror: &Path, work_item_id: &str) -> Result<Vec<Archive>> {
        let prefix = archive_prefix(work_item_id);
        let format = format!(
            "--format=%(refname)%00%(objectname)%00%(creatordate:unix)%00%(trailers:key={TRAILER_UNCOMMITTED},valueonly)%00%(trailers:key={TRAILER_BRANCH},valueonly)%00"
        );
        let out = self
            .at_mirror(mirror)
            .run(["for-each-ref", format.as_str(), prefix.as_str()])
            .await?;
        let fields: Vec<&str> = out.split('\0').map(str::trim).collect();
        let mut archives = Vec::new();
        for rec in fields.chunks_exact(5) {
            let [ref_name, commit, date, uncommitted, branch] = rec else {
                continue;
            };
            // Anything under the prefix that is not `<number>` was not written by us.
            let Some(number) = ref_name
                .strip_prefix(prefix.as_str())
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let secs: i64 = date.parse().map_err(|_| GitError::Parse {
                command: "for-each-ref".to_owned(),
                detail: format!("bad date {date:?} for {ref_name}"),
            })?;
            archives.push(Archive {
                ref_name: (*ref_name).to_owned(),
                number,
                commit: (*commit).to_owned(),
                branch: (*branch).to_owned(),
                created_at: Timestamp(secs.saturating_mul(1000)),
                had_uncommitted: *uncommitted == "yes",
            });
        }
        archives.sort_by_key(|a| a.number);
        Ok(archives)
    }

    /// Create the local branch `restore/<work_item_id>-<number>` at an archive and
    /// return its name; `create_or_reuse_worktree` can then check it out. The
    /// archived uncommitted changes are the branch's last commit. Restoring the
    /// same archive twice returns the same branch.
    pub async fn restore_archive(
        &self,
        repo: &str,
        work_item_id: &str,
        number: u32,
    ) -> Result<String> {
        validate_work_item_id(work_item_id)?;
        let mirror = self.existing_mirror(repo)?;
        let ref_name = format!("{}{number}", archive_prefix(work_item_id));
        let at = self.at_mirror(&mirror);
        let commit =
            self.ref_sha(&at, &ref_name)
                .await?
                .ok_or_else(|| GitError::ArchiveNotFound {
                    repo: repo.to_owned(),
                    work_item_id: work_item_id.to_owned(),
                    number,
                })?;
        let branch = restore_branch_name(work_item_id, number);
        validate_branch_name(&branch)?;
        let target = local_ref(&branch);
        let _guard = self.lock_repo(repo).await;
        match self.ref_sha(&at, &target).await? {
            Some(existing) if existing == commit => return Ok(branch),
            Some(_) => return Err(GitError::BranchExists { branch }),
            None => {}
        }
        at.run([
            OsStr::new("update-ref"),
            "-m".as_ref(),
            "orch: restore archive".as_ref(),
            target.as_ref(),
            commit.as_ref(),
            "".as_ref(),
        ])
        .await?;
        Ok(branch)
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A uniquely named index file next to the mirror, deleted when dropped.
struct TempIndex {
    path: PathBuf,
}

impl TempIndex {
    fn new(mirror: &Path) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        TempIndex {
            path: mirror.join(format!("orch-archive-index-{}-{n}", std::process::id())),
        }
    }
}

impl Drop for TempIndex {
    fn drop(&mut self) {
        // Best effort: a leftover file is harmless and is overwritten by name reuse.
        let _ = std::fs::remove_file(&self.path);
        let mut lock = self.path.clone().into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }
}
