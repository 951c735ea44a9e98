//! The GitHub forge and the GitHub-Issues-as-labels tracker against the fake
//! GitHub (a real bare repository behind a model of the REST API).

use orch_core::EventKind;
use orch_engine::ports::{Forge, MergeOutcome, Tracker};
use orch_git::{DeleteOutcome, ProtectedBranches, RepoStore};
use orch_integrations::fakes::FakeGithub;
use orch_integrations::github::{GithubClient, GithubForge, GithubIssuesTracker};
use orch_integrations::http::CallPolicy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "ghp_test";

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
    fake: FakeGithub,
    client: Arc<GithubClient>,
    forge: GithubForge,
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
    let fake = FakeGithub::start("acme/app", TOKEN, &bare).await;
    let policy = CallPolicy {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..CallPolicy::default()
    };
    let client = Arc::new(GithubClient::new(&fake.uri(), TOKEN, policy).unwrap());
    let forge = GithubForge::new(
        client.clone(),
        RepoStore::new(dir.path().join("repos")),
        BTreeMap::from([("app".to_string(), "acme/app".to_string())]),
        "squash",
    );
    let store = orch_store::testing::sqlite_in(dir.path()).await;
    World {
        store,
        _dir: dir,
        seed,
        bare,
        fake,
        client,
        forge,
    }
}

impl World {
    fn branch(&self, branch: &str, file: &str) -> String {
        git(&self.seed, &["checkout", "--quiet", "-B", branch, "main"]);
        std::fs::write(self.seed.join(file), "x\n").unwrap();
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
}

#[tokio::test]
async fn the_github_forge_merges_the_verified_head_and_deletes_carefully() {
    let w = world().await;
    let head = w.branch("feature/a", "a.rs");
    let base = git(&w.bare, &["rev-parse", "main"]);
    assert_eq!(
        w.forge.base_head("app", "main").await.unwrap(),
        Some(base.clone())
    );
    // The branch moved after verify: GitHub's 409 comes back as stale.
    let moved = w.branch("feature/a", "a2.rs");
    let out = w
        .forge
        .merge(&w.lease("feature/a").await, "main", &head, &base)
        .await
        .unwrap();
    assert!(
        matches!(&out, MergeOutcome::Stale(why) if why.contains(&moved)),
        "{out:?}"
    );
    // The verified head merges; a 502 on the way is retried.
    w.fake.m().fail_next.push_back(502);
    let out = w
        .forge
        .merge(&w.lease("feature/a").await, "main", &moved, &base)
        .await
        .unwrap();
    assert_eq!(out, MergeOutcome::Merged { sha: moved.clone() });
    assert_eq!(git(&w.bare, &["rev-parse", "main"]), moved);
    assert_eq!(
        w.fake.m().prs.len(),
        1,
        "the open pull request was found, not duplicated"
    );
    assert_eq!(w.fake.m().prs[0].method.as_deref(), Some("squash"));
    assert!(w.forge.is_merged("app", "main", &moved).await.unwrap());
    w.forge
        .report_verify("app", &moved, true, "ok")
        .await
        .unwrap();
    assert_eq!(w.fake.m().statuses[0].1, "success");

    let p = ProtectedBranches::new(["main", "master"]);
    w.branch("release", "r.rs");
    w.fake.m().protected.insert("release".into());
    assert!(matches!(
        w.forge.delete_branch("app", "main", &p).await.unwrap(),
        DeleteOutcome::Refused { .. }
    ));
    assert!(
        matches!(w.forge.delete_branch("app", "release", &p).await.unwrap(), DeleteOutcome::Refused { reason } if reason.contains("protected"))
    );
    assert_eq!(
        w.forge.delete_branch("app", "feature/a", &p).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        w.forge.delete_branch("app", "feature/a", &p).await.unwrap(),
        DeleteOutcome::NotFound
    );
}

#[tokio::test]
async fn github_issues_carry_gate_states_as_labels() {
    let w = world().await;
    let t = GithubIssuesTracker::new(
        w.client.clone(),
        BTreeMap::from([("app".to_string(), "acme/app".to_string())]),
        orch_config::TrackerStates::default(),
    );
    w.fake
        .add_issue(42, "Add a greeting", &["bug", "To Analyse"]);
    let item = t.item("app-42").await.unwrap().unwrap();
    assert_eq!(
        (
            item.project.as_str(),
            item.state.as_str(),
            item.title.as_str()
        ),
        ("app", "To Analyse", "Add a greeting")
    );
    assert!(t.item("app-99").await.unwrap().is_none());
    assert!(t.item("other-1").await.unwrap().is_none());
    assert_eq!(t.item_id("acme/app", 42).as_deref(), Some("app-42"));

    t.set_state("app-42", "Analysis").await.unwrap();
    assert_eq!(
        w.fake.m().issues[&42].labels,
        vec!["bug".to_string(), "Analysis".to_string()],
        "the old state label is replaced, others kept"
    );
    t.set_labels("app-42", &["orch:analysis".to_string()])
        .await
        .unwrap();
    t.set_labels("app-42", &["orch:review".to_string()])
        .await
        .unwrap();
    assert_eq!(
        w.fake.m().issues[&42].labels,
        vec![
            "bug".to_string(),
            "Analysis".to_string(),
            "orch:review".to_string()
        ]
    );

    t.comment("app-42", "merged", Some("orch-merged"))
        .await
        .unwrap();
    t.comment("app-42", "merged", Some("orch-merged"))
        .await
        .unwrap();
    t.comment("app-42", "free text", None).await.unwrap();
    let comments = w.fake.m().issues[&42].comments.clone();
    assert_eq!(
        comments.len(),
        2,
        "the dedupe key's marker stops a repeat: {comments:?}"
    );
    assert!(comments[0].body.contains("<!-- orch:orch-merged -->"));
}

/// GitHub Issues as the tracker of a real pipeline (SQLite store, local
/// forge) behind the webhook sink: the store and the sink (its folder is
/// kept while the first lives).
async fn issues_pipeline(
    w: &World,
) -> (
    tempfile::TempDir,
    Arc<dyn orch_store::Store>,
    orch_integrations::ingest::Ingest,
) {
    use orch_store::{SqliteOptions, SqliteStore, Store};
    let tracker = github_tracker(w);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orch.toml"), "data_dir = \".orch\"\n[[repos]]\nname = \"app\"\nremote = \"r.git\"\nverify = [\"true\"]\n").unwrap();
    let cfg = orch_config::Config::load(Some(&dir.path().join("orch.toml"))).unwrap();
    std::fs::create_dir_all(cfg.data_dir()).unwrap();
    let store = SqliteStore::open(cfg.data_dir().join("orch.db"), SqliteOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let repos = RepoStore::new(cfg.repos_dir());
    let forge = Arc::new(orch_engine::ports::LocalForge::new(repos.clone()));
    let pipeline = orch_engine::pipeline::Pipeline::new(
        store.clone(),
        Arc::new(cfg),
        repos,
        tracker.clone(),
        forge,
        "test",
    );
    let ingest = orch_integrations::ingest::Ingest::new(pipeline, None, BTreeMap::new())
        .with_github_issues(Some(tracker));
    (dir, store, ingest)
}

#[tokio::test]
async fn a_gate_label_on_a_github_issue_starts_and_moves_the_pipeline() {
    use orch_integrations::ingest::Handled;
    use orch_integrations::webhook::{Provider, github};
    let w = world().await;
    let (_dir, store, ingest) = issues_pipeline(&w).await;
    w.fake.add_issue(7, "Add a greeting", &["To Analyse"]);
    let body = br#"{"action":"labeled","issue":{"number":7,"updated_at":"t"},"label":{"name":"To Analyse"},"repository":{"full_name":"acme/app"}}"#;
    let ev = github::parse(body, Some("issues")).unwrap();
    let h = ingest.process(Provider::Github, ev).await;
    assert!(matches!(h, Handled::Routed(_)), "{h:?}");
    let task = store
        .find_live_task_by_tracker_id("app-7")
        .await
        .unwrap()
        .expect("started");
    assert_eq!(task.stage, orch_core::Stage::Analysis);
    // The stage is reflected as the issue's state label, with a comment.
    let issue = w.fake.m().issues[&7].clone();
    assert!(
        issue.labels.contains(&"Analysis".to_string())
            && !issue.labels.contains(&"To Analyse".to_string()),
        "{issue:?}"
    );
    assert!(!issue.comments.is_empty());
    // orch's own label change comes back as a webhook and changes nothing.
    let echo = br#"{"action":"labeled","issue":{"number":7,"updated_at":"t2"},"label":{"name":"Analysis"},"repository":{"full_name":"acme/app"}}"#;
    let h = ingest
        .process(
            Provider::Github,
            github::parse(echo, Some("issues")).unwrap(),
        )
        .await;
    assert!(
        matches!(&h, Handled::Routed(r) if r.contains("Ignored")),
        "{h:?}"
    );
}

#[tokio::test]
async fn the_github_reconciler_lists_each_repo_once_and_repairs_lost_labels() {
    use orch_integrations::github::GithubReconciler;
    use orch_store::{SqliteOptions, SqliteStore, Store};
    let w = world().await;
    let tracker = Arc::new(GithubIssuesTracker::new(
        w.client.clone(),
        BTreeMap::from([("app".to_string(), "acme/app".to_string())]),
        orch_config::TrackerStates::default(),
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orch.toml"), "data_dir = \".orch\"\n[[repos]]\nname = \"app\"\nremote = \"r.git\"\nverify = [\"true\"]\n").unwrap();
    let cfg = orch_config::Config::load(Some(&dir.path().join("orch.toml"))).unwrap();
    std::fs::create_dir_all(cfg.data_dir()).unwrap();
    let store = SqliteStore::open(cfg.data_dir().join("orch.db"), SqliteOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let repos = RepoStore::new(cfg.repos_dir());
    let forge = Arc::new(orch_engine::ports::LocalForge::new(repos.clone()));
    let pipeline = orch_engine::pipeline::Pipeline::new(
        store.clone(),
        Arc::new(cfg),
        repos,
        tracker.clone(),
        forge,
        "test",
    );
    for n in 1..=30 {
        w.fake.add_issue(n, &format!("old {n}"), &["Done"]);
    }
    w.fake
        .add_issue(31, "labelled while orch was down", &["To Analyse"]);
    let r = GithubReconciler::new(tracker, pipeline);
    let st = r.run_once().await;
    assert_eq!((st.repaired, st.errors, st.pages), (1, 0, 1), "{st:?}");
    assert!(
        store
            .find_live_task_by_tracker_id("app-31")
            .await
            .unwrap()
            .is_some()
    );
    let before = w.fake.m().requests.len();
    let st = r.run_once().await;
    assert_eq!(
        (st.repaired, st.api_calls),
        (0, 1),
        "one listing call per repo: {st:?}"
    );
    assert!(
        w.fake.m().requests[before]
            .query
            .iter()
            .any(|(k, _)| k == "since"),
        "the listing starts at the watermark"
    );
    // An outage: nothing changes, the next cycle retries.
    w.fake.m().fail_next.extend([500, 500, 500, 500]);
    let st = r.run_once().await;
    assert_eq!((st.errors, st.repaired), (1, 0), "{st:?}");
    // A malformed record in the listing (no `number`) is left out and
    // logged; the rest of the listing is still read (Symphony SPEC §17.3).
    // Before, it failed the whole listing, cycle after cycle.
    w.fake.m().raw_listed_issues.push(
        serde_json::json!({"title": "no number", "labels": [{"name": "To Analyse"}], "updated_at": "2026-05-20T10:00:00Z"}),
    );
    w.fake
        .add_issue(32, "labelled beside a broken record", &["To Analyse"]);
    let st = r.run_once().await;
    assert_eq!((st.errors, st.repaired, st.malformed), (0, 1, 1), "{st:?}");
    assert!(
        store
            .find_live_task_by_tracker_id("app-32")
            .await
            .unwrap()
            .is_some()
    );
    // A pull request (the issues API lists them too) is not an issue: not
    // counted, never replayed, whatever its labels.
    w.fake.m().raw_listed_issues.push(serde_json::json!({
        "number": 40, "title": "a pull request", "labels": [{"name": "To Analyse"}],
        "updated_at": "2026-05-20T10:00:00Z", "pull_request": {"url": "x"}
    }));
    let with_pr = r.run_once().await;
    assert_eq!(
        (with_pr.errors, with_pr.repaired, with_pr.items_seen),
        (0, 0, st.items_seen),
        "{with_pr:?}"
    );
    assert!(
        store
            .find_live_task_by_tracker_id("app-40")
            .await
            .unwrap()
            .is_none()
    );
}

/// Issue 15: labels are edited one by one (add / remove endpoints), never
/// replaced as a list, so a label a person adds between orch's read of the
/// issue and its write survives.
#[tokio::test]
async fn a_label_a_person_adds_while_orch_moves_the_issue_survives() {
    let w = world().await;
    let t = GithubIssuesTracker::new(
        w.client.clone(),
        BTreeMap::from([("app".to_string(), "acme/app".to_string())]),
        orch_config::TrackerStates::default(),
    );
    w.fake.add_issue(
        42,
        "Add a greeting",
        &["bug", "To Analyse", "orch:analysis"],
    );

    // The state moves while a person labels the issue "urgent".
    w.fake
        .m()
        .person_adds_after_read
        .push_back((42, "urgent".into()));
    t.set_state("app-42", "Analysis").await.unwrap();
    assert_eq!(
        w.fake.m().issues[&42].labels,
        ["bug", "orch:analysis", "urgent", "Analysis"].map(String::from),
        "the person's label stays; the old state label is gone"
    );

    // orch's own labels move while a person labels the issue "needs docs".
    w.fake
        .m()
        .person_adds_after_read
        .push_back((42, "needs docs".into()));
    t.set_labels("app-42", &["orch:review".to_string()])
        .await
        .unwrap();
    assert_eq!(
        w.fake.m().issues[&42].labels,
        ["bug", "urgent", "Analysis", "needs docs", "orch:review"].map(String::from)
    );

    // Through GitHub's add and remove endpoints (the name URL-encoded),
    // never the replace-all PUT.
    let reqs = w.fake.m().requests.clone();
    assert!(reqs.iter().all(|r| r.method != "PUT"), "{reqs:#?}");
    assert!(
        reqs.iter()
            .any(|r| r.method == "DELETE"
                && r.path == "/repos/acme/app/issues/42/labels/To%20Analyse"),
        "{reqs:#?}"
    );
    assert!(
        reqs.iter()
            .any(|r| r.method == "POST" && r.path == "/repos/acme/app/issues/42/labels"),
        "{reqs:#?}"
    );

    // A label no longer on the issue (a person removed it first) is
    // "already gone" (GitHub's 404), not an error.
    w.client
        .remove_label("acme/app", 42, "Analysis")
        .await
        .unwrap();
    w.client
        .remove_label("acme/app", 42, "Analysis")
        .await
        .unwrap();
    t.set_state("app-42", "Review").await.unwrap();
    assert_eq!(
        w.fake.m().issues[&42].labels,
        ["bug", "urgent", "needs docs", "orch:review", "Review"].map(String::from)
    );
}

/// Issue 15, point 5: a gate moved on GitHub (a label) carries the person's
/// reason: their newest comment since orch asked reaches the agent's job as
/// the CLI's `--comment` does. Older comments and orch's own do not.
#[tokio::test]
async fn a_rejection_label_passes_the_persons_latest_comment_to_the_analyst() {
    use orch_integrations::fakes::github::GhFakeComment;
    use orch_integrations::ingest::Handled;
    use orch_integrations::webhook::{Provider, github};
    let w = world().await;
    let (_dir, store, ingest) = issues_pipeline(&w).await;
    w.fake.add_issue(7, "Add a greeting", &["To Analyse"]);
    // A comment from long before the analysis: not a reason for what comes.
    w.fake
        .m()
        .issues
        .get_mut(&7)
        .unwrap()
        .comments
        .push(GhFakeComment {
            body: "old remark from last year".into(),
            created_at: "2025-01-02T03:04:05Z".into(),
        });
    let label = |name: &str| {
        let body = format!(
            r#"{{"action":"labeled","issue":{{"number":7,"updated_at":"t"}},"label":{{"name":"{name}"}},"repository":{{"full_name":"acme/app"}}}}"#
        );
        github::parse(body.as_bytes(), Some("issues")).unwrap()
    };
    let h = ingest.process(Provider::Github, label("To Analyse")).await;
    assert!(matches!(h, Handled::Routed(_)), "{h:?}");
    let task = store
        .find_live_task_by_tracker_id("app-7")
        .await
        .unwrap()
        .expect("started");
    // The analysis is done (its job with it): orch asks (the stage move is
    // the moment).
    store.cancel_jobs_for_task(task.id, true).await.unwrap();
    store
        .set_stage(
            task.id,
            orch_core::Stage::AwaitingApproval,
            Some(orch_core::Stage::Analysis),
            orch_core::EventInput::new("test", EventKind::Analysed, "analysis ready"),
        )
        .await
        .unwrap();
    // orch's own comment after asking carries its marker and is no reason.
    Tracker::comment(
        &*github_tracker(&w),
        "app-7",
        "orch: the analysis is ready",
        None,
    )
    .await
    .unwrap();
    w.fake.person_comments(7, "First thought: looks fine.");
    w.fake
        .person_comments(7, "Rejected: the plan misses the migration of old rows.");
    let h = ingest.process(Provider::Github, label("Rejected")).await;
    assert!(
        matches!(&h, Handled::Routed(r) if r.contains("Gate")),
        "{h:?}"
    );
    let task = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(
        task.stage,
        orch_core::Stage::Analysis,
        "rejected: analysis again ({h:?})"
    );
    let jobs = store.jobs_for_task(task.id).await.unwrap();
    let spec = orch_engine::pipeline::job_spec(jobs.last().unwrap()).unwrap();
    assert_eq!(
        spec.gate_comment.as_deref(),
        Some("Rejected: the plan misses the migration of old rows."),
        "the person's newest comment since orch asked, as --comment would give it"
    );
    let events = store.events(task.id).await.unwrap();
    let rejected = events
        .iter()
        .find(|e| e.kind == EventKind::Rejected)
        .unwrap();
    assert!(
        rejected.message.contains("migration of old rows"),
        "{rejected:?}"
    );
    // orch's comments all carry the marker that tells them from a person's.
    let comments = w.fake.m().issues[&7].comments.clone();
    let orch_said: Vec<&GhFakeComment> = comments
        .iter()
        .filter(|c| c.body.starts_with("orch") || c.body.contains("analysis rejected"))
        .collect();
    assert!(!orch_said.is_empty());
    assert!(
        orch_said.iter().all(|c| c.body.contains("<!-- orch")),
        "{orch_said:?}"
    );
}

/// The GitHub Issues tracker of `acme/app` (orch's repo `app`) over the fake.
fn github_tracker(w: &World) -> Arc<GithubIssuesTracker> {
    Arc::new(GithubIssuesTracker::new(
        w.client.clone(),
        BTreeMap::from([("app".to_string(), "acme/app".to_string())]),
        orch_config::TrackerStates::default(),
    ))
}

/// The base branch's protection summary (GitHub's "Get a branch") names
/// the required status checks, contexts and check names alike; with their
/// enforcement off, or no protection, nothing is required.
#[tokio::test]
async fn the_github_forge_reads_the_required_checks_from_the_base_branchs_protection() {
    let w = world().await;
    assert!(
        w.forge
            .required_checks("app", "main")
            .await
            .unwrap()
            .is_empty()
    );
    w.fake.m().protected.insert("main".into());
    assert!(
        w.forge
            .required_checks("app", "main")
            .await
            .unwrap()
            .is_empty()
    );
    w.fake.require_checks("main", &["test", "lint"]);
    assert_eq!(
        w.forge.required_checks("app", "main").await.unwrap(),
        ["test", "lint"]
    );
}

/// CI checks of a commit (issue 16): GitHub's check runs (with their
/// output) and commit statuses, mapped to pass / wait / fail, newest run of
/// a name first.
#[tokio::test]
async fn the_github_forge_reads_check_runs_and_statuses_of_a_commit() {
    use orch_core::ci::CheckState;
    let w = world().await;
    let sha = w.branch("feature/ci", "ci.rs");
    {
        let mut m = w.fake.m();
        m.check_runs.push(serde_json::json!({
            "id": 1, "head_sha": sha, "name": "test", "status": "completed",
            "conclusion": "failure", "html_url": "https://ci/1",
            "output": {"title": "2 tests failed", "summary": "login_works failed", "text": "assertion failed"}
        }));
        m.check_runs.push(serde_json::json!({
            "id": 2, "head_sha": sha, "name": "test", "status": "in_progress", "conclusion": null
        }));
        m.check_runs.push(serde_json::json!({
            "id": 3, "head_sha": sha, "name": "lint", "status": "completed", "conclusion": "neutral"
        }));
        m.statuses
            .push((sha.clone(), "pending".into(), "ci/build".into()));
    }
    let checks = w.forge.checks("app", &sha).await.unwrap();
    let states: Vec<(&str, CheckState)> =
        checks.iter().map(|c| (c.name.as_str(), c.state)).collect();
    assert_eq!(
        states,
        vec![
            ("lint", CheckState::Success),
            ("test", CheckState::Pending),
            ("test", CheckState::Failure),
            ("ci/build", CheckState::Pending),
        ]
    );
    let failed = &checks[2];
    assert_eq!(failed.conclusion, "failure");
    assert_eq!(failed.url.as_deref(), Some("https://ci/1"));
    assert_eq!(
        failed.detail,
        "2 tests failed\n\nlogin_works failed\n\nassertion failed"
    );
    // The newest run of `test` still runs: the required check waits.
    assert!(matches!(
        orch_core::ci::verdict(&["test".into()], &checks),
        orch_core::ci::CiVerdict::Pending { .. }
    ));
}

/// People's reviews on GitHub (issue 16): the pull request opened early is
/// a draft; `CHANGES_REQUESTED` and `APPROVED` are verdicts with the inline
/// comments of their review, `COMMENTED` none, and `DISMISSED` is dropped.
#[tokio::test]
async fn the_github_forge_reads_peoples_reviews_of_the_open_pull_request() {
    use orch_core::people::ReviewVerdict;
    let w = world().await;
    let head = w.branch("feature/r", "r.rs");
    let pr = w
        .forge
        .open_pull_request("app", "feature/r", "main")
        .await
        .unwrap()
        .unwrap();
    assert!(w.fake.m().prs[0].draft, "opened as a draft");
    {
        let mut m = w.fake.m();
        let review = |id: u64, user: &str, state: &str, body: &str| {
            serde_json::json!({"id": id, "pr": pr.number, "user": {"login": user},
                               "state": state, "body": body, "commit_id": head})
        };
        m.reviews.push(review(
            1,
            "ann",
            "CHANGES_REQUESTED",
            "Please handle the empty password.",
        ));
        m.reviews.push(review(2, "bob", "COMMENTED", "nice"));
        m.reviews.push(review(3, "cy", "DISMISSED", "old"));
        m.reviews.push(review(4, "bob", "APPROVED", ""));
        m.review_comments.push(
            serde_json::json!({"pr": pr.number, "pull_request_review_id": 1,
            "path": "src/login.rs", "line": 12, "body": "refuse an empty password"}),
        );
        m.review_comments.push(
            serde_json::json!({"pr": pr.number, "pull_request_review_id": 2,
            "path": "src/x.rs", "line": 1, "body": "a comment of another review"}),
        );
    }
    let reviews = w.forge.reviews("app", "feature/r", "main").await.unwrap();
    let got: Vec<(&str, ReviewVerdict)> = reviews
        .iter()
        .map(|r| (r.author.as_str(), r.verdict))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ann", ReviewVerdict::ChangesRequested),
            ("bob", ReviewVerdict::Commented),
            ("bob", ReviewVerdict::Approved)
        ]
    );
    assert_eq!(reviews[0].commit, head);
    assert_eq!(
        reviews[0].as_comments(),
        vec![
            "ann (review on the pull request): Please handle the empty password.".to_owned(),
            "ann on src/login.rs:12: refuse an empty password".to_owned()
        ]
    );
    let say = orch_core::people::people_say(&reviews, &head);
    assert_eq!(say.approved_by.as_deref(), Some("bob"));
    assert_eq!(say.changes.map(|r| r.author), Some("ann".to_owned()));
    // No open pull request for a branch: no reviews.
    assert!(
        w.forge
            .reviews("app", "feature/none", "main")
            .await
            .unwrap()
            .is_empty()
    );
}
