//! End-to-end tests against real git in temp dirs. The "remote" is a local bare
//! repository; system and global git config are ignored so a developer's settings
//! cannot change outcomes, and no global identity is needed.

use std::path::{Path, PathBuf};

use orch_git::{
    DeleteOutcome, FastForward, Git, GitError, MergeResult, ProtectedBranches, RepoStore, Worktree,
};
use tempfile::TempDir;

const REPO: &str = "demo";
const BRANCH: &str = "feature/ORCH-1-fix-login";
const ITEM: &str = "ORCH-1";

struct Fx {
    _tmp: TempDir,
    root: PathBuf,
    git: Git,
    store: RepoStore,
    remote: PathBuf,
    /// A clone of the remote standing in for "someone else" pushing to it.
    other: PathBuf,
}

async fn git(g: &Git, dir: &Path, args: &[&str]) -> String {
    match g.run(dir, args).await {
        Ok(out) => out,
        Err(e) => panic!("git {args:?} in {dir:?}: {e}"),
    }
}

async fn fixture() -> Fx {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().canonicalize().expect("canonical tempdir");
    let home = root.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let g = Git::new().isolated(&home);

    let remote = root.join("remote.git");
    git(
        &g,
        &root,
        &["init", "--quiet", "--bare", "-b", "main", "remote.git"],
    )
    .await;
    git(&g, &root, &["clone", "--quiet", "remote.git", "other"]).await;
    let other = root.join("other");
    git(&g, &other, &["symbolic-ref", "HEAD", "refs/heads/main"]).await;
    std::fs::write(other.join("README.md"), "# demo\nline two\n").expect("write");
    std::fs::write(other.join(".gitignore"), "*.log\n").expect("write");
    std::fs::create_dir_all(other.join("src")).expect("mkdir");
    std::fs::write(other.join("src/lib.txt"), "lib\n").expect("write");
    git(&g, &other, &["add", "-A"]).await;
    git(&g, &other, &["commit", "--quiet", "-m", "initial"]).await;
    git(&g, &other, &["push", "--quiet", "origin", "main"]).await;

    let store = RepoStore::with_git(root.join("repos"), g.clone());
    store
        .ensure_mirror(REPO, remote.to_str().expect("utf-8 path"))
        .await
        .expect("mirror");
    Fx {
        _tmp: tmp,
        root,
        git: g,
        store,
        remote,
        other,
    }
}

impl Fx {
    async fn worktree(&self, branch: &str) -> Worktree {
        self.store
            .create_or_reuse_worktree(REPO, branch, "main")
            .await
            .expect("worktree")
    }

    /// Someone else commits `content` to `file` on the remote's main.
    async fn advance_main(&self, file: &str, content: &str) -> String {
        git(
            &self.git,
            &self.other,
            &["pull", "--quiet", "--ff-only", "origin", "main"],
        )
        .await;
        std::fs::write(self.other.join(file), content).expect("write");
        git(&self.git, &self.other, &["add", "-A"]).await;
        git(
            &self.git,
            &self.other,
            &["commit", "--quiet", "-m", "other change"],
        )
        .await;
        git(
            &self.git,
            &self.other,
            &["push", "--quiet", "origin", "main"],
        )
        .await;
        self.remote_sha("main").await.expect("main exists")
    }

    async fn remote_sha(&self, branch: &str) -> Option<String> {
        let out = git(
            &self.git,
            &self.remote,
            &[
                "for-each-ref",
                "--format=%(objectname)",
                &format!("refs/heads/{branch}"),
            ],
        )
        .await;
        let sha = out.trim();
        (!sha.is_empty()).then(|| sha.to_owned())
    }

    async fn status(&self, wt: &Worktree) -> String {
        git(&self.git, &wt.path, &["status", "--porcelain"]).await
    }
}

fn write(wt: &Worktree, file: &str, content: &str) {
    std::fs::write(wt.path.join(file), content).expect("write");
}

#[tokio::test]
async fn worktree_is_created_reused_and_removed() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    assert!(wt.created);
    assert_eq!(wt.branch, BRANCH);
    assert_eq!(
        wt.path,
        fx.root
            .join("repos/worktrees/demo/feature+ORCH-1-fix-login")
    );
    assert!(wt.path.join("README.md").is_file());
    let branch = git(&fx.git, &wt.path, &["symbolic-ref", "--short", "HEAD"]).await;
    assert_eq!(branch.trim(), BRANCH);

    let again = fx.worktree(BRANCH).await;
    assert!(!again.created, "second stage reuses the worktree");
    assert_eq!(again.path, wt.path);

    let removal = fx
        .store
        .remove_worktree(REPO, BRANCH, ITEM)
        .await
        .expect("remove");
    assert!(removal.worktree_removed && removal.local_branch_deleted);
    let archive = removal.archive.expect("the tip is always archived");
    assert!(
        !archive.had_uncommitted,
        "clean worktree: archive records the tip only"
    );
    assert!(!wt.path.exists());

    let twice = fx
        .store
        .remove_worktree(REPO, BRANCH, ITEM)
        .await
        .expect("idempotent");
    assert_eq!(twice, Default::default());
}

#[tokio::test]
async fn worktrees_share_the_mirror_object_store() {
    let fx = fixture().await;
    let a = fx.worktree(BRANCH).await;
    let b = fx.worktree("feature/ORCH-2-other").await;
    let mirror = fx.store.mirror_path(REPO).expect("path");
    for wt in [&a, &b] {
        let common = git(
            &fx.git,
            &wt.path,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )
        .await;
        assert_eq!(PathBuf::from(common.trim()), mirror);
        assert!(
            wt.path.join(".git").is_file(),
            "a worktree has a .git file, not a repository"
        );
        assert!(!wt.path.join(".git/objects").exists());
    }
}

#[tokio::test]
async fn existing_remote_branch_is_checked_out_not_recreated() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    write(&wt, "feature.txt", "work\n");
    let sha = fx
        .store
        .commit_all(&wt, "work")
        .await
        .expect("commit")
        .expect("sha");
    assert_eq!(fx.store.push_branch(REPO, BRANCH).await.expect("push"), sha);
    assert_eq!(fx.remote_sha(BRANCH).await.as_deref(), Some(sha.as_str()));
    fx.store
        .remove_worktree(REPO, BRANCH, ITEM)
        .await
        .expect("remove");

    let again = fx.worktree(BRANCH).await;
    assert!(again.created);
    assert_eq!(fx.store.head_sha(&again).await.expect("head"), sha);
}

#[tokio::test]
async fn commit_all_commits_only_when_there_is_something() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    assert_eq!(
        fx.store.commit_all(&wt, "nothing").await.expect("commit"),
        None
    );
    write(&wt, "new.txt", "x\n");
    let sha = fx
        .store
        .commit_all(&wt, "add new")
        .await
        .expect("commit")
        .expect("sha");
    assert_eq!(fx.store.head_sha(&wt).await.expect("head"), sha);
    let who = git(&fx.git, &wt.path, &["log", "-1", "--format=%an <%ae>|%cn"]).await;
    assert_eq!(who.trim(), "orch <orch@localhost>|orch");
    assert!(fx.status(&wt).await.is_empty());
}

#[tokio::test]
async fn uncommitted_names_every_path_no_commit_holds_but_ignored_ones() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    assert!(fx.store.uncommitted(&wt).await.expect("status").is_empty());
    write(&wt, "README.md", "# demo\nchanged by the agent\n");
    std::fs::create_dir_all(wt.path.join("work/deep")).expect("mkdir");
    write(&wt, "work/deep/notes with space.txt", "untracked\n");
    write(&wt, "debug.log", "ignored\n");
    std::fs::remove_file(wt.path.join("src/lib.txt")).expect("rm");
    let mut left = fx.store.uncommitted(&wt).await.expect("status");
    left.sort();
    assert_eq!(
        left,
        ["README.md", "src/lib.txt", "work/deep/notes with space.txt"]
    );
    fx.store.commit_all(&wt, "all").await.expect("commit");
    assert!(fx.store.uncommitted(&wt).await.expect("status").is_empty());
}

#[tokio::test]
async fn archive_keeps_uncommitted_and_untracked_work_and_restore_brings_it_back() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    write(&wt, "committed.txt", "committed\n");
    let tip = fx
        .store
        .commit_all(&wt, "c")
        .await
        .expect("commit")
        .expect("sha");
    write(&wt, "README.md", "# demo\nchanged by the agent\n");
    write(&wt, "notes.txt", "untracked notes\n");
    write(&wt, "debug.log", "ignored\n");
    std::fs::remove_file(wt.path.join("src/lib.txt")).expect("rm");

    // Archiving alone leaves the worktree's index and HEAD untouched.
    let before = fx.status(&wt).await;
    let first = fx.store.archive_worktree(&wt, ITEM).await.expect("archive");
    assert_eq!(fx.status(&wt).await, before);
    assert_eq!(fx.store.head_sha(&wt).await.expect("head"), tip);
    assert_eq!(first.number, 1);
    assert!(first.had_uncommitted);

    let removal = fx
        .store
        .remove_worktree(REPO, BRANCH, ITEM)
        .await
        .expect("remove");
    let archive = removal.archive.expect("archive");
    assert_eq!(archive.ref_name, "refs/orch/archive/ORCH-1/2");
    assert!(archive.had_uncommitted);
    assert!(!wt.path.exists());

    let listed = fx.store.list_archives(REPO, ITEM).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0], first);
    assert_eq!(listed[1], archive);
    assert_eq!(listed[1].branch, BRANCH);
    // What the archive holds against the base: the changes, ignored files not.
    let mut files = fx
        .store
        .archive_files(REPO, &archive, "main", 100)
        .await
        .expect("files");
    files.sort();
    assert_eq!(
        files,
        ["README.md", "committed.txt", "notes.txt", "src/lib.txt"]
    );
    let capped = fx.store.archive_files(REPO, &archive, "main", 2).await;
    assert_eq!(capped.expect("files").len(), 2);

    let mirror = fx.store.mirror_path(REPO).expect("path");
    let parent = git(
        &fx.git,
        &mirror,
        &["rev-parse", &format!("{}^1", archive.commit)],
    )
    .await;
    assert_eq!(parent.trim(), tip, "the archive's parent is the branch tip");

    let restored = fx
        .store
        .restore_archive(REPO, ITEM, 2)
        .await
        .expect("restore");
    assert_eq!(restored, "restore/ORCH-1-2");
    assert_eq!(
        fx.store
            .restore_archive(REPO, ITEM, 2)
            .await
            .expect("again"),
        restored,
        "restoring twice is idempotent"
    );
    let back = fx.worktree(&restored).await;
    let read = |f: &str| std::fs::read_to_string(back.path.join(f)).ok();
    assert_eq!(
        read("README.md").as_deref(),
        Some("# demo\nchanged by the agent\n")
    );
    assert_eq!(read("notes.txt").as_deref(), Some("untracked notes\n"));
    assert_eq!(read("committed.txt").as_deref(), Some("committed\n"));
    assert_eq!(read("src/lib.txt"), None, "the deletion is archived too");
    assert_eq!(read("debug.log"), None, "ignored files are not archived");

    let missing = fx.store.restore_archive(REPO, ITEM, 9).await;
    assert!(
        matches!(missing, Err(GitError::ArchiveNotFound { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_worktree_with_uncommitted_work_is_never_removed_unarchived() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    write(&wt, "precious.txt", "do not lose me\n");
    // Block the archive ref: `refs/orch/archive/ORCH-1` as a ref makes
    // `refs/orch/archive/ORCH-1/<n>` impossible to create.
    let mirror = fx.store.mirror_path(REPO).expect("path");
    let head = fx.store.head_sha(&wt).await.expect("head");
    git(
        &fx.git,
        &mirror,
        &["update-ref", "refs/orch/archive/ORCH-1", &head],
    )
    .await;

    let err = fx.store.remove_worktree(REPO, BRANCH, ITEM).await;
    assert!(
        err.is_err(),
        "removal must fail when the archive cannot be written"
    );
    assert_eq!(
        std::fs::read_to_string(wt.path.join("precious.txt"))
            .ok()
            .as_deref(),
        Some("do not lose me\n"),
        "the worktree and its work are still there"
    );

    git(
        &fx.git,
        &mirror,
        &["update-ref", "-d", "refs/orch/archive/ORCH-1"],
    )
    .await;
    let removal = fx
        .store
        .remove_worktree(REPO, BRANCH, ITEM)
        .await
        .expect("remove");
    assert!(removal.archive.expect("archive").had_uncommitted);
}

#[tokio::test]
async fn delete_remote_branch_refuses_protected_and_deletes_features() {
    let fx = fixture().await;
    let protected = ProtectedBranches::new(["develop", "release/*"]);

    // Name-based refusals never run git: prove it with a git that cannot start.
    let no_git = RepoStore::with_git(
        fx.root.join("repos"),
        Git::new().with_binary("/nonexistent/git"),
    );
    for name in ["main", "master", "develop", "release/2.0"] {
        let out = no_git.delete_remote_branch(REPO, name, &protected).await;
        assert!(
            matches!(out, Ok(DeleteOutcome::Refused { .. })),
            "{name}: {out:?}"
        );
    }

    // The remote's default branch, read from its HEAD.
    git(
        &fx.git,
        &fx.other,
        &["push", "--quiet", "origin", "main:trunk"],
    )
    .await;
    git(
        &fx.git,
        &fx.remote,
        &["symbolic-ref", "HEAD", "refs/heads/trunk"],
    )
    .await;
    let out = fx
        .store
        .delete_remote_branch(REPO, "trunk", &protected)
        .await
        .expect("call");
    assert!(
        matches!(&out, DeleteOutcome::Refused { reason } if reason.contains("default")),
        "{out:?}"
    );
    assert!(fx.remote_sha("trunk").await.is_some());

    let wt = fx.worktree(BRANCH).await;
    write(&wt, "f.txt", "f\n");
    fx.store.commit_all(&wt, "f").await.expect("commit");
    fx.store.push_branch(REPO, BRANCH).await.expect("push");
    assert!(fx.remote_sha(BRANCH).await.is_some());
    let out = fx
        .store
        .delete_remote_branch(REPO, BRANCH, &protected)
        .await
        .expect("delete");
    assert_eq!(out, DeleteOutcome::Deleted);
    assert_eq!(fx.remote_sha(BRANCH).await, None);
    let out = fx
        .store
        .delete_remote_branch(REPO, BRANCH, &protected)
        .await
        .expect("delete");
    assert_eq!(out, DeleteOutcome::NotFound);
    assert!(fx.remote_sha("main").await.is_some());
}

#[tokio::test]
async fn merge_base_without_conflict_then_up_to_date() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    assert_eq!(
        fx.store
            .merge_base_into_branch(&wt, "main")
            .await
            .expect("merge"),
        MergeResult::UpToDate
    );
    write(&wt, "mine.txt", "mine\n");
    fx.store.commit_all(&wt, "mine").await.expect("commit");
    fx.advance_main("theirs.txt", "theirs\n").await;

    let merged = fx
        .store
        .merge_base_into_branch(&wt, "main")
        .await
        .expect("merge");
    let MergeResult::Merged { sha } = merged else {
        panic!("expected a merge, got {merged:?}");
    };
    assert_eq!(fx.store.head_sha(&wt).await.expect("head"), sha);
    assert!(wt.path.join("theirs.txt").is_file() && wt.path.join("mine.txt").is_file());
    assert_eq!(
        fx.store
            .merge_base_into_branch(&wt, "main")
            .await
            .expect("merge"),
        MergeResult::UpToDate
    );

    let files = fx.store.changed_files(&wt, "main").await.expect("files");
    assert_eq!(files, vec!["mine.txt".to_owned()]);
    let diff = fx.store.diff_against_base(&wt, "main").await.expect("diff");
    assert!(
        diff.contains("+++ b/mine.txt") && diff.contains("+mine"),
        "{diff}"
    );
    assert!(
        !diff.contains("theirs"),
        "the diff is the branch's change only"
    );
}

#[tokio::test]
async fn merge_base_conflict_is_reported_and_aborted() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    write(&wt, "README.md", "# demo\nours\n");
    let ours = fx
        .store
        .commit_all(&wt, "ours")
        .await
        .expect("commit")
        .expect("sha");
    fx.advance_main("README.md", "# demo\ntheirs\n").await;

    let out = fx
        .store
        .merge_base_into_branch(&wt, "main")
        .await
        .expect("merge");
    assert_eq!(
        out,
        MergeResult::Conflict {
            files: vec!["README.md".to_owned()]
        }
    );
    assert_eq!(fx.store.head_sha(&wt).await.expect("head"), ours);
    assert!(fx.status(&wt).await.is_empty(), "aborted cleanly");
    let merge_head = fx
        .git
        .run(&wt.path, ["rev-parse", "--verify", "--quiet", "MERGE_HEAD"])
        .await;
    assert!(merge_head.is_err(), "no merge in progress");

    write(&wt, "README.md", "dirty\n");
    let dirty = fx.store.merge_base_into_branch(&wt, "main").await;
    assert!(
        matches!(dirty, Err(GitError::DirtyWorktree { .. })),
        "{dirty:?}"
    );
}

#[tokio::test]
async fn fast_forward_base_pushes_only_from_the_expected_base() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    write(&wt, "a.txt", "a\n");
    let head = fx
        .store
        .commit_all(&wt, "a")
        .await
        .expect("commit")
        .expect("sha");
    let base = fx
        .store
        .remote_branch_sha(REPO, "main")
        .await
        .expect("ls")
        .expect("main");

    let out = fx
        .store
        .fast_forward_base(REPO, BRANCH, "main", &base)
        .await
        .expect("ff");
    assert_eq!(out, FastForward::Pushed { sha: head.clone() });
    assert_eq!(fx.remote_sha("main").await.as_deref(), Some(head.as_str()));

    // A stale holder: it verified against `head`, but someone merged meanwhile.
    let other = fx.worktree("feature/ORCH-2-other").await;
    write(&other, "b.txt", "b\n");
    fx.store.commit_all(&other, "b").await.expect("commit");
    let moved = fx.advance_main("c.txt", "c\n").await;
    let out = fx
        .store
        .fast_forward_base(REPO, "feature/ORCH-2-other", "main", &head)
        .await
        .expect("ff");
    assert_eq!(
        out,
        FastForward::BaseMoved {
            current: Some(moved.clone())
        }
    );
    assert_eq!(fx.remote_sha("main").await.as_deref(), Some(moved.as_str()));

    // Expected base right, but the branch does not contain it yet.
    let out = fx
        .store
        .fast_forward_base(REPO, "feature/ORCH-2-other", "main", &moved)
        .await
        .expect("ff");
    assert_eq!(out, FastForward::NotFastForward);

    // After merging the base in, the same call goes through.
    let merged = fx
        .store
        .merge_base_into_branch(&other, "main")
        .await
        .expect("merge");
    let MergeResult::Merged { sha } = merged else {
        panic!("{merged:?}");
    };
    let out = fx
        .store
        .fast_forward_base(REPO, "feature/ORCH-2-other", "main", &moved)
        .await
        .expect("ff");
    assert_eq!(out, FastForward::Pushed { sha: sha.clone() });
    assert_eq!(fx.remote_sha("main").await.as_deref(), Some(sha.as_str()));

    // An unknown expected commit means the base is not there either.
    let out = fx
        .store
        .fast_forward_base(REPO, BRANCH, "main", &"1".repeat(40))
        .await
        .expect("ff");
    assert!(matches!(out, FastForward::BaseMoved { .. }), "{out:?}");
}

#[tokio::test]
async fn invalid_names_are_rejected_before_git_runs() {
    let fx = fixture().await;
    for bad in [
        "../x", "-x", "a b", "a..b", "x.lock", "a//b", "/x", "a@{1}", "a\\b", "HEAD",
    ] {
        let out = fx.store.create_or_reuse_worktree(REPO, bad, "main").await;
        assert!(
            matches!(out, Err(GitError::InvalidRef(_))),
            "{bad}: {out:?}"
        );
        let out = fx.store.create_or_reuse_worktree(REPO, BRANCH, bad).await;
        assert!(
            matches!(out, Err(GitError::InvalidRef(_))),
            "base {bad}: {out:?}"
        );
        let out = fx
            .store
            .delete_remote_branch(REPO, bad, &ProtectedBranches::default())
            .await;
        assert!(
            matches!(out, Err(GitError::InvalidRef(_))),
            "delete {bad}: {out:?}"
        );
    }
    for bad_repo in ["../etc", "a/b", "-x", ""] {
        let out = fx
            .store
            .create_or_reuse_worktree(bad_repo, BRANCH, "main")
            .await;
        assert!(
            matches!(out, Err(GitError::InvalidKey(_))),
            "{bad_repo}: {out:?}"
        );
    }
    for bad_item in ["../x", "a/b", "-x"] {
        let out = fx.store.remove_worktree(REPO, BRANCH, bad_item).await;
        assert!(
            matches!(out, Err(GitError::InvalidKey(_))),
            "{bad_item}: {out:?}"
        );
        let out = fx.store.list_archives(REPO, bad_item).await;
        assert!(
            matches!(out, Err(GitError::InvalidKey(_))),
            "{bad_item}: {out:?}"
        );
    }
    let out = fx
        .store
        .fast_forward_base(REPO, BRANCH, "main", "HEAD~1")
        .await;
    assert!(matches!(out, Err(GitError::InvalidRef(_))), "{out:?}");
    let out = fx
        .store
        .ensure_mirror(REPO, "--upload-pack=touch /tmp/pwned")
        .await;
    assert!(matches!(out, Err(GitError::InvalidUrl { .. })), "{out:?}");
    let out = fx
        .store
        .create_or_reuse_worktree(REPO, BRANCH, "no-such-base")
        .await;
    assert!(matches!(out, Err(GitError::BaseNotFound { .. })), "{out:?}");
}

#[tokio::test]
async fn prune_removes_stale_folders_and_forgets_vanished_worktrees() {
    let fx = fixture().await;
    let keep = fx.worktree(BRANCH).await;
    let gone = fx.worktree("feature/ORCH-3-gone").await;
    std::fs::remove_dir_all(&gone.path).expect("rm");
    let stray = fx.root.join("repos/worktrees/demo/feature+ORCH-4-crashed");
    std::fs::create_dir_all(&stray).expect("mkdir");
    std::fs::write(stray.join("half.txt"), "half\n").expect("write");

    let out = fx
        .store
        .create_or_reuse_worktree(REPO, "feature/ORCH-4-crashed", "main")
        .await;
    assert!(matches!(out, Err(GitError::StaleFolder { .. })), "{out:?}");

    let report = fx.store.prune_stale().await.expect("prune");
    assert_eq!(report.removed_folders, vec![stray.clone()]);
    assert!(!stray.exists());
    // Its files were archived before it went.
    assert_eq!(
        report.orphan_archives,
        vec!["refs/orch/orphaned/1".to_owned()]
    );
    let mirror = fx.store.mirror_path(REPO).expect("path");
    let kept = git(&fx.git, &mirror, &["show", "refs/orch/orphaned/1:half.txt"]).await;
    assert_eq!(kept, "half\n");

    // A folder whose repo has no mirror cannot be archived: it stays.
    let unknown = fx.root.join("repos/worktrees/nomirror/feature+X-1");
    std::fs::create_dir_all(&unknown).expect("mkdir");
    std::fs::write(unknown.join("work.txt"), "precious\n").expect("write");
    let report = fx.store.prune_stale().await.expect("prune");
    assert!(report.removed_folders.is_empty(), "{report:?}");
    assert!(
        unknown.join("work.txt").is_file(),
        "never deleted unarchived"
    );
    std::fs::remove_dir_all(fx.root.join("repos/worktrees/nomirror")).expect("rm");
    assert!(
        keep.path.join("README.md").is_file(),
        "live worktrees are kept"
    );
    let list = git(&fx.git, &mirror, &["worktree", "list", "--porcelain"]).await;
    assert!(!list.contains("ORCH-3-gone"), "{list}");
    assert!(list.contains("ORCH-1-fix-login"), "{list}");

    // Both names are usable again.
    assert!(fx.worktree("feature/ORCH-4-crashed").await.created);
    assert!(fx.worktree("feature/ORCH-3-gone").await.created);
    assert!(
        fx.store
            .prune_stale()
            .await
            .expect("prune")
            .removed_folders
            .is_empty()
    );
}

#[tokio::test]
async fn ensure_mirror_is_idempotent_and_follows_url_changes() {
    let fx = fixture().await;
    let path = fx.store.mirror_path(REPO).expect("path");
    let url = fx.remote.to_str().expect("utf-8");
    assert_eq!(
        fx.store.ensure_mirror(REPO, url).await.expect("again"),
        path
    );

    let moved = fx.root.join("moved.git");
    std::fs::rename(&fx.remote, &moved).expect("mv");
    fx.store
        .ensure_mirror(REPO, moved.to_str().expect("utf-8"))
        .await
        .expect("new url");
    let now = git(&fx.git, &path, &["config", "--get", "remote.origin.url"]).await;
    assert_eq!(now.trim(), moved.to_str().expect("utf-8"));

    let missing = fx.store.fetch("other-repo").await;
    assert!(
        matches!(missing, Err(GitError::NoMirror { .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_worktree_folder_deleted_behind_gits_back_is_recreated() {
    let fx = fixture().await;
    let wt = fx.worktree(BRANCH).await;
    write(&wt, "kept.txt", "committed before the folder vanished\n");
    let sha = fx
        .store
        .commit_all(&wt, "kept")
        .await
        .expect("commit")
        .expect("sha");
    std::fs::remove_dir_all(&wt.path).expect("rm");

    let again = fx.worktree(BRANCH).await;
    assert!(again.created, "not reused: the folder was gone");
    assert_eq!(
        fx.store.head_sha(&again).await.expect("head"),
        sha,
        "same local branch"
    );

    std::fs::remove_dir_all(&again.path).expect("rm");
    let removal = fx
        .store
        .remove_worktree(REPO, BRANCH, ITEM)
        .await
        .expect("remove");
    let archive = removal.archive.expect("the branch tip is archived");
    assert!(!archive.had_uncommitted && removal.local_branch_deleted && !removal.worktree_removed);
    let mirror = fx.store.mirror_path(REPO).expect("path");
    let parent = git(
        &fx.git,
        &mirror,
        &["rev-parse", &format!("{}^1", archive.commit)],
    )
    .await;
    assert_eq!(parent.trim(), sha);
}

#[tokio::test]
async fn repository_hooks_do_not_run_for_orchs_git_calls() {
    use std::os::unix::fs::PermissionsExt;
    let fx = fixture().await;
    let marker = fx.root.join("hook-ran");
    let mirror = fx.store.mirror_path(REPO).expect("path");
    for hook in ["post-checkout", "pre-commit", "pre-push"] {
        let path = mirror.join("hooks").join(hook);
        std::fs::write(&path, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).expect("hook");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let wt = fx.worktree(BRANCH).await;
    write(&wt, "x.txt", "x\n");
    fx.store.commit_all(&wt, "x").await.expect("commit");
    fx.store.push_branch(REPO, BRANCH).await.expect("push");
    assert!(!marker.exists(), "a repository hook ran");
}

/// A `git worktree add` killed midway (orch killed with its git) leaves an
/// admin dir that names the worktree's folder, with a HEAD that is not the
/// branch. Creating the worktree again must not leave two admin dirs naming
/// one folder (git would name the new one `<name>1`, and `admin_dir` could
/// pick the dead one, whose commits reach no branch). `live_worktrees`
/// prunes it first; this pins that. (A suspect for the chaos failure where
/// a task merged with none of its work; it is not the cause.)
#[tokio::test]
async fn a_worktree_add_killed_midway_leaves_no_second_admin_dir() {
    let fx = fixture().await;
    let mirror = fx.store.mirror_path(REPO).expect("mirror");
    let path = fx
        .root
        .join("repos/worktrees/demo/feature+ORCH-1-fix-login");
    let main = git(&fx.git, &mirror, &["rev-parse", "refs/remotes/origin/main"]).await;
    let stale = mirror.join("worktrees/feature+ORCH-1-fix-login");
    std::fs::create_dir_all(&stale).expect("mkdir");
    std::fs::write(
        stale.join("gitdir"),
        format!("{}\n", path.join(".git").display()),
    )
    .expect("write");
    std::fs::write(stale.join("HEAD"), &main).expect("write");
    std::fs::write(stale.join("commondir"), "../..\n").expect("write");

    let wt = fx.worktree(BRANCH).await;
    assert!(wt.created);
    let naming: Vec<_> = std::fs::read_dir(mirror.join("worktrees"))
        .expect("admin dirs")
        .flatten()
        .filter(|d| {
            std::fs::read_to_string(d.path().join("gitdir"))
                .is_ok_and(|t| t.trim_end() == path.join(".git").to_str().unwrap())
        })
        .map(|d| d.file_name())
        .collect();
    assert_eq!(naming.len(), 1, "one admin dir per folder: {naming:?}");
    let on = git(&fx.git, &wt.path, &["symbolic-ref", "--short", "HEAD"]).await;
    assert_eq!(on.trim(), BRANCH);
    // The agent's commit is the branch's.
    write(&wt, "new.txt", "work\n");
    let commit = fx
        .store
        .commit_all(&wt, "ORCH-1: work")
        .await
        .expect("commit")
        .expect("something to commit");
    let tip = git(
        &fx.git,
        &mirror,
        &["rev-parse", &format!("refs/heads/{BRANCH}")],
    )
    .await;
    assert_eq!(tip.trim(), commit);
}

/// Symphony SPEC §17.2: an existing non-directory at a worktree's location
/// is handled safely. A regular file or a symlink there is refused like a
/// stale folder (git is never pointed at it), and cleaning up never
/// follows the link: what it points at is left alone.
#[tokio::test]
async fn a_file_or_a_symlink_at_a_worktree_path_is_refused_and_its_target_kept() {
    let fx = fixture().await;
    let wt_dir = fx.root.join("repos/worktrees/demo");
    std::fs::create_dir_all(&wt_dir).expect("mkdir");
    let file = wt_dir.join("feature+ORCH-5-file");
    std::fs::write(&file, "not a worktree\n").expect("write");
    let outside = fx.root.join("precious");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("keep.txt"), "keep\n").expect("write");
    let link = wt_dir.join("feature+ORCH-6-link");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");

    for branch in ["feature/ORCH-5-file", "feature/ORCH-6-link"] {
        let out = fx
            .store
            .create_or_reuse_worktree(REPO, branch, "main")
            .await;
        assert!(
            matches!(out, Err(GitError::StaleFolder { .. })),
            "{branch}: {out:?}"
        );
    }
    let _ = fx.store.prune_stale().await;
    assert_eq!(
        std::fs::read_to_string(outside.join("keep.txt")).expect("the link's target"),
        "keep\n"
    );
    assert!(
        !link.symlink_metadata().is_ok_and(|m| m.is_dir()),
        "the link was never replaced by a folder through it"
    );
}
