//! A task branch that several nodes work on in turn (issue 11).
//!
//! On a store several orch nodes share, a task's runs may land on any node,
//! each with its own mirror and worktrees. The remote is the only place the
//! nodes share: each run's work is pushed there before its job counts as
//! done, and a node brings its local branch (and the worktree it is checked
//! out in) up to the remote's before it works on the task again. A local
//! branch that went apart from the remote holds the work of a run that was
//! lost and done again elsewhere (its node died before it could push): the
//! remote wins, and the local tip is kept under
//! `refs/orch/superseded/<branch>/<sha>` rather than dropped.

use crate::Result;
use crate::control::Scoped;
use crate::mirror::RepoStore;
use crate::refs::{local_ref, remote_ref, validate_branch_name};
use std::ffi::OsString;

/// What catching up with the remote did to a local task branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatchUp {
    /// The remote has no such branch.
    NothingToCatch,
    /// This node had no copy of the branch; it has the remote's now.
    Fetched {
        to: String,
    },
    UpToDate,
    /// The local branch has commits the remote lacks (this node's own).
    Ahead,
    /// The local branch was behind; it is at the remote's tip now.
    FastForwarded {
        from: String,
        to: String,
    },
    /// Local and remote went apart: the local tip is kept under `kept`,
    /// the branch is at the remote's tip.
    Replaced {
        kept: String,
        to: String,
    },
}

impl RepoStore {
    /// Fetch, then bring the local `branch` (and its worktree's files, if it
    /// is checked out) to the remote's tip unless the local one is ahead.
    /// Uncommitted changes in that worktree are discarded when it moves:
    /// commit them first.
    pub async fn catch_up_with_remote(&self, repo: &str, branch: &str) -> Result<CatchUp> {
        validate_branch_name(branch)?;
        let mirror = self.existing_mirror(repo)?;
        let _guard = self.lock_repo(repo).await;
        self.fetch_locked(&mirror).await?;
        let at = self.at_mirror(&mirror);
        let local_name = local_ref(branch);
        let Some(remote) = self.ref_sha(&at, &remote_ref(branch)).await? else {
            return Ok(CatchUp::NothingToCatch);
        };
        let Some(local) = self.ref_sha(&at, &local_name).await? else {
            // The zero id: create the branch only if it still does not exist.
            let none = "0".repeat(remote.len());
            at.run([
                "update-ref",
                local_name.as_str(),
                remote.as_str(),
                none.as_str(),
            ])
            .await?;
            return Ok(CatchUp::Fetched { to: remote });
        };
        if local == remote {
            return Ok(CatchUp::UpToDate);
        }
        if is_ancestor(&at, &remote, &local).await? {
            return Ok(CatchUp::Ahead);
        }
        let kept = if is_ancestor(&at, &local, &remote).await? {
            None
        } else {
            let name = format!("refs/orch/superseded/{branch}/{local}");
            at.run(["update-ref", name.as_str(), local.as_str()])
                .await?;
            Some(name)
        };
        let checked_out = self
            .live_worktrees(&mirror)
            .await?
            .into_iter()
            .find(|e| e.branch.as_deref() == Some(local_name.as_str()));
        match checked_out {
            Some(wt) => {
                self.at_worktree(&mirror, &wt.path)?
                    .run([
                        "reset",
                        "--hard",
                        "--quiet",
                        "--no-recurse-submodules",
                        remote.as_str(),
                    ])
                    .await?;
            }
            None => {
                at.run([
                    "update-ref",
                    local_name.as_str(),
                    remote.as_str(),
                    local.as_str(),
                ])
                .await?;
            }
        }
        tracing::info!(repo, branch, from = %local, to = %remote, superseded = ?kept, "caught up with the remote branch");
        Ok(match kept {
            Some(kept) => CatchUp::Replaced { kept, to: remote },
            None => CatchUp::FastForwarded {
                from: local,
                to: remote,
            },
        })
    }
}

/// Whether commit `a` is an ancestor of (or is) commit `b`.
async fn is_ancestor(at: &Scoped<'_>, a: &str, b: &str) -> Result<bool> {
    let args: Vec<OsString> = vec![
        "merge-base".into(),
        "--is-ancestor".into(),
        a.into(),
        b.into(),
    ];
    let out = at.output(&args, &[]).await?;
    match out.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(at.failure(&args, &out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_world::{git, world};

    fn commit(wt: &std::path::Path, file: &str) {
        std::fs::write(wt.join(file), file).unwrap();
        git(wt, &["add", "-A"]);
        git(wt, &["commit", "--quiet", "-m", file]);
    }

    /// Two nodes, each with its own mirror, take turns on one task branch.
    #[tokio::test]
    async fn a_node_catches_up_with_work_pushed_by_another_and_keeps_what_went_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let (one, wt1, _) = world(tmp.path()).await;
        let remote = tmp.path().join("remote.git");
        assert_eq!(
            one.catch_up_with_remote("demo", "feature/x").await.unwrap(),
            CatchUp::NothingToCatch,
            "never pushed"
        );
        // A third node that never worked on the task gets the branch.
        let three = RepoStore::new(tmp.path().join("repos-three"));
        three
            .ensure_mirror("demo", remote.to_str().unwrap())
            .await
            .unwrap();
        commit(&wt1.path, "analysis.md");
        let first = one.push_branch("demo", "feature/x").await.unwrap();
        assert_eq!(
            three
                .catch_up_with_remote("demo", "feature/x")
                .await
                .unwrap(),
            CatchUp::Fetched { to: first }
        );

        // The second node's worktree starts from the pushed branch.
        let two = RepoStore::new(tmp.path().join("repos-two"));
        two.ensure_mirror("demo", remote.to_str().unwrap())
            .await
            .unwrap();
        let wt2 = two
            .create_or_reuse_worktree("demo", "feature/x", "main")
            .await
            .unwrap();
        assert!(wt2.path.join("analysis.md").exists());

        // The first node does more; the second catches up before it works.
        commit(&wt1.path, "code.rs");
        let pushed = one.push_branch("demo", "feature/x").await.unwrap();
        let caught = two.catch_up_with_remote("demo", "feature/x").await.unwrap();
        assert!(
            matches!(&caught, CatchUp::FastForwarded { to, .. } if *to == pushed),
            "{caught:?}"
        );
        assert!(wt2.path.join("code.rs").exists(), "the worktree moved too");
        assert_eq!(
            two.catch_up_with_remote("demo", "feature/x").await.unwrap(),
            CatchUp::UpToDate
        );

        // Its own work, not pushed yet, stays.
        commit(&wt2.path, "review.md");
        assert_eq!(
            two.catch_up_with_remote("demo", "feature/x").await.unwrap(),
            CatchUp::Ahead
        );
        let second = two.push_branch("demo", "feature/x").await.unwrap();

        // The first node made a commit it never pushed (it died), while the
        // work was done again and pushed by the second: the remote wins,
        // and the lost commit is kept.
        commit(&wt1.path, "lost.md");
        let lost = git(&wt1.path, &["rev-parse", "HEAD"]);
        let caught = one.catch_up_with_remote("demo", "feature/x").await.unwrap();
        let CatchUp::Replaced { kept, to } = caught else {
            panic!("{caught:?}")
        };
        assert_eq!(to, second);
        assert_eq!(kept, format!("refs/orch/superseded/feature/x/{lost}"));
        assert_eq!(git(&wt1.path, &["rev-parse", "HEAD"]), second);
        assert!(!wt1.path.join("lost.md").exists());
        assert!(wt1.path.join("review.md").exists());
        let mirror = one.mirror_path("demo").unwrap();
        assert_eq!(git(&mirror, &["rev-parse", &kept]), lost);
    }
}
