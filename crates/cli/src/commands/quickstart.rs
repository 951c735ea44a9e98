//! `orch quickstart [--auto] [DIR]`: the whole pipeline on the embedded
//! defaults, in one command. It makes a sample repository with a bare remote,
//! an `orch.toml` using the example agents, adds a work item and drives it
//! through every gate, printing each step; then it sums up what happened.

use super::serve::Engine;
use crate::args::QuickstartArgs;
use crate::error::{CliError, CliResult};
use anyhow::Context;
use orch_core::pipeline::Gate;
use orch_core::{Stage, Timestamp};
use orch_store::TrackerItem;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "DEMO-1";

fn config_text() -> String {
    format!(
        r#"# orch.toml written by `orch quickstart`. `orch init` writes one that
# documents every key. Agents are the example scripts in examples/agents/; to
# use Claude Code or Codex, set [agents.<kind>] adapter and command (README).
data_dir = ".orch"

[queue]
poll_ms = 200
max_attempts = 2

[queue.retry]
base_secs = 1
cap_secs = 5

[stop]
grace_int_secs = 2
grace_term_secs = 2

[[repos]]
name = "demo"
remote = "remotes/demo.git"
default_branch = "main"
verify = ["sh", "scripts/verify.sh"]

[agents.analyst]
command = ["examples/agents/analyst.sh"]
timeout_secs = 300
idle_timeout_secs = 120

[agents.developer]
command = ["examples/agents/developer.sh"]
timeout_secs = 300
idle_timeout_secs = 120

[agents.reviewer]
command = ["examples/agents/reviewer.sh"]
timeout_secs = 300
idle_timeout_secs = 120

[agents.merger]
timeout_secs = 300
idle_timeout_secs = 120
{}"#,
        ""
    )
}

const VERIFY: &str = "#!/bin/sh\n# The repo's check before a merge: every work note must have a title line.\nset -e\nfor f in work/*.md; do\n  [ -e \"$f\" ] || continue\n  head -n 1 \"$f\" | grep -q . || { echo \"$f has no title\"; exit 1; }\ndone\necho \"verify: ok\"\n";

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=orch quickstart",
            "-c",
            "user.email=quickstart@localhost",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run git {}; is git installed?", args.join(" ")))?;
    if !out.status.success() {
        anyhow::bail!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A sample repository: a bare remote with one commit on `main`.
fn make_sample_repo(dir: &Path) -> anyhow::Result<()> {
    let remote = dir.join("remotes/demo.git");
    std::fs::create_dir_all(&remote)?;
    git(&remote, &["init", "--quiet", "--bare", "-b", "main"])?;
    let seed = tempfile::tempdir()?;
    let s = seed.path();
    git(s, &["init", "--quiet", "-b", "main"])?;
    std::fs::write(
        s.join("README.md"),
        "# demo\n\nA sample repository for `orch quickstart`.\n",
    )?;
    std::fs::create_dir_all(s.join("scripts"))?;
    std::fs::write(s.join("scripts/verify.sh"), VERIFY)?;
    git(s, &["add", "-A"])?;
    git(s, &["commit", "--quiet", "-m", "initial commit"])?;
    git(
        s,
        &[
            "push",
            "--quiet",
            remote.to_str().context("non-UTF-8 path")?,
            "main",
        ],
    )?;
    Ok(())
}

pub async fn run(a: &QuickstartArgs) -> CliResult {
    let started = Instant::now();
    let dir = &a.dir;
    if dir.join(orch_config::DEFAULT_FILE).exists() {
        return Err(CliError::Usage(format!(
            "{} already holds an orch.toml; run the quickstart in a new folder, e.g. `orch quickstart {}-2`",
            dir.display(),
            dir.display()
        )));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let progress = crate::progress::Progress::new(started);
    let say = |msg: &str| progress.say(msg);

    make_sample_repo(&dir)?;
    say("sample repository created: remotes/demo.git (main)");
    crate::examples::write_agents(&dir)?;
    let cfg_path = dir.join(orch_config::DEFAULT_FILE);
    std::fs::write(&cfg_path, config_text())
        .with_context(|| format!("cannot write {}", cfg_path.display()))?;
    let cfg = super::load_config(Some(&cfg_path))?;
    say("orch.toml written (SQLite under .orch/, builtin tracker, local forge, example agents)");

    let store = super::open_store(&cfg).await?;
    store
        .create_item(&TrackerItem {
            id: KEY.into(),
            project: "demo".into(),
            title: "Add a greeting".into(),
            body: "Greet the user by name on start-up.".into(),
            state: "Backlog".into(),
            labels: Vec::new(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        })
        .await?;
    let engine = Engine::start(&cfg, store.clone()).await?;
    let pipeline = engine.pipeline.clone();
    let start = pipeline
        .start_item(KEY)
        .await
        .map_err(super::task::pipeline_err)?;
    let id = start.task;
    say(&format!(
        "work item {KEY} moved to To Analyse: task {id}, analyst queued"
    ));

    let mut last: Option<Stage> = None;
    let mut last_event = 0;
    let mut told = false;
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Some(task) = store.get_task(id).await? else {
            break Err(anyhow::anyhow!("task {id} vanished"));
        };
        let seen = last_event;
        for e in store.events(id).await?.into_iter().filter(|e| e.id > seen) {
            last_event = e.id;
            if matches!(e.kind.as_str(), "created" | "comment") {
                continue;
            }
            say(&format!("{:<17} {}", e.kind, e.message));
        }
        if last != Some(task.stage) {
            last = Some(task.stage);
            told = false;
        }
        progress.status(format!("{KEY} is in {}", task.stage));
        match task.stage {
            Stage::AwaitingApproval if a.auto => {
                pipeline
                    .gate(
                        id,
                        Gate::Approve,
                        Some("approved by orch quickstart --auto"),
                    )
                    .await
                    .map_err(super::task::pipeline_err)?;
            }
            Stage::AwaitingApproval if !told => {
                told = true;
                say(&format!(
                    "waiting for a person: read {}/.orch/repos/worktrees/demo/… or the docs, then in another terminal:\n          cd {} && orch task approve {KEY}     (or: orch task reject {KEY} --comment \"…\")",
                    dir.display(),
                    dir.display()
                ));
            }
            Stage::Done => break Ok(task),
            Stage::Failed | Stage::Cancelled => {
                break Err(anyhow::anyhow!("the task ended {}", task.stage));
            }
            Stage::NeedsAttention if a.auto => {
                break Err(anyhow::anyhow!(
                    "the task needs a person; `orch task show {KEY}` says why"
                ));
            }
            _ => {}
        }
    };
    progress.finish();
    engine.shutdown();
    let task = outcome.map_err(CliError::Runtime)?;
    let merged = git(&dir.join("remotes/demo.git"), &["log", "--oneline", "main"])?;
    let usage = store.task_usage(id).await?;
    println!();
    println!(
        "done in {:.1}s: {KEY} went through every gate.",
        started.elapsed().as_secs_f64()
    );
    println!(
        "  task:     {} [{}] on {}",
        task.id, task.stage, task.branch
    );
    println!("  runs:     {}", store.runs_for_task(id).await?.len());
    println!(
        "  usage:    {} tokens, ${:.4}",
        usage.total_tokens(),
        usage.cost_usd
    );
    println!("  main of remotes/demo.git now:");
    for line in merged.lines() {
        println!("    {line}");
    }
    println!("  logs:     {}", cfg.runs_dir().display());
    println!(
        "next: cd {} && orch task show {KEY}   (every orch command there uses its orch.toml)",
        dir.display()
    );
    Ok(())
}
