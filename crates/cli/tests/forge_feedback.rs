//! Feedback from the forge (issue 16 points 1–3), end to end: the `orch`
//! binary against the fake Gitea (its pull requests, commit statuses and
//! reviews as Gitea's swagger describes them, over a real bare repository),
//! with the builtin tracker. The test plays the CI and the people: it posts
//! a check's result or a review on the fake and tells orch with Gitea's
//! signed delivery on the real webhook route.
//!
//! - the pull request is opened as a draft when development ends, updated
//!   by the next round, made ready and merged by the merge gate;
//! - the merge gate waits while a required check has not reported (no
//!   merge, no lease), and says so once;
//! - a failed check sends the task back to the developer, whose prompt holds
//!   the check's name, conclusion and output; the check passing on the new
//!   head lets the merge go through;
//! - past `review.max_ci_rounds` the task parks with the last failure;
//! - a person's change request on the pull request goes back to the
//!   developer with the review's comments (file, line, text); with
//!   `human_approval = "required"` the merge waits for a person's approval.

mod common;

use common::http::http;
use common::{Serve, add_task, git, ok, wait};
use orch_integrations::fakes::{FakeGitea, FakeGithub};
use orch_integrations::signature::sign;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOKEN: &str = "gitea-ci-token";
const SECRET: &str = "gitea-ci-secret";
const GH_TOKEN: &str = "github-ci-token";
const CHECK: &str = "ci / test";
const LIMIT: Duration = Duration::from_secs(180);

/// The developer of these tests: keeps each prompt it is given (outside the
/// worktree) and commits one more line per round, so every round has a new
/// head for CI; its work has the line the example reviewer approves.
const DEVELOPER: &str = r#"#!/bin/sh
set -eu
n=$(ls "$CI_TEST_PROMPTS" | wc -l)
n=$((n + 1))
cp "$ORCH_PROMPT_FILE" "$CI_TEST_PROMPTS/developer-$n.md"
mkdir -p work
file="work/$ORCH_WORK_ITEM.md"
[ -e "$file" ] || printf '# %s\n\nTests: added\n' "$ORCH_WORK_ITEM" > "$file"
echo "round $n" >> "$file"
git add -A work
git -c user.name=dev -c user.email=dev@localhost -c commit.gpgsign=false commit -q -m "round $n"
echo "developer: round $n committed"
"#;

struct World {
    tmp: tempfile::TempDir,
    gitea: FakeGitea,
    /// Set when the forge is GitHub (then the Gitea fake is idle).
    github: Option<FakeGithub>,
    serve: Option<Serve>,
}

impl World {
    /// A repo that requires the check `ci / test`.
    async fn new(max_ci_rounds: u32) -> World {
        World::with(
            &format!("max_ci_rounds = {max_ci_rounds}\n"),
            &format!("required_checks = [\"{CHECK}\"]\n"),
        )
        .await
    }

    /// `review` lines go into `[review]`, `repo` lines into the repo's entry.
    async fn with(review: &str, repo: &str) -> World {
        World::build(review, repo, false).await
    }

    /// As `with`, on the fake GitHub when `github`, else the fake Gitea.
    async fn build(review: &str, repo: &str, github: bool) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        let bare = d.join("remotes/demo.git");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--quiet", "--bare", "-b", "main"]);
        let seed = d.join("seed");
        std::fs::create_dir_all(&seed).unwrap();
        git(&seed, &["init", "--quiet", "-b", "main"]);
        std::fs::write(seed.join("README.md"), "# demo\n").unwrap();
        git(&seed, &["add", "-A"]);
        git(
            &seed,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@localhost",
                "commit",
                "--quiet",
                "-m",
                "initial commit",
            ],
        );
        git(&seed, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
        let agents = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents");
        std::fs::create_dir_all(d.join("agents")).unwrap();
        for a in ["common.sh", "analyst.sh", "reviewer.sh"] {
            std::fs::copy(agents.join(a), d.join("agents").join(a)).unwrap();
        }
        let dev = d.join("agents/developer.sh");
        std::fs::write(&dev, DEVELOPER).unwrap();
        std::fs::set_permissions(&dev, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::create_dir_all(d.join("prompts-seen")).unwrap();
        let gitea = FakeGitea::start("acme/demo", TOKEN, &bare).await;
        let github = match github {
            true => Some(FakeGithub::start("acme/demo", GH_TOKEN, &bare).await),
            false => None,
        };
        let forge = match &github {
            Some(gh) => format!(
                "[forge]\nkind = \"github\"\n[forge.github]\nbase_url = \"{}\"\n[forge.github.repos]\ndemo = \"acme/demo\"\n",
                gh.uri()
            ),
            None => format!(
                "[forge]\nkind = \"gitea\"\n[forge.gitea]\nbase_url = \"{}\"\n[forge.gitea.repos]\ndemo = \"acme/demo\"\n",
                gitea.uri()
            ),
        };
        let agent = |k: &str| format!("[agents.{k}]\ncommand = [\"agents/{k}.sh\"]\n");
        let toml = format!(
            "data_dir = \".orch\"\n[queue]\npoll_ms = 200\nmax_attempts = 1\n\
             [agent_env]\nset = {{ ORCH_EXAMPLE_DELAY = \"0\", CI_TEST_PROMPTS = \"{prompts}\" }}\n\
             [review]\n{review}\
             [[repos]]\nname = \"demo\"\nremote = \"remotes/demo.git\"\nverify = [\"true\"]\n{repo}\
             {}{}{}{forge}",
            agent("analyst"),
            agent("developer"),
            agent("reviewer"),
            prompts = d.join("prompts-seen").display(),
        );
        std::fs::write(d.join("orch.toml"), toml).unwrap();
        World {
            tmp,
            gitea,
            github,
            serve: None,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn start(&mut self) {
        let env = [
            ("ORCH_GITEA_TOKEN", TOKEN),
            ("ORCH_GITEA_WEBHOOK_SECRET", SECRET),
            ("ORCH_GITHUB_TOKEN", GH_TOKEN),
            ("ORCH_GITHUB_WEBHOOK_SECRET", SECRET),
            ("NO_PROXY", "127.0.0.1,localhost"),
            ("no_proxy", "127.0.0.1,localhost"),
            ("HTTP_PROXY", ""),
            ("http_proxy", ""),
            ("HTTPS_PROXY", ""),
            ("https_proxy", ""),
            ("ALL_PROXY", ""),
            ("all_proxy", ""),
            ("RUST_LOG", "info"),
        ];
        let serve = Serve::start_with(self.dir(), &env, &[]);
        serve.wait_listening();
        self.serve = Some(serve);
    }

    fn serve_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("serve-0.log")).unwrap_or_default()
    }

    /// The head of the task's branch on the forge.
    fn head(&self, branch: &str) -> String {
        git(
            &self.dir().join("remotes/demo.git"),
            &["rev-parse", &format!("refs/heads/{branch}")],
        )
        .trim()
        .to_owned()
    }

    /// The CI reports `state` for `sha` on the forge, and Gitea tells orch
    /// (a signed `status` delivery, shaped as the reference payload).
    fn ci_reports(&self, sha: &str, state: &str, output: &str) {
        self.gitea.ci_status(sha, CHECK, state, output);
        let body = serde_json::json!({
            "sha": sha, "context": CHECK, "state": state, "description": output,
            "target_url": format!("{}/ci/run", self.gitea.uri()),
            "repository": {"full_name": "acme/demo"},
            "sender": {"login": "ci"},
        });
        self.deliver("status", "status", &format!("ci-{sha}-{state}"), &body);
    }

    /// Gitea tells orch of a status already on the fake (a signed `status`
    /// delivery, shaped as the reference payload).
    fn status_delivered(&self, sha: &str, context: &str, state: &str) {
        let body = serde_json::json!({
            "sha": sha, "context": context, "state": state, "description": state,
            "repository": {"full_name": "acme/demo"},
            "sender": {"login": "gitea-actions"},
        });
        self.deliver("status", "status", &format!("st-{sha}-{state}"), &body);
    }

    /// A person reviews pull request #1 at its head (`state`: `APPROVED`,
    /// `REQUEST_CHANGES`), and Gitea tells orch (`pull_request_review_*`).
    fn person_reviews(&self, state: &str, body: &str, comments: &[(&str, u64, &str)]) -> String {
        let sha = self.gitea.person_reviews(1, "ann", state, body, comments);
        let (event, kind) = match state {
            "APPROVED" => ("pull_request_approved", "pull_request_review_approved"),
            _ => ("pull_request_rejected", "pull_request_review_rejected"),
        };
        let payload = serde_json::json!({
            "action": "reviewed", "number": 1,
            "pull_request": {"number": 1, "head": {"sha": sha}},
            "repository": {"full_name": "acme/demo"},
            "review": {"type": kind, "content": body},
            "sender": {"login": "ann"},
        });
        self.deliver(event, kind, &format!("review-{sha}-{state}"), &payload);
        sha
    }

    /// GitHub's CI reports a completed check run on `sha` (with its
    /// output), and GitHub tells orch (a signed `check_run` delivery).
    fn check_run(&self, id: u64, sha: &str, conclusion: &str, text: &str) {
        let gh = self.github.as_ref().expect("a GitHub world");
        gh.m().check_runs.push(serde_json::json!({
            "id": id, "head_sha": sha, "name": CHECK, "status": "completed",
            "conclusion": conclusion, "html_url": format!("{}/runs/{id}", gh.uri()),
            "output": {"title": format!("{CHECK}: {conclusion}"), "summary": "1 test", "text": text},
        }));
        let body = serde_json::json!({
            "action": "completed",
            "check_run": {"id": id, "head_sha": sha, "name": CHECK, "status": "completed", "conclusion": conclusion},
            "repository": {"full_name": "acme/demo"},
            "sender": {"login": "github-actions[bot]"},
        })
        .to_string();
        self.gh_deliver("check_run", &format!("run-{id}"), &body);
    }

    /// A person reviews the GitHub pull request at its head (`state`:
    /// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`) with inline comments
    /// (path, line, text), and GitHub tells orch (`pull_request_review`).
    /// Returns the reviewed commit.
    fn gh_person_reviews(
        &self,
        user: &str,
        state: &str,
        body: &str,
        comments: &[(&str, u64, &str)],
    ) -> String {
        let gh = self.github.as_ref().expect("a GitHub world");
        let (number, sha, id) = {
            let mut m = gh.m();
            let pr = m.prs.iter().find(|p| p.open).expect("an open pull request");
            let (number, sha) = (pr.number, pr.head_sha.clone());
            let id = m.reviews.len() as u64 + 1;
            m.reviews.push(serde_json::json!({
                "id": id, "pr": number, "user": {"login": user},
                "state": state, "body": body, "commit_id": sha,
            }));
            for (path, line, text) in comments {
                m.review_comments.push(serde_json::json!({
                    "pr": number, "pull_request_review_id": id,
                    "path": path, "line": line, "body": text,
                }));
            }
            (number, sha, id)
        };
        let payload = serde_json::json!({
            "action": "submitted",
            "review": {"id": id, "state": state.to_lowercase(), "body": body,
                       "commit_id": sha, "user": {"login": user}},
            "pull_request": {"number": number, "head": {"sha": sha}},
            "repository": {"full_name": "acme/demo"},
            "sender": {"login": user},
        })
        .to_string();
        self.gh_deliver("pull_request_review", &format!("review-{id}"), &payload);
        sha
    }

    /// A signed GitHub delivery to orch's webhook route; it must be taken.
    fn gh_deliver(&self, event: &str, delivery: &str, body: &str) {
        let api = common::http::Api::of(self.dir());
        let sig = format!(
            "X-Hub-Signature-256: sha256={}",
            sign(SECRET.as_bytes(), body.as_bytes())
        );
        let answer = http(
            api.addr,
            "POST",
            "/webhooks/github",
            &[
                &format!("X-GitHub-Event: {event}"),
                &format!("X-GitHub-Delivery: {delivery}"),
                &sig,
                "Content-Type: application/json",
            ],
            body,
        );
        assert_eq!(common::http::status(&answer), 202, "{answer}");
    }

    /// A signed Gitea delivery to orch's webhook route; it must be taken.
    fn deliver(&self, event: &str, event_type: &str, delivery: &str, body: &Value) {
        let body = body.to_string();
        let api = common::http::Api::of(self.dir());
        let sig = format!(
            "X-Gitea-Signature: {}",
            sign(SECRET.as_bytes(), body.as_bytes())
        );
        let answer = http(
            api.addr,
            "POST",
            "/webhooks/gitea",
            &[
                &format!("X-Gitea-Event: {event}"),
                &format!("X-Gitea-Event-Type: {event_type}"),
                &format!("X-Gitea-Delivery: {delivery}"),
                &sig,
                "Content-Type: application/json",
            ],
            &body,
        );
        assert_eq!(common::http::status(&answer), 202, "{answer}");
    }

    fn prompts(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir().join("prompts-seen"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

fn events(v: &Value, kind: &str) -> usize {
    common::count_events(v, kind)
}

/// Adds DEMO-1 and approves its analysis once it is ready.
fn add_and_approve(w: &World) {
    add_task(w.dir(), "DEMO-1", "Fix the login", &[]);
    wait::task(w.dir(), "DEMO-1", LIMIT, "analysis ready", |v| {
        v["task"]["stage"] == "awaiting_approval"
    });
    ok(w.dir(), &["task", "approve", "DEMO-1"]);
}

/// Waits for the developer's second round after a failed check, and
/// returns the prompts the developer was given.
fn second_round_after_ci(w: &World) -> Vec<String> {
    wait::task(
        w.dir(),
        "DEMO-1",
        LIMIT,
        "the second development round",
        |v| events(v, "ci_failed") == 1 && events(v, "developed") == 2,
    );
    w.prompts()
}

/// Runs DEMO-1 through approval to the merge gate, which waits for CI.
fn to_the_merge_gate(w: &World, ci_pending: usize) -> Value {
    wait::task(
        w.dir(),
        "DEMO-1",
        LIMIT,
        "the merge gate waits for CI",
        |v| v["task"]["stage"] == "merge" && events(v, "ci_pending") == ci_pending,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_required_check_goes_back_to_the_developer_and_a_pass_merges() {
    let mut w = World::new(3).await;
    w.start();
    add_and_approve(&w);

    // The merge gate waits: the check has not reported on the head.
    let v = to_the_merge_gate(&w, 1);
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    let first = w.head(&branch);
    assert_eq!(events(&v, "lease_acquired"), 0, "no lease while CI runs");
    // The pull request was opened when development ended: a draft (Gitea's
    // `WIP:` title), open, not merged; the tracker item links it.
    let prs = w.gitea.prs();
    assert!(
        prs.len() == 1 && prs[0].open && !prs[0].merged && prs[0].title.starts_with("WIP: "),
        "{prs:?}"
    );
    assert_eq!(events(&v, "pr_opened"), 1);
    let why = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "ci_pending")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(why.contains("ci / test (not reported yet)"), "{why}");

    // It fails: back to the developer with the output.
    w.ci_reports(
        &first,
        "failure",
        "FAILED tests/login.rs: assertion failed: login works",
    );
    let v = wait::task(
        w.dir(),
        "DEMO-1",
        LIMIT,
        "the second development round",
        |v| events(v, "ci_failed") == 1 && events(v, "developed") == 2,
    );
    assert_eq!(events(&v, "merged"), 0);
    let prompts = w.prompts();
    assert_eq!(prompts.len(), 2, "two developer runs");
    assert!(!prompts[0].contains("CI failed"), "{}", prompts[0]);
    assert!(
        prompts[1].contains("CI failed — round 1 of 3"),
        "{}",
        prompts[1]
    );
    assert!(
        prompts[1].contains("CI check `ci / test` concluded `failure`"),
        "{}",
        prompts[1]
    );
    assert!(
        prompts[1].contains("FAILED tests/login.rs: assertion failed: login works"),
        "{}",
        prompts[1]
    );

    // The new head waits for its own result; it passes and the merge goes.
    to_the_merge_gate(&w, 2);
    let second = w.head(&branch);
    assert_ne!(first, second, "the second round has a new head");
    w.ci_reports(&second, "success", "Successful in 12s");
    let v = wait::task(w.dir(), "DEMO-1", LIMIT, "done", |v| {
        v["task"]["stage"] == "done"
    });
    assert_eq!(events(&v, "merged"), 1, "{}", w.serve_log());
    let prs = w.gitea.prs();
    assert!(
        prs.len() == 1 && prs[0].merged && prs[0].head_sha == second,
        "{prs:?}"
    );
}

/// No `required_checks` in orch.toml: Gitea's protection of `main` requires
/// the contexts `ci / *`, and orch reads them from the base branch. The
/// merge gate waits for them (Gitea would refuse the merge, 405, before
/// they pass); Gitea Actions' failed job goes back to the developer with
/// the end of its log; the next head's pass merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_the_base_branchs_protection_requires_hold_the_merge_until_they_pass() {
    let mut w = World::with("max_ci_rounds = 3\n", "").await;
    w.gitea.require_checks("main", &["ci / *"]);
    w.start();
    add_and_approve(&w);
    let v = to_the_merge_gate(&w, 1);
    assert_eq!(events(&v, "lease_acquired"), 0, "no lease while CI runs");
    let why = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "ci_pending")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(why.contains("ci / * (not reported yet)"), "{why}");
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    let first = w.head(&branch);

    // Gitea Actions fails the job: the developer's prompt has the end of
    // the job's log, fetched through the Actions API from the status's link.
    let context = w.gitea.actions_job_fails(
        &first,
        "ci",
        "test",
        "Running tests\nthread 'login_works' panicked at tests/login.rs:12:5\n",
    );
    w.status_delivered(&first, &context, "failure");
    let prompts = second_round_after_ci(&w);
    assert!(
        prompts[1].contains("CI check `ci / test (pull_request)` concluded `failure`")
            && prompts[1].contains("thread 'login_works' panicked at tests/login.rs:12:5"),
        "{}",
        prompts[1]
    );

    to_the_merge_gate(&w, 2);
    let second = w.head(&branch);
    w.gitea
        .ci_status(&second, &context, "success", "Successful in 9s");
    w.status_delivered(&second, &context, "success");
    let v = wait::task(w.dir(), "DEMO-1", LIMIT, "done", |v| {
        v["task"]["stage"] == "done"
    });
    assert_eq!(events(&v, "merged"), 1, "{}", w.serve_log());
    assert_eq!(events(&v, "merge_failed"), 0, "{:#}", v["events"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_checks_failing_past_the_bound_park_the_task_with_the_last_failure() {
    let mut w = World::new(1).await;
    w.start();
    add_and_approve(&w);
    let v = to_the_merge_gate(&w, 1);
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    w.ci_reports(&w.head(&branch), "failure", "first failure: 3 tests failed");
    to_the_merge_gate(&w, 2);
    w.ci_reports(
        &w.head(&branch),
        "error",
        "second failure: the runner crashed",
    );
    let v = wait::task(w.dir(), "DEMO-1", LIMIT, "parked", |v| {
        v["task"]["stage"] == "needs_attention"
    });
    let park = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["to_stage"] == "needs_attention")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(park.contains("review.max_ci_rounds = 1"), "{park}");
    assert!(
        park.contains("second failure: the runner crashed"),
        "{park}"
    );
    assert!(park.contains("concluded `error`"), "{park}");
    assert_eq!(events(&v, "ci_failed"), 1);
    assert!(w.gitea.prs().iter().all(|p| !p.merged), "nothing merged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_change_request_on_the_pull_request_goes_back_with_its_comments() {
    let mut w = World::with("human_approval = \"required\"\n", "").await;
    w.start();
    add_and_approve(&w);
    // The merge waits for a person's approval of the head.
    let v = wait::task(
        w.dir(),
        "DEMO-1",
        LIMIT,
        "the merge waits for a person",
        |v| v["task"]["stage"] == "merge" && events(v, "approval_pending") == 1,
    );
    assert_eq!(events(&v, "lease_acquired"), 0);
    assert_eq!(events(&v, "pr_opened"), 1);

    // Ann asks for changes, with an inline comment.
    let first = w.person_reviews(
        "REQUEST_CHANGES",
        "Please handle the empty password.",
        &[("src/login.rs", 12, "an empty password must be refused")],
    );
    let v = wait::task(
        w.dir(),
        "DEMO-1",
        LIMIT,
        "the second development round",
        |v| events(v, "developed") == 2 && v["task"]["stage"] == "merge",
    );
    let asked = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "changes_requested")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        asked.contains("ann asked for changes on the pull request"),
        "{asked}"
    );
    let prompts = w.prompts();
    assert_eq!(prompts.len(), 2);
    assert!(
        prompts[1].contains("ann (review on the pull request): Please handle the empty password."),
        "{}",
        prompts[1]
    );
    assert!(
        prompts[1].contains("ann on src/login.rs:12: an empty password must be refused"),
        "{}",
        prompts[1]
    );

    // The new head waits for its own approval; Ann approves and it merges.
    wait::task(w.dir(), "DEMO-1", LIMIT, "the merge waits again", |v| {
        events(v, "approval_pending") == 2
    });
    let second = w.person_reviews("APPROVED", "Looks good.", &[]);
    assert_ne!(first, second);
    let v = wait::task(w.dir(), "DEMO-1", LIMIT, "done", |v| {
        v["task"]["stage"] == "done"
    });
    assert_eq!(events(&v, "merged"), 1);
    let prs = w.gitea.prs();
    assert!(
        prs.len() == 1 && prs[0].merged && prs[0].head_sha == second,
        "{prs:?}"
    );
}

/// The same loop on GitHub: the pull request opened early is a draft, a
/// failed check run (GitHub Actions) goes back to the developer with its
/// output, a passing one lets the merge gate make the draft ready (GitHub's
/// GraphQL) and merge the verified head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_github_a_failed_check_run_goes_back_and_a_pass_merges_the_draft() {
    let mut w = World::build(
        "max_ci_rounds = 3\n",
        &format!("required_checks = [\"{CHECK}\"]\n"),
        true,
    )
    .await;
    w.start();
    add_and_approve(&w);
    let v = to_the_merge_gate(&w, 1);
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    {
        let prs = w.github.as_ref().unwrap().m().prs.clone();
        assert!(prs.len() == 1 && prs[0].draft && prs[0].open, "{prs:?}");
    }
    let first = w.head(&branch);
    w.check_run(1, &first, "failure", "assertion failed: login works");
    let prompts = second_round_after_ci(&w);
    assert!(
        prompts[1].contains("CI check `ci / test` concluded `failure`")
            && prompts[1].contains("assertion failed: login works"),
        "{}",
        prompts[1]
    );
    to_the_merge_gate(&w, 2);
    let second = w.head(&branch);
    w.check_run(2, &second, "success", "all passed");
    let v = wait::task(w.dir(), "DEMO-1", LIMIT, "done", |v| {
        v["task"]["stage"] == "done"
    });
    assert_eq!(events(&v, "merged"), 1, "{}", w.serve_log());
    let prs = w.github.as_ref().unwrap().m().prs.clone();
    assert!(
        prs.len() == 1 && prs[0].merged && !prs[0].draft && prs[0].head_sha == second,
        "{prs:?}"
    );
}

/// People's reviews on GitHub, through the binary: with `human_approval =
/// "required"` the merge waits; Cy's review without a verdict but with an
/// inline comment on the head asks for changes and re-runs the developer
/// with it; the new head waits for its own approval, Cy approves and the
/// draft is made ready and merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_github_a_persons_inline_comments_go_back_and_their_approval_merges() {
    let mut w = World::build("human_approval = \"required\"\n", "", true).await;
    w.start();
    add_and_approve(&w);
    let v = wait::task(
        w.dir(),
        "DEMO-1",
        LIMIT,
        "the merge waits for a person",
        |v| v["task"]["stage"] == "merge" && events(v, "approval_pending") == 1,
    );
    assert_eq!(events(&v, "lease_acquired"), 0);

    let first = w.gh_person_reviews(
        "cy",
        "COMMENTED",
        "",
        &[("src/login.rs", 7, "this unwrap panics on an empty form")],
    );
    let v = wait::task(
        w.dir(),
        "DEMO-1",
        LIMIT,
        "the second development round",
        |v| events(v, "developed") == 2 && v["task"]["stage"] == "merge",
    );
    assert_eq!(events(&v, "merged"), 0);
    let prompts = w.prompts();
    assert!(
        prompts[1].contains("cy on src/login.rs:7: this unwrap panics on an empty form"),
        "{}",
        prompts[1]
    );

    wait::task(w.dir(), "DEMO-1", LIMIT, "the merge waits again", |v| {
        events(v, "approval_pending") == 2
    });
    let second = w.gh_person_reviews("cy", "APPROVED", "Thanks.", &[]);
    assert_ne!(first, second);
    let v = wait::task(w.dir(), "DEMO-1", LIMIT, "done", |v| {
        v["task"]["stage"] == "done"
    });
    assert_eq!(events(&v, "merged"), 1, "{}", w.serve_log());
    let gh = w.github.as_ref().unwrap();
    let m = gh.m();
    assert!(
        m.prs.len() == 1 && m.prs[0].merged && !m.prs[0].draft && m.prs[0].head_sha == second,
        "{:?}",
        m.prs
    );
}
