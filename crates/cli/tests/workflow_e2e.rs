//! Symphony's own WORKFLOW.md (crates/config/tests/fixtures/symphony, see
//! its SOURCES.md) runs a task end to end on orch through the binary:
//! `orch serve --workflow WORKFLOW.md`, the builtin tracker substituted in
//! orch.toml (the workflow asks for Linear), the example agents in place of
//! Codex. The developer's prompt is the workflow's body rendered for the
//! task; every front matter key orch cannot honour is named at start.

mod common;

use common::{Serve, add_task, ok, quickstart_project, wait_for};
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
    wait_for(
        &dir,
        "DEMO-2",
        LIMIT,
        "awaiting approval",
        stage_is("awaiting_approval"),
    );
    ok(&dir, &["task", "approve", "DEMO-2", "-m", "go"]);
    let done = wait_for(&dir, "DEMO-2", LIMIT, "done", stage_is("done"));
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
