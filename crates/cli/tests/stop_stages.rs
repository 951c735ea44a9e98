//! STOP at every stage, table-driven, through the `orch` binary: a real
//! `orch serve` runs the pipeline with the example agents; one agent (or the
//! verify / deploy command) of each row is made to hang or fail so the task
//! sits in the row's stage, then `orch task stop` is run and the outcome
//! checked against the row:
//! - the result fields (`ok`, `deferred`, `stopped`, `note`) of R-31;
//! - the task ends `cancelled`, nothing of its runs is left running, the
//!   merge lease is free, the feature branch is gone from the remote (full
//!   reset) and nothing was merged unless the row says so;
//! - a second STOP is a no-op (`already-terminal:cancelled`) and the item got
//!   one STOP notification (two when deferred: the deferral, its application);
//! - with the kill switch off a STOP is inert.

mod common;

use common::{Serve, assert_no_orphans, git, ok, orch, quickstart_project, show, wait};
use orch_store::{LeaseStore, SqliteOptions, SqliteStore, TrackerStore};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const KEY: &str = "DEMO-2";
const WAIT: Duration = Duration::from_secs(90);
/// An agent that never ends on its own, with a grandchild (an agent's tool).
const HANG: &str = r#"command = ["sh", "-c", "sleep 1000 & wait"]"#;

struct Row {
    name: &'static str,
    /// orch.toml edits: (text of the quickstart's config, its replacement).
    edits: &'static [(&'static str, &'static str)],
    /// Wait until the task is here before the STOP.
    ready: fn(&Value) -> bool,
    /// The CLI gates this row passes on the way (approve, confirm-deploy).
    approve: bool,
    confirm_deploy: bool,
    /// Expected result of the STOP.
    deferred: bool,
    stopped: u64,
    note: &'static str,
    /// The change reached the remote's main before the (deferred) STOP took effect.
    merged: bool,
}

fn stage(v: &Value) -> &str {
    v["task"]["stage"].as_str().unwrap()
}

/// A run of `agent` has a process and has not finished.
fn running(v: &Value, agent: &str) -> bool {
    v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["agent"] == agent && r["pid"].is_i64() && r["finished_at"].is_null())
}

fn has_event(v: &Value, kind: &str) -> bool {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == kind)
}

/// Deploy phase A succeeded and phase B has not started: awaiting Confirm Deploy.
fn deploy_parked(v: &Value) -> bool {
    stage(v) == "deploy"
        && !has_event(v, "deploy_started")
        && v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["agent"] == "deployer" && j["status"] == "succeeded")
}

const ANALYST: &str = r#"command = ["examples/agents/analyst.sh"]"#;
const DEVELOPER: &str = r#"command = ["examples/agents/developer.sh"]"#;
const REVIEWER: &str = r#"command = ["examples/agents/reviewer.sh"]"#;
const VERIFY: &str = r#"verify = ["sh", "scripts/verify.sh"]"#;

/// What most rows share: no gate passed on the way, a plain cancel that
/// stopped nothing and merged nothing.
const BASE: Row = Row {
    name: "",
    edits: &[],
    ready: |_| false,
    approve: false,
    confirm_deploy: false,
    deferred: false,
    stopped: 0,
    note: "cancelled",
    merged: false,
};

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "analysis (analyst running)",
            edits: &[(ANALYST, HANG)],
            ready: |v| stage(v) == "analysis" && running(v, "analyst"),
            stopped: 1,
            ..BASE
        },
        Row {
            name: "awaiting_approval (idle)",
            edits: &[],
            ready: |v| stage(v) == "awaiting_approval",
            ..BASE
        },
        Row {
            name: "development (developer running)",
            edits: &[(DEVELOPER, HANG)],
            ready: |v| stage(v) == "development" && running(v, "developer"),
            approve: true,
            stopped: 1,
            ..BASE
        },
        Row {
            name: "review (reviewer running)",
            edits: &[(REVIEWER, HANG)],
            ready: |v| stage(v) == "review" && running(v, "reviewer"),
            approve: true,
            stopped: 1,
            ..BASE
        },
        Row {
            name: "needs_attention (developer failed)",
            edits: &[
                (DEVELOPER, r#"command = ["sh", "-c", "exit 3"]"#),
                ("max_attempts = 2", "max_attempts = 1"),
            ],
            ready: |v| stage(v) == "needs_attention",
            approve: true,
            ..BASE
        },
        Row {
            // D7: the lease is held and the verify (the merge actor) runs:
            // critical, deferred until it ends; then cancelled, not merged.
            name: "merge (verify running, lease held)",
            edits: &[(VERIFY, r#"verify = ["sh", "-c", "sleep 3"]"#)],
            ready: |v| stage(v) == "merge" && running(v, "merger"),
            approve: true,
            deferred: true,
            note: "deferred-critical-window",
            ..BASE
        },
        Row {
            // D7: deploy phase A running with the lease held: critical.
            name: "deploy phase A (prepare running)",
            edits: &[(
                VERIFY,
                "verify = [\"true\"]\n[repos.deploy]\nprepare = [\"sh\", \"-c\", \"sleep 3\"]\nrun = [\"true\"]",
            )],
            ready: |v| stage(v) == "deploy" && running(v, "deployer"),
            approve: true,
            deferred: true,
            note: "deferred-critical-window",
            merged: true,
            ..BASE
        },
        Row {
            // D7: parked awaiting Confirm Deploy is not critical: full reset.
            name: "deploy awaiting Confirm Deploy (parked)",
            edits: &[(
                VERIFY,
                "verify = [\"true\"]\n[repos.deploy]\nprepare = [\"true\"]\nrun = [\"true\"]",
            )],
            ready: deploy_parked,
            approve: true,
            merged: true,
            ..BASE
        },
        Row {
            // The INITIATED marker of phase B: deferred, applied by the
            // deploy finalizer once the command has ended.
            name: "deploy phase B (INITIATED)",
            edits: &[(
                VERIFY,
                "verify = [\"true\"]\n[repos.deploy]\nprepare = [\"true\"]\nrun = [\"sh\", \"-c\", \"sleep 3\"]",
            )],
            ready: |v| {
                stage(v) == "deploy" && has_event(v, "deploy_started") && running(v, "deployer")
            },
            approve: true,
            confirm_deploy: true,
            deferred: true,
            note: "deferred-critical-window",
            merged: true,
            ..BASE
        },
    ]
}

fn apply(cfg: String, edits: &[(&str, &str)]) -> String {
    let mut cfg = cfg;
    for (from, to) in edits {
        assert!(cfg.contains(from), "the quickstart config has no {from:?}");
        cfg = cfg.replacen(from, to, 1);
    }
    cfg
}

fn stop(dir: &Path, task: &str) -> Value {
    serde_json::from_str(&ok(dir, &["task", "stop", task, "--json"])).unwrap()
}

fn comments(dir: &Path) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(dir.join(".orch/orch.db"), SqliteOptions::default())
            .await
            .unwrap();
        let leases = store.merge_leases().await.unwrap();
        assert!(leases.is_empty(), "the merge lease is free: {leases:?}");
        let c = store.item_comments(KEY).await.unwrap();
        store.close().await;
        c.into_iter().map(|c| c.body).collect()
    })
}

/// Drives the task to the row's stage: passes the gates the row names.
fn reach(dir: &Path, row: &Row) -> Value {
    wait::task(dir, KEY, WAIT, row.name, |v| {
        if (row.ready)(v) {
            return true;
        }
        match stage(v) {
            "awaiting_approval" if row.approve => {
                let _ = orch(dir, &["task", "approve", KEY]);
            }
            "deploy" if row.confirm_deploy && deploy_parked(v) => {
                let _ = orch(dir, &["task", "confirm-deploy", KEY]);
            }
            s @ ("failed" | "cancelled" | "done") => panic!("{}: the task ended {s}", row.name),
            _ => {}
        }
        false
    })
}

fn check_row(tmp: &Path, i: usize, row: &Row) {
    let dir = quickstart_project(tmp, &format!("row{i}"), |c| apply(c, row.edits));
    let serve = Serve::start(&dir);
    serve.wait_listening();
    ok(
        &dir,
        &["task", "add", "--repo", "demo", "--title", "x", "--id", KEY],
    );
    let before = reach(&dir, row);
    // `orch task add` beside a running engine is that engine's to carry
    // out (its worker created and started the task), not the CLI's.
    let created = before["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "created")
        .cloned()
        .unwrap_or_default();
    assert!(
        created["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("worker:")),
        "{}: the task add went through orch serve: {created}",
        row.name
    );
    let branch = before["task"]["branch"].as_str().unwrap().to_owned();
    // After the cancel the key is free (TC-13): follow the task by its id.
    let id = before["task"]["id"].to_string();

    let r = stop(&dir, &id);
    assert_eq!(r["ok"], true, "{}: {r}", row.name);
    assert_eq!(r["deferred"], row.deferred, "{}: {r}", row.name);
    assert_eq!(r["stopped"], row.stopped, "{}: {r}", row.name);
    assert_eq!(r["note"], row.note, "{}: {r}", row.name);
    if row.deferred {
        // A repeated STOP inside the window changes nothing and says so.
        let again = stop(&dir, &id);
        assert_eq!(
            again["note"], "deferred-already-pending",
            "{}: {again}",
            row.name
        );
    }
    let v = wait::task(&dir, &id, WAIT, "cancelled", |v| stage(v) == "cancelled");
    assert!(!v["task"]["cancelled_at"].is_null(), "{}", row.name);
    // The CLI's STOP was carried out by the running engine (its worker), not
    // by a second pipeline in the CLI's process: one cancel, one request.
    let events = v["events"].as_array().unwrap();
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["kind"] == kind).collect() };
    let cancelled = of("cancelled");
    assert_eq!(cancelled.len(), 1, "{}: {cancelled:?}", row.name);
    assert!(
        cancelled[0]["actor"]
            .as_str()
            .is_some_and(|a| a.starts_with("worker:")),
        "{}: the STOP went through orch serve: {cancelled:?}",
        row.name
    );
    if row.deferred {
        assert_eq!(of("cancel_requested").len(), 1, "{}: {events:?}", row.name);
    }

    let again = stop(&dir, &id);
    assert_eq!(
        again["note"], "already-terminal:cancelled",
        "{}: {again}",
        row.name
    );
    assert_eq!(again["stopped"], 0, "{}", row.name);

    assert_no_orphans(&dir, serve.pid(), row.name);
    let remote = dir.join("remotes/demo.git");
    assert!(
        git(&remote, &["branch", "--list", &branch])
            .trim()
            .is_empty(),
        "{}: full reset deletes the remote branch {branch}",
        row.name
    );
    let on_main = git(&remote, &["log", "--format=%s", "main"]).contains(&format!("feat({KEY})"));
    assert_eq!(on_main, row.merged, "{}: merged into main", row.name);
    let notes: Vec<String> = comments(&dir)
        .into_iter()
        // The notes of a STOP start with its reason; other comments (e.g. a
        // park's, which says STOP is an option) do not count.
        .filter(|c| c.starts_with("STOP") || c.starts_with("deferred STOP"))
        .collect();
    // One notification per event: the cancel; or the deferral and then its
    // application. Repeated STOPs add none (D7).
    let expected = if row.deferred { 2 } else { 1 };
    assert_eq!(
        notes.len(),
        expected,
        "{}: STOP notifications: {notes:?}",
        row.name
    );
    // The same item can start afresh (TC-13): its key is released. Until it
    // does, the key still shows this task, cancelled.
    let v = show(&dir, KEY).expect("the key finds the cancelled task");
    assert_eq!(v["task"]["stage"], "cancelled", "{}", row.name);
    assert!(
        v["task"]["work_item_id"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{KEY}#cancelled-")),
        "{}: the key is free",
        row.name
    );
}

#[test]
fn stop_at_every_stage() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, row) in rows().iter().enumerate() {
        eprintln!("STOP row {i}: {}", row.name);
        check_row(tmp.path(), i, row);
    }
}

#[test]
fn stop_with_the_kill_switch_off_is_inert() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "off", |c| {
        apply(
            c.replace("[queue]", "[features]\nstop_status = false\n\n[queue]"),
            &[(ANALYST, HANG)],
        )
    });
    let serve = Serve::start(&dir);
    serve.wait_listening();
    ok(
        &dir,
        &["task", "add", "--repo", "demo", "--title", "x", "--id", KEY],
    );
    wait::task(&dir, KEY, WAIT, "analyst running", |v| {
        running(v, "analyst")
    });
    let r = stop(&dir, KEY);
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["note"], "disabled", "{r}");
    // The engine's ticker looked at the task twice more: no STOP happened.
    common::http::Api::of(&dir).wait_for_passes("orch_ticker_passes_total", 2);
    let v = show(&dir, KEY).unwrap();
    assert_eq!(stage(&v), "analysis", "the task goes on");
    assert!(running(&v, "analyst"), "the agent still runs");
    drop(serve);
    // The agent was left running on purpose; end it with the test.
    for (pid, _) in common::processes_under(&dir) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}
