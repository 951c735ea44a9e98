//! Running work again, through the `orch` binary on real git and a real
//! store (issue 15, points 7, 8 and 13):
//!
//! - To Analyse (`orch task start`, `orch task add --id`) on a done or failed
//!   item starts a fresh task; the old one keeps its history under retired
//!   keys;
//! - `orch task retry` resumes a failed task at the stage it failed in;
//! - a dependent of a cancelled task parks, naming it, and follows the item
//!   when it runs again;
//! - after a STOP, `orch task list` and `orch task show KEY` agree;
//! - a store error during a STOP is reported as such, never as `no-task`;
//! - `review.max_review_rounds` allows that many rounds of changes.

mod common;

use common::{
    Serve, add_task, count_events, git, last_message, ok, orch, quickstart_project, show, wait,
};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(90);

fn task_show(dir: &Path, what: &str) -> Value {
    serde_json::from_str(&ok(dir, &["task", "show", what, "--json"])).unwrap()
}

fn stage_is(stage: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["task"]["stage"] == stage
}

fn id_of(v: &Value) -> i64 {
    v["task"]["id"].as_i64().unwrap()
}

fn add_config(extra: &'static str) -> impl FnOnce(String) -> String {
    move |c| format!("{c}\n{extra}\n")
}

/// To Analyse on a done item: a new task runs it; the done task keeps its
/// row and history under retired keys, and the key names the new task.
#[test]
fn to_analyse_on_a_done_item_starts_a_fresh_task() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| c);
    let before = task_show(&dir, "DEMO-1");
    assert_eq!(before["task"]["stage"], "done");
    let merged_events = count_events(&before, "merged");

    // `orch task start DEMO-1` is To Analyse on the item.
    let started: Value =
        serde_json::from_str(&ok(&dir, &["task", "start", "DEMO-1", "--json"])).unwrap();
    assert_eq!(started["applied"], true, "{started}");
    assert_eq!(started["stage"], "analysis", "{started}");
    let fresh = started["task"].as_i64().unwrap();
    assert_ne!(fresh, id_of(&before), "a new task, not the done one");

    let old = task_show(&dir, &id_of(&before).to_string());
    assert_eq!(old["task"]["stage"], "done", "the old task stays done");
    assert_eq!(
        old["task"]["work_item_id"],
        format!("DEMO-1#retired-{}", id_of(&before))
    );
    assert_eq!(
        count_events(&old, "merged"),
        merged_events,
        "its history stays"
    );
    assert!(last_message(&old, "retired").contains(&format!("task {fresh}")));
    assert_eq!(
        id_of(&task_show(&dir, "DEMO-1")),
        fresh,
        "the key names the new task"
    );
    assert!(
        last_message(&task_show(&dir, "DEMO-1"), "created").contains("runs its item again"),
        "the new task says what it follows"
    );
    // The old task's branch is gone from the remote: the new one starts from main.
    let remote = dir.join("remotes/demo.git");
    assert!(
        git(&remote, &["branch", "--list", "feature/*"])
            .trim()
            .is_empty()
    );

    // The old task starts nothing any more: the item belongs to the new one.
    let again = orch(&dir, &["task", "start", &id_of(&before).to_string()]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("newer task"),
        "{again:?}"
    );
    let list = ok(&dir, &["task", "list"]);
    assert!(list.contains("DEMO-1 (released)"), "{list}");
}

/// `orch task add --id KEY` with the key of a done item runs it again too;
/// with the key of a task still in the pipeline it is a duplicate.
#[test]
fn task_add_with_the_key_of_a_done_item_runs_it_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| c);
    let add = [
        "task", "add", "--repo", "demo", "--title", "Again", "--id", "DEMO-1",
    ];
    let out = ok(&dir, &add);
    assert!(out.contains("created task 2 (DEMO-1)"), "{out}");
    assert_eq!(task_show(&dir, "DEMO-1")["task"]["stage"], "analysis");
    assert_eq!(task_show(&dir, "1")["task"]["stage"], "done");
    let dup = orch(&dir, &add);
    assert_eq!(dup.status.code(), Some(2), "{dup:?}");
    assert!(String::from_utf8_lossy(&dup.stderr).contains("a live task already uses"));
}

/// A failed task (analysis rejected more often than allowed) is retried at
/// the stage it failed in, with its rounds counted afresh; To Analyse on it
/// starts a fresh task, which then runs to done.
#[test]
fn a_failed_task_is_retried_where_it_failed_or_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(
        tmp.path(),
        "qs",
        add_config("[review]\nmax_rejection_rounds = 1"),
    );
    let _serve = Serve::start(&dir);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Retry me", "--id", "DEMO-2",
        ],
    );
    let reject_until = |stage: &'static str| {
        wait::task(
            &dir,
            "DEMO-2",
            LIMIT,
            "awaiting approval",
            stage_is("awaiting_approval"),
        );
        ok(&dir, &["task", "reject", "DEMO-2", "-m", "not yet"]);
        wait::task(&dir, "DEMO-2", LIMIT, stage, stage_is(stage))
    };
    reject_until("analysis");
    let failed = reject_until("failed");
    let first = id_of(&failed);

    // Retry: back to the approval gate, where it failed.
    let r: Value = serde_json::from_str(&ok(&dir, &["task", "retry", "DEMO-2", "--json"])).unwrap();
    assert_eq!(
        (r["applied"].clone(), r["stage"].clone()),
        (true.into(), "awaiting_approval".into()),
        "{r}"
    );
    let v = task_show(&dir, "DEMO-2");
    assert_eq!(id_of(&v), first, "the same task");
    assert_eq!(count_events(&v, "retried"), 1);
    // The rejection round counts afresh: one more rejection is allowed.
    ok(&dir, &["task", "reject", "DEMO-2", "-m", "closer"]);
    wait::task(
        &dir,
        "DEMO-2",
        LIMIT,
        "the analyst again",
        stage_is("analysis"),
    );
    reject_until("failed");

    // To Analyse on the failed item: a fresh task, the failed one retired.
    let s: Value = serde_json::from_str(&ok(&dir, &["task", "start", "DEMO-2", "--json"])).unwrap();
    let fresh = s["task"].as_i64().unwrap();
    assert_ne!(fresh, first);
    let old = task_show(&dir, &first.to_string());
    assert_eq!(old["task"]["stage"], "failed");
    assert_eq!(
        old["task"]["work_item_id"],
        format!("DEMO-2#retired-{first}")
    );
    let retry_old = orch(&dir, &["task", "retry", &first.to_string()]);
    assert!(
        !retry_old.status.success(),
        "a retired task is not reopened"
    );
    wait::task(
        &dir,
        "DEMO-2",
        LIMIT,
        "the fresh analysis",
        stage_is("awaiting_approval"),
    );
    ok(&dir, &["task", "approve", "DEMO-2", "-m", "go"]);
    let done = wait::task(&dir, "DEMO-2", LIMIT, "done", stage_is("done"));
    assert_eq!(id_of(&done), fresh);
    let log = git(
        &dir.join("remotes/demo.git"),
        &["log", "--format=%h %p %s", "main"],
    );
    assert_eq!(
        log.matches("docs(DEMO-2)").count(),
        1,
        "{log}\n{}\n{}",
        ok(&dir, &["task", "show", &first.to_string()]),
        ok(&dir, &["task", "show", "DEMO-2"])
    );
    assert_eq!(log.matches("feat(DEMO-2): implement").count(), 1, "{log}");
}

/// A dependent of a cancelled task parks with the reason, its queued agent
/// never runs; when the dependency's item runs again the dependent waits for
/// the new task, and a retry lets it go on once that one is done.
#[test]
fn a_dependent_of_a_cancelled_task_parks_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| c);
    let dep: Value = serde_json::from_str(&ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Base", "--id", "DEMO-3", "--json",
        ],
    ))
    .unwrap();
    let dep_id = dep["id"].as_i64().unwrap().to_string();
    add_task(&dir, "DEMO-4", "On top", &["--depends-on", &dep_id]);
    ok(&dir, &["task", "stop", "DEMO-3"]);
    let _serve = Serve::start(&dir);
    let parked = wait::task(&dir, "DEMO-4", LIMIT, "parked", stage_is("needs_attention"));
    let why = last_message(&parked, "needs_attention");
    assert!(
        why.contains(&format!("task {dep_id} (DEMO-3) was cancelled")),
        "{why}"
    );
    assert!(
        parked["runs"].as_array().unwrap().is_empty(),
        "its analyst never ran"
    );
    assert!(
        parked["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "cancelled"),
        "{:#}",
        parked["jobs"]
    );

    // The dependency's item runs again: the dependent now waits for it.
    let s: Value = serde_json::from_str(&ok(&dir, &["task", "start", "DEMO-3", "--json"])).unwrap();
    let fresh = s["task"].as_i64().unwrap();
    let v = task_show(&dir, "DEMO-4");
    assert_eq!(v["depends_on"], serde_json::json!([fresh]));
    ok(&dir, &["task", "retry", "DEMO-4"]);
    wait::task(
        &dir,
        "DEMO-3",
        LIMIT,
        "analysed",
        stage_is("awaiting_approval"),
    );
    let waiting = task_show(&dir, "DEMO-4");
    assert_eq!(waiting["task"]["stage"], "analysis");
    assert!(
        waiting["runs"].as_array().unwrap().is_empty(),
        "held back by the dependency"
    );
    ok(&dir, &["task", "approve", "DEMO-3"]);
    wait::task(&dir, "DEMO-3", LIMIT, "done", stage_is("done"));
    wait::task(
        &dir,
        "DEMO-4",
        LIMIT,
        "analysed",
        stage_is("awaiting_approval"),
    );
}

/// After a STOP, the key `orch task list` shows finds the task that `orch
/// task show` shows: the cancelled one, marked as released.
#[test]
fn after_a_stop_list_and_show_name_the_same_task() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| c);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Stop me", "--id", "DEMO-7",
        ],
    );
    ok(&dir, &["task", "stop", "DEMO-7"]);
    let list = ok(&dir, &["task", "list"]);
    let row = list
        .lines()
        .find(|l| l.contains("DEMO-7"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        row.contains("DEMO-7 (released)") && row.contains("cancelled"),
        "{row}"
    );
    let id = row.split_whitespace().next().unwrap();
    let shown = orch(&dir, &["task", "show", "DEMO-7"]);
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        text.starts_with(&format!("task {id}  DEMO-7  [cancelled]")),
        "{text}"
    );
    assert!(text.contains("DEMO-7 released"), "{text}");
    // A second STOP by key is the idempotent no-op of TC-07, not "no task".
    let again: Value =
        serde_json::from_str(&ok(&dir, &["task", "stop", "DEMO-7", "--json"])).unwrap();
    assert_eq!(again["note"], "already-terminal:cancelled");
}

/// A store error during a STOP says so (note `error`, the store's words, a
/// failing exit); it is not `no-task`, which would say the task is unknown.
#[test]
fn a_store_error_during_stop_is_reported_not_no_task() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| c);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Stuck", "--id", "DEMO-5",
        ],
    );
    // The database refuses every change to a job: the cancel's first write fails.
    let db = dir.join(".orch/orch.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER jobs_on_fire BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'disk on fire'); END",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    });
    let out = orch(&dir, &["task", "stop", "DEMO-5", "--json"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(r["note"], "error", "{r}");
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("disk on fire"), "{r}");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("disk on fire"));
    assert_eq!(
        show(&dir, "DEMO-5").unwrap()["task"]["stage"],
        "analysis",
        "nothing was cancelled"
    );
}

/// `max_review_rounds = 1`: changes requested "more often than this" fail
/// the task, so the example reviewer's one round of changes is allowed.
#[test]
fn max_review_rounds_allows_that_many_rounds_of_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(
        tmp.path(),
        "qs",
        add_config("[review]\nmax_review_rounds = 1"),
    );
    let _serve = Serve::start(&dir);
    add_task(&dir, "DEMO-6", "One round", &[]);
    wait::task(
        &dir,
        "DEMO-6",
        LIMIT,
        "analysed",
        stage_is("awaiting_approval"),
    );
    ok(&dir, &["task", "approve", "DEMO-6"]);
    let end = wait::task(&dir, "DEMO-6", LIMIT, "an end", |v| {
        matches!(v["task"]["stage"].as_str(), Some("done" | "failed"))
    });
    assert_eq!(
        end["task"]["stage"],
        "done",
        "{}",
        last_message(&end, "changes_requested")
    );
    assert_eq!(count_events(&end, "changes_requested"), 1);
}

/// A worktree that cannot be made (the repo's base branch does not exist)
/// fails each run at its preparation, and the task parks saying why
/// (Symphony SPEC §17.2: workspace population errors are surfaced).
#[test]
fn a_worktree_that_cannot_be_made_fails_its_runs_and_parks_the_task_saying_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        c.replace("default_branch = \"main\"", "default_branch = \"trunk\"")
    });
    let _serve = Serve::start(&dir);
    add_task(&dir, "DEMO-2", "On a base that is not there", &[]);
    let parked = wait::task(&dir, "DEMO-2", LIMIT, "parked", stage_is("needs_attention"));
    let why = last_message(&parked, "needs_attention");
    assert!(why.contains("preparing the run"), "{why}");
    assert!(why.contains("trunk"), "the missing base is named: {why}");
    let runs = parked["runs"].as_array().unwrap();
    assert!(!runs.is_empty(), "{parked:#}");
    assert!(runs.iter().all(|r| r["outcome"] == "failed"), "{runs:#?}");
}
