//! What a killed git leaves in a task's worktree, and how orch clears it.
//!
//! git takes `index.lock` beside the index (for a worktree: in its admin dir,
//! `<mirror>/worktrees/<name>/index.lock`) and renames it over the index when
//! done. A git killed in between (orch killed with its git child, a power cut)
//! leaves the lock, and every later git step that writes the index fails with
//! "Unable to create …/index.lock: File exists" until someone deletes it.
//!
//! - **Stale lock.** A lock is stale when no live process can hold it: none has
//!   it open and none works in the worktree (git changes into the worktree's
//!   top folder before it touches the index, so a git on that index has its
//!   working directory there). Both are read from `/proc`. orch's own steps in
//!   one worktree never overlap (a task runs one job at a time), so when orch
//!   is about to take a step and finds no such process, the lock is a leftover
//!   and is removed. A worktree with a live process in it (an agent, a git
//!   still finishing after orch died) is left alone: the caller tries later.
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
//! - **Stale locks in the mirror.** A fetch, push or ref update killed midway
//!   leaves `packed-refs.lock`, a ref's `.lock` or the like in the mirror (or
//!   its control dir), and every later fetch of the repo fails ("Unable to
//!   create …/packed-refs.lock: File exists"): every task of the repo would
//!   park. At start-up, before the first git step, a lock that no live
//!   process holds open and no process works in the mirror beside is a
//!   leftover of the orch that died, and is removed
//!   ([`RepoStore::clear_stale_mirror_locks`]).
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
    /// Clear the lock files a killed git left in `repo`'s mirror and its
    /// control dir: top-level locks (`packed-refs.lock`, `HEAD.lock`,
    /// `config.lock`, `shallow.lock`, …), ref locks under `refs/` but for
    /// `refs/heads` (see below), and those
    /// of `objects/info` and `objects/pack`; a worktree's `index.lock` is
    /// [`RepoStore::repair_worktree`]'s. Only a lock no live process holds
    /// open, with no process working in the mirror, is removed. Meant for
    /// start-up, before orch's first git step on the repo; returns what was
    /// removed (nothing when the repo has no mirror yet).
    pub fn clear_stale_mirror_locks(&self, repo: &str) -> Result<Vec<PathBuf>> {
        let mirror = self.mirror_path(repo)?;
        if !mirror.is_dir() {
            return Ok(Vec::new());
        }
        clear_stale_locks_at(&mirror)
    }

    /// The locks in the mirror a live process holds, each with who holds
    /// it (for the words of a failure).
    pub fn held_mirror_locks(&self, repo: &str) -> Result<Vec<String>> {
        let mirror = self.mirror_path(repo)?;
        if !mirror.is_dir() {
            return Ok(Vec::new());
        }
        Ok(held_locks_at(&mirror))
    }

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

/// Remove the locks in `mirror` (see [`mirror_locks`]) that no live process
/// holds and none works beside; returns what was removed.
pub(crate) fn clear_stale_locks_at(mirror: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for lock in mirror_locks(mirror) {
        if let Some(who) = live_holder(mirror, &lock) {
            tracing::warn!(lock = %lock.display(), holder = %who, "a lock in the mirror is held; left alone");
            continue;
        }
        match std::fs::remove_file(&lock) {
            Ok(()) => {
                tracing::warn!(lock = %lock.display(), "removed a stale lock from the mirror");
                removed.push(lock);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GitError::io("remove", &lock, e)),
        }
    }
    Ok(removed)
}

/// The locks in `mirror` a live process holds, each with who holds it.
pub(crate) fn held_locks_at(mirror: &Path) -> Vec<String> {
    mirror_locks(mirror)
        .into_iter()
        .filter_map(|l| live_holder(mirror, &l).map(|who| format!("{} ({who})", l.display())))
        .collect()
}

/// The locks in the mirror (and its control dir) a killed git may leave:
/// the mirror's own, those of `objects/info` and `objects/pack`, and the
/// refs' outside `refs/heads`.
fn mirror_locks(mirror: &Path) -> Vec<PathBuf> {
    let mut locks = Vec::new();
    let control = crate::control::control_path(mirror);
    for dir in [
        mirror.to_path_buf(),
        control,
        mirror.join("objects/info"),
        mirror.join("objects/pack"),
    ] {
        locks_in(&dir, false, &mut locks);
    }
    // Not `refs/heads`: the branches are written from the worktrees,
    // by agents too, whose git may be between writing a ref's lock and
    // renaming it (its file closed) while orch restarts.
    if let Ok(entries) = std::fs::read_dir(mirror.join("refs")) {
        for e in entries.flatten() {
            if e.file_name() != "heads" {
                locks_in(&e.path(), true, &mut locks);
            }
        }
    }
    locks
}

/// The `*.lock` files in `dir` (and below it with `deep`); symlinks are
/// never followed (the control dir links into the mirror).
fn locks_in(dir: &Path, deep: bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() && deep {
            locks_in(&path, true, out);
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "lock") {
            out.push(path);
        }
    }
}

/// A process's command line (`/proc/<pid>/cmdline`, NUL-separated) as a
/// message shows it: a git's without its `-c key=value` settings (orch
/// passes a dozen on every call), cut to [`COMMAND_SHOWN`] characters.
fn short_command(cmdline: &str) -> String {
    let mut words = cmdline.split('\0').filter(|w| !w.is_empty());
    let mut shown: Vec<&str> = words.next().into_iter().collect();
    let is_git = shown
        .first()
        .is_some_and(|p| Path::new(p).file_name().is_some_and(|n| n == "git"));
    let mut settings = false;
    for w in words {
        if settings {
            settings = false;
        } else if is_git && w == "-c" {
            settings = true;
        } else {
            shown.push(w);
        }
    }
    let text = shown.join(" ");
    match text.char_indices().nth(COMMAND_SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The most of a command line an error or a log line shows.
const COMMAND_SHOWN: usize = 120;

/// A live process that may hold `lock` or work in `worktree`, described for
/// the log; `None` when there is none. Processes whose `/proc` entries cannot
/// be read (another user's) cannot be orch's git and are not counted; if
/// `/proc` itself cannot be read, nobody can be ruled out.
fn live_holder(worktree: &Path, lock: &Path) -> Option<String> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    let worktree = real(worktree);
    // `/proc/<pid>/fd/*` name files by their real path.
    let lock = match (lock.parent(), lock.file_name()) {
        (Some(dir), Some(name)) => real(dir).join(name),
        _ => lock.to_owned(),
    };
    let entries = match std::fs::read_dir("/proc") {
        Ok(e) => e,
        Err(e) => return Some(format!("unknown (cannot read /proc: {e})")),
    };
    let describe = |pid: &str| {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| short_command(&String::from_utf8_lossy(&b)))
            .unwrap_or_default();
        format!("pid {pid} ({cmd})")
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/cwd"))
            .is_ok_and(|cwd| cwd.starts_with(&worktree))
        {
            return Some(describe(pid));
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|target| target == lock) {
                return Some(describe(pid));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
            .args([
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A remote with `main` (README.md), its mirror and the worktree of `feature/x`.
    async fn world(tmp: &Path) -> (RepoStore, Worktree, PathBuf) {
        let remote = tmp.join("remote.git");
        std::fs::create_dir_all(&remote).unwrap();
        git(&remote, &["init", "--quiet", "--bare"]);
        let seed = tmp.join("seed");
        std::fs::create_dir_all(&seed).unwrap();
        git(&seed, &["init", "--quiet"]);
        std::fs::write(seed.join("README.md"), "hi\n").unwrap();
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "--quiet", "-m", "init"]);
        git(
            &seed,
            &["push", "--quiet", remote.to_str().unwrap(), "main"],
        );
        let store = RepoStore::new(tmp.join("repos"));
        store
            .ensure_mirror("demo", remote.to_str().unwrap())
            .await
            .unwrap();
        let wt = store
            .create_or_reuse_worktree("demo", "feature/x", "main")
            .await
            .unwrap();
        (store, wt, seed)
    }

    /// Found by the chaos run: a fetch met a ref's lock a live process
    /// held (a git of the orch killed a moment before, still finishing) and
    /// failed the attempt at once. It now waits for the holder, then
    /// clears what it left and fetches.
    #[tokio::test]
    async fn a_fetch_waits_for_a_lock_a_live_process_holds_briefly() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _wt, seed) = world(tmp.path()).await;
        let mirror = store.mirror_path("demo").unwrap();
        std::fs::write(seed.join("README.md"), "hi again\n").unwrap();
        git(&seed, &["commit", "--quiet", "-am", "more"]);
        let remote = tmp.path().join("remote.git");
        git(
            &seed,
            &["push", "--quiet", remote.to_str().unwrap(), "main"],
        );
        let reflock = mirror.join("refs/remotes/origin/main.lock");
        std::fs::create_dir_all(reflock.parent().unwrap()).unwrap();
        std::fs::write(&reflock, "").unwrap();
        // Holds the lock open until its stdin closes.
        let mut holder = Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$0\"; read _")
            .arg(&reflock)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.held_mirror_locks("demo").unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the holder never opened the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let held = store.held_mirror_locks("demo").unwrap();
        assert!(held[0].contains("main.lock"), "{held:?}");
        let fetch = {
            let store = store.clone();
            tokio::spawn(async move { store.fetch("demo").await })
        };
        // The fetch has met the lock and waits; the holder finishes.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!fetch.is_finished(), "the fetch waits for the holder");
        drop(holder.stdin.take());
        holder.wait().unwrap();
        fetch
            .await
            .unwrap()
            .expect("fetched once the holder was gone");
        assert!(!reflock.exists());
        let head = git(&mirror, &["rev-parse", "refs/remotes/origin/main"]);
        assert_eq!(head, git(&seed, &["rev-parse", "HEAD"]));
    }

    #[test]
    fn a_holders_command_line_is_shown_short() {
        let git =
            "git\0-c\0core.hooksPath=/dev/null\0-c\0core.fsmonitor=false\0reset\0--hard\0--quiet\0";
        assert_eq!(short_command(git), "git reset --hard --quiet");
        let long = format!("sh\0-c\0{}\0", "x".repeat(500));
        let shown = short_command(&long);
        assert!(
            shown.starts_with("sh -c x") && shown.ends_with('…'),
            "{shown}"
        );
        assert_eq!(shown.chars().count(), COMMAND_SHOWN + 1);
        assert_eq!(short_command(""), "");
    }

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

    /// Found by the chaos run: a git of a killed orch left `packed-refs.lock`
    /// in the mirror after start-up had found it held; the next worktree's
    /// fetch (not `fetch`, which cleared locks) failed on it at every try,
    /// until the task parked. Every fetch now clears a stale lock first.
    #[tokio::test]
    async fn a_new_worktrees_fetch_clears_a_stale_lock_a_killed_git_left() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _wt, seed) = world(tmp.path()).await;
        let mirror = store.mirror_path("demo").unwrap();
        let remote = tmp.path().join("remote.git");
        let remote = remote.to_str().unwrap();
        // A branch the mirror knows and the remote then deletes: the next
        // fetch prunes it, which takes packed-refs.lock.
        git(&seed, &["push", "--quiet", remote, "main:gone"]);
        store.fetch("demo").await.unwrap();
        git(&seed, &["push", "--quiet", remote, ":gone"]);
        let packed = mirror.join("packed-refs.lock");
        std::fs::write(&packed, "").unwrap();
        let wt = store
            .create_or_reuse_worktree("demo", "feature/y", "main")
            .await
            .expect("the stale lock is cleared and the fetch works");
        assert!(wt.created);
        assert!(!packed.exists());
        let refs = git(
            &mirror,
            &["for-each-ref", "--format=%(refname)", "refs/remotes"],
        );
        assert!(!refs.contains("origin/gone"), "{refs}");
    }

    /// A fetch killed midway leaves `packed-refs.lock` and a ref's lock in    /// A fetch killed midway leaves `packed-refs.lock` and a ref's lock in
    /// the mirror: every later fetch fails until they go. The start-up
    /// clearing removes them, and keeps one a live process holds open.
    #[tokio::test]
    async fn stale_locks_in_the_mirror_are_cleared_and_a_held_one_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _wt, seed) = world(tmp.path()).await;
        let mirror = store.mirror_path("demo").unwrap();
        assert!(store.clear_stale_mirror_locks("demo").unwrap().is_empty());
        // The remote moves on: the next fetch updates `main`.
        std::fs::write(seed.join("README.md"), "hi again\n").unwrap();
        git(&seed, &["commit", "--quiet", "-am", "more"]);
        let remote = tmp.path().join("remote.git");
        git(
            &seed,
            &["push", "--quiet", remote.to_str().unwrap(), "main"],
        );
        assert!(store.clear_stale_mirror_locks("other").unwrap().is_empty());
        let packed = mirror.join("packed-refs.lock");
        let reflock = mirror.join("refs/remotes/origin/main.lock");
        std::fs::create_dir_all(reflock.parent().unwrap()).unwrap();
        std::fs::write(&packed, "").unwrap();
        std::fs::write(&reflock, "").unwrap();
        // A branch's lock may be an agent's commit in flight: never touched.
        let branch_lock = mirror.join("refs/heads/feature/x.lock");
        std::fs::write(&branch_lock, "").unwrap();
        // A lock some process has open is not a leftover.
        let held = mirror.join("config.lock");
        std::fs::write(&held, "").unwrap();
        let mut holder = Command::new("sh")
            .arg("-c")
            .arg("exec 3<\"$0\"; sleep 60")
            .arg(&held)
            .spawn()
            .unwrap();
        let fd_open = || {
            std::fs::read_dir(format!("/proc/{}/fd", holder.id()))
                .map(|d| {
                    d.flatten().any(|f| {
                        std::fs::read_link(f.path()).is_ok_and(|t| t.ends_with("config.lock"))
                    })
                })
                .unwrap_or(false)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !fd_open() {
            assert!(
                std::time::Instant::now() < deadline,
                "the holder never opened the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // At start-up: the leftovers go, the held lock and the branch's stay.
        let mut removed = store.clear_stale_mirror_locks("demo").unwrap();
        removed.sort();
        let mut want = vec![packed.clone(), reflock.clone()];
        want.sort();
        assert_eq!(removed, want);
        assert!(held.exists() && branch_lock.exists());
        holder.kill().unwrap();
        holder.wait().unwrap();
        std::fs::remove_file(&held).unwrap();
        std::fs::remove_file(&branch_lock).unwrap();
        // Later, a fetch that meets a leftover clears it and succeeds.
        std::fs::write(&reflock, "").unwrap();
        store.fetch("demo").await.unwrap();
        assert!(!reflock.exists());
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
