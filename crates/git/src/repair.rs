//! What a killed git leaves in a task's worktree, and how orch clears it.
//!
//! git takes `index.lock` beside the index (for a worktree: in its admin dir,
//! `<mirror>/worktrees/<name>/index.lock`) and renames it over the index when
//! done; a commit also locks the worktree's `HEAD` and its branch's ref. A git
//! killed in between leaves the lock, and every later git step there fails
//! ("Unable to create …/index.lock: File exists") until someone deletes it.
//!
//! - **Stale locks.** orch's own steps in one worktree never overlap (a task
//!   runs one job at a time), so when orch is about to take a step and finds
//!   no live process that may hold a lock ([`crate::locks`]), the lock is a
//!   leftover and is removed. A worktree with a live process in it (an agent,
//!   a git still finishing after orch died) is left alone: the caller tries
//!   later, or waits ([`RepoStore::repair_worktree_patiently`]).
//! - **Interrupted merge.** The merger's merge of the base into the branch
//!   writes a journal (`orch-merge` in the admin dir, holding the head before
//!   the merge) and removes it when git returns. A journal found later means
//!   the merge was killed: its files may be half checked out, its index half
//!   staged, `MERGE_HEAD` left behind. The worktree was clean before (checked
//!   before the journal is written), so if HEAD has not moved the worktree is
//!   reset to HEAD, which loses nothing committed; if HEAD moved, the merge
//!   had finished. The reset never moves the branch: a journal planted by an
//!   agent can at most drop uncommitted changes, which the merge would have
//!   refused anyway.
//! - **Unfinished checkout.** A worktree is registered first and checked out
//!   after (`git worktree add --no-checkout`, then `reset --hard`). Killed in
//!   between, it is registered without an index and with none or some of its
//!   files, and a later `add -A` would commit the missing ones as deleted. An
//!   admin dir without an index is that state (git writes the index last, by
//!   renaming its lock): the checkout is finished from HEAD.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::branch::MergeResult;
use crate::control::admin_dir;
use crate::error::{GitError, Result};
use crate::locks::{live_holder, locks_in};
use crate::mirror::RepoStore;
use crate::worktree::Worktree;

/// The journal of an unfinished merge of the base, in the worktree's admin dir.
const MERGE_JOURNAL: &str = "orch-merge";

/// What [`RepoStore::repair_worktree`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorktreeRepair {
    /// The stale locks that were removed: the worktree's own (`index.lock`,
    /// `HEAD.lock`, `ORIG_HEAD.lock`, … in its admin dir) and its branch's
    /// ref lock in the mirror.
    pub removed_locks: Vec<PathBuf>,
    /// An interrupted merge was undone: the worktree was reset to this head.
    pub undone_merge: Option<String>,
    /// The worktree's checkout had never finished; it was, at this head.
    pub finished_checkout: Option<String>,
    /// A live process works in the worktree, so nothing was touched: who.
    pub busy: Option<String>,
}

impl WorktreeRepair {
    pub fn is_empty(&self) -> bool {
        self.removed_locks.is_empty()
            && self.undone_merge.is_none()
            && self.finished_checkout.is_none()
            && self.busy.is_none()
    }
}

impl RepoStore {
    /// The `index.lock` git takes for the worktree (whether or not it exists).
    pub fn index_lock_path(&self, worktree: &Worktree) -> Result<PathBuf> {
        let mirror = self.existing_mirror(&worktree.repo)?;
        Ok(admin_dir(&mirror, &worktree.path)?.join("index.lock"))
    }

    /// Clear what a killed git left in `worktree`: stale locks (the
    /// worktree's `index.lock`, `HEAD.lock`, … and its branch's ref lock),
    /// an unfinished checkout and an interrupted merge of the base (see the
    /// module docs). Call it before a git step of orch's in the worktree and
    /// at start-up; it costs a directory listing and two file checks when
    /// there is nothing to clear.
    pub async fn repair_worktree(&self, worktree: &Worktree) -> Result<WorktreeRepair> {
        let mirror = self.existing_mirror(&worktree.repo)?;
        let admin = admin_dir(&mirror, &worktree.path)?;
        let journal = admin.join(MERGE_JOURNAL);
        // A commit in the worktree locks its HEAD and its branch's ref too:
        // the chaos run found an orch killed mid-commit leaving `HEAD.lock`,
        // and every later commit there failing ("Another git process seems
        // to be running") until the task parked.
        let mut locks = Vec::new();
        locks_in(&admin, false, &mut locks);
        let branch_lock = mirror
            .join("refs/heads")
            .join(format!("{}.lock", worktree.branch));
        if branch_lock.symlink_metadata().is_ok() {
            locks.push(branch_lock);
        }
        let has_journal = journal.symlink_metadata().is_ok();
        let no_index = admin.join("index").symlink_metadata().is_err();
        let mut repair = WorktreeRepair::default();
        if locks.is_empty() && !has_journal && !no_index {
            return Ok(repair);
        }
        let probe = locks
            .first()
            .cloned()
            .unwrap_or_else(|| admin.join("index.lock"));
        for lock in std::iter::once(&probe).chain(locks.iter().skip(1)) {
            if let Some(who) = live_holder(&worktree.path, lock) {
                repair.busy = Some(who);
                return Ok(repair);
            }
        }
        for lock in locks {
            match std::fs::remove_file(&lock) {
                Ok(()) => {
                    tracing::warn!(lock = %lock.display(), "removed a stale lock of the worktree");
                    repair.removed_locks.push(lock);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(GitError::io("remove", &lock, e)),
            }
        }
        if no_index {
            let at = self.at_worktree(&mirror, &worktree.path)?;
            at.run(["reset", "--hard", "--quiet", "--no-recurse-submodules"])
                .await?;
            let head = self.head_sha(worktree).await?;
            tracing::warn!(
                worktree = %worktree.path.display(),
                head = %head,
                "finished a checkout that was killed midway"
            );
            repair.finished_checkout = Some(head);
        }
        if has_journal {
            repair.undone_merge = self.undo_merge(&mirror, worktree, &journal).await?;
        }
        Ok(repair)
    }

    /// [`RepoStore::repair_worktree`], waiting up to `patience` for a live
    /// process that works in the worktree to go first. Found by the chaos
    /// run: an orch killed while it checked a new worktree out left its
    /// `git reset --hard` running (for seconds on a loaded machine) with the
    /// index locked; the next orch saw the worktree busy, launched the agent
    /// into the half-written checkout, and its commit of the agent's work
    /// then failed on the lock, again and again. Waiting for that git lets
    /// the checkout finish (or its leftovers be cleared) first. Still busy
    /// after `patience`: the repair says who (`busy`), and the caller does
    /// not start work there.
    pub async fn repair_worktree_patiently(
        &self,
        worktree: &Worktree,
        patience: std::time::Duration,
    ) -> Result<WorktreeRepair> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let repair = self.repair_worktree(worktree).await?;
            if repair.busy.is_none() || std::time::Instant::now() >= deadline {
                return Ok(repair);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// [`RepoStore::merge_base_into_branch`] under a journal, so a merge killed
    /// midway is undone by the next [`RepoStore::repair_worktree`].
    pub async fn merge_base_journaled(
        &self,
        worktree: &Worktree,
        base: &str,
    ) -> Result<MergeResult> {
        let mirror = self.existing_mirror(&worktree.repo)?;
        let admin = admin_dir(&mirror, &worktree.path)?;
        let at = self.at_worktree(&mirror, &worktree.path)?;
        // The reset that undoes a killed merge must not lose anything: the
        // journal is only written over a worktree whose tracked files are clean.
        let status = at
            .run(["status", "--porcelain", "-z", "--untracked-files=no"])
            .await?;
        if !status.is_empty() {
            return Err(GitError::DirtyWorktree {
                path: worktree.path.clone(),
            });
        }
        let head = self.head_sha(worktree).await?;
        let journal = admin.join(MERGE_JOURNAL);
        let tmp = admin.join(format!("{MERGE_JOURNAL}.tmp"));
        std::fs::write(&tmp, format!("{head}\n")).map_err(|e| GitError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &journal)
            .map_err(|e| GitError::io("move into place", &journal, e))?;
        let merged = self.merge_base_into_branch(worktree, base).await;
        match std::fs::remove_file(&journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::io("remove", &journal, e)),
        }
        merged
    }

    /// A merge journal was found and nobody works in the worktree.
    async fn undo_merge(
        &self,
        mirror: &Path,
        worktree: &Worktree,
        journal: &Path,
    ) -> Result<Option<String>> {
        let before = std::fs::read_to_string(journal)
            .map_err(|e| GitError::io("read", journal, e))?
            .trim()
            .to_owned();
        let at = self.at_worktree(mirror, &worktree.path)?;
        let head_args: Vec<OsString> = vec![
            "rev-parse".into(),
            "--verify".into(),
            "--quiet".into(),
            "HEAD^{commit}".into(),
        ];
        let head = at.output(&head_args, &[]).await?;
        let head = head.success().then(|| head.stdout.trim().to_owned());
        let mut undone = None;
        if head.as_deref() == Some(before.as_str()) {
            let admin = admin_dir(mirror, &worktree.path)?;
            let status = at
                .run(["status", "--porcelain", "-z", "--untracked-files=no"])
                .await?;
            if !status.is_empty() || admin.join("MERGE_HEAD").exists() {
                at.run(["reset", "--hard", "--quiet", "HEAD"]).await?;
                tracing::warn!(
                    worktree = %worktree.path.display(),
                    head = %before,
                    "undid an interrupted merge of the base"
                );
                undone = Some(before);
            }
        }
        // HEAD moved: the merge had finished before its journal was removed.
        match std::fs::remove_file(journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::io("remove", journal, e)),
        }
        Ok(undone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_world::{git, world};
    use std::process::Command;

    /// The chaos run's lost work: a git of a killed orch still checks the
    /// worktree out, holding `index.lock`. The patient repair waits for it
    /// and clears what it left, so the commit that follows works; without
    /// patience the worktree is only reported busy.
    #[tokio::test]
    async fn a_patient_repair_waits_for_a_git_still_working_in_the_worktree() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, wt, _seed) = world(tmp.path()).await;
        let lock = store.index_lock_path(&wt).unwrap();
        std::fs::write(&lock, "").unwrap();
        std::fs::write(wt.path.join("work.md"), "the agent's work\n").unwrap();
        // A process working in the worktree until its stdin closes.
        let mut holder = Command::new("sh")
            .arg("-c")
            .arg("read _")
            .current_dir(&wt.path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.repair_worktree(&wt).await.unwrap().busy.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "the holder never showed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let impatient = store
            .repair_worktree_patiently(&wt, std::time::Duration::ZERO)
            .await
            .unwrap();
        assert!(impatient.busy.is_some() && lock.exists(), "{impatient:?}");
        let repair = {
            let store = store.clone();
            let wt = wt.clone();
            tokio::spawn(async move {
                store
                    .repair_worktree_patiently(&wt, std::time::Duration::from_secs(30))
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!repair.is_finished(), "the repair waits for the holder");
        drop(holder.stdin.take());
        holder.wait().unwrap();
        let repair = repair.await.unwrap().unwrap();
        assert_eq!(repair.busy, None);
        assert_eq!(repair.removed_locks, vec![lock.clone()]);
        store
            .commit_all(&wt, "the agent's work")
            .await
            .expect("the commit works once the holder is gone")
            .expect("something to commit");
    }

    #[tokio::test]
    async fn a_lock_nobody_holds_is_removed_and_a_held_one_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, wt, _) = world(tmp.path()).await;
        assert!(store.repair_worktree(&wt).await.unwrap().is_empty());
        let lock = store.index_lock_path(&wt).unwrap();
        assert!(lock.starts_with(tmp.path().join("repos/demo.git/worktrees")));
        std::fs::write(&lock, "").unwrap();
        // A process working in the worktree may be a git about to use it.
        let mut child = Command::new("sleep")
            .arg("60")
            .current_dir(&wt.path)
            .spawn()
            .unwrap();
        let r = store.repair_worktree(&wt).await.unwrap();
        assert!(
            r.busy.as_deref().is_some_and(|b| b.contains("sleep")),
            "{r:?}"
        );
        assert!(lock.exists(), "a held lock is kept");
        child.kill().unwrap();
        child.wait().unwrap();
        let r = store.repair_worktree(&wt).await.unwrap();
        assert_eq!(r.removed_locks, vec![lock.clone()]);
        assert!(!lock.exists());
        // git works in the worktree again.
        std::fs::write(wt.path.join("a.txt"), "a\n").unwrap();
        store.commit_all(&wt, "a").await.unwrap();
    }

    /// Found by the chaos run: an orch killed in the middle of a commit in
    /// the worktree left its `HEAD.lock` (and may leave the branch's ref
    /// lock); every commit there failed until the task parked.
    #[tokio::test]
    async fn a_killed_commits_head_and_branch_locks_are_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, wt, _) = world(tmp.path()).await;
        let admin = store
            .index_lock_path(&wt)
            .unwrap()
            .parent()
            .unwrap()
            .to_owned();
        let head_lock = admin.join("HEAD.lock");
        let branch_lock = tmp
            .path()
            .join("repos/demo.git/refs/heads")
            .join(format!("{}.lock", wt.branch));
        std::fs::write(&head_lock, "").unwrap();
        std::fs::create_dir_all(branch_lock.parent().unwrap()).unwrap();
        std::fs::write(&branch_lock, "").unwrap();
        std::fs::write(wt.path.join("b.txt"), "b\n").unwrap();
        assert!(
            store.commit_all(&wt, "blocked").await.is_err(),
            "the locks block a commit"
        );
        let r = store.repair_worktree(&wt).await.unwrap();
        assert_eq!(r.removed_locks.len(), 2, "{r:?}");
        assert!(!head_lock.exists() && !branch_lock.exists());
        store.commit_all(&wt, "b").await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_a_process_has_open_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, wt, _) = world(tmp.path()).await;
        let lock = store.index_lock_path(&wt).unwrap();
        // Held open by a process working elsewhere.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "exec 3>\"$1\"; sleep 60",
                "sh",
                lock.to_str().unwrap(),
            ])
            .current_dir(tmp.path())
            .spawn()
            .unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !lock.exists() {
            assert!(
                std::time::Instant::now() < end,
                "the holder never opened the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let r = store.repair_worktree(&wt).await.unwrap();
        assert!(r.busy.is_some() && r.removed_locks.is_empty(), "{r:?}");
        assert!(lock.exists());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn a_killed_merge_is_undone_to_the_head_before_it() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, wt, seed) = world(tmp.path()).await;
        std::fs::write(wt.path.join("work.md"), "work\n").unwrap();
        store.commit_all(&wt, "work").await.unwrap();
        let head = store.head_sha(&wt).await.unwrap();
        // The base moves on the remote.
        std::fs::write(seed.join("README.md"), "hi\nmore\n").unwrap();
        git(&seed, &["commit", "--quiet", "-am", "base moved"]);
        let remote = tmp.path().join("remote.git");
        git(
            &seed,
            &["push", "--quiet", remote.to_str().unwrap(), "main"],
        );
        // What a merge killed midway leaves: its journal, the lock, a file
        // half checked out.
        let lock = store.index_lock_path(&wt).unwrap();
        let admin = lock.parent().unwrap().to_owned();
        std::fs::write(admin.join(MERGE_JOURNAL), format!("{head}\n")).unwrap();
        std::fs::write(&lock, "").unwrap();
        std::fs::write(wt.path.join("README.md"), "hi\nmo").unwrap();
        let r = store.repair_worktree(&wt).await.unwrap();
        assert_eq!(r.removed_locks, vec![lock.clone()]);
        assert_eq!(r.undone_merge.as_deref(), Some(head.as_str()));
        assert!(!admin.join(MERGE_JOURNAL).exists());
        assert_eq!(
            std::fs::read_to_string(wt.path.join("README.md")).unwrap(),
            "hi\n"
        );
        // The merge now goes through, journaled, and leaves no journal.
        let merged = store.merge_base_journaled(&wt, "main").await.unwrap();
        assert!(matches!(merged, MergeResult::Merged { .. }), "{merged:?}");
        assert!(!admin.join(MERGE_JOURNAL).exists());
        assert_eq!(
            std::fs::read_to_string(wt.path.join("README.md")).unwrap(),
            "hi\nmore\n"
        );
        // A journal whose merge had finished (HEAD moved) changes nothing.
        std::fs::write(admin.join(MERGE_JOURNAL), format!("{head}\n")).unwrap();
        std::fs::write(wt.path.join("untracked.txt"), "keep\n").unwrap();
        let r = store.repair_worktree(&wt).await.unwrap();
        assert!(r.is_empty(), "{r:?}");
        assert!(!admin.join(MERGE_JOURNAL).exists());
        assert!(wt.path.join("untracked.txt").exists());
    }

    #[tokio::test]
    async fn a_checkout_killed_before_it_finished_is_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, wt, _) = world(tmp.path()).await;
        // What a kill between `worktree add --no-checkout` and the checkout
        // leaves: registered, no index, no files (or some).
        let admin = store
            .index_lock_path(&wt)
            .unwrap()
            .parent()
            .unwrap()
            .to_owned();
        std::fs::remove_file(admin.join("index")).unwrap();
        std::fs::remove_file(wt.path.join("README.md")).unwrap();
        let r = store.repair_worktree(&wt).await.unwrap();
        let head = store.head_sha(&wt).await.unwrap();
        assert_eq!(r.finished_checkout.as_deref(), Some(head.as_str()), "{r:?}");
        assert_eq!(
            std::fs::read_to_string(wt.path.join("README.md")).unwrap(),
            "hi\n"
        );
        // Nothing is left for a later `add -A` to commit as deleted.
        std::fs::write(wt.path.join("new.md"), "new\n").unwrap();
        store.commit_all(&wt, "new").await.unwrap();
        assert!(wt.path.join("README.md").exists());
        assert!(store.repair_worktree(&wt).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_journaled_merge_refuses_a_dirty_worktree_without_a_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, wt, _) = world(tmp.path()).await;
        std::fs::write(wt.path.join("README.md"), "changed\n").unwrap();
        let e = store.merge_base_journaled(&wt, "main").await.unwrap_err();
        assert!(matches!(e, GitError::DirtyWorktree { .. }), "{e}");
        let admin = store.index_lock_path(&wt).unwrap();
        assert!(!admin.parent().unwrap().join(MERGE_JOURNAL).exists());
        // And a repair leaves those changes alone.
        assert!(store.repair_worktree(&wt).await.unwrap().is_empty());
        assert_eq!(
            std::fs::read_to_string(wt.path.join("README.md")).unwrap(),
            "changed\n"
        );
    }
}
