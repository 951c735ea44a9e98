//! The `orch` binary end to end in an empty folder: the acceptance flow,
//! JSON output, and exit codes (0 ok, 2 usage/config, 1 runtime).

use std::path::Path;
use std::process::{Command, Output};

fn orch(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .env_remove("ORCH_STORE__URL")
        .output()
        .expect("run orch")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = orch(dir, args);
    assert!(
        out.status.success(),
        "orch {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn init_migrate_twice_add_and_list_in_an_empty_folder() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    assert!(d.join("orch.toml").is_file());
    ok(d, &["db", "migrate"]);
    ok(d, &["db", "migrate"]);
    ok(d, &["task", "add", "--repo", "demo", "--title", "x"]);
    let listed: serde_json::Value =
        serde_json::from_str(&ok(d, &["task", "list", "--json"])).unwrap();
    let tasks = listed.as_array().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["repo"], "demo");
    assert_eq!(tasks[0]["stage"], "analysis");
    assert_eq!(tasks[0]["work_item_id"], "DEMO-1");
    assert!(
        d.join(".orch/orch.db").is_file(),
        "the SQLite file lives under .orch/"
    );
}

/// `orch task wait` with no engine running: it reads the store (no engine,
/// no signal: it looks again every 250 ms), answers at once when the task
/// is there, and exits 1 at its timeout saying where the task is.
#[test]
fn task_wait_without_an_engine() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    ok(
        d,
        &[
            "task", "add", "--repo", "demo", "--title", "x", "--id", "W-1",
        ],
    );
    let out = ok(d, &["task", "wait", "W-1", "--stage", "analysis"]);
    assert!(out.contains("W-1") && out.contains("[analysis]"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&ok(
        d,
        &[
            "task", "wait", "W-1", "--stage", "done", "--stage", "analysis", "--json",
        ],
    ))
    .unwrap();
    assert_eq!(json["stage"], "analysis");

    let started = std::time::Instant::now();
    let late = orch(
        d,
        &["task", "wait", "W-1", "--stage", "done", "--timeout", "1"],
    );
    assert_eq!(late.status.code(), Some(1));
    let err = String::from_utf8_lossy(&late.stderr);
    assert!(
        err.contains("still in analysis after 1s, not in done"),
        "{err}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    // By default it waits for a terminal stage.
    let late = orch(d, &["task", "wait", "W-1", "--timeout", "0"]);
    assert_eq!(late.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&late.stderr).contains("a terminal stage"),
        "{}",
        String::from_utf8_lossy(&late.stderr)
    );
    let bad = orch(d, &["task", "wait", "W-1", "--stage", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--stage"));
    let missing = orch(d, &["task", "wait", "W-9", "--timeout", "0"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn show_status_and_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    ok(
        d,
        &[
            "task", "add", "--repo", "demo", "--title", "First", "--id", "ORCH-1",
        ],
    );
    let second: serde_json::Value = serde_json::from_str(&ok(
        d,
        &[
            "task",
            "add",
            "--repo",
            "demo",
            "--title",
            "Second",
            "--id",
            "ORCH-2",
            "--depends-on",
            "1",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(second["branch"], "feature/ORCH-2-second");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(d, &["task", "show", "ORCH-2", "--json"])).unwrap();
    assert_eq!(shown["depends_on"], serde_json::json!([1]));
    assert_eq!(shown["events"][0]["kind"], "created");
    let human = ok(d, &["task", "show", "2"]);
    assert!(
        human.contains("ORCH-2") && human.contains("depends on: 1"),
        "{human}"
    );
    let status: serde_json::Value = serde_json::from_str(&ok(d, &["status", "--json"])).unwrap();
    for key in [
        "counts",
        "serial_gate",
        "task_deps",
        "auto_labels",
        "recent",
        "stop",
    ] {
        assert!(status.get(key).is_some(), "status has {key}");
    }
    assert_eq!(status["task_deps"]["waiting"][0]["task_id"], 2);
    assert_eq!(status["counts"]["tasks"]["analysis"], 2);
    assert_eq!(status["stop"]["enabled"], true);
    assert!(ok(d, &["status"]).contains("task 2 waits for 1"));
}

#[test]
fn exit_codes_and_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    let code = |args: &[&str]| orch(d, args).status.code();
    let err = |args: &[&str]| String::from_utf8_lossy(&orch(d, args).stderr).into_owned();
    assert_eq!(code(&["bogus"]), Some(2), "unknown command");
    assert_eq!(code(&["init"]), Some(2), "init refuses to overwrite");
    assert!(err(&["init"]).contains("--force"));
    assert_eq!(code(&["init", "--force"]), Some(0));
    assert_eq!(
        code(&["task", "add", "--repo", "nope", "--title", "x"]),
        Some(2)
    );
    assert!(err(&["task", "add", "--repo", "nope", "--title", "x"]).contains("[[repos]]"));
    assert_eq!(
        code(&[
            "task", "add", "--repo", "demo", "--title", "x", "--id", "../x"
        ]),
        Some(2)
    );
    assert_eq!(code(&["task", "list", "--stage", "bogus"]), Some(2));
    assert_eq!(
        code(&["task", "show", "99"]),
        Some(1),
        "not found is a runtime error"
    );
    assert_eq!(
        code(&[
            "task", "add", "--repo", "demo", "--title", "x", "--id", "K-1"
        ]),
        Some(0)
    );
    assert_eq!(
        code(&[
            "task", "add", "--repo", "demo", "--title", "x", "--id", "K-1"
        ]),
        Some(2),
        "duplicate key"
    );
    assert_eq!(code(&["--config", "missing.toml", "status"]), Some(2));
    assert!(err(&["--config", "missing.toml", "status"]).contains("orch init"));
    std::fs::write(d.join("bad.toml"), "[queue]\nmax_attempts = 0\n").unwrap();
    assert_eq!(code(&["--config", "bad.toml", "status"]), Some(2));
    assert!(
        err(&["--config", "bad.toml", "status"]).contains("queue.max_attempts"),
        "the message names the key"
    );
    std::fs::write(d.join("typo.toml"), "[queue]\nmax_atempts = 2\n").unwrap();
    assert!(err(&["--config", "typo.toml", "status"]).contains("max_atempts"));
}

#[test]
fn environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .args(["db", "migrate"])
        .current_dir(d)
        .env("ORCH_STORE__URL", "sqlite://elsewhere/o.db")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        d.join("elsewhere/o.db").is_file(),
        "ORCH_STORE__URL moved the database"
    );
}

/// `orch monitor` runs an agent under the monitor and records its exit status
/// (the monitor itself exits 0 once exit.json is written).
#[test]
fn monitor_subcommand_records_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orch"))
        .arg("monitor")
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--", "/bin/sh", "-c", "echo hello; exit 3"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("exit.json")).unwrap()).unwrap();
    assert_eq!(exit["exit_code"], 3);
    assert!(
        std::fs::read_to_string(run_dir.join("output.log"))
            .unwrap()
            .contains("hello")
    );
    assert_eq!(
        orch(dir.path(), &["monitor"]).status.code(),
        Some(2),
        "missing arguments are a usage error"
    );
}

/// A reader that goes away (`orch task list | head -1`) ends the command
/// quietly with success: no panic on stderr, whichever command printed.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(d, &["init"]);
    ok(d, &["task", "add", "--repo", "demo", "--title", "x"]);
    for args in [
        &["task", "list"][..],
        &["task", "list", "--json"],
        &["status"],
        &["gc"],
        &["node", "list"],
    ] {
        // A pipe whose reader is gone before orch starts: its first write
        // fails with EPIPE (SIGPIPE is ignored by Rust programs).
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let out = Command::new(env!("CARGO_BIN_EXE_orch"))
            .args(args)
            .current_dir(d)
            .env_remove("ORCH_CONFIG")
            .env_remove("ORCH_STORE__URL")
            .stdout(std::process::Stdio::from(write))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "orch {args:?} with its reader gone: {:?}\n{stderr}",
            out.status
        );
    }
}
