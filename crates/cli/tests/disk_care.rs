//! Disk care through the `orch` binary (issue 12, point 4): a task whose
//! worktree outgrows `limits.worktree_mb` parks with the figure, and
//! `orch gc` shows the space and frees build outputs, keeping the work.

mod common;

use common::{Serve, last_message, ok, quickstart_project, wait};
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
    let parked = wait::task(&dir, "DEMO-2", Duration::from_secs(60), "parked", |v| {
        v["task"]["stage"] == "needs_attention"
    });
    let why = last_message(&parked, "needs_attention");
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

#[test]
fn gc_shows_the_space_and_frees_build_outputs_keeping_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        c.replace("examples/agents/analyst.sh", "examples/agents/fat.sh")
    });
    fat_analyst(&dir, 3);
    let serve = Serve::start(&dir);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Fat", "--id", "DEMO-2",
        ],
    );
    // The analysis is done: the task waits for a person, no job is active.
    let waiting = wait::task(&dir, "DEMO-2", Duration::from_secs(60), "analysed", |v| {
        v["task"]["stage"] == "awaiting_approval"
    });
    drop(serve);
    let task = waiting["task"]["id"].as_i64().unwrap();

    // Shown: the mirror and the worktree with its build output; not idle
    // for 24 h yet, so nothing is freeable by default.
    let shown = ok(&dir, &["gc"]);
    assert!(shown.contains("mirror (with archives)"), "{shown}");
    assert!(shown.contains("worktree feature+DEMO-2"), "{shown}");
    assert!(shown.contains("total "), "{shown}");
    let json: serde_json::Value = serde_json::from_str(&ok(&dir, &["gc", "--json"])).unwrap();
    let wt = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["task"] == task)
        .unwrap_or_else(|| panic!("no worktree of task {task}: {json:#}"))
        .clone();
    assert!(wt["build_outputs"].as_u64().unwrap() >= 3 << 20, "{wt}");
    assert_eq!(wt["freeable"], false, "idle for less than a day: {wt}");
    let path = std::path::PathBuf::from(wt["path"].as_str().unwrap());
    assert!(path.join("target/debug/big.bin").is_file());
    // Work the agent left that git does not ignore.
    std::fs::write(path.join("UNTRACKED.md"), "mine\n").unwrap();

    // Freed on demand, with any idle time.
    let applied = ok(&dir, &["gc", "--apply", "--idle-hours", "0"]);
    assert!(applied.contains("freed: build outputs "), "{applied}");
    assert!(
        !path.join("target").exists(),
        "the ignored target/ is removed"
    );
    assert_eq!(
        std::fs::read_to_string(path.join("NOTES.md")).unwrap(),
        "keep me\n",
        "the agent's tracked work is kept"
    );
    assert!(
        path.join("UNTRACKED.md").is_file(),
        "untracked work is kept"
    );
    let after = common::show(&dir, "DEMO-2").unwrap();
    assert_eq!(
        common::count_events(&after, "build_outputs_removed"),
        1,
        "{after:#}"
    );
    assert_eq!(after["task"]["stage"], "awaiting_approval");
    // Nothing left to free.
    let json: serde_json::Value =
        serde_json::from_str(&ok(&dir, &["gc", "--json", "--idle-hours", "0"])).unwrap();
    assert_eq!(json["freeable_bytes"], 0, "{json:#}");

    // A finished task whose worktree stayed (its removal failed when it
    // ended; here the task is marked failed behind orch's back): the whole
    // worktree is freeable, and `--apply` archives the work, then removes it.
    let db = format!("sqlite://{}", dir.join(".orch/orch.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
        sqlx::query("UPDATE tasks SET stage = 'failed' WHERE id = ?")
            .bind(task)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let json: serde_json::Value =
        serde_json::from_str(&ok(&dir, &["gc", "--json", "--idle-hours", "0"])).unwrap();
    let left = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["task"] == task)
        .unwrap_or_else(|| panic!("the leftover worktree is listed: {json:#}"))
        .clone();
    assert_eq!(left["freeable"], true, "{left}");
    let applied = ok(&dir, &["gc", "--apply", "--idle-hours", "0"]);
    assert!(applied.contains("worktree"), "{applied}");
    assert!(!path.exists(), "the leftover worktree is removed");
    let after = common::show(&dir, "DEMO-2").unwrap();
    assert_eq!(
        common::count_events(&after, "archived"),
        1,
        "its work is archived first: {after:#}"
    );
}
