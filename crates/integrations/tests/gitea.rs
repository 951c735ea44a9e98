//! The Gitea/Forgejo forge against the fake Gitea (a real bare repository
//! behind a model of the API), and the contract test: every request orch sent
//! matches a path, a method, the declared query parameters and the body's
//! required fields of Gitea's own `swagger.v1.json`.

use orch_engine::ports::{Failure, Forge, MergeOutcome};
use orch_git::{DeleteOutcome, ProtectedBranches, RepoStore};
use orch_integrations::fakes::{FakeGitea, gitea::GiteaModel};
use orch_integrations::gitea::{GiteaClient, GiteaForge};
use orch_integrations::http::CallPolicy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "gitea-token-1";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@localhost",
            "-c",
            "commit.gpgsign=false",
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
const REPO: &str = "app";

impl World {
    /// The repo's merge lease for a task on `branch`: what the engine holds
    /// when it merges.
    async fn lease(&self, branch: &str) -> orch_store::MergeLeaseProof {
        orch_store::testing::merge_lease_for(self.store.as_ref(), REPO, branch).await
    }
}

struct World {
    store: Arc<dyn orch_store::Store>,
    _dir: tempfile::TempDir,
    seed: PathBuf,
    bare: PathBuf,
    fake: FakeGitea,
    forge: GiteaForge,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("app.git");
    std::fs::create_dir_all(&bare).unwrap();
    git(&bare, &["init", "--quiet", "--bare", "-b", "main"]);
    let seed = dir.path().join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "--quiet", "-b", "main"]);
    std::fs::write(seed.join("README.md"), "hi\n").unwrap();
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "--quiet", "-m", "init"]);
    git(&seed, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
    let fake = FakeGitea::start("acme/app", TOKEN, &bare).await;
    let policy = CallPolicy {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..CallPolicy::default()
    };
    let client = Arc::new(GiteaClient::new(&fake.uri(), TOKEN, policy).unwrap());
    let forge = GiteaForge::new(
        client,
        RepoStore::new(dir.path().join("repos")),
        BTreeMap::from([("app".to_string(), "acme/app".to_string())]),
        "merge",
    );
    let store = orch_store::testing::sqlite_in(dir.path()).await;
    World {
        store,
        _dir: dir,
        seed,
        bare,
        fake,
        forge,
    }
}

impl World {
    /// A commit on `branch` (from main), pushed to the bare repository.
    fn branch(&self, branch: &str, file: &str) -> String {
        git(&self.seed, &["checkout", "--quiet", "-B", branch, "main"]);
        std::fs::write(self.seed.join(file), format!("{file}\n")).unwrap();
        git(&self.seed, &["add", "-A"]);
        git(&self.seed, &["commit", "--quiet", "-m", file]);
        git(
            &self.seed,
            &["push", "--quiet", "-f", self.bare.to_str().unwrap(), branch],
        );
        let sha = git(&self.seed, &["rev-parse", "HEAD"]);
        git(&self.seed, &["checkout", "--quiet", "main"]);
        sha
    }

    fn main_sha(&self) -> String {
        git(&self.bare, &["rev-parse", "main"])
    }

    fn model(&self) -> std::sync::MutexGuard<'_, GiteaModel> {
        self.fake.m()
    }
}

fn protected() -> ProtectedBranches {
    ProtectedBranches::new(["main", "master"])
}

#[tokio::test]
async fn merges_the_verified_head_through_a_pull_request() {
    let w = world().await;
    let head = w.branch("feature/PROJ-1-login", "login.rs");
    let base = w.main_sha();
    assert_eq!(
        w.forge.base_head("app", "main").await.unwrap(),
        Some(base.clone())
    );
    assert!(!w.forge.is_merged("app", "main", &head).await.unwrap());
    let out = w
        .forge
        .merge(&w.lease("feature/PROJ-1-login").await, "main", &head, &base)
        .await
        .unwrap();
    assert_eq!(out, MergeOutcome::Merged { sha: head.clone() });
    assert_eq!(w.main_sha(), head, "the base now holds the verified head");
    let prs = w.fake.prs();
    assert_eq!(prs.len(), 1);
    assert_eq!(prs[0].merge_style.as_deref(), Some("merge"));
    assert!(w.forge.is_merged("app", "main", &head).await.unwrap());
    // The merge request carried head_commit_id and both spellings of the title key.
    let merge = w
        .fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/merge"))
        .unwrap();
    let body = merge.body.unwrap();
    assert_eq!(body["head_commit_id"], head.as_str());
    assert!(body["merge_title_field"].is_string() && body["MergeTitleField"].is_string());
    assert_eq!(body["delete_branch_after_merge"], false);
}

#[tokio::test]
async fn an_existing_pull_request_is_found_not_duplicated() {
    let w = world().await;
    w.branch("feature/x", "x.rs");
    let c = w.forge.client();
    let a = c
        .create_or_find_pr("acme/app", "feature/x", "main", "t", "b")
        .await
        .unwrap();
    let b = c
        .create_or_find_pr("acme/app", "feature/x", "main", "t", "b")
        .await
        .unwrap();
    assert_eq!(a.number, b.number, "409 = the same pull request");
    assert_eq!(w.fake.prs().len(), 1);
}

#[tokio::test]
async fn refusals_are_classified_for_the_merge_gate_with_gitea_s_reason() {
    let w = world().await;
    let head = w.branch("feature/y", "y.rs");
    let base = w.main_sha();
    // Gitea is still checking mergeability (405 "try again later"): transient.
    w.model()
        .merge_answers
        .push_back((405, "Please try again later".into()));
    let e = w
        .forge
        .merge(&w.lease("feature/y").await, "main", &head, &base)
        .await
        .unwrap_err();
    assert_eq!(e.failure(), Failure::Transient, "{e}");
    assert!(
        e.to_string().contains("405") && e.to_string().contains("try again later"),
        "{e}"
    );
    // Branch protection (405): asking again cannot help.
    w.model()
        .merge_answers
        .push_back((405, "protected branch main: not enough approvals".into()));
    let e = w
        .forge
        .merge(&w.lease("feature/y").await, "main", &head, &base)
        .await
        .unwrap_err();
    assert_eq!(e.failure(), Failure::Permanent, "{e}");
    assert!(e.to_string().contains("not enough approvals"), "{e}");
    // A conflict (409): merge the base in and verify again.
    w.model()
        .merge_answers
        .push_back((409, "merge conflict".into()));
    let out = w
        .forge
        .merge(&w.lease("feature/y").await, "main", &head, &base)
        .await
        .unwrap();
    assert!(
        matches!(&out, MergeOutcome::Stale(why) if why.contains("409")),
        "{out:?}"
    );
    // Refused credentials are permanent too.
    w.fake.fail_next(401, 1);
    let e = w.forge.base_head("app", "main").await.unwrap_err();
    assert_eq!(e.failure(), Failure::Permanent, "{e}");
    // The branch moved after verify: the pull request's head is not the verified one.
    let moved = w.branch("feature/y", "y2.rs");
    let out = w
        .forge
        .merge(&w.lease("feature/y").await, "main", &head, &base)
        .await
        .unwrap();
    assert!(
        matches!(&out, MergeOutcome::Stale(why) if why.contains(&moved)),
        "{out:?}"
    );
    assert_eq!(w.main_sha(), base, "nothing was merged");
    // A 500 storm delays the merge but it still lands (retries with backoff).
    let head = w.main_sha();
    let _ = head;
    w.fake.fail_next(500, 2);
    let out = w
        .forge
        .merge(&w.lease("feature/y").await, "main", &moved, &base)
        .await
        .unwrap();
    assert_eq!(out, MergeOutcome::Merged { sha: moved.clone() });
}

#[tokio::test]
async fn branches_are_deleted_only_when_neither_default_nor_protected() {
    let w = world().await;
    w.branch("feature/done", "d.rs");
    w.branch("develop", "dev.rs");
    w.branch("release/1", "r.rs");
    w.branch("feature/target", "t.rs");
    w.model().default_branch = "develop".into();
    w.model().protected.insert("release/1".into());
    w.model().refuse_delete.insert("feature/target".into());
    let p = protected();
    for (branch, why) in [
        ("main", "never deleted"),
        ("develop", "default"),
        ("release/1", "protected on Gitea"),
        ("feature/target", "403"),
    ] {
        let out = w.forge.delete_branch("app", branch, &p).await.unwrap();
        assert!(
            matches!(&out, DeleteOutcome::Refused { reason } if reason.contains(why)),
            "{branch}: {out:?}"
        );
    }
    assert_eq!(
        w.forge
            .delete_branch("app", "feature/done", &p)
            .await
            .unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        w.forge
            .delete_branch("app", "feature/done", &p)
            .await
            .unwrap(),
        DeleteOutcome::NotFound
    );
    // Only the one DELETE for the deletable branch reached the API, plus the refused 403.
    let deletes: Vec<String> = w
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect();
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert!(
        !deletes
            .iter()
            .any(|d| d.ends_with("/main") || d.ends_with("/develop") || d.ends_with("/release/1"))
    );
}

#[tokio::test]
async fn verify_results_become_commit_statuses() {
    let w = world().await;
    let head = w.branch("feature/s", "s.rs");
    w.forge
        .report_verify("app", &head, true, "verify passed")
        .await
        .unwrap();
    w.forge
        .report_verify("app", &head, false, "verify failed")
        .await
        .unwrap();
    let st: Vec<(String, String, String)> = w
        .model()
        .statuses
        .iter()
        .map(|s| (s.sha.clone(), s.state.clone(), s.context.clone()))
        .collect();
    assert_eq!(
        st,
        vec![
            (head.clone(), "success".into(), "orch/verify".into()),
            (head, "failure".into(), "orch/verify".into())
        ]
    );
}

// ---- the contract ----------------------------------------------------------

mod support;
use support::swagger::{check, swagger};

#[test]
fn the_contract_checker_can_fail() {
    let sw = swagger();
    assert!(
        check(
            &sw,
            "POST",
            "/api/v1/repos/a/b/pulls/1/merge",
            &[],
            Some(&serde_json::json!({"do": "merge"}))
        )
        .is_ok()
    );
    assert!(
        check(
            &sw,
            "POST",
            "/api/v1/repos/a/b/pulls/1/merge",
            &[],
            Some(&serde_json::json!({"head_commit_id": "x"}))
        )
        .is_err(),
        "do is required"
    );
    assert!(
        check(
            &sw,
            "POST",
            "/api/v1/repos/a/b/pulls/1/merge",
            &[],
            Some(&serde_json::json!({"do": "merge", "bogus": 1}))
        )
        .is_err()
    );
    assert!(check(&sw, "PUT", "/api/v1/repos/a/b/pulls/1/merge", &[], None).is_err());
    assert!(check(&sw, "GET", "/api/v1/repos/a/b/nothing", &[], None).is_err());
    assert!(
        check(
            &sw,
            "GET",
            "/api/v1/repos/a/b/pulls",
            &[("bogus".into(), "1".into())],
            None
        )
        .is_err()
    );
    assert!(
        check(
            &sw,
            "DELETE",
            "/api/v1/repos/a/b/branches/feature/x-y",
            &[],
            None
        )
        .is_ok()
    );
    assert!(
        check(
            &sw,
            "GET",
            "/api/v1/repos/a/b/pulls/main/feature/x",
            &[],
            None
        )
        .is_ok()
    );
}

#[tokio::test]
async fn every_request_orch_sends_to_gitea_matches_the_swagger() {
    let w = world().await;
    let head = w.branch("feature/PROJ-2-contract", "c.rs");
    let base = w.main_sha();
    let c = w.forge.client();
    c.create_or_find_pr("acme/app", "feature/PROJ-2-contract", "main", "t", "b")
        .await
        .unwrap();
    c.create_or_find_pr("acme/app", "feature/PROJ-2-contract", "main", "t", "b")
        .await
        .unwrap();
    w.model().merge_answers.push_back((405, "not ready".into()));
    w.forge
        .merge(
            &w.lease("feature/PROJ-2-contract").await,
            "main",
            &head,
            &base,
        )
        .await
        .unwrap_err();
    w.forge
        .merge(
            &w.lease("feature/PROJ-2-contract").await,
            "main",
            &head,
            &base,
        )
        .await
        .unwrap();
    w.forge.is_merged("app", "main", &head).await.unwrap();
    w.forge.base_head("app", "main").await.unwrap();
    w.forge
        .report_verify("app", &head, true, "ok")
        .await
        .unwrap();
    w.forge
        .delete_branch("app", "feature/PROJ-2-contract", &protected())
        .await
        .unwrap();
    let sw = swagger();
    let reqs = w.fake.requests();
    let mut covered = std::collections::BTreeSet::new();
    for r in &reqs {
        match check(&sw, &r.method, &r.path, &r.query, r.body.as_ref()) {
            Ok(op) => {
                covered.insert(op);
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Every call the forge makes was exercised.
    for op in [
        "POST /repos/{owner}/{repo}/pulls",
        "GET /repos/{owner}/{repo}/pulls/{base}/{head}",
        "GET /repos/{owner}/{repo}/pulls",
        "GET /repos/{owner}/{repo}/pulls/{index}",
        "POST /repos/{owner}/{repo}/pulls/{index}/merge",
        "GET /repos/{owner}/{repo}/branches/{branch}",
        "DELETE /repos/{owner}/{repo}/branches/{branch}",
        "GET /repos/{owner}/{repo}",
        "POST /repos/{owner}/{repo}/statuses/{sha}",
    ] {
        assert!(covered.contains(op), "{op} not exercised: {covered:?}");
    }
}

/// CI checks of a commit (issue 16): Gitea's commit statuses (swagger
/// `CommitStatus`, the state under `status`), newest first; `warning`
/// passes, `error` fails, and the description and link come along.
/// People's reviews of the open pull request, as the merge gate reads
/// them: verdicts with their inline comments, a comment-only review's inline
/// comments on the head too (they ask for changes), dismissed ones dropped.
#[tokio::test]
async fn the_gitea_forge_reads_peoples_reviews_with_their_inline_comments() {
    use orch_core::people::{ReviewVerdict, people_say};
    let w = world().await;
    let head = w.branch("feature/r", "r.rs");
    w.forge
        .open_pull_request("app", "feature/r", "main")
        .await
        .unwrap()
        .expect("a pull request");
    let gitea = &w.fake;
    gitea.person_reviews(
        1,
        "ann",
        "COMMENT",
        "",
        &[("r.rs", 1, "this panics on empty input")],
    );
    gitea.person_reviews(1, "bob", "COMMENT", "looks fine so far", &[]);
    gitea.person_reviews(
        1,
        "cy",
        "REQUEST_CHANGES",
        "see inline",
        &[("r.rs", 2, "rename")],
    );
    gitea.person_reviews(1, "dee", "APPROVED", "", &[]);
    let reviews = w.forge.reviews("app", "feature/r", "main").await.unwrap();
    let got: Vec<(&str, ReviewVerdict, usize)> = reviews
        .iter()
        .map(|r| (r.author.as_str(), r.verdict, r.comments.len()))
        .collect();
    assert_eq!(
        got,
        [
            ("ann", ReviewVerdict::Commented, 1),
            ("bob", ReviewVerdict::Commented, 0),
            ("cy", ReviewVerdict::ChangesRequested, 1),
            ("dee", ReviewVerdict::Approved, 0),
        ]
    );
    assert!(reviews.iter().all(|r| r.commit == head));
    assert_eq!(reviews[0].comments[0].body, "this panics on empty input");
    let say = people_say(&reviews, &head);
    assert_eq!(say.changes.map(|r| r.author).as_deref(), Some("cy"));
    assert_eq!(say.approved_by.as_deref(), Some("dee"));
    let only_ann = people_say(&reviews[..2], &head);
    assert_eq!(
        only_ann.changes.map(|r| r.author).as_deref(),
        Some("ann"),
        "inline comments without a verdict ask for changes"
    );
}

/// A failed Gitea Actions job's check carries the end of the job's log,
/// found from the status's link (run number, job index) through the
/// Actions API; another CI's failure keeps its description alone.
#[tokio::test]
async fn a_failed_actions_jobs_check_carries_the_tail_of_its_log() {
    use orch_core::ci::CheckState;
    let w = world().await;
    let sha = w.branch("feature/logs", "logs.rs");
    let gitea = &w.fake;
    // An earlier run of the commit, so the run number is not the first.
    gitea.actions_job_fails(&sha, "lint", "fmt", "diff in src/a.rs\n");
    let long = format!(
        "{}\n---- login_works stdout ----\nassertion failed: session.is_some()\n",
        "compiling ...\n".repeat(2_000)
    );
    let context = gitea.actions_job_fails(&sha, "ci", "test", &long);
    assert_eq!(context, "ci / test (pull_request)");
    gitea.ci_status(&sha, "external / build", "failure", "Build #7 failed");
    let checks = w.forge.checks("app", &sha).await.unwrap();
    let test = checks.iter().find(|c| c.name == context).unwrap();
    assert_eq!(test.state, CheckState::Failure);
    assert!(
        test.detail.starts_with("Failing after 4s\n\n"),
        "{}",
        &test.detail[..80]
    );
    assert!(
        test.detail.ends_with("assertion failed: session.is_some()"),
        "the end of the log: {}",
        &test.detail[test.detail.len() - 80..]
    );
    assert!(test.detail.len() <= orch_core::ci::CHECK_DETAIL_MAX + 40);
    let fmt = checks
        .iter()
        .find(|c| c.name == "lint / fmt (pull_request)")
        .unwrap();
    assert!(fmt.detail.ends_with("diff in src/a.rs"), "{}", fmt.detail);
    let external = checks
        .iter()
        .find(|c| c.name == "external / build")
        .unwrap();
    assert_eq!(external.detail, "Build #7 failed");
    let asked: Vec<String> = gitea.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        asked.iter().any(|p| p.ends_with("/actions/jobs/101/logs")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn the_gitea_forge_reads_the_required_checks_from_the_base_branchs_protection() {
    let w = world().await;
    let gitea = &w.fake;
    assert!(
        w.forge
            .required_checks("app", "main")
            .await
            .unwrap()
            .is_empty(),
        "an unprotected base requires nothing"
    );
    gitea.m().protected.insert("main".into());
    assert!(
        w.forge
            .required_checks("app", "main")
            .await
            .unwrap()
            .is_empty(),
        "a protection without status checks requires nothing"
    );
    gitea.require_checks("main", &["ci / *", "security"]);
    assert_eq!(
        w.forge.required_checks("app", "main").await.unwrap(),
        ["ci / *", "security"]
    );
    // Read from the branch, which a token without admin rights may read.
    let asked: Vec<String> = gitea.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        asked.iter().all(|p| !p.contains("branch_protections")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn the_gitea_forge_reads_the_commit_statuses_of_a_commit() {
    use orch_core::ci::CheckState;
    let w = world().await;
    let sha = w.branch("feature/ci", "ci.rs");
    let gitea = &w.fake;
    gitea.ci_status(&sha, "ci / test", "pending", "Waiting to run");
    gitea.ci_status(
        &sha,
        "ci / test",
        "error",
        "Failure in 3s: tests/login.rs failed",
    );
    gitea.ci_status(&sha, "ci / lint", "warning", "2 warnings");
    gitea.ci_status(
        "0000000000000000000000000000000000000000",
        "ci / test",
        "success",
        "another commit",
    );
    let checks = w.forge.checks("app", &sha).await.unwrap();
    let got: Vec<(&str, CheckState, &str)> = checks
        .iter()
        .map(|c| (c.name.as_str(), c.state, c.conclusion.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ci / lint", CheckState::Success, "warning"),
            ("ci / test", CheckState::Failure, "error"),
            ("ci / test", CheckState::Pending, "pending"),
        ]
    );
    assert_eq!(checks[1].detail, "Failure in 3s: tests/login.rs failed");
    assert!(checks[1].url.as_deref().unwrap().ends_with("/ci/ci / test"));
    let required = vec!["ci / test".to_owned()];
    assert!(matches!(
        orch_core::ci::verdict(&required, &checks),
        orch_core::ci::CiVerdict::Failed(ref f) if f[0].conclusion == "error"
    ));
}
