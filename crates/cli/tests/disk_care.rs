//! Disk care through the `orch` binary (issue 12, point 4): a task whose
//! worktree outgrows `limits.worktree_mb` parks with the figure, and
//! `orch gc` shows the space and frees build outputs, keeping the work.

mod common;

use common::{Serve, ok, quickstart_project, wait_for};
use std::path::Path;
use std::time::Duration;

/// An analyst that first writes `mb` MB of build output into an ignored
/// `target/` of its worktree (and a note it keeps), then does its work.
fn fat_analyst(dir: &Path, mb: u32) {
    let script = format!(
        "#!/bin/sh\nset -e\nmkdir -p target/debug\n\
         head -c {} /dev/urandom > target/debug/big.bin\n\
         grep -qx 'target/' .gitignore 2>/dev/null || echo 'target/' >> .gitignore\n\
         echo 'keep me' > NOTES.md\n\
         exec \"$(dirname \"$0\")/analyst.sh\" \"$@\"\n",
        mb * 1024 * 1024
    );
    let path = dir.join("examples/agents/fat.sh");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn parked_why(v: &serde_json::Value) -> String {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["kind"] == "needs_attention")
        .map(|e| e["message"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn a_worktree_over_the_limit_parks_the_task_with_the_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        let c = c.replace("examples/agents/analyst.sh", "examples/agents/fat.sh");
        format!("{c}\n[limits]\nworktree_mb = 2\n")
    });
    fat_analyst(&dir, 3);
    let _serve = Serve::start(&dir);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Fat", "--id", "DEMO-2",
        ],
    );
    let parked = wait_for(&dir, "DEMO-2", Duration::from_secs(60), "parked", |v| {
        v["task"]["stage"] == "needs_attention"
    });
    let why = parked_why(&parked);
    assert!(
        why.starts_with("its worktree takes ") && why.contains("over limits.worktree_mb = 2 MB"),
        "{why}"
    );
    // The figure (maybe a lower bound: the walk stops just past the limit).
    let figure: u64 = why["its worktree takes ".len()..]
        .trim_start_matches("≥ ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no figure in {why}"));
    assert!((3..=5).contains(&figure), "{why}");
}
