//! The world of the git crate's unit tests: a remote with `main`, its
//! mirror and one task worktree, made with real git.

use crate::mirror::RepoStore;
use crate::worktree::Worktree;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
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
pub(crate) async fn world(tmp: &Path) -> (RepoStore, Worktree, PathBuf) {
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
