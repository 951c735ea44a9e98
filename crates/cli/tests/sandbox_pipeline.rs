//! Through the binary, with `[sandbox] mode = "namespaces"` (issue 12): the
//! example agents run sandboxed from analysis to done. The developer first
//! tries orch's database and a host that is not on its allowlist; neither is
//! reachable, the refused connection is an event on the task, and its work
//! (which its read-only git cannot commit) lands through orch's leftover
//! commit.

mod common;

use common::{Serve, add_task, git, ok, quickstart_project, wait};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const KEY: &str = "DEMO-7";

fn prying_developer(dir: &Path) -> String {
    let script = dir.join("examples/agents/prying-developer.sh");
    let db = dir.join(".orch/orch.db");
    std::fs::write(
        &script,
        format!(
            r#"#!/usr/bin/env bash
set -u
if cat '{db}' >/dev/null 2>&1; then echo "developer: read the database"; else echo "developer: no database here"; fi
curl -sS --max-time 5 -p -x "$HTTPS_PROXY" http://127.0.0.1:9/ >/dev/null 2>&1 || echo "developer: 127.0.0.1:9 refused"
# Long enough for the watcher's next heartbeat to log the refusal live.
sleep 3
exec "$(dirname "${{BASH_SOURCE[0]}}")/developer.sh"
"#,
            db = db.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script.display().to_string()
}

/// When the first run whose output holds `line` ended (`exit.json`).
fn finished_at(dir: &Path, line: &str) -> i64 {
    let mut ends: Vec<i64> = std::fs::read_dir(dir.join(".orch/runs"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("output.log")).is_ok_and(|o| o.contains(line))
        })
        .filter_map(|e| {
            let rec: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path().join("exit.json")).ok()?).ok()?;
            rec["finished_at"].as_i64()
        })
        .collect();
    ends.sort_unstable();
    *ends.first().expect("a finished run with that output")
}

fn run_outputs(dir: &Path) -> String {
    std::fs::read_dir(dir.join(".orch/runs"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("output.log")).ok())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

#[test]
fn sandboxed_example_agents_carry_a_task_to_done_and_refusals_are_events() {
    if let Err(why) = orch_agent::process::sandbox::probe().namespaces {
        eprintln!("SKIP: this machine cannot sandbox: {why}");
        return;
    }
    if !Path::new("/usr/bin/curl").exists() {
        eprintln!("SKIP: needs /usr/bin/curl");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "sandboxed", |cfg| cfg);
    let script = prying_developer(&dir);
    let cfg_path = dir.join("orch.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap().replace(
        r#"command = ["examples/agents/developer.sh"]"#,
        &format!("command = [{script:?}]"),
    );
    assert!(cfg.contains("prying-developer.sh"), "{cfg}");
    // The watcher looks for refusals on each heartbeat.
    let cfg = cfg.replace("poll_ms = 200", "poll_ms = 200\nheartbeat_secs = 1");
    assert!(cfg.contains("heartbeat_secs = 1"), "{cfg}");
    std::fs::write(
        &cfg_path,
        format!("{cfg}\n[sandbox]\nmode = \"namespaces\"\n"),
    )
    .unwrap();

    let _serve = Serve::start(&dir);
    add_task(&dir, KEY, "Sandboxed", &[]);
    wait::task(
        &dir,
        KEY,
        Duration::from_secs(120),
        "awaiting approval",
        |v| v["task"]["stage"] == "awaiting_approval",
    );
    ok(&dir, &["task", "approve", KEY]);
    let v = wait::task(&dir, KEY, Duration::from_secs(180), "done", |v| {
        let stage = v["task"]["stage"].as_str().unwrap_or_default();
        stage == "done" || stage == "needs_attention" || stage == "failed"
    });
    assert_eq!(
        v["task"]["stage"], "done",
        "the task parked or failed: {:#}",
        v["events"]
    );
    let outputs = run_outputs(&dir);
    assert!(outputs.contains("developer: no database here"), "{outputs}");
    assert!(
        outputs.contains("developer: 127.0.0.1:9 refused"),
        "{outputs}"
    );
    assert!(
        outputs.contains("the repository is read-only here (sandboxed)"),
        "{outputs}"
    );
    let refused: Vec<&serde_json::Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "egress_refused")
        .collect();
    // One per developer run (the example reviewer asks for one round of changes).
    assert!(!refused.is_empty(), "{:#}", v["events"]);
    for e in &refused {
        assert!(
            e["message"].as_str().unwrap().contains("127.0.0.1:9"),
            "{e:#}"
        );
    }
    // Logged while the agent still ran (it sleeps 3 s after the refusal;
    // the watcher looks on every heartbeat, here each second).
    let first_end = finished_at(&dir, "developer: 127.0.0.1:9 refused");
    assert!(
        refused[0]["at"].as_i64().unwrap() < first_end,
        "the refusal was logged only at the run's end ({first_end}): {:#}",
        refused[0]
    );
    let remote = dir.join("remotes/demo.git");
    let files = git(&remote, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files.contains(&format!("work/{KEY}.md")), "{files}");
}
