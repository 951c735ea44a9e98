//! GitLab as forge and tracker against the fake GitLab on loopback (a real
//! bare repository behind a model of REST API v4): merge requests merged
//! only at the verified head, protection and branch deletion rules, the
//! `orch/verify` commit status; the contract: every request orch sent and
//! every answer of the fake match the stored API description
//! (`fixtures/gitlab/api-v4-excerpt.json`).

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

/// `orch doctor` checks the GitLab forge: the token and secret are set, and
/// each project answers with the default branch orch expects.
#[tokio::test]
async fn doctor_checks_the_gitlab_forge() {
    use orch_integrations::doctor::{Level, check_providers};
    let w = world().await;
    let cfg = orch_config::Config::from_toml_str(&format!(
        "[forge]\nkind = \"gitlab\"\n[forge.gitlab]\nbase_url = \"{}\"\n\
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
                .filter(|c| c.subject == "forge.gitlab")
                .collect::<Vec<_>>()
        }
    };
    let ok = run(&[
        ("ORCH_GITLAB_TOKEN", TOKEN),
        ("ORCH_GITLAB_WEBHOOK_SECRET", "s"),
    ])
    .await;
    assert!(
        ok.len() == 2 && ok.iter().all(|c| c.level == Level::Ok),
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
        missing.iter().filter(|c| c.level == Level::Fail).count() == 2
            && missing
                .iter()
                .any(|c| c.message.contains("ORCH_GITLAB_TOKEN is not set")),
        "{missing:?}"
    );
}
