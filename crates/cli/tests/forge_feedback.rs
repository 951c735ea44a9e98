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

use common::count_events as events;
use common::tracker_world::Site;
use common::world::{FakeForge, World};
use common::{add_task, git, last_message, ok};
use orch_integrations::fakes::{FakeGitea, FakeGithub};
use serde_json::Value;
use std::path::Path;

const TOKEN: &str = "gitea-ci-token";
const SECRET: &str = "gitea-ci-secret";
const GH_TOKEN: &str = "github-ci-token";
const CHECK: &str = "ci / test";

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

/// The demo site with this file's developer (it keeps its prompts in
/// `prompts-seen`).
fn site() -> Site {
    let site = Site::new();
    let dev = site.dir().join("examples/agents/developer.sh");
    std::fs::write(&dev, DEVELOPER).unwrap();
    std::fs::set_permissions(&dev, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(site.dir().join("prompts-seen")).unwrap();
    site
}

/// orch.toml: `review` lines go into `[review]`, `repo` lines into the
/// repo's entry, then the `[forge]`.
fn configure(site: &Site, review: &str, repo: &str, forge: &str) {
    let agent = |k: &str| format!("[agents.{k}]\ncommand = [\"examples/agents/{k}.sh\"]\n");
    site.write_config(&format!(
        "data_dir = \".orch\"\n[queue]\npoll_ms = 200\nmax_attempts = 1\n\
         [agent_env]\nset = {{ ORCH_EXAMPLE_DELAY = \"0\", CI_TEST_PROMPTS = \"{prompts}\" }}\n\
         [review]\n{review}\
         [[repos]]\nname = \"demo\"\nremote = \"remotes/demo.git\"\nverify = [\"true\"]\n{repo}\
         {}{}{}{forge}",
        agent("analyst"),
        agent("developer"),
        agent("reviewer"),
        prompts = site.dir().join("prompts-seen").display(),
    ));
}

/// On the fake Gitea, a repo that requires the check `ci / test`.
async fn world(max_ci_rounds: u32) -> World<(), FakeGitea> {
    gitea_world(
        &format!("max_ci_rounds = {max_ci_rounds}\n"),
        &format!("required_checks = [\"{CHECK}\"]\n"),
    )
    .await
}

/// On the fake Gitea: `review` lines go into `[review]`, `repo` lines into
/// the repo's entry.
async fn gitea_world(review: &str, repo: &str) -> World<(), FakeGitea> {
    let site = site();
    let gitea = FakeGitea::start("acme/demo", TOKEN, &site.bare).await;
    configure(
        &site,
        review,
        repo,
        &format!(
            "[forge]\nkind = \"gitea\"\n[forge.gitea]\nbase_url = \"{}\"\n[forge.gitea.repos]\ndemo = \"acme/demo\"\n",
            gitea.uri()
        ),
    );
    World::builtin(common::ORCH, site).with_forge(gitea, SECRET)
}

/// As `gitea_world`, on the fake GitHub.
async fn github_world(review: &str, repo: &str) -> World<(), FakeGithub> {
    let site = site();
    let github = FakeGithub::start("acme/demo", GH_TOKEN, &site.bare).await;
    configure(
        &site,
        review,
        repo,
        &format!(
            "[forge]\nkind = \"github\"\n[forge.github]\nbase_url = \"{}\"\n[forge.github.repos]\ndemo = \"acme/demo\"\n",
            github.uri()
        ),
    );
    World::builtin(common::ORCH, site).with_forge(github, SECRET)
}

fn start<F>(w: &mut World<(), F>) {
    w.start(&[
        ("ORCH_GITEA_TOKEN", TOKEN),
        ("ORCH_GITEA_WEBHOOK_SECRET", SECRET),
        ("ORCH_GITHUB_TOKEN", GH_TOKEN),
        ("ORCH_GITHUB_WEBHOOK_SECRET", SECRET),
        ("RUST_LOG", "info"),
    ]);
}

/// The head of the task's branch on the forge.
fn head(dir: &Path, branch: &str) -> String {
    git(
        &dir.join("remotes/demo.git"),
        &["rev-parse", &format!("refs/heads/{branch}")],
    )
    .trim()
    .to_owned()
}

/// The CI reports `state` for `sha` on the forge, and the forge tells orch;
/// orch takes it.
fn ci_reports<F: FakeForge>(w: &World<(), F>, sha: &str, state: &str, output: &str) {
    assert_eq!(w.finish_check(sha, CHECK, state, output), 202);
}

/// Gitea tells orch of a status already on the fake (a signed `status`
/// delivery, shaped as the reference payload); orch takes it.
fn status_delivered(w: &World<(), FakeGitea>, sha: &str, context: &str, state: &str) {
    let body = serde_json::json!({
        "sha": sha, "context": context, "state": state, "description": state,
        "repository": {"full_name": "acme/demo"},
        "sender": {"login": "gitea-actions"},
    });
    let id = format!("st-{sha}-{state}");
    assert_eq!(
        w.deliver_forge("status", &id, body.to_string().as_bytes()),
        202
    );
}

/// A person reviews pull request #1 at its head (`state`: `APPROVED`,
/// `REQUEST_CHANGES`), and Gitea tells orch (`pull_request_review_*`).
fn person_reviews(
    w: &World<(), FakeGitea>,
    state: &str,
    body: &str,
    comments: &[(&str, u64, &str)],
) -> String {
    let sha = w.forge.person_reviews(1, "ann", state, body, comments);
    let kind = match state {
        "APPROVED" => "pull_request_review_approved",
        _ => "pull_request_review_rejected",
    };
    let payload = serde_json::json!({
        "action": "reviewed", "number": 1,
        "pull_request": {"number": 1, "head": {"sha": sha}},
        "repository": {"full_name": "acme/demo"},
        "review": {"type": kind, "content": body},
        "sender": {"login": "ann"},
    });
    let id = format!("review-{sha}-{state}");
    assert_eq!(
        w.deliver_forge(kind, &id, payload.to_string().as_bytes()),
        202
    );
    sha
}

/// A person reviews the GitHub pull request at its head (`state`:
/// `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`) with inline comments
/// (path, line, text), and GitHub tells orch (`pull_request_review`).
/// Returns the reviewed commit.
fn gh_person_reviews(
    w: &World<(), FakeGithub>,
    user: &str,
    state: &str,
    body: &str,
    comments: &[(&str, u64, &str)],
) -> String {
    let (number, sha, id) = {
        let mut m = w.forge.m();
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
    });
    let delivery = format!("review-{id}");
    assert_eq!(
        w.deliver_forge(
            "pull_request_review",
            &delivery,
            payload.to_string().as_bytes()
        ),
        202
    );
    sha
}

/// The prompts the developer was given, in order.
fn prompts_seen(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("prompts-seen"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Adds DEMO-1 and approves its analysis once it is ready.
async fn add_and_approve<F>(w: &World<(), F>) {
    add_task(w.dir(), "DEMO-1", "Fix the login", &[]);
    w.wait_for_stage("DEMO-1", "awaiting_approval").await;
    ok(w.dir(), &["task", "approve", "DEMO-1"]);
}

/// The task is done with one merge, of the pull request's head `sha`, on
/// Gitea.
async fn merged_once_at(w: &World<(), FakeGitea>, sha: &str) {
    let v = w.wait_for_stage("DEMO-1", "done").await;
    assert_eq!(events(&v, "merged"), 1, "{}", w.log());
    let prs = w.forge.prs();
    assert!(
        prs.len() == 1 && prs[0].merged && prs[0].head_sha == sha,
        "{prs:?}"
    );
}

/// Waits for the developer's second round after a failed check, and
/// returns the prompts the developer was given.
async fn second_round_after_ci<F>(w: &World<(), F>) -> Vec<String> {
    w.wait_for_task("DEMO-1", "the second development round", |v| {
        events(v, "ci_failed") == 1 && events(v, "developed") == 2
    })
    .await;
    prompts_seen(w.dir())
}

/// Runs DEMO-1 through approval to the merge gate, which waits for CI.
async fn to_the_merge_gate<F>(w: &World<(), F>, ci_pending: usize) -> Value {
    w.wait_for_task("DEMO-1", "the merge gate waits for CI", |v| {
        v["task"]["stage"] == "merge" && events(v, "ci_pending") == ci_pending
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_required_check_goes_back_to_the_developer_and_a_pass_merges() {
    let mut w = world(3).await;
    start(&mut w);
    add_and_approve(&w).await;

    // The merge gate waits: the check has not reported on the head.
    let v = to_the_merge_gate(&w, 1).await;
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    let first = head(w.dir(), &branch);
    assert_eq!(events(&v, "lease_acquired"), 0, "no lease while CI runs");
    // The pull request was opened when development ended: a draft (Gitea's
    // `WIP:` title), open, not merged; the tracker item links it.
    let prs = w.forge.prs();
    assert!(
        prs.len() == 1 && prs[0].open && !prs[0].merged && prs[0].title.starts_with("WIP: "),
        "{prs:?}"
    );
    assert_eq!(events(&v, "pr_opened"), 1);
    let why = last_message(&v, "ci_pending");
    assert!(why.contains("ci / test (not reported yet)"), "{why}");

    // It fails: back to the developer with the output.
    ci_reports(
        &w,
        &first,
        "failure",
        "FAILED tests/login.rs: assertion failed: login works",
    );
    let v = w
        .wait_for_task("DEMO-1", "the second development round", |v| {
            events(v, "ci_failed") == 1 && events(v, "developed") == 2
        })
        .await;
    assert_eq!(events(&v, "merged"), 0);
    let prompts = prompts_seen(w.dir());
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
    to_the_merge_gate(&w, 2).await;
    let second = head(w.dir(), &branch);
    assert_ne!(first, second, "the second round has a new head");
    ci_reports(&w, &second, "success", "Successful in 12s");
    merged_once_at(&w, &second).await;
}

/// No `required_checks` in orch.toml: Gitea's protection of `main` requires
/// the contexts `ci / *`, and orch reads them from the base branch. The
/// merge gate waits for them (Gitea would refuse the merge, 405, before
/// they pass); Gitea Actions' failed job goes back to the developer with
/// the end of its log; the next head's pass merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checks_the_base_branchs_protection_requires_hold_the_merge_until_they_pass() {
    let mut w = gitea_world("max_ci_rounds = 3\n", "").await;
    w.forge.require_checks("main", &["ci / *"]);
    start(&mut w);
    add_and_approve(&w).await;
    let v = to_the_merge_gate(&w, 1).await;
    assert_eq!(events(&v, "lease_acquired"), 0, "no lease while CI runs");
    let why = last_message(&v, "ci_pending");
    assert!(why.contains("ci / * (not reported yet)"), "{why}");
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    let first = head(w.dir(), &branch);

    // Gitea Actions fails the job: the developer's prompt has the end of
    // the job's log, fetched through the Actions API from the status's link.
    let context = w.forge.actions_job_fails(
        &first,
        "ci",
        "test",
        "Running tests\nthread 'login_works' panicked at tests/login.rs:12:5\n",
    );
    status_delivered(&w, &first, &context, "failure");
    let prompts = second_round_after_ci(&w).await;
    assert!(
        prompts[1].contains("CI check `ci / test (pull_request)` concluded `failure`")
            && prompts[1].contains("thread 'login_works' panicked at tests/login.rs:12:5"),
        "{}",
        prompts[1]
    );

    to_the_merge_gate(&w, 2).await;
    let second = head(w.dir(), &branch);
    w.forge
        .ci_status(&second, &context, "success", "Successful in 9s");
    status_delivered(&w, &second, &context, "success");
    let v = w.wait_for_stage("DEMO-1", "done").await;
    assert_eq!(events(&v, "merged"), 1, "{}", w.log());
    assert_eq!(events(&v, "merge_failed"), 0, "{:#}", v["events"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_checks_failing_past_the_bound_park_the_task_with_the_last_failure() {
    let mut w = world(1).await;
    start(&mut w);
    add_and_approve(&w).await;
    let v = to_the_merge_gate(&w, 1).await;
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    ci_reports(
        &w,
        &head(w.dir(), &branch),
        "failure",
        "first failure: 3 tests failed",
    );
    to_the_merge_gate(&w, 2).await;
    ci_reports(
        &w,
        &head(w.dir(), &branch),
        "error",
        "second failure: the runner crashed",
    );
    let v = w.wait_for_stage("DEMO-1", "needs_attention").await;
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
    assert!(w.forge.prs().iter().all(|p| !p.merged), "nothing merged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_change_request_on_the_pull_request_goes_back_with_its_comments() {
    let mut w = gitea_world("human_approval = \"required\"\n", "").await;
    start(&mut w);
    add_and_approve(&w).await;
    // The merge waits for a person's approval of the head.
    let v = w
        .wait_for_task("DEMO-1", "the merge waits for a person", |v| {
            v["task"]["stage"] == "merge" && events(v, "approval_pending") == 1
        })
        .await;
    assert_eq!(events(&v, "lease_acquired"), 0);
    assert_eq!(events(&v, "pr_opened"), 1);

    // Ann asks for changes, with an inline comment.
    let first = person_reviews(
        &w,
        "REQUEST_CHANGES",
        "Please handle the empty password.",
        &[("src/login.rs", 12, "an empty password must be refused")],
    );
    let v = w
        .wait_for_task("DEMO-1", "the second development round", |v| {
            events(v, "developed") == 2 && v["task"]["stage"] == "merge"
        })
        .await;
    let asked = last_message(&v, "changes_requested");
    assert!(
        asked.contains("ann asked for changes on the pull request"),
        "{asked}"
    );
    let prompts = prompts_seen(w.dir());
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
    w.wait_for_task("DEMO-1", "the merge waits again", |v| {
        events(v, "approval_pending") == 2
    })
    .await;
    let second = person_reviews(&w, "APPROVED", "Looks good.", &[]);
    assert_ne!(first, second);
    merged_once_at(&w, &second).await;
}

/// The same loop on GitHub: the pull request opened early is a draft, a
/// failed check run (GitHub Actions) goes back to the developer with its
/// output, a passing one lets the merge gate make the draft ready (GitHub's
/// GraphQL) and merge the verified head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_github_a_failed_check_run_goes_back_and_a_pass_merges_the_draft() {
    let mut w = github_world(
        "max_ci_rounds = 3\n",
        &format!("required_checks = [\"{CHECK}\"]\n"),
    )
    .await;
    start(&mut w);
    add_and_approve(&w).await;
    let v = to_the_merge_gate(&w, 1).await;
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    {
        let prs = w.forge.m().prs.clone();
        assert!(prs.len() == 1 && prs[0].draft && prs[0].open, "{prs:?}");
    }
    let first = head(w.dir(), &branch);
    ci_reports(&w, &first, "failure", "assertion failed: login works");
    let prompts = second_round_after_ci(&w).await;
    assert!(
        prompts[1].contains("CI check `ci / test` concluded `failure`")
            && prompts[1].contains("assertion failed: login works"),
        "{}",
        prompts[1]
    );
    to_the_merge_gate(&w, 2).await;
    let second = head(w.dir(), &branch);
    ci_reports(&w, &second, "success", "all passed");
    let v = w.wait_for_stage("DEMO-1", "done").await;
    assert_eq!(events(&v, "merged"), 1, "{}", w.log());
    let prs = w.forge.m().prs.clone();
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
    let mut w = github_world("human_approval = \"required\"\n", "").await;
    start(&mut w);
    add_and_approve(&w).await;
    let v = w
        .wait_for_task("DEMO-1", "the merge waits for a person", |v| {
            v["task"]["stage"] == "merge" && events(v, "approval_pending") == 1
        })
        .await;
    assert_eq!(events(&v, "lease_acquired"), 0);

    let first = gh_person_reviews(
        &w,
        "cy",
        "COMMENTED",
        "",
        &[("src/login.rs", 7, "this unwrap panics on an empty form")],
    );
    let v = w
        .wait_for_task("DEMO-1", "the second development round", |v| {
            events(v, "developed") == 2 && v["task"]["stage"] == "merge"
        })
        .await;
    assert_eq!(events(&v, "merged"), 0);
    let prompts = prompts_seen(w.dir());
    assert!(
        prompts[1].contains("cy on src/login.rs:7: this unwrap panics on an empty form"),
        "{}",
        prompts[1]
    );

    w.wait_for_task("DEMO-1", "the merge waits again", |v| {
        events(v, "approval_pending") == 2
    })
    .await;
    let second = gh_person_reviews(&w, "cy", "APPROVED", "Thanks.", &[]);
    assert_ne!(first, second);
    let v = w.wait_for_stage("DEMO-1", "done").await;
    assert_eq!(events(&v, "merged"), 1, "{}", w.log());
    let gh = &w.forge;
    let m = gh.m();
    assert!(
        m.prs.len() == 1 && m.prs[0].merged && !m.prs[0].draft && m.prs[0].head_sha == second,
        "{:?}",
        m.prs
    );
}
