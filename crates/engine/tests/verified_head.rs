//! The local forge merges exactly the verified head (R-6; issue 15, point
//! 13: its guard had two identical arms, so a branch that moved after verify
//! was merged as if verified). Real git, a real bare remote on disk.

use orch_engine::ports::{Forge, LocalForge, MergeOutcome};
use orch_git::RepoStore;
use std::path::Path;
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

#[tokio::test]
async fn a_branch_that_moved_after_verify_is_not_merged() {
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
    std::fs::write(wt.path.join("x.md"), "verified\n").unwrap();
    repos.commit_all(&wt, "x").await.unwrap();
    let forge = LocalForge::new(repos.clone());
    let store = orch_store::testing::sqlite_in(tmp.path()).await;
    let lease = orch_store::testing::merge_lease_for(store.as_ref(), "demo", "feature/x").await;

    // Verify passed on this head, which is pushed ...
    let verified = forge.push_branch("demo", "feature/x").await.unwrap();
    let base = git(&remote, &["rev-parse", "main"]);
    // ... then the branch moves before the merge (an agent's late commit).
    std::fs::write(wt.path.join("x.md"), "never verified\n").unwrap();
    repos.commit_all(&wt, "late").await.unwrap();

    let out = forge.merge(&lease, "main", &verified, &base).await.unwrap();
    match &out {
        MergeOutcome::Stale(why) => assert!(why.contains("moved since it was verified"), "{why}"),
        other => panic!("an unverified head was merged: {other:?}"),
    }
    assert_eq!(
        git(&remote, &["rev-parse", "main"]),
        base,
        "main did not move"
    );

    // Verified again at the new head, it merges, exactly that head.
    let head = forge.push_branch("demo", "feature/x").await.unwrap();
    let merged = forge.merge(&lease, "main", &head, &base).await.unwrap();
    assert_eq!(merged, MergeOutcome::Merged { sha: head.clone() });
    assert_eq!(git(&remote, &["rev-parse", "main"]), head);
}
