//! Disk care against real git and real files (issue 12): a worktree's size,
//! and the removal of its ignored build outputs that keeps everything else.

use std::path::{Path, PathBuf};

use orch_core::disk::OutputGlob;
use orch_git::{Git, RepoStore, Worktree};
use tempfile::TempDir;

const REPO: &str = "demo";
const BRANCH: &str = "feature/ORCH-7-disk";

struct Fx {
    _tmp: TempDir,
    root: PathBuf,
    store: RepoStore,
    wt: Worktree,
}

async fn git(g: &Git, dir: &Path, args: &[&str]) {
    if let Err(e) = g.run(dir, args).await {
        panic!("git {args:?} in {dir:?}: {e}");
    }
}

/// A remote whose `.gitignore` ignores `target/`, `*.log` and `build`, and a
/// task's worktree of it.
async fn fixture() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let g = Git::new().isolated(&home);
    git(
        &g,
        &root,
        &["init", "--quiet", "--bare", "-b", "main", "remote.git"],
    )
    .await;
    git(&g, &root, &["clone", "--quiet", "remote.git", "other"]).await;
    let other = root.join("other");
    git(&g, &other, &["symbolic-ref", "HEAD", "refs/heads/main"]).await;
    std::fs::write(other.join(".gitignore"), "target/\n*.log\nbuild\n").unwrap();
    std::fs::create_dir_all(other.join("src")).unwrap();
    std::fs::write(other.join("src/lib.txt"), "lib\n").unwrap();
    git(&g, &other, &["add", "-A"]).await;
    git(&g, &other, &["commit", "--quiet", "-m", "initial"]).await;
    git(&g, &other, &["push", "--quiet", "origin", "main"]).await;
    let store = RepoStore::with_git(root.join("repos"), g);
    let remote = root.join("remote.git");
    store
        .ensure_mirror(REPO, remote.to_str().unwrap())
        .await
        .unwrap();
    let wt = store
        .create_or_reuse_worktree(REPO, BRANCH, "main")
        .await
        .unwrap();
    Fx {
        _tmp: tmp,
        root,
        store,
        wt,
    }
}

fn write(path: &Path, len: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, vec![b'x'; len]).unwrap();
}

fn globs(list: &[&str]) -> Vec<OutputGlob> {
    list.iter().map(|g| OutputGlob::parse(g).unwrap()).collect()
}

#[tokio::test]
async fn cleanup_removes_the_ignored_target_and_keeps_the_work() {
    let fx = fixture().await;
    let wt = &fx.wt.path;
    // The build output: large, ignored, and holding a link out of the worktree.
    for i in 0..16 {
        write(&wt.join(format!("target/debug/deps/lib{i}.rlib")), 1 << 20);
    }
    let outside = fx.root.join("outside");
    write(&outside.join("precious"), 10);
    std::os::unix::fs::symlink(&outside, wt.join("target/escape")).unwrap();
    // An ignored symbolic link that a glob names: it goes, its target stays.
    std::os::unix::fs::symlink(&outside, wt.join("build")).unwrap();
    // The work: a modified tracked file, an untracked file git does not
    // ignore (inside a directory a glob names, too), and an ignored file no
    // glob names.
    std::fs::write(wt.join("src/lib.txt"), "lib, changed by the agent\n").unwrap();
    write(&wt.join("notes.md"), 100);
    write(&wt.join("crates/x/node_modules/keep.js"), 100);
    std::fs::write(wt.join(".gitignore"), "target/\n*.log\nbuild\n").unwrap();
    write(&wt.join("debug.log"), 100);
    // The agent wrote the mirror's config: orch's git must not run it.
    let pwned = fx.root.join("pwned");
    let mirror_config = fx.root.join("repos/demo.git/config");
    let mut config = std::fs::read_to_string(&mirror_config).unwrap();
    config.push_str(&format!(
        "[core]\n\tfsmonitor = \"touch {}\"\n\thooksPath = {}\n",
        pwned.display(),
        fx.root.join("hooks").display()
    ));
    std::fs::write(&mirror_config, config).unwrap();

    let before = orch_git::size::measure(wt, None).unwrap();
    assert!(before.complete && before.bytes >= 16 << 20, "{before:?}");

    let g = globs(&["target/", "node_modules/", "build"]);
    let listed = fx.store.build_outputs(REPO, BRANCH, &g).await.unwrap();
    assert_eq!(listed, ["build", "target/"]);
    let report = fx
        .store
        .clean_build_outputs(REPO, BRANCH, &g)
        .await
        .unwrap();

    assert!(
        !wt.join("target").exists(),
        "the ignored target/ is removed"
    );
    assert!(
        std::fs::symlink_metadata(wt.join("build")).is_err(),
        "the link is removed"
    );
    assert!(report.freed_bytes >= 16 << 20, "{report:?}");
    assert_eq!(report.removed.len(), 2, "{report:?}");
    assert_eq!(
        std::fs::read_to_string(wt.join("src/lib.txt")).unwrap(),
        "lib, changed by the agent\n",
        "the modified tracked file is kept"
    );
    assert!(
        wt.join("notes.md").is_file(),
        "untracked, not ignored: kept"
    );
    assert!(
        wt.join("crates/x/node_modules/keep.js").is_file(),
        "not ignored: kept"
    );
    assert!(
        wt.join("debug.log").is_file(),
        "ignored but no build output: kept"
    );
    assert!(
        outside.join("precious").is_file(),
        "the links were not followed"
    );
    assert!(!pwned.exists(), "the agent's fsmonitor ran");

    let after = orch_git::size::measure(wt, None).unwrap();
    assert!(after.bytes < 1 << 20, "{after:?}");
    // Nothing left to do the second time.
    let again = fx
        .store
        .clean_build_outputs(REPO, BRANCH, &g)
        .await
        .unwrap();
    assert!(again.removed.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_tracked_file_inside_an_ignored_directory_stays() {
    let fx = fixture().await;
    let wt = &fx.wt.path;
    // `git add -f`: tracked although its directory is ignored.
    write(&wt.join("target/keep.txt"), 10);
    // The agent's own git (plain git in the worktree) adds it.
    let g = Git::new().isolated(&fx.root.join("home"));
    git(&g, wt, &["add", "-f", "target/keep.txt"]).await;
    write(&wt.join("target/debug/big"), 1 << 20);
    let globs = globs(&["target/"]);
    let report = fx
        .store
        .clean_build_outputs(REPO, BRANCH, &globs)
        .await
        .unwrap();
    assert_eq!(
        report
            .removed
            .iter()
            .map(|r| r.path.as_str())
            .collect::<Vec<_>>(),
        ["target/debug/"]
    );
    assert!(wt.join("target/keep.txt").is_file());
    assert!(!wt.join("target/debug").exists());
}

#[tokio::test]
async fn no_worktree_and_no_globs_remove_nothing() {
    let fx = fixture().await;
    write(&fx.wt.path.join("target/x"), 10);
    let none = fx
        .store
        .clean_build_outputs(REPO, BRANCH, &[])
        .await
        .unwrap();
    assert!(none.removed.is_empty());
    assert!(fx.wt.path.join("target/x").is_file());
    let other = fx
        .store
        .clean_build_outputs(REPO, "feature/ORCH-8-none", &globs(&["target/"]))
        .await
        .unwrap();
    assert!(other.removed.is_empty());
}
