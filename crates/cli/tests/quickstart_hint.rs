//! The hint `orch quickstart` ends with is a command that works for the
//! person who ran it (issue 15, point 13): run through `cargo run`, the
//! `orch` binary is not on their PATH, so the hint names it by its path.

mod common;

use common::ORCH;
use std::process::{Command, Stdio};

#[test]
fn the_quickstart_hint_runs_this_orch_when_it_is_not_on_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    // A PATH with git and a shell, but no orch (as after `cargo run`).
    let path = "/usr/local/bin:/usr/bin:/bin";
    assert!(
        !std::env::split_paths(path).any(|d| d.join("orch").exists()),
        "this test needs a PATH without orch"
    );
    let out = Command::new(ORCH)
        .args(["quickstart", "--auto", dir.to_str().unwrap()])
        .current_dir(tmp.path())
        .env_remove("ORCH_CONFIG")
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("next: "))
        .unwrap_or_else(|| panic!("no hint: {stdout}"));
    let command = hint.split("   (").next().unwrap();
    let exe = std::fs::canonicalize(ORCH).unwrap();
    assert!(
        command.contains(&format!("{} task show DEMO-1", exe.display())),
        "{hint}"
    );
    // The hint, run as printed by a shell with the same PATH, works.
    let ran = Command::new("sh")
        .args(["-c", command])
        .current_dir(tmp.path())
        .env_remove("ORCH_CONFIG")
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(
        ran.status.success(),
        "`{command}` failed: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(String::from_utf8_lossy(&ran.stdout).contains("DEMO-1"));
}

/// The test kit runs the `orch` binary cargo built for these tests: the
/// file beside the test executable is the one `CARGO_BIN_EXE_orch` names.
#[test]
fn the_test_kit_runs_the_orch_binary_cargo_built_for_the_tests() {
    assert_eq!(
        std::fs::canonicalize(common::binary()).unwrap(),
        std::fs::canonicalize(ORCH).unwrap()
    );
}
