//! CLI progress without a terminal: `orch quickstart` writes plain lines (no
//! spinner redraws), `orch task logs [-f]` prints a run's output and ends
//! when the task has, and `orch status --watch` appends snapshots.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");

fn orch(dir: &Path, args: &[&str]) -> Output {
    Command::new(ORCH)
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run orch")
}

fn text(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn progress_logs_and_watch_without_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    let qs = text(&orch(
        tmp.path(),
        &["quickstart", "--auto", dir.to_str().unwrap()],
    ));
    assert!(qs.contains("done in"), "{qs}");
    assert!(
        !qs.contains('\x1b') && !qs.contains('\r'),
        "no redraws into a pipe: {qs:?}"
    );

    // The latest run's log, then exit.
    let runs: serde_json::Value =
        serde_json::from_str(&text(&orch(&dir, &["task", "show", "DEMO-1", "--json"]))).unwrap();
    let last = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|r| r["started_at"].as_i64())
        .unwrap()
        .clone();
    let expected = std::fs::read_to_string(last["log_path"].as_str().unwrap()).unwrap();
    let logs = text(&orch(&dir, &["task", "logs", "DEMO-1"]));
    assert_eq!(logs, expected);
    // -f on a finished task prints the latest run, then stops: the task is done.
    let followed = text(&orch(&dir, &["task", "logs", "1", "-f"]));
    assert!(followed.contains(expected.trim_end()), "{followed}");
    assert!(followed.ends_with("--- task 1 is done ---\n"), "{followed}");
    let missing = orch(&dir, &["task", "logs", "NOPE-1"]);
    assert!(!missing.status.success());

    // --watch into a pipe: snapshots appended, no screen clearing.
    let mut child = Command::new(ORCH)
        .args(["status", "--watch", "0.2"])
        .current_dir(&dir)
        .env_remove("ORCH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Two snapshots read, then Ctrl-C: the test waits on its output.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut watched = String::new();
    while watched.matches("jobs:").count() < 2 {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() == 0 {
            break;
        }
        watched.push_str(&line);
    }
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    std::io::Read::read_to_string(&mut stdout, &mut watched).unwrap();
    assert!(child.wait().is_ok());
    assert!(
        watched.matches("jobs:").count() >= 2,
        "several snapshots: {watched}"
    );
    assert!(!watched.contains('\x1b'), "{watched:?}");
    let bad = orch(&dir, &["status", "--watch", "0"]);
    assert_eq!(bad.status.code(), Some(2));
}
