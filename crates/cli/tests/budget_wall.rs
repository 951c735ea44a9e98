//! `budget.max_wall_secs` through the `orch` binary (R-17, issue 15 point 9):
//! an agent that runs past the task's wall-time budget is stopped, the task
//! parks for a person with the figure, and nothing of the run is left.

mod common;

use common::{Serve, assert_no_orphans, count_events, last_message, ok, quickstart_project, wait};
use std::time::{Duration, Instant};

#[test]
fn the_wall_time_budget_stops_the_agent_and_parks_with_the_figure() {
    let tmp = tempfile::tempdir().unwrap();
    // The analyst would work for 60 s; the task may use 2 s of agent time.
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        format!(
            "{c}\n[budget]\nmax_wall_secs = 2\n\n[agent_env]\nset = {{ ORCH_EXAMPLE_DELAY = \"60\" }}\n"
        )
    });
    let serve = Serve::start(&dir);
    let started = Instant::now();
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Slow", "--id", "DEMO-2",
        ],
    );
    let parked = wait::task(&dir, "DEMO-2", Duration::from_secs(30), "parked", |v| {
        v["task"]["stage"] == "needs_attention"
    });
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "parked long before the agent would have finished"
    );
    let why = last_message(&parked, "needs_attention");
    assert!(
        why.starts_with("wall-time budget exceeded: the agents ran "),
        "{why}"
    );
    assert!(why.ends_with("> 2.0 s (budget.max_wall_secs = 2)"), "{why}");
    let runs = parked["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["outcome"], "budget_exceeded");
    assert!(
        parked["usage"]["agent_wall_ms"].as_u64().unwrap() > 2000,
        "{}",
        parked["usage"]
    );
    assert_no_orphans(&dir, serve.pid(), "after the budget stop");

    // A retry resumes it; the budget is still spent, so it parks again at once.
    ok(&dir, &["task", "retry", "DEMO-2"]);
    let again = wait::task(
        &dir,
        "DEMO-2",
        Duration::from_secs(30),
        "parked again",
        |v| count_events(v, "needs_attention") == 2,
    );
    assert_eq!(again["runs"].as_array().unwrap().len(), 2);
    assert_eq!(count_events(&again, "resumed"), 1);
    assert_no_orphans(&dir, serve.pid(), "after the second stop");
}
