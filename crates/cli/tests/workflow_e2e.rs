//! Symphony's own WORKFLOW.md (crates/config/tests/fixtures/symphony, see
//! its SOURCES.md) runs a task end to end on orch through the binary:
//! `orch serve --workflow WORKFLOW.md`, the builtin tracker substituted in
//! orch.toml (the workflow asks for Linear), the example agents in place of
//! Codex. The developer's prompt is the workflow's body rendered for the
//! task; every front matter key orch cannot honour is named at start.

mod common;

use common::{Serve, add_task, ok, orch, quickstart_project, wait};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn symphony_workflow() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tests/fixtures/symphony/WORKFLOW.md"),
    )
    .unwrap()
}

fn stage_is(stage: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["task"]["stage"] == stage
}

/// The prompts of the runs so far (`.orch/runs/<run>/prompt.md`).
fn prompts(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for run in std::fs::read_dir(dir.join(".orch/runs")).unwrap() {
        let path = run.unwrap().path().join("prompt.md");
        if let Ok(text) = std::fs::read_to_string(&path) {
            out.push((path, text));
        }
    }
    out
}

/// Prints orch serve's log when the test fails (its folder is deleted).
struct ShowLogOnFailure(PathBuf);
impl Drop for ShowLogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            eprintln!("---- {} ----\n{log}", self.0.display());
        }
    }
}

#[test]
fn symphonys_workflow_runs_a_task_to_done_with_the_builtin_tracker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        format!("{c}\n[tracker]\nkind = \"builtin\"\n")
    });
    std::fs::write(dir.join("WORKFLOW.md"), symphony_workflow()).unwrap();
    let _log = ShowLogOnFailure(dir.join("serve-0.log"));
    let serve = Serve::start_with(&dir, &[], &["--workflow", "WORKFLOW.md"]);
    serve.wait_listening();

    add_task(
        &dir,
        "DEMO-2",
        "Greet in French",
        &["--body", "Say bonjour."],
    );
    wait::task(
        &dir,
        "DEMO-2",
        LIMIT,
        "awaiting approval",
        stage_is("awaiting_approval"),
    );
    ok(&dir, &["task", "approve", "DEMO-2", "-m", "go"]);
    let done = wait::task(&dir, "DEMO-2", LIMIT, "done", stage_is("done"));
    assert!(
        done["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "merged"),
        "{done:#}"
    );

    let prompts = prompts(&dir);
    let developer: Vec<_> = prompts
        .iter()
        .filter(|(_, p)| p.starts_with("You are working on a Linear ticket `DEMO-2`"))
        .collect();
    assert!(
        !developer.is_empty(),
        "no developer prompt from the workflow: {prompts:#?}"
    );
    let (_, first) = developer
        .iter()
        .find(|(_, p)| !p.contains("Follow-up context"))
        .expect("a first run, with attempt null");
    assert!(first.contains("Title: Greet in French"), "{first}");
    assert!(first.contains("Say bonjour."), "{first}");
    // The quickstart's reviewer asks for changes once: that round is a
    // continuation, and orch's feedback follows the workflow's prompt.
    let (_, round) = developer
        .iter()
        .find(|(_, p)| p.contains("This is follow-up attempt #2."))
        .expect("a second round");
    assert!(
        round.contains("orch: what this round must change"),
        "{round}"
    );
    // The other agents keep orch's own prompts.
    assert!(
        prompts
            .iter()
            .any(|(_, p)| p.contains("DEMO-2") && p.contains("You are the **analyst**")),
        "{prompts:#?}"
    );

    // What orch does not honour was named when it started.
    let log = std::fs::read_to_string(dir.join("serve-0.log")).unwrap_or_default();
    for key in [
        "tracker.provider.project_slug",
        "hooks.after_create",
        "agent.max_turns",
    ] {
        assert!(
            log.contains(&format!("WORKFLOW.md: {key}: not honoured")),
            "{key}:\n{log}"
        );
    }
    assert!(
        log.contains("agents.developer.command") && log.contains("overridden"),
        "orch.toml's developer wins, and says so:\n{log}"
    );
}

/// `orch status --json`'s `config`: the running engine's reload state.
fn config_state(dir: &Path) -> Value {
    let v: Value = serde_json::from_str(&ok(dir, &["status", "--json"])).unwrap();
    v["config"].clone()
}

/// `orch status`'s config state once `done` holds of it. A reload is the
/// engine's own state, not a commit: the ticker's passes, which the
/// engine signals, wake each look (`common::wait`).
fn wait_config(dir: &Path, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    common::wait::until(
        dir,
        LIMIT,
        || Some(config_state(dir)).filter(|c| done(c)),
        || format!("config never {what}: {:#}", config_state(dir)),
    )
}

/// Runs DEMO-n to done and returns its developer's first prompt.
fn developer_prompt(dir: &Path, key: &str, marker: &str) -> String {
    add_task(dir, key, "Another greeting", &[]);
    wait::task(
        dir,
        key,
        LIMIT,
        "awaiting approval",
        stage_is("awaiting_approval"),
    );
    ok(dir, &["task", "approve", key, "-m", "go"]);
    wait::task(dir, key, LIMIT, "done", stage_is("done"));
    prompts(dir)
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| p.contains(marker) && p.contains(key))
        .unwrap_or_else(|| panic!("no prompt with {marker:?} for {key}"))
}

/// Live reload: an edit of WORKFLOW.md applies to the next task without a
/// restart; an edit that does not load (the workflow's YAML, then
/// orch.toml's TOML) keeps the last good configuration, and says so in
/// `orch status`, `/queue` and the log; SIGHUP reloads at once.
#[test]
fn an_edit_applies_to_new_work_and_a_broken_one_keeps_the_last_good() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        format!("workflow = \"WORKFLOW.md\"\n{c}")
    });
    let workflow = dir.join("WORKFLOW.md");
    std::fs::write(
        &workflow,
        "---\nagent:\n  max_concurrent_agents: 4\n---\nFirst prompt for {{ issue.identifier }}.\n",
    )
    .unwrap();
    let _log = ShowLogOnFailure(dir.join("serve-0.log"));
    let serve = Serve::start(&dir);
    serve.wait_listening();
    let first = wait_config(&dir, "reported", |c| c["generation"] == 1);
    assert!(
        first["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str().unwrap().ends_with("WORKFLOW.md")),
        "{first:#}"
    );

    // A valid edit: the next developer run uses it.
    std::fs::write(
        &workflow,
        "---\nagent:\n  max_concurrent_agents: 4\n---\nSecond prompt for {{ issue.identifier }}.\n",
    )
    .unwrap();
    wait_config(&dir, "reloaded", |c| {
        c["generation"] == 2 && c["error"].is_null()
    });
    let p = developer_prompt(&dir, "DEMO-2", "Second prompt");
    assert!(p.starts_with("Second prompt for DEMO-2."), "{p}");

    // A broken edit: the last good configuration stays, and says why.
    std::fs::write(&workflow, "---\nagent: [\n---\nThird prompt.\n").unwrap();
    let broken = wait_config(&dir, "refused", |c| !c["error"].is_null());
    assert_eq!(broken["generation"], 2, "{broken:#}");
    assert!(
        broken["error"].as_str().unwrap().contains("not valid YAML"),
        "{broken:#}"
    );
    let human = ok(&dir, &["status"]);
    assert!(human.contains("the last edit was NOT applied"), "{human}");
    let api = common::http::Api::of(&dir);
    let queue = common::http::body(&common::http::http(
        api.addr,
        "GET",
        "/queue",
        &[&api.auth],
        "",
    ));
    let queue: Value = serde_json::from_str(&queue).unwrap();
    assert_eq!(queue["config"]["generation"], 2, "{queue:#}");
    assert!(
        queue["config"]["error"]
            .as_str()
            .unwrap()
            .contains("not valid YAML")
    );
    let p = developer_prompt(&dir, "DEMO-3", "Second prompt");
    assert!(
        p.starts_with("Second prompt for DEMO-3."),
        "the last good prompt: {p}"
    );

    // Fixed again, then orch.toml broken: the same.
    std::fs::write(&workflow, "Fourth prompt for {{ issue.identifier }}.\n").unwrap();
    wait_config(&dir, "reloaded again", |c| {
        c["generation"] == 3 && c["error"].is_null()
    });
    let toml = dir.join("orch.toml");
    let good = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("{good}\n[queue\n")).unwrap();
    // The CLI cannot read orch.toml now either: ask the engine itself.
    let queue_config = || -> Value {
        let answer = common::http::http(api.addr, "GET", "/queue", &[&api.auth], "");
        serde_json::from_str::<Value>(&common::http::body(&answer)).unwrap()["config"].clone()
    };
    let broken = common::wait::until_at(
        &api,
        LIMIT,
        || Some(queue_config()).filter(|c| !c["error"].is_null()),
        || {
            format!(
                "the broken orch.toml was never reported: {:#}",
                queue_config()
            )
        },
    );
    assert_eq!(broken["generation"], 3);
    assert!(
        broken["error"]
            .as_str()
            .unwrap()
            .contains("invalid table header"),
        "{broken:#}"
    );
    let refused = orch(&dir, &["status"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("orch.toml"),
        "{refused:?}"
    );
    std::fs::write(&toml, &good).unwrap();
    wait_config(&dir, "fixed", |c| {
        c["generation"] == 4 && c["error"].is_null()
    });

    // SIGHUP reloads at once, with nothing changed.
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &serve.pid().to_string()])
        .status();
    wait_config(&dir, "reloaded by SIGHUP", |c| c["generation"] == 5);

    let log = std::fs::read_to_string(dir.join("serve-0.log")).unwrap();
    assert!(
        log.contains("the edited configuration does not load"),
        "{log}"
    );
    assert!(log.contains("configuration reloaded"), "{log}");
}
