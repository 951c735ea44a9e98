//! GitLab as forge and tracker against the fake GitLab on loopback (a real
//! bare repository behind a model of REST API v4): merge requests merged
//! only at the verified head, protection and branch deletion rules, the
//! `orch/verify` commit status; the contract: every request orch sent and
//! every answer of the fake match the stored API description
//! (`fixtures/gitlab/api-v4-excerpt.json`).

#[path = "support/local_pipeline.rs"]
mod local_pipeline;

use orch_engine::ports::{Forge, MergeOutcome, PortError};
use orch_git::{DeleteOutcome, ProtectedBranches, RepoStore};
use orch_integrations::fakes::FakeGitlab;
use orch_integrations::gitlab::{GitlabClient, GitlabForge};
use orch_integrations::http::CallPolicy;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "glpat-test";
const REPO: &str = "app";

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

struct World {
    store: Arc<dyn orch_store::Store>,
    _dir: tempfile::TempDir,
    seed: PathBuf,
    bare: PathBuf,
    fake: FakeGitlab,
    client: Arc<GitlabClient>,
    forge: GitlabForge,
}

fn fast() -> CallPolicy {
    CallPolicy {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..CallPolicy::default()
    }
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
    let fake = FakeGitlab::start("acme/app", TOKEN, &bare).await;
    let client = Arc::new(GitlabClient::new(&fake.uri(), TOKEN, fast()).unwrap());
    let forge = GitlabForge::new(
        client.clone(),
        RepoStore::new(dir.path().join("repos")),
        BTreeMap::from([(REPO.to_string(), "acme/app".to_string())]),
        true,
    )
    .with_web_base(&fake.uri());
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
    /// The repo's merge lease for a task on `branch`.
    async fn lease(&self, branch: &str) -> orch_store::MergeLeaseProof {
        orch_store::testing::merge_lease_for(self.store.as_ref(), REPO, branch).await
    }

    /// Push `branch` (from main) with one new file; its head.
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

    fn main_head(&self) -> String {
        git(&self.bare, &["rev-parse", "main"])
    }
}

#[tokio::test]
async fn the_gitlab_forge_merges_only_the_verified_head() {
    let w = world().await;
    let head = w.branch("feature/a", "a.rs");
    let base = w.main_head();
    assert_eq!(
        w.forge.base_head(REPO, "main").await.unwrap(),
        Some(base.clone())
    );
    // The branch moved after verify: the merge request is at the new head,
    // so the forge says stale before asking GitLab to merge anything.
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
    assert_eq!(w.main_head(), base, "nothing merged");
    // The branch moves between orch's read of the merge request and the
    // merge: GitLab's 409 on the `sha` comes back as stale, and nothing merged.
    let mr = w.fake.m().mrs[0].clone();
    let mut moved_mr = mr.clone();
    moved_mr.sha = head.clone();
    w.fake.m().heads_frozen = true;
    w.fake.m().mrs[0] = moved_mr;
    let out = w
        .forge
        .merge(&w.lease("feature/a").await, "main", &head, &base)
        .await
        .unwrap();
    assert!(
        matches!(&out, MergeOutcome::Stale(why) if why.contains("409") && why.contains("SHA does not match")),
        "{out:?}"
    );
    assert_eq!(w.main_head(), base, "a stale sha merges nothing");
    w.fake.m().heads_frozen = false;
    w.fake.m().mrs[0] = mr;
    // The verified head merges (a 502 on the way is retried), squashed as
    // configured, with the verified sha named.
    w.fake.fail_next(502, 1);
    let out = w
        .forge
        .merge(&w.lease("feature/a").await, "main", &moved, &base)
        .await
        .unwrap();
    assert_eq!(out, MergeOutcome::Merged { sha: moved.clone() });
    assert_eq!(w.main_head(), moved);
    {
        let m = w.fake.m();
        assert_eq!(
            m.mrs.len(),
            1,
            "the open merge request was found, not duplicated"
        );
        assert!(m.mrs[0].squash);
        let merge = m
            .requests
            .iter()
            .rev()
            .find(|r| r.method == "PUT" && r.path.ends_with("/merge"))
            .unwrap();
        assert_eq!(
            merge.body.as_ref().unwrap()["sha"].as_str(),
            Some(moved.as_str())
        );
    }
    // Merged means: a merged merge request at that head.
    assert!(w.forge.is_merged(REPO, "main", &moved).await.unwrap());
    assert!(!w.forge.is_merged(REPO, "main", &head).await.unwrap());
    // A crash after the merge: merging again is the merge done.
    assert_eq!(
        w.forge
            .merge(&w.lease("feature/a").await, "main", &moved, &base)
            .await
            .unwrap(),
        MergeOutcome::Merged { sha: moved.clone() }
    );
}

#[tokio::test]
async fn a_merge_gitlab_refuses_is_a_refusal_and_a_conflict_is_stale() {
    let w = world().await;
    // The target requires what orch cannot give (approvals, a pipeline,
    // protection that forbids merging): GitLab's 405 parks the task.
    let head = w.branch("feature/p", "p.rs");
    let base = w.main_head();
    w.fake.m().merge_blocked.insert("main".into());
    let e = w
        .forge
        .merge(&w.lease("feature/p").await, "main", &head, &base)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, PortError::Refused { reason } if reason.contains("405") && reason.contains("!1")),
        "{e:?}"
    );
    assert!(e.is_permanent());
    w.fake.m().merge_blocked.clear();
    // The target moved on and the branch does not contain it: GitLab's
    // "Branch cannot be merged" goes back to the merge gate (stale).
    w.branch("feature/other", "o.rs");
    let other = git(&w.bare, &["rev-parse", "feature/other"]);
    git(&w.bare, &["update-ref", "refs/heads/main", &other]);
    let out = w
        .forge
        .merge(&w.lease("feature/p").await, "main", &head, &other)
        .await
        .unwrap();
    assert!(
        matches!(&out, MergeOutcome::Stale(why) if why.contains("cannot be merged")),
        "{out:?}"
    );
    // A token GitLab refuses: 401 is permanent, never retried as an outage.
    let bad = GitlabForge::new(
        Arc::new(GitlabClient::new(&w.fake.uri(), "wrong", fast()).unwrap()),
        RepoStore::new(w._dir.path().join("repos2")),
        BTreeMap::from([(REPO.to_string(), "acme/app".to_string())]),
        false,
    );
    let e = bad.base_head(REPO, "main").await.unwrap_err();
    assert!(e.is_permanent(), "{e:?}");
}

#[tokio::test]
async fn branches_are_deleted_only_when_neither_orch_nor_gitlab_protects_them() {
    let w = world().await;
    let p = ProtectedBranches::new(["main", "master"]);
    w.branch("release", "r.rs");
    w.branch("feature/a", "a.rs");
    w.fake.m().protected.insert("release".into());
    assert!(matches!(
        w.forge.delete_branch(REPO, "main", &p).await.unwrap(),
        DeleteOutcome::Refused { .. }
    ));
    assert!(
        matches!(w.forge.delete_branch(REPO, "release", &p).await.unwrap(), DeleteOutcome::Refused { reason } if reason.contains("protected on GitLab"))
    );
    assert!(git(&w.bare, &["branch", "--list", "release"]).contains("release"));
    // GitLab's default branch is never deleted, even when orch's own list
    // does not name it.
    w.fake.m().default_branch = "trunk".into();
    w.branch("trunk", "t.rs");
    assert!(
        matches!(w.forge.delete_branch(REPO, "trunk", &p).await.unwrap(), DeleteOutcome::Refused { reason } if reason.contains("default"))
    );
    assert_eq!(
        w.forge.delete_branch(REPO, "feature/a", &p).await.unwrap(),
        DeleteOutcome::Deleted
    );
    assert_eq!(
        w.forge.delete_branch(REPO, "feature/a", &p).await.unwrap(),
        DeleteOutcome::NotFound
    );
    let deletes: Vec<String> = w
        .fake
        .m()
        .requests
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        deletes,
        ["/api/v4/projects/acme%2Fapp/repository/branches/feature%2Fa"],
        "GitLab is asked to delete only the branch the rules let through"
    );
}

#[tokio::test]
async fn verify_is_an_orch_verify_commit_status_in_gitlab_words() {
    let w = world().await;
    let head = w.branch("feature/s", "s.rs");
    w.forge
        .report_verify(REPO, &head, false, "verify failed")
        .await
        .unwrap();
    w.forge
        .report_verify(REPO, &head, true, "ok")
        .await
        .unwrap();
    // The same status again (a retry after a lost answer): GitLab's 400
    // "Cannot transition status" means it is there already.
    w.forge
        .report_verify(REPO, &head, true, "ok")
        .await
        .unwrap();
    assert_eq!(
        w.fake.m().statuses,
        [
            (
                head.clone(),
                "failed".to_string(),
                "orch/verify".to_string()
            ),
            (
                head.clone(),
                "success".to_string(),
                "orch/verify".to_string()
            ),
        ]
    );
    assert_eq!(
        w.forge
            .browse_url(REPO, "feature/s", "docs/a.md")
            .as_deref(),
        Some(format!("{}/acme/app/-/tree/feature/s/docs/a.md", w.fake.uri()).as_str())
    );
}

/// The stored API description: operations with their declared body or
/// query fields and their response type's fields.
fn description() -> Value {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab/api-v4-excerpt.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Does a concrete path (`/api/v4/projects/acme%2Fapp/issues/3`) match an
/// operation's template (`/projects/{id}/issues/{issue_iid}`)?
fn matches(template: &str, path: &str) -> bool {
    let Some(path) = path.strip_prefix("/api/v4") else {
        return false;
    };
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

/// Every request orch sent is an operation of the description, with only
/// declared fields; returns the operation's response fields.
pub(crate) fn check_request(
    desc: &Value,
    seen: &orch_integrations::fakes::Seen,
) -> Result<Vec<String>, String> {
    let op = desc["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["method"] == seen.method.as_str() && matches(o["path"].as_str().unwrap(), &seen.path)
        })
        .ok_or_else(|| {
            format!(
                "{} {} is no operation of the description",
                seen.method, seen.path
            )
        })?;
    let declared = |k: &str| -> Vec<String> {
        op[k]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    for (k, _) in &seen.query {
        if !declared("query").contains(k) {
            return Err(format!(
                "{} {}: query {k:?} is not declared",
                seen.method, seen.path
            ));
        }
    }
    if let Some(Value::Object(body)) = &seen.body {
        for k in body.keys() {
            if !declared("body").contains(k) {
                return Err(format!(
                    "{} {}: body field {k:?} is not declared",
                    seen.method, seen.path
                ));
            }
        }
    }
    Ok(declared("response"))
}

#[tokio::test]
async fn every_request_orch_sends_to_gitlab_is_in_the_api_description() {
    let w = world().await;
    let head = w.branch("feature/c", "c.rs");
    let base = w.main_head();
    w.forge
        .report_verify(REPO, &head, true, "ok")
        .await
        .unwrap();
    w.forge
        .merge(&w.lease("feature/c").await, "main", &head, &base)
        .await
        .unwrap();
    w.forge.is_merged(REPO, "main", &head).await.unwrap();
    w.forge
        .delete_branch(REPO, "feature/c", &ProtectedBranches::new(["main"]))
        .await
        .unwrap();
    // An open merge request found through GitLab's 409.
    let h2 = w.branch("feature/d", "d.rs");
    w.client
        .create_or_find_mr("acme/app", "feature/d", "main", "t", "d")
        .await
        .unwrap();
    let found = w
        .client
        .create_or_find_mr("acme/app", "feature/d", "main", "t", "d")
        .await
        .unwrap();
    assert_eq!(found.sha.as_deref(), Some(h2.as_str()));
    let desc = description();
    let seen = w.fake.m().requests.clone();
    assert!(seen.len() >= 8, "{seen:?}");
    for s in &seen {
        check_request(&desc, s).unwrap();
    }
}

#[tokio::test]
async fn the_fakes_answers_carry_only_fields_of_the_described_responses() {
    // The fake's answers are what orch reads; each top-level field must be
    // one the response type declares, so orch never relies on a field real
    // GitLab does not send.
    let w = world().await;
    w.branch("feature/e", "e.rs");
    let desc = description();
    let base = format!("{}/api/v4/projects/acme%2Fapp", w.fake.uri());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |url: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .header("PRIVATE-TOKEN", TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    w.client
        .create_or_find_mr("acme/app", "feature/e", "main", "t", "d")
        .await
        .unwrap();
    for (path, value) in [
        ("", get(base.clone()).await),
        (
            "/repository/branches/feature%2Fe",
            get(format!("{base}/repository/branches/feature%2Fe")).await,
        ),
        (
            "/merge_requests",
            get(format!("{base}/merge_requests")).await[0].clone(),
        ),
    ] {
        let seen = orch_integrations::fakes::Seen {
            method: "GET".into(),
            path: format!("/api/v4/projects/acme%2Fapp{path}"),
            query: vec![],
            body: None,
        };
        let fields = check_request(&desc, &seen).unwrap();
        for k in value.as_object().unwrap().keys() {
            assert!(
                fields.contains(k),
                "{path}: {k:?} is not a field of the response type"
            );
        }
    }
}

/// `orch doctor` checks the GitLab forge and tracker: the token and secret
/// are set, and each project answers with the default branch orch expects.
#[tokio::test]
async fn doctor_checks_the_gitlab_forge_and_tracker() {
    use orch_integrations::doctor::{Level, check_providers};
    let w = world().await;
    let cfg = orch_config::Config::from_toml_str(&format!(
        "[tracker]\nkind = \"gitlab\"\n[tracker.gitlab]\nbase_url = \"{0}\"\nprojects = [\"acme/app\"]\n\
         [forge]\nkind = \"gitlab\"\n[forge.gitlab]\nbase_url = \"{0}\"\n\
         [[repos]]\nname = \"app\"\nremote = \"https://example.invalid/acme/app.git\"\n",
        w.fake.uri()
    ))
    .unwrap();
    let run = |env: &'static [(&'static str, &'static str)]| {
        let cfg = cfg.clone();
        async move {
            let get = |n: &str| {
                env.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            };
            check_providers(&cfg, &get)
                .await
                .into_iter()
                .filter(|c| {
                    c.subject.starts_with("forge.gitlab") || c.subject.starts_with("tracker.gitlab")
                })
                .collect::<Vec<_>>()
        }
    };
    let ok = run(&[
        ("ORCH_GITLAB_TOKEN", TOKEN),
        ("ORCH_GITLAB_WEBHOOK_SECRET", "s"),
    ])
    .await;
    assert!(
        ok.len() == 4 && ok.iter().all(|c| c.level == Level::Ok),
        "{ok:?}"
    );
    assert!(
        ok.iter()
            .any(|c| c.subject == "tracker.gitlab" && c.message.contains("reachable")),
        "{ok:?}"
    );
    assert!(
        ok.iter().any(|c| c
            .message
            .contains("acme/app (repo app): reachable, default branch main")),
        "{ok:?}"
    );
    let missing = run(&[]).await;
    assert!(
        missing.iter().filter(|c| c.level == Level::Fail).count() == 4
            && missing
                .iter()
                .any(|c| c.message.contains("ORCH_GITLAB_TOKEN is not set")),
        "{missing:?}"
    );
}

// ---- GitLab issues as the tracker ----

use orch_engine::ports::Tracker;
use orch_integrations::gitlab::{GitlabIssuesTracker, GitlabReconciler};
use orch_integrations::ingest::{Handled, Ingest};
use orch_integrations::webhook::{Provider, StateRef, Verify, WebhookEvent, receive};
use orch_store::Store;
use std::time::Instant;

const HOOK_TOKEN: &str = "gitlab-hook-token";

/// The wall clock as orch's timestamp (the notes' times are the fake's now).
fn now() -> orch_core::Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    orch_core::Timestamp(ms as i64)
}

fn tracker(w: &World) -> Arc<GitlabIssuesTracker> {
    Arc::new(GitlabIssuesTracker::new(
        w.client.clone(),
        BTreeMap::from([(REPO.to_string(), "acme/app".to_string())]),
        orch_config::TrackerStates::default(),
    ))
}

/// A real pipeline (SQLite store, local forge) over the GitLab issues
/// tracker, and the webhook sink in front of it.
async fn pipeline(
    w: &World,
) -> (
    tempfile::TempDir,
    Arc<dyn Store>,
    Arc<orch_engine::pipeline::Pipeline>,
    Ingest,
) {
    let t = tracker(w);
    let (dir, store, p) = local_pipeline::local_pipeline(t.clone()).await;
    let ingest = Ingest::new(p.clone(), None, BTreeMap::new()).with_gitlab_issues(Some(t));
    (dir, store, p, ingest)
}

/// An "Issue Hook" as GitLab sends it (the stored payload's shape) for
/// issue `iid` of acme/app with its labels after the change.
fn issue_hook(iid: u64, labels: &[&str], updated_at: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab/issue-hook.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let ls: Vec<Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| serde_json::json!({"id": i + 1, "title": l, "type": "ProjectLabel"}))
        .collect();
    v["project"]["path_with_namespace"] = "acme/app".into();
    v["object_attributes"]["iid"] = iid.into();
    v["object_attributes"]["action"] = "update".into();
    v["object_attributes"]["updated_at"] = updated_at.into();
    v["labels"] = Value::Array(ls.clone());
    v["changes"]["labels"]["current"] = Value::Array(ls);
    serde_json::to_vec(&v).unwrap()
}

/// Verify and parse a delivery as the server does (`receive`).
fn delivered(body: &[u8], token: &str, key: &str) -> Result<(WebhookEvent, Vec<String>), u16> {
    let headers = [
        ("x-gitlab-token", token),
        ("x-gitlab-event", "Issue Hook"),
        ("idempotency-key", key),
    ];
    receive(
        Provider::Gitlab,
        Verify::Secret(HOOK_TOKEN.as_bytes()),
        |n| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v),
        body,
    )
    .map(|a| (a.event, a.dedupe_keys))
    .map_err(|r| r.status)
}

#[tokio::test]
async fn scoped_state_labels_move_per_stage_and_other_labels_stay() {
    let w = world().await;
    let t = tracker(&w);
    w.fake
        .add_issue(42, "Add a greeting", &["bug", "orch::To Analyse"]);
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
    // A label that names a state without the scope is just a label.
    w.fake.add_issue(43, "x", &["Approved"]);
    assert_eq!(t.item("app-43").await.unwrap().unwrap().state, "");

    t.set_state("app-42", "Analysis").await.unwrap();
    assert_eq!(w.fake.labels_of(42), ["bug", "orch::Analysis"]);
    t.set_state("app-42", "Awaiting Approval").await.unwrap();
    assert_eq!(w.fake.labels_of(42), ["bug", "orch::Awaiting Approval"]);
    // One edit per move, never the replace-all `labels`.
    let edits: Vec<Value> = w
        .fake
        .m()
        .requests
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| r.body.clone().unwrap())
        .collect();
    assert_eq!(edits.len(), 2);
    assert!(edits.iter().all(|b| b.get("labels").is_none()), "{edits:?}");
    assert_eq!(
        edits[1],
        serde_json::json!({"add_labels": "orch::Awaiting Approval", "remove_labels": "orch::Analysis"})
    );
    // A person's gate wins over orch's stage label while both are there.
    w.fake.person_labels(42, &["orch::Approved"], &[]);
    assert_eq!(t.item("app-42").await.unwrap().unwrap().state, "Approved");
    t.set_state("app-42", "Development").await.unwrap();
    assert_eq!(w.fake.labels_of(42), ["bug", "orch::Development"]);
    // Setting the state it has already sends nothing.
    let before = w.fake.m().requests.len();
    t.set_state("app-42", "development").await.unwrap();
    assert_eq!(w.fake.m().requests.len(), before + 1, "one read, no edit");

    // orch's own `orch:<stage>` labels: replaced among themselves, the
    // scoped state label and a person's labels untouched.
    t.set_labels("app-42", &["orch:analysis".to_string()])
        .await
        .unwrap();
    t.set_labels("app-42", &["orch:review".to_string()])
        .await
        .unwrap();
    assert_eq!(
        w.fake.labels_of(42),
        ["bug", "orch::Development", "orch:review"]
    );
}

#[tokio::test]
async fn notes_are_posted_once_and_a_persons_reason_is_the_newest_unmarked_note() {
    let w = world().await;
    let t = tracker(&w);
    w.fake.add_issue(5, "x", &["orch::Awaiting Approval"]);
    t.comment("app-5", "merged", Some("orch-merged"))
        .await
        .unwrap();
    t.comment("app-5", "merged", Some("orch-merged"))
        .await
        .unwrap();
    t.comment("app-5", "free text", None).await.unwrap();
    let notes = w.fake.comments_of(5);
    assert_eq!(
        notes.len(),
        2,
        "the dedupe key's marker stops a repeat: {notes:?}"
    );
    assert!(notes[0].contains("<!-- orch:orch-merged -->"));

    let asked = now();
    assert_eq!(t.person_comment_since("app-5", asked).await.unwrap(), None);
    w.fake.person_comments(5, "ship it, the tests cover it");
    // GitLab's own system note for a label change is never a reason.
    w.fake
        .person_labels(5, &["orch::Approved"], &["orch::Awaiting Approval"]);
    t.set_state("app-5", "Approved").await.unwrap();
    assert_eq!(
        t.person_comment_since("app-5", asked)
            .await
            .unwrap()
            .as_deref(),
        Some("ship it, the tests cover it")
    );
    let later = asked.plus(Duration::from_secs(3600));
    assert_eq!(t.person_comment_since("app-5", later).await.unwrap(), None);
}

#[tokio::test]
async fn a_token_checked_issue_hook_moves_the_pipeline_a_bad_one_is_refused() {
    let w = world().await;
    let (_dir, store, _p, ingest) = pipeline(&w).await;
    w.fake
        .add_issue(7, "Add a greeting", &["bug", "orch::To Analyse"]);
    let body = issue_hook(7, &["bug", "orch::To Analyse"], "2026-05-20T10:00:01Z");

    // A wrong token, a prefix of it, none: 401, and nothing reaches the
    // pipeline (the parse never runs).
    assert_eq!(delivered(&body, "nope", "k-1").unwrap_err(), 401);
    assert_eq!(delivered(&body, &HOOK_TOKEN[..5], "k-1").unwrap_err(), 401);
    assert_eq!(delivered(&body, "", "k-1").unwrap_err(), 401);
    assert!(
        store
            .find_live_task_by_tracker_id("app-7")
            .await
            .unwrap()
            .is_none()
    );

    let (ev, keys) = delivered(&body, HOOK_TOKEN, "k-1").unwrap();
    assert!(
        matches!(&ev, WebhookEvent::ItemState(s) if s.project == "acme/app" && s.item == "7"
            && s.state == StateRef::Labels(vec!["bug".into(), "orch::To Analyse".into()])),
        "{ev:?}"
    );
    let h = ingest.process(Provider::Gitlab, ev).await;
    assert!(matches!(h, Handled::Routed(_)), "{h:?}");
    let task = store
        .find_live_task_by_tracker_id("app-7")
        .await
        .unwrap()
        .expect("started");
    assert_eq!(task.stage, orch_core::Stage::Analysis);
    assert_eq!(
        w.fake.labels_of(7),
        ["bug", "orch::Analysis", "orch:analysis"]
    );
    assert!(!w.fake.comments_of(7).is_empty());

    // A replay keys the same, so the server's delivery record answers it as
    // a duplicate; under a new key it is still the same change.
    let (_, again) = delivered(&body, HOOK_TOKEN, "k-1").unwrap();
    assert_eq!(again, keys);
    let (_, rekeyed) = delivered(&body, HOOK_TOKEN, "k-2").unwrap();
    assert_eq!(
        rekeyed[1], keys[1],
        "the change key survives a new delivery key"
    );
    // Handled anyway, it is a no-op: the task stays where it is.
    let (ev, _) = delivered(&body, HOOK_TOKEN, "k-1").unwrap();
    let h = ingest.process(Provider::Gitlab, ev).await;
    assert!(!matches!(h, Handled::Failed(_)), "{h:?}");
    let same = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(same.stage, orch_core::Stage::Analysis);
    assert_eq!(store.jobs_for_task(task.id).await.unwrap().len(), 1);
    // orch's own label edit comes back as a hook and changes nothing.
    let echo = issue_hook(7, &["bug", "orch::Analysis"], "2026-05-20T10:00:02Z");
    let (ev, _) = delivered(&echo, HOOK_TOKEN, "k-3").unwrap();
    let h = ingest.process(Provider::Gitlab, ev).await;
    assert!(!matches!(h, Handled::Failed(_)), "{h:?}");
    assert_eq!(store.jobs_for_task(task.id).await.unwrap().len(), 1);
}

#[test]
fn the_stored_payloads_parse_as_gitlab_sends_them() {
    use orch_integrations::webhook::gitlab::parse;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitlab");
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    // The documented issue event: opened, labels after the change.
    let WebhookEvent::ItemState(s) = parse(&read("issue-hook.json"), Some("Issue Hook")).unwrap()
    else {
        panic!("an issue event")
    };
    assert_eq!(
        (s.project.as_str(), s.item.as_str(), s.state),
        (
            "gitlabhq/gitlab-test",
            "23",
            StateRef::Labels(vec!["API".into()])
        )
    );
    // A merge request opened, a note: nothing for orch.
    for f in ["merge-request-hook.json", "note-hook.json"] {
        assert!(
            matches!(parse(&read(f), None).unwrap(), WebhookEvent::Ignored { .. }),
            "{f}"
        );
    }
    // The same merge request merged: the forge's event.
    let mut mr: Value = serde_json::from_slice(&read("merge-request-hook.json")).unwrap();
    mr["object_attributes"]["action"] = "merge".into();
    let WebhookEvent::PullRequestClosed(pr) = parse(
        &serde_json::to_vec(&mr).unwrap(),
        Some("Merge Request Hook"),
    )
    .unwrap() else {
        panic!("a merged merge request")
    };
    assert!(pr.merged);
    assert_eq!(
        (pr.repo.as_str(), pr.number, pr.branch.as_str()),
        ("gitlabhq/gitlab-test", 1, "ms-viewport")
    );
    assert_eq!(pr.head_sha, "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
    // An update that changed no label routes nothing.
    let mut edit: Value = serde_json::from_slice(&read("issue-hook.json")).unwrap();
    edit["object_attributes"]["action"] = "update".into();
    edit["changes"] = serde_json::json!({"description": {"previous": "a", "current": "b"}});
    assert!(matches!(
        parse(&serde_json::to_vec(&edit).unwrap(), None).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    assert!(parse(b"[1]", None).is_err());
}

#[tokio::test]
async fn the_reconciler_lists_each_project_once_per_cycle_and_repairs_lost_labels() {
    let w = world().await;
    let (_dir, store, p, _ingest) = pipeline(&w).await;
    for n in 1..=150 {
        w.fake.add_issue(n, &format!("old {n}"), &["orch::Done"]);
    }
    w.fake
        .add_issue(151, "labelled while orch was down", &["orch::To Analyse"]);
    let r = GitlabReconciler::new(tracker(&w), p);
    let st = r.run_once().await;
    // 151 issues: two pages of 100, the second ending the walk (no X-Next-Page).
    assert_eq!((st.repaired, st.errors, st.pages), (1, 0, 2), "{st:?}");
    assert!(
        store
            .find_live_task_by_tracker_id("app-151")
            .await
            .unwrap()
            .is_some()
    );

    // The next cycle: one call, from the watermark on.
    let before = w.fake.m().requests.len();
    let st = r.run_once().await;
    assert_eq!(
        (st.repaired, st.api_calls),
        (0, 1),
        "one listing per project: {st:?}"
    );
    let listing = w.fake.m().requests[before].clone();
    assert_eq!(listing.path, "/api/v4/projects/acme%2Fapp/issues");
    assert!(
        listing.query.iter().any(|(k, _)| k == "updated_after"),
        "the listing starts at the watermark: {listing:?}"
    );
    check_request(&description(), &listing).unwrap();
    // A person relabels an old issue To Analyse while orch's webhook is
    // lost: the next cycle lists only what changed since the watermark
    // (that issue, and the newest one again: `updated_after` is
    // inclusive) and starts it.
    w.fake
        .person_labels(3, &["orch::To Analyse"], &["orch::Done"]);
    let before = w.fake.m().requests.len();
    let st = r.run_once().await;
    assert_eq!((st.repaired, st.items_seen, st.pages), (1, 2, 1), "{st:?}");
    let listings = w.fake.m().requests[before..]
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with("/issues"))
        .count();
    assert_eq!(
        listings, 1,
        "the new task's own tracker writes aside, one listing"
    );
    // An outage: nothing changes, the next cycle retries.
    w.fake.fail_next(500, 4);
    let st = r.run_once().await;
    assert_eq!((st.errors, st.repaired), (1, 0), "{st:?}");
    // Malformed records (no `iid`; not an object) are left out, logged and
    // counted; the rest of the listing is still read (Symphony SPEC §17.3).
    // Before, one failed the whole listing, cycle after cycle.
    w.fake.m().raw_listed_issues.extend([
        serde_json::json!({"title": "no iid", "labels": ["orch::To Analyse"]}),
        serde_json::json!("not even an object"),
    ]);
    w.fake
        .person_labels(5, &["orch::To Analyse"], &["orch::Done"]);
    let st = r.run_once().await;
    assert_eq!((st.errors, st.repaired, st.malformed), (0, 1, 2), "{st:?}");
    assert!(
        store
            .find_live_task_by_tracker_id("app-5")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let w = world().await;
    let t = tracker(&w);
    w.fake.add_issue(3, "x", &["orch::To Analyse"]);
    w.fake.fail_next(429, 2);
    let started = Instant::now();
    t.set_state("app-3", "Analysis").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "Retry-After: 1 honoured twice: {:?}",
        started.elapsed()
    );
    assert_eq!(w.fake.labels_of(3), ["orch::Analysis"]);
    // A Retry-After beyond what one call waits fails the call as rate
    // limited (a transient port error), and nothing changed.
    w.fake.m().retry_after_secs = 600;
    w.fake.fail_next(429, 1);
    let e = t.set_state("app-3", "Review").await.unwrap_err();
    assert!(!e.is_permanent(), "{e}");
    assert_eq!(w.fake.labels_of(3), ["orch::Analysis"]);
}

#[tokio::test]
async fn every_request_of_the_tracker_is_in_the_api_description() {
    let w = world().await;
    let t = tracker(&w);
    w.fake.add_issue(9, "x", &["orch::To Analyse"]);
    t.item("app-9").await.unwrap();
    t.set_state("app-9", "Analysis").await.unwrap();
    t.set_labels("app-9", &["orch:analysis".into()])
        .await
        .unwrap();
    t.comment("app-9", "hello", Some("k")).await.unwrap();
    t.person_comment_since("app-9", now()).await.unwrap();
    w.client.issues_page("acme/app", None, 1).await.unwrap();
    let desc = description();
    let seen = w.fake.m().requests.clone();
    for s in &seen {
        check_request(&desc, s).unwrap();
    }
    // And the fake's issue and note answers carry only described fields.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("{}/api/v4/projects/acme%2Fapp", w.fake.uri());
    for (path, first) in [
        ("/issues/9", false),
        ("/issues", true),
        ("/issues/9/notes", true),
    ] {
        let v: Value = http
            .get(format!("{base}{path}"))
            .header("PRIVATE-TOKEN", TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let v = if first { v[0].clone() } else { v };
        let fields = check_request(
            &desc,
            &orch_integrations::fakes::Seen {
                method: "GET".into(),
                path: format!("/api/v4/projects/acme%2Fapp{path}"),
                query: vec![],
                body: None,
            },
        )
        .unwrap();
        for k in v.as_object().unwrap().keys() {
            assert!(
                fields.contains(k),
                "{path}: {k:?} is not a field of the response type"
            );
        }
    }
}

/// The contract check itself refuses what the description does not have,
/// so the contract tests above can fail.
#[test]
fn the_gitlab_contract_checker_can_fail() {
    let desc = description();
    let seen = |method: &str, path: &str, query: &[(&str, &str)], body: Option<Value>| {
        orch_integrations::fakes::Seen {
            method: method.into(),
            path: path.into(),
            query: query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        }
    };
    let ok = seen(
        "PUT",
        "/api/v4/projects/acme%2Fapp/merge_requests/1/merge",
        &[],
        Some(serde_json::json!({"sha": "abc"})),
    );
    assert!(check_request(&desc, &ok).is_ok());
    for bad in [
        seen(
            "PUT",
            "/api/v4/projects/acme%2Fapp/merge_requests/1/merge",
            &[],
            Some(serde_json::json!({"merge_method": "squash"})),
        ),
        seen(
            "GET",
            "/api/v4/projects/acme%2Fapp/issues",
            &[("since", "x")],
            None,
        ),
        seen(
            "POST",
            "/api/v4/projects/acme%2Fapp/issues/1/labels",
            &[],
            None,
        ),
        seen("GET", "/api/v1/repos/acme/app", &[], None),
    ] {
        assert!(check_request(&desc, &bad).is_err(), "{bad:?}");
    }
}

/// A person adds a label between orch's read of the issue and its edit:
/// the edit names only what it adds and removes, so the person's label
/// stays. With GitLab's scoped labels exclusive (Premium), GitLab removes
/// the old `orch::` label itself and orch's move lands the same.
#[tokio::test]
async fn a_label_a_person_adds_while_orch_moves_the_issue_survives() {
    let w = world().await;
    let t = tracker(&w);
    w.fake.add_issue(8, "x", &["orch::To Analyse"]);
    w.fake
        .m()
        .person_adds_after_read
        .push_back((8, "customer".into()));
    t.set_state("app-8", "Analysis").await.unwrap();
    assert_eq!(w.fake.labels_of(8), ["customer", "orch::Analysis"]);

    w.fake.m().scoped_exclusive = true;
    w.fake
        .m()
        .person_adds_after_read
        .push_back((8, "urgent".into()));
    t.set_state("app-8", "Awaiting Approval").await.unwrap();
    assert_eq!(
        w.fake.labels_of(8),
        ["customer", "urgent", "orch::Awaiting Approval"]
    );
    // A person's gate label on such a tier replaces orch's stage label.
    w.fake
        .person_labels(8, &["orch::Approved"], &["orch::Awaiting Approval"]);
    assert_eq!(t.item("app-8").await.unwrap().unwrap().state, "Approved");
}

/// Issue 16 on GitLab: the merge request opened early is a draft (`Draft: `
/// title), its approvals and reviewers' change requests are people's
/// reviews of its head, commit statuses are checks, and the merge makes the
/// draft ready before merging the verified head.
#[tokio::test]
async fn a_draft_merge_request_with_reviews_and_checks_is_made_ready_and_merged() {
    use orch_core::ci::CheckState;
    use orch_core::people::ReviewVerdict;
    let w = world().await;
    let head = w.branch("feature/d", "d.rs");
    let base = w.main_head();
    let pr = w
        .forge
        .open_pull_request(REPO, "feature/d", "main")
        .await
        .unwrap()
        .unwrap();
    assert!(w.fake.m().mrs[0].title.starts_with("Draft: "));
    assert!(
        pr.url
            .unwrap()
            .ends_with(&format!("/merge_requests/{}", pr.number))
    );
    {
        let mut m = w.fake.m();
        m.mrs[0].reviewers = vec![("ann".into(), "requested_changes".into())];
        m.mrs[0].approved_by = vec!["bob".into()];
        m.statuses
            .push((head.clone(), "running".into(), "test".into()));
        m.statuses
            .push((head.clone(), "failed".into(), "lint".into()));
    }
    let reviews = w.forge.reviews(REPO, "feature/d", "main").await.unwrap();
    let got: Vec<(&str, ReviewVerdict, &str)> = reviews
        .iter()
        .map(|r| (r.author.as_str(), r.verdict, r.commit.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ann", ReviewVerdict::ChangesRequested, head.as_str()),
            ("bob", ReviewVerdict::Approved, head.as_str())
        ]
    );
    let checks = w.forge.checks(REPO, &head).await.unwrap();
    let got: Vec<(&str, CheckState)> = checks.iter().map(|c| (c.name.as_str(), c.state)).collect();
    assert_eq!(
        got,
        vec![("lint", CheckState::Failure), ("test", CheckState::Pending)]
    );
    // The merge gate merges: the draft is made ready first.
    let out = w
        .forge
        .merge(&w.lease("feature/d").await, "main", &head, &base)
        .await
        .unwrap();
    assert_eq!(out, MergeOutcome::Merged { sha: head.clone() });
    let mr = w.fake.m().mrs[0].clone();
    assert!(!mr.title.starts_with("Draft"), "{}", mr.title);
    assert_eq!(mr.state, "merged");
}
