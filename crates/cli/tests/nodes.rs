//! Nodes through the binary (issue 11): `orch serve --node NAME` records
//! itself and leads; `orch node drain` makes it claim nothing new (it says
//! so at its next heartbeat) while a task waits queued; `--resume` lets the
//! task go on.

mod common;

use common::http::Api;
use common::{Serve, ok, orch, quickstart_project, wait};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const KEY: &str = "DEMO-2";
const WAIT: Duration = Duration::from_secs(120);

fn nodes(dir: &Path) -> Value {
    serde_json::from_str(&ok(dir, &["node", "list", "--json"])).unwrap()
}

/// `orch node list`'s node `name` once it is in `state` (it says so at
/// its heartbeat, a write the engine signals: `common::wait`).
fn wait_node(dir: &Path, name: &str, state: &str) -> Value {
    common::wait::until(
        dir,
        WAIT,
        || {
            nodes(dir)["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["name"] == name && n["state"] == state)
                .cloned()
        },
        || format!("{name} never became {state}: {:#}", nodes(dir)),
    )
}

#[test]
fn a_drained_node_claims_nothing_until_it_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "nodes", |cfg| {
        cfg.replacen("poll_ms = 200\n", "poll_ms = 200\nheartbeat_secs = 1\n", 1)
    });
    // Quickstart's engine ran as a node too, and resigned the lead when it
    // ended: the new node leads at once, not after the lease.
    let before = nodes(&dir);
    assert_eq!(before["nodes"].as_array().unwrap().len(), 1, "{before:#}");
    assert_eq!(before["nodes"][0]["leader"], false, "{before:#}");
    let _serve = Serve::start_with(&dir, &[], &["--node", "alpha"]);
    let api = Api::of(&dir);
    let alpha = wait_node(&dir, "alpha", "active");
    assert_eq!(alpha["leader"], true, "the only node leads: {alpha}");

    ok(&dir, &["node", "drain", "alpha"]);
    wait_node(&dir, "alpha", "drained");
    ok(
        &dir,
        &["task", "add", "--repo", "demo", "--title", "x", "--id", KEY],
    );
    // The engine looked at its work twice more and claimed nothing.
    api.wait_for_passes("orch_ticker_passes_total", 2);
    let v = common::show(&dir, KEY).unwrap();
    assert_eq!(v["task"]["stage"], "analysis");
    let jobs = v["jobs"].as_array().unwrap();
    assert!(
        jobs.iter().all(|j| j["status"] == "queued"),
        "nothing claimed while drained: {jobs:#?}"
    );

    ok(&dir, &["node", "drain", "alpha", "--resume"]);
    wait::task(&dir, KEY, WAIT, "analysis after the resume", |v| {
        v["task"]["stage"] == "awaiting_approval"
    });
    wait_node(&dir, "alpha", "active");

    let unknown = orch(&dir, &["node", "drain", "nobody"]);
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("no node is named \"nobody\""), "{err}");
}
