//! Through the binary: a stopped task's archive is listed by `orch task show`
//! (text and JSON, with the files it changed against the base), and `orch task
//! restore` makes a branch from it on the remote that holds the task's work.

mod common;

use common::{Serve, git, ok, orch, quickstart_project, wait};
use serde_json::Value;
use std::time::Duration;

#[test]
fn a_stopped_tasks_archive_is_listed_with_its_files_and_restored_to_a_branch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "stopped", |cfg| cfg);
    let serve = Serve::start(&dir);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Stop me", "--id", "DEMO-2",
        ],
    );
    wait::task(
        &dir,
        "DEMO-2",
        Duration::from_secs(120),
        "analysis done",
        |v| v["task"]["stage"] == "awaiting_approval",
    );
    ok(&dir, &["task", "stop", "DEMO-2"]);
    let v: Value = wait::task(&dir, "DEMO-2", Duration::from_secs(60), "cancelled", |v| {
        v["task"]["stage"] == "cancelled"
    });
    drop(serve);

    let newest = v["archives"]
        .as_array()
        .unwrap()
        .last()
        .cloned()
        .expect("an archive");
    assert_eq!(
        newest["ref_name"],
        format!("refs/orch/archive/DEMO-2/{}", newest["number"])
    );
    let files: Vec<&str> = newest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("docs/work-items/DEMO-2/")),
        "the analyst's artefacts: {files:?}"
    );
    let text = ok(&dir, &["task", "show", "DEMO-2"]);
    assert!(text.contains("archives (restore one with"), "{text}");
    assert!(text.contains("docs/work-items/DEMO-2/"), "{text}");

    let out = ok(&dir, &["task", "restore", "DEMO-2", "--json"]);
    let r: Value = serde_json::from_str(&out).unwrap();
    let branch = r["branch"].as_str().unwrap().to_owned();
    assert_eq!(branch, format!("restore/DEMO-2-{}", newest["number"]));
    let remote = dir.join("remotes/demo.git");
    let on_remote = git(&remote, &["rev-parse", &format!("refs/heads/{branch}")]);
    assert_eq!(on_remote.trim(), newest["commit"].as_str().unwrap());
    let tree = git(&remote, &["ls-tree", "-r", "--name-only", &branch]);
    assert!(
        tree.contains("docs/work-items/DEMO-2/"),
        "the task's work: {tree}"
    );

    // Restoring again is idempotent; a missing number is a usage error naming
    // those that exist.
    ok(&dir, &["task", "restore", "DEMO-2"]);
    let missing = orch(&dir, &["task", "restore", "DEMO-2", "99"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no archive 99"), "{err}");
}
