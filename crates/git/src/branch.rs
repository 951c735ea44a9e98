//! Branch operations the pipeline needs: orch's own commits, pushing the task
//! branch, merging the base into it, the diff the reviewer reads
//! deleting the remote feature branch on cancel, and the local
//! forge's guarded fast-forward of the base branch.

use std::ffi::OsString;

use serde::{Deserialize, Serialize};

use crate::error::{GitError, Result};
use crate::mirror::RepoStore;
use crate::refs::{local_ref, remote_ref, validate_branch_name, validate_sha};
use crate::worktree::Worktree;

/// Outcome of [`RepoStore::merge_base_into_branch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum MergeResult {
    /// The branch already contains the base.
    UpToDate,
    /// The base was merged (or fast-forwarded) in; `sha` is the new branch head.
    Merged { sha: String },
    /// The merge conflicted in these files and was aborted: the worktree is as
    /// before. Someone (an agent) must resolve it on the branch.
    Conflict { files: Vec<String> },
}

/// Outcome of [`RepoStore::delete_remote_branch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum DeleteOutcome {
    Deleted,
    /// The remote has no such branch (already deleted or never pushed).
    NotFound,
    /// The branch is protected; nothing was done.
    Refused {
        reason: String,
    },
}

/// Outcome of [`RepoStore::fast_forward_base`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum FastForward {
    /// The base branch on the remote now points at `sha`, the branch head.
    Pushed { sha: String },
    /// The base is no longer at the expected commit (someone else merged): nothing
    /// was pushed. `current` is where it is now, if it still exists.
    BaseMoved { current: Option<String> },
    /// The branch head does not contain the expected base commit: merge the base
    /// into the branch (and verify again) first. Nothing was pushed.
    NotFastForward,
}

/// Branches that [`RepoStore::delete_remote_branch`] never deletes, on top of
/// `main`, `master` and the remote's default branch. An entry ending in `*` is a
/// prefix (`release/*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProtectedBranches {
    patterns: Vec<String>,
}

impl ProtectedBranches {
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ProtectedBranches {
            patterns: patterns.into_iter().map(Into::into).collect(),
        }
    }

    /// Why `branch` must not be deleted, judged from names alone (the remote's
    /// default branch is checked separately, as it needs the remote).
    pub fn refusal(&self, branch: &str) -> Option<String> {
        if branch == "main" || branch == "master" {
            return Some(format!("{branch:?} is never deleted"));
        }
        self.patterns
            .iter()
            .find(|p| match p.strip_suffix('*') {
                Some(prefix) => branch.starts_with(prefix),
                None => p.as_str() == branch,
            })
            .map(|p| format!("{branch:?} is protected by the configured pattern {p:?}"))
    }
}

impl RepoStore {
    /// Stage everything (`add -A`: modifications, deletions, untracked files that
    /// are not ignored) and commit it as orch. `None` if there was nothing to
    /// commit. Hooks are not run: this is orch's bookkeeping commit, not a
    /// developer's.
    pub async fn commit_all(&self, worktree: &Worktree, message: &str) -> Result<Option<String>> {
        let mirror = self.existing_mirror(&worktree.repo)?;
        let at = self.at_worktree(&mirror, &worktree.path)?;
        at.run(["add", "-A"]).await?;
        let staged = at
            .output(&["diff".into(), "--cached".into(), "--quiet".into()], &[])
            .await?;
        match staged.code() {
            Some(0) => return Ok(None),
            Some(1) => {}
            _ => {
                let args: Vec<OsString> = vec!["diff".into(), "--cached".into(), "--quiet".into()];
                return Err(at.failure(&args, &staged));
            }
        }
        let message = if message.trim().is_empty() {
            "orch: commit"
        } else {
            message
        };
        at.run([
            "commit",
            "--quiet",
            "--no-verify",
            "--no-gpg-sign",
            "-m",
            message,
        ])
        .await?;
        self.head_sha(worktree).await.map(Some)
    }

    /// The paths of the worktree that no commit holds: modified, deleted,
    /// staged or untracked (ignored files are not work).
    pub async fn uncommitted(&self, worktree: &Worktree) -> Result<Vec<String>> {
        let mirror = self.existing_mirror(&worktree.repo)?;
        let out = self
            .at_worktree(&mirror, &worktree.path)?
            .run(["status", "--porcelain", "-z", "--untracked-files=all"])
            .await?;
        let mut paths = Vec::new();
        let mut fields = out.split('\0').filter(|f| !f.is_empty());
        while let Some(entry) = fields.next() {
            // "XY path"; a rename or copy is followed by its source path.
            let (status, path) = entry.split_at(entry.len().min(3));
            if status.starts_with('R') || status.starts_with('C') {
                fields.next();
            }
            paths.push(path.to_owned());
        }
        Ok(paths)
    }

    /// The commit the worktree's HEAD points at.
    pub async fn head_sha(&self, worktree: &Worktree) -> Result<String> {
        let mirror = self.existing_mirror(&worktree.repo)?;
        Ok(self
            .at_worktree(&mirror, &worktree.path)?
            .run(["rev-parse", "--verify", "HEAD^{commit}"])
            .await?
            .trim()
            .to_owned())
    }

    /// Push the local task branch to the same name on `origin` and return the
    /// pushed commit. Not forced: a rewritten branch that no longer contains the
    /// remote's is refused (a `Failed` error) rather than overwriting it.
    pub async fn push_branch(&self, repo: &str, branch: &str) -> Result<String> {
        validate_branch_name(branch)?;
        let mirror = self.existing_mirror(repo)?;
        let local = local_ref(branch);
        let at = self.at_mirror(&mirror);
        let sha = self
            .ref_sha(&at, &local)
            .await?
            .ok_or_else(|| GitError::BranchNotFound {
                repo: repo.to_owned(),
                branch: branch.to_owned(),
            })?;
        let _guard = self.lock_repo(repo).await;
        let refspec = format!("{sha}:{local}");
        at.run(["push", "--quiet", "--", "origin", refspec.as_str()])
            .await?;
        Ok(sha)
    }

    /// Fetch, then merge `origin/<base>` into the worktree's branch. A conflict is
    /// aborted cleanly and reported with the conflicting files. The worktree must
    /// have no uncommitted changes to tracked files (a merge abort could not bring
    /// them back); untracked files are left alone by both merge and abort.
    pub async fn merge_base_into_branch(
        &self,
        worktree: &Worktree,
        base: &str,
    ) -> Result<MergeResult> {
        validate_branch_name(base)?;
        let mirror = self.existing_mirror(&worktree.repo)?;
        {
            let _guard = self.lock_repo(&worktree.repo).await;
            self.fetch_locked(&mirror).await?;
        }
        let dir = &worktree.path;
        let at = self.at_worktree(&mirror, dir)?;
        let status = at
            .run(["status", "--porcelain", "-z", "--untracked-files=no"])
            .await?;
        if !status.is_empty() {
            return Err(GitError::DirtyWorktree { path: dir.clone() });
        }
        let base_ref = remote_ref(base);
        if self.ref_sha(&at, &base_ref).await?.is_none() {
            return Err(GitError::BaseNotFound {
                repo: worktree.repo.clone(),
                base: base.to_owned(),
            });
        }
        let ancestor_args: Vec<OsString> = vec![
            "merge-base".into(),
            "--is-ancestor".into(),
            base_ref.clone().into(),
            "HEAD".into(),
        ];
        let ancestor = at.output(&ancestor_args, &[]).await?;
        match ancestor.code() {
            Some(0) => return Ok(MergeResult::UpToDate),
            Some(1) => {}
            _ => return Err(at.failure(&ancestor_args, &ancestor)),
        }

        let merge_args: Vec<OsString> = vec![
            "merge".into(),
            "--no-edit".into(),
            "--no-verify".into(),
            "--no-gpg-sign".into(),
            "--quiet".into(),
            base_ref.into(),
        ];
        let merged = at.output(&merge_args, &[]).await?;
        if merged.success() {
            return Ok(MergeResult::Merged {
                sha: self.head_sha(worktree).await?,
            });
        }
        let unmerged = at
            .run(["diff", "--name-only", "-z", "--diff-filter=U"])
            .await?;
        let files: Vec<String> = unmerged
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect();
        if self.ref_sha(&at, "MERGE_HEAD").await?.is_some() {
            at.run(["merge", "--abort"]).await?;
        }
        if files.is_empty() {
            // Not a content conflict (e.g. an untracked file in the way): report git's words.
            return Err(at.failure(&merge_args, &merged));
        }
        tracing::info!(branch = %worktree.branch, base, ?files, "merge of the base conflicted; aborted");
        Ok(MergeResult::Conflict { files })
    }

    /// Delete a branch on the remote, unless it is `main`, `master`, protected,
    /// or the remote's default branch. Refusals are outcomes, not errors, and the
    /// name-based ones are decided before any git call.
    pub async fn delete_remote_branch(
        &self,
        repo: &str,
        branch: &str,
        protected: &ProtectedBranches,
    ) -> Result<DeleteOutcome> {
        validate_branch_name(branch)?;
        if let Some(reason) = protected.refusal(branch) {
            return Ok(DeleteOutcome::Refused { reason });
        }
        let mirror = self.existing_mirror(repo)?;
        let full = local_ref(branch);
        let at = self.at_mirror(&mirror);
        let listing = at
            .run([
                "ls-remote",
                "--symref",
                "--",
                "origin",
                "HEAD",
                full.as_str(),
            ])
            .await?;
        let (default, exists) = parse_ls_remote(&listing, &full);
        match default {
            None => {
                return Ok(DeleteOutcome::Refused {
                    reason: "the remote did not say which branch is its default (no HEAD), so no branch is deleted".to_owned(),
                });
            }
            Some(d) if d == branch => {
                return Ok(DeleteOutcome::Refused {
                    reason: format!("{branch:?} is the remote's default branch"),
                });
            }
            Some(_) => {}
        }
        let _guard = self.lock_repo(repo).await;
        if !exists {
            // Drop a stale remote-tracking copy so a later worktree does not revive it.
            let tracking = remote_ref(branch);
            if self.ref_sha(&at, &tracking).await?.is_some() {
                at.run(["update-ref", "-d", tracking.as_str()]).await?;
            }
            return Ok(DeleteOutcome::NotFound);
        }
        let refspec = format!(":{full}");
        at.run(["push", "--quiet", "--", "origin", refspec.as_str()])
            .await?;
        tracing::info!(repo, branch, "deleted remote branch");
        Ok(DeleteOutcome::Deleted)
    }

    /// The change the task branch makes relative to `origin/<base>` as of the last
    /// fetch (three-dot: since the merge base), for the reviewer. External diff
    /// drivers and textconv filters are off so the output is plain git.
    pub async fn diff_against_base(&self, worktree: &Worktree, base: &str) -> Result<String> {
        let range = self.base_range(worktree, base).await?;
        let mirror = self.existing_mirror(&worktree.repo)?;
        self.at_worktree(&mirror, &worktree.path)?
            .run([
                "diff",
                "--no-color",
                "--no-ext-diff",
                "--no-textconv",
                range.as_str(),
                "--",
            ])
            .await
    }

    /// Paths the task branch changed relative to `origin/<base>` (as above).
    pub async fn changed_files(&self, worktree: &Worktree, base: &str) -> Result<Vec<String>> {
        let range = self.base_range(worktree, base).await?;
        let mirror = self.existing_mirror(&worktree.repo)?;
        let out = self
            .at_worktree(&mirror, &worktree.path)?
            .run([
                "diff",
                "--name-only",
                "-z",
                "--no-ext-diff",
                range.as_str(),
                "--",
            ])
            .await?;
        Ok(out
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect())
    }

    async fn base_range(&self, worktree: &Worktree, base: &str) -> Result<String> {
        validate_branch_name(base)?;
        let base_ref = remote_ref(base);
        let mirror = self.existing_mirror(&worktree.repo)?;
        let at = self.at_worktree(&mirror, &worktree.path)?;
        if self.ref_sha(&at, &base_ref).await?.is_none() {
            return Err(GitError::BaseNotFound {
                repo: worktree.repo.clone(),
                base: base.to_owned(),
            });
        }
        Ok(format!("{base_ref}...HEAD"))
    }

    /// Whether the history of `base_sha` (a commit of the remote's base)
    /// already holds `commit`: a task branch whose head it holds brings
    /// nothing of its own. The mirror is fetched when it does not know
    /// `base_sha` yet; `None` when even then one of them is unknown.
    pub async fn base_holds(
        &self,
        repo: &str,
        base_sha: &str,
        commit: &str,
    ) -> Result<Option<bool>> {
        validate_sha(base_sha)?;
        validate_sha(commit)?;
        let mirror = self.existing_mirror(repo)?;
        let at = self.at_mirror(&mirror);
        if self.ref_sha(&at, base_sha).await?.is_none() {
            let _guard = self.lock_repo(repo).await;
            self.fetch_locked(&mirror).await?;
        }
        let args: Vec<OsString> = vec![
            "merge-base".into(),
            "--is-ancestor".into(),
            commit.into(),
            base_sha.into(),
        ];
        let out = at.output(&args, &[]).await?;
        match out.code() {
            Some(0) => Ok(Some(true)),
            Some(1) => Ok(Some(false)),
            // 128: an object this mirror does not have.
            Some(128) => Ok(None),
            _ => Err(at.failure(&args, &out)),
        }
    }

    /// The local forge's merge: make the remote's `base` point at the local
    /// `branch` head, but only if `base` is still at `expected_base_sha` and the
    /// move is a fast-forward. The check and the update are one atomic push
    /// (`--force-with-lease=refs/heads/<base>:<expected>`), so a stale merge-lease
    /// holder can never overwrite a base someone else advanced.
    pub async fn fast_forward_base(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
        expected_base_sha: &str,
    ) -> Result<FastForward> {
        validate_branch_name(branch)?;
        validate_branch_name(base)?;
        validate_sha(expected_base_sha)?;
        let mirror = self.existing_mirror(repo)?;
        let at = self.at_mirror(&mirror);
        let head = self
            .ref_sha(&at, &local_ref(branch))
            .await?
            .ok_or_else(|| GitError::BranchNotFound {
                repo: repo.to_owned(),
                branch: branch.to_owned(),
            })?;
        let _guard = self.lock_repo(repo).await;

        if self.ref_sha(&at, expected_base_sha).await?.is_none() {
            self.fetch_locked(&mirror).await?;
            if self.ref_sha(&at, expected_base_sha).await?.is_none() {
                // Not even the remote knows that commit, so the base is not at it.
                return Ok(FastForward::BaseMoved {
                    current: self.ls_remote_branch(&mirror, base).await?,
                });
            }
        }
        let ancestor_args: Vec<OsString> = vec![
            "merge-base".into(),
            "--is-ancestor".into(),
            expected_base_sha.into(),
            head.clone().into(),
        ];
        let ancestor = at.output(&ancestor_args, &[]).await?;
        match ancestor.code() {
            Some(0) => {}
            Some(1) => return Ok(FastForward::NotFastForward),
            _ => return Err(at.failure(&ancestor_args, &ancestor)),
        }

        let base_full = local_ref(base);
        let push_args: Vec<OsString> = vec![
            "push".into(),
            "--porcelain".into(),
            format!("--force-with-lease={base_full}:{expected_base_sha}").into(),
            "--".into(),
            "origin".into(),
            format!("{head}:{base_full}").into(),
        ];
        let pushed = at.output(&push_args, &[]).await?;
        if pushed.success() {
            tracing::info!(repo, branch, base, sha = %head, "fast-forwarded base");
            return Ok(FastForward::Pushed { sha: head });
        }
        let rejected = pushed
            .stdout
            .lines()
            .any(|l| l.starts_with('!') && l.contains(base_full.as_str()));
        if rejected {
            return Ok(FastForward::BaseMoved {
                current: self.ls_remote_branch(&mirror, base).await?,
            });
        }
        Err(at.failure(&push_args, &pushed))
    }
}

/// From `ls-remote --symref origin HEAD <ref>`: the default branch (short name)
/// and whether `<ref>` exists.
fn parse_ls_remote(out: &str, full: &str) -> (Option<String>, bool) {
    let mut default = None;
    let mut exists = false;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("ref: ") {
            if let Some((target, "HEAD")) = rest.split_once('\t') {
                default = target.strip_prefix("refs/heads/").map(str::to_owned);
            }
        } else if let Some((_, name)) = line.split_once('\t')
            && name == full
        {
            exists = true;
        }
    }
    (default, exists)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_names() {
        let p = ProtectedBranches::new(["develop", "release/*"]);
        assert!(p.refusal("main").is_some());
        assert!(p.refusal("master").is_some());
        assert!(p.refusal("develop").is_some());
        assert!(p.refusal("release/1.0").is_some());
        assert!(p.refusal("feature/X-1-a").is_none());
        assert!(p.refusal("developer").is_none());
    }

    #[test]
    fn ls_remote_parsing() {
        let out = "ref: refs/heads/trunk\tHEAD\nabc\tHEAD\ndef\trefs/heads/feature/x\n";
        assert_eq!(
            parse_ls_remote(out, "refs/heads/feature/x"),
            (Some("trunk".to_owned()), true)
        );
        assert_eq!(
            parse_ls_remote("abc\tHEAD\n", "refs/heads/y"),
            (None, false)
        );
    }
}
