//! The local forge's failures, classified for the merge gate, against real
//! git and real bare remotes on disk: a remote that refuses pushes (a hook),
//! one that protects its base only, and one that is gone.

use orch_engine::ports::{Failure, Forge, LocalForge, MergeOutcome};
use orch_git::RepoStore;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

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

/// The repo the forge serves.
const REPO: &str = "demo";

impl World {
    /// The repo's merge lease for a task on `branch`: what the engine holds
    /// when it merges.
    async fn lease(&self, branch: &str) -> orch_store::MergeLeaseProof {
        orch_store::testing::merge_lease_for(self.store.as_ref(), REPO, branch).await
    }
}

struct World {
    store: Arc<dyn orch_store::Store>,
    _tmp: tempfile::TempDir,
    remote: PathBuf,
    repos: RepoStore,
    forge: LocalForge,
}

/// A remote with `main`, its mirror, and `feature/x` committed in a worktree.
async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "--quiet", "--bare"]);
    let seed = tmp.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "--quiet"]);
    std::fs::write(seed.join("README.md"), "hi\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "--quiet", "-m", "init"]);
    git(
        &seed,
        &["push", "--quiet", remote.to_str().unwrap(), "main"],
    );
    let repos = RepoStore::new(tmp.path().join("repos"));
    repos
        .ensure_mirror("demo", remote.to_str().unwrap())
        .await
        .unwrap();
    let wt = repos
        .create_or_reuse_worktree("demo", "feature/x", "main")
        .await
        .unwrap();
    std::fs::write(wt.path.join("x.md"), "x\n").unwrap();
    repos.commit_all(&wt, "x").await.unwrap();
    let forge = LocalForge::new(repos.clone());
    let store = orch_store::testing::sqlite_in(tmp.path()).await;
    World {
        store,
        _tmp: tmp,
        remote,
        repos,
        forge,
    }
}

impl World {
    /// A pre-receive hook on the remote that refuses updates of `refs` (a
    /// shell pattern) with `words`.
    fn refuse(&self, refs: &str, words: &str) {
        let hook = self.remote.join("hooks/pre-receive");
        std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
        let script = format!(
            "#!/bin/sh\nwhile read old new ref; do\n  case \"$ref\" in {refs}) echo '{words}' >&2; exit 1 ;; esac\ndone\nexit 0\n"
        );
        std::fs::write(&hook, script).unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn main_sha(&self) -> String {
        git(&self.remote, &["rev-parse", "main"])
    }
}

#[tokio::test]
async fn a_remote_whose_hook_refuses_the_push_is_a_permanent_refusal_in_its_words() {
    let w = world().await;
    w.refuse("*", "this repository is frozen until the release");
    let e = w.forge.push_branch("demo", "feature/x").await.unwrap_err();
    assert_eq!(e.failure(), Failure::Permanent, "{e}");
    assert!(e.to_string().contains("frozen until the release"), "{e}");
}

#[tokio::test]
async fn a_protected_base_refuses_the_merge_for_good_and_a_moved_one_is_stale() {
    let w = world().await;
    let head = w.forge.push_branch("demo", "feature/x").await.unwrap();
    let base = w.main_sha();
    w.refuse(
        "refs/heads/main",
        "main is protected: merge through a review",
    );
    let e = w
        .forge
        .merge(&w.lease("feature/x").await, "main", &head, &base)
        .await
        .unwrap_err();
    assert_eq!(e.failure(), Failure::Permanent, "{e}");
    assert!(
        e.to_string().contains("main") && e.to_string().contains("refused"),
        "{e}"
    );
    assert_eq!(w.main_sha(), base, "nothing was merged");
    // Without the protection, a base that moved meanwhile is stale, not a refusal.
    std::fs::remove_file(w.remote.join("hooks/pre-receive")).unwrap();
    let other = w
        .repos
        .create_or_reuse_worktree("demo", "feature/y", "main")
        .await
        .unwrap();
    std::fs::write(other.path.join("y.md"), "y\n").unwrap();
    w.repos.commit_all(&other, "y").await.unwrap();
    let y = w.forge.push_branch("demo", "feature/y").await.unwrap();
    let moved = w
        .forge
        .merge(&w.lease("feature/y").await, "main", &y, &base)
        .await;
    assert!(
        matches!(moved, Ok(MergeOutcome::Merged { .. })),
        "{moved:?}"
    );
    let out = w
        .forge
        .merge(&w.lease("feature/x").await, "main", &head, &base)
        .await
        .unwrap();
    assert!(matches!(out, MergeOutcome::Stale(_)), "{out:?}");
}

#[tokio::test]
async fn a_remote_that_is_gone_is_a_permanent_refusal() {
    let w = world().await;
    let gone = w.remote.with_file_name("moved-away.git");
    std::fs::rename(&w.remote, &gone).unwrap();
    let e = w.forge.push_branch("demo", "feature/x").await.unwrap_err();
    assert_eq!(e.failure(), Failure::Permanent, "{e}");
    assert!(
        e.to_string()
            .contains("does not appear to be a git repository"),
        "{e}"
    );
}
