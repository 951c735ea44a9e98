//! Locks a killed git leaves behind, and who may still hold one.
//!
//! git takes `<file>.lock` beside what it writes and renames it over the
//! file when done. A git killed in between (orch killed with its git child,
//! a power cut) leaves the lock, and every later git step that writes the
//! same file fails ("Unable to create …/packed-refs.lock: File exists")
//! until someone deletes it.
//!
//! - **Stale lock.** A lock is stale when no live process can hold it: none
//!   has it open and none works in the folder it guards (git changes into
//!   the worktree's top folder, or works in the mirror, before it touches a
//!   lock there). Both are read from `/proc` ([`live_holder`]).
//! - **Stale locks in the mirror.** A fetch, push or ref update killed midway
//!   leaves `packed-refs.lock` (with `packed-refs.new`, its rewrite), a ref's
//!   `.lock` or the like in the mirror (or
//!   its control dir), and every later fetch of the repo fails: every task of
//!   the repo would park. At start-up, and before each fetch, a lock that no
//!   live process holds open and no process works in the mirror beside is a
//!   leftover, and is removed ([`RepoStore::clear_stale_mirror_locks`]).
//!
//! A task worktree's own leftovers (its `index.lock`, `HEAD.lock`, an
//! interrupted merge, an unfinished checkout) are `repair.rs`'s.

use std::path::{Path, PathBuf};

use crate::error::{GitError, Result};
use crate::mirror::RepoStore;

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
        control.clone(),
        mirror.join("objects/info"),
        mirror.join("objects/pack"),
    ] {
        locks_in(&dir, false, &mut locks);
    }
    // git rewrites `packed-refs` into `packed-refs.new` (created with
    // O_EXCL) while it holds `packed-refs.lock`: a git killed in between
    // leaves both, and every later prune of a ref fails on the first with
    // "unable to create file …/packed-refs.new: File exists".
    for dir in [mirror.to_path_buf(), control] {
        let new = dir.join("packed-refs.new");
        if new.symlink_metadata().is_ok_and(|m| m.is_file()) {
            locks.push(new);
        }
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
pub(crate) fn locks_in(dir: &Path, deep: bool, out: &mut Vec<PathBuf>) {
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
pub(crate) fn live_holder(worktree: &Path, lock: &Path) -> Option<String> {
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
    use crate::test_world::{git, world};
    use std::process::Command;

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

    /// Found by the chaos run (seed 0x3550b94d2dfaf410, iteration 434): a
    /// git killed while rewriting `packed-refs` left `packed-refs.new` beside
    /// its lock, and every later fetch that pruned a branch failed on it
    /// ("unable to create file …/packed-refs.new: File exists") until the
    /// task's analyst gave up. It is cleared with the stale locks.
    #[tokio::test]
    async fn a_fetch_clears_the_packed_refs_rewrite_a_killed_git_left() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, _wt, seed) = world(tmp.path()).await;
        let mirror = store.mirror_path("demo").unwrap();
        let remote = tmp.path().join("remote.git");
        let remote = remote.to_str().unwrap();
        git(&seed, &["push", "--quiet", remote, "main:gone"]);
        store.fetch("demo").await.unwrap();
        // The mirror's refs are packed, so the prune rewrites packed-refs.
        git(&mirror, &["pack-refs", "--all"]);
        git(&seed, &["push", "--quiet", remote, ":gone"]);
        let lock = mirror.join("packed-refs.lock");
        let new = mirror.join("packed-refs.new");
        std::fs::write(&lock, "").unwrap();
        std::fs::write(&new, "# pack-refs with: peeled\n").unwrap();
        let wt = store
            .create_or_reuse_worktree("demo", "feature/z", "main")
            .await
            .expect("the killed rewrite is cleared and the fetch works");
        assert!(wt.created);
        assert!(!lock.exists() && !new.exists());
        let refs = git(
            &mirror,
            &["for-each-ref", "--format=%(refname)", "refs/remotes"],
        );
        assert!(!refs.contains("origin/gone"), "{refs}");
    }

    /// A fetch killed midway leaves `packed-refs.lock` and a ref's lock in
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
}
