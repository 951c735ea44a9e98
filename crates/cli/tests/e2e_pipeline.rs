//! End to end through the `orch` binary on real git: `orch quickstart --auto`,
//! then `orch serve` driven by the CLI — the rejection loop, the review loop,
//! a dependent task, and two tasks of one repo that never merge at once.

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const DEADLINE: Duration = Duration::from_secs(180);

fn orch(dir: &Path, args: &[&str]) -> Output {
    Command::new(ORCH)
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run orch")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = orch(dir, args);
    assert!(
        out.status.success(),
        "orch {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn show(dir: &Path, key: &str) -> Value {
    serde_json::from_str(&ok(dir, &["task", "show", key, "--json"])).unwrap()
}

/// `orch task wait KEY --stage STAGE`: woken by the engine's changes
/// (`GET /api/changes`), no polling here; then the task as `task show` gives it.
fn wait_stage(dir: &Path, key: &str, stage: &str) -> Value {
    let timeout = DEADLINE.as_secs().to_string();
    let out = orch(
        dir,
        &[
            "task",
            "wait",
            key,
            "--stage",
            stage,
            "--timeout",
            &timeout,
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{key} never reached {stage}: {}\n{:#}",
        String::from_utf8_lossy(&out.stderr),
        show(dir, key)["events"]
    );
    let waited: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(waited["stage"], stage, "{waited:#}");
    show(dir, key)
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn events_of(v: &Value, kind: &str) -> Vec<Value> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn quickstart_auto_reaches_done_with_the_change_merged_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    let started = Instant::now();
    let out = ok(tmp.path(), &["quickstart", "--auto", dir.to_str().unwrap()]);
    assert!(out.contains("done in"), "{out}");
    eprintln!("quickstart took {:?}", started.elapsed());
    let listed: Value = serde_json::from_str(&ok(&dir, &["task", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["stage"], "done");
    let v = show(&dir, "1");
    assert_eq!(events_of(&v, "merged").len(), 1, "merged exactly once");
    assert_eq!(
        events_of(&v, "changes_requested").len(),
        1,
        "the review loop ran once"
    );
    let remote = dir.join("remotes/demo.git");
    let log = git(&remote, &["log", "--format=%s", "main"]);
    assert!(log.contains("feat(DEMO-1)"), "{log}");
    let file = git(&remote, &["show", "main:work/DEMO-1.md"]);
    assert!(file.contains("Tests: added"), "{file}");
    // The feature branch was merged, then deleted on the remote.
    assert!(
        git(&remote, &["branch", "--list", "feature/*"])
            .trim()
            .is_empty()
    );
}

#[test]
fn serve_runs_rejection_loop_dependencies_and_one_merge_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    ok(tmp.path(), &["quickstart", "--auto", dir.to_str().unwrap()]);
    let _serve = Serve(
        Command::new(ORCH)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let a: Value = serde_json::from_str(&ok(
        &dir,
        &[
            "task",
            "add",
            "--repo",
            "demo",
            "--title",
            "Rejected once",
            "--id",
            "DEMO-2",
            "--json",
        ],
    ))
    .unwrap();
    let a_id = a["id"].to_string();
    ok(
        &dir,
        &[
            "task",
            "add",
            "--repo",
            "demo",
            "--title",
            "Waits for DEMO-2",
            "--id",
            "DEMO-3",
            "--depends-on",
            &a_id,
        ],
    );
    // Rejection loop.
    wait_stage(&dir, "DEMO-2", "awaiting_approval");
    assert!(
        show(&dir, "DEMO-3")["runs"].as_array().unwrap().is_empty(),
        "a dependent task waits for its dependency"
    );
    let refused = orch(&dir, &["task", "reject", "DEMO-2"]);
    assert_eq!(refused.status.code(), Some(2), "reject needs a comment");
    ok(
        &dir,
        &[
            "task",
            "reject",
            "DEMO-2",
            "--comment",
            "Say more about the edge cases",
        ],
    );
    let v = show(&dir, "DEMO-2");
    assert_eq!(v["task"]["stage"], "analysis");
    wait_stage(&dir, "DEMO-2", "awaiting_approval");
    ok(&dir, &["task", "approve", "DEMO-2"]);
    let v = wait_stage(&dir, "DEMO-2", "done");
    let analysts = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["agent"] == "analyst")
        .count();
    assert_eq!(analysts, 2, "the analyst ran again after the rejection");
    // The dependent task runs once its dependency is done.
    wait_stage(&dir, "DEMO-3", "awaiting_approval");
    ok(&dir, &["task", "approve", "DEMO-3"]);
    wait_stage(&dir, "DEMO-3", "done");

    // Two independent tasks approved together: their merges never overlap.
    for key in ["DEMO-4", "DEMO-5"] {
        ok(
            &dir,
            &["task", "add", "--repo", "demo", "--title", key, "--id", key],
        );
    }
    for key in ["DEMO-4", "DEMO-5"] {
        wait_stage(&dir, key, "awaiting_approval");
    }
    for key in ["DEMO-4", "DEMO-5"] {
        ok(&dir, &["task", "approve", key]);
    }
    let windows: Vec<(i64, i64)> = ["DEMO-4", "DEMO-5"]
        .iter()
        .map(|k| {
            let v = wait_stage(&dir, k, "done");
            let from = events_of(&v, "lease_acquired")[0]["at"].as_i64().unwrap();
            let to = events_of(&v, "merged")[0]["at"].as_i64().unwrap();
            (from, to)
        })
        .collect();
    let (a, b) = (windows[0], windows[1]);
    assert!(
        a.1 <= b.0 || b.1 <= a.0,
        "merge windows overlap: {windows:?}"
    );
    let log = git(
        &dir.join("remotes/demo.git"),
        &["log", "--format=%s", "main"],
    );
    for key in ["DEMO-2", "DEMO-3", "DEMO-4", "DEMO-5"] {
        assert!(
            log.contains(&format!("feat({key})")),
            "{key} not merged: {log}"
        );
    }
}
