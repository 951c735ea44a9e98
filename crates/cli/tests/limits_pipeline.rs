//! Through the binary (issue 12): with `[limits] memory_mb`, an analyst that
//! hogs memory is killed by the kernel at the limit, its attempts fail, and
//! the task says why in plain words.

mod common;

use common::{Serve, ok, quickstart_project, wait};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const KEY: &str = "DEMO-8";

#[test]
fn a_memory_hog_fails_its_attempts_and_the_task_says_it_hit_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "hog", |cfg| {
        format!("{cfg}\n[limits]\nmemory_mb = 32\npids = 256\n")
    });
    // `tail -n 1` keeps a newline-free stream whole: 400 MB against 32 MiB.
    let hog = dir.join("examples/agents/hog.sh");
    std::fs::write(
        &hog,
        "#!/bin/sh\nhead -c 400000000 /dev/zero | tail -n 1 > /dev/null\necho \"tail: $?\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&hog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg_path = dir.join("orch.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap().replace(
        r#"command = ["examples/agents/analyst.sh"]"#,
        r#"command = ["examples/agents/hog.sh"]"#,
    );
    assert!(cfg.contains("hog.sh"), "{cfg}");
    std::fs::write(&cfg_path, cfg).unwrap();

    let _serve = Serve::start(&dir);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Hog", "--id", KEY,
        ],
    );
    let v = wait::task(&dir, KEY, Duration::from_secs(120), "parked", |v| {
        let stage = v["task"]["stage"].as_str().unwrap_or_default();
        stage == "needs_attention" || stage == "failed"
    });
    let text = v.to_string();
    if text.contains("cannot set the run's resource limits")
        || text.contains("setting the run's resource limits")
    {
        eprintln!("SKIP: this machine cannot set a memory limit: {text}");
        return;
    }
    assert!(
        text.contains("killed at its memory limit") && text.contains("memory_mb = 32 MiB"),
        "{:#}",
        v["events"]
    );
}
