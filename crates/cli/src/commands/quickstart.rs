//! `orch quickstart [--auto] [DIR]`: the whole pipeline on the embedded
//! defaults, in one command. It makes a sample repository with a bare remote,
//! an `orch.toml` using the example agents, adds a work item and drives it
//! through every gate, printing each step; then it sums up what happened.

use super::serve::Engine;
use crate::args::QuickstartArgs;
use crate::error::{CliError, CliResult};
use crate::output::outln;
use anyhow::Context;
use orch_core::pipeline::Gate;
use orch_core::{Stage, Timestamp};
use orch_store::TrackerItem;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "DEMO-1";

/// The command that runs this `orch` again for the person who ran it: `orch`
/// when that name on their PATH is this very binary, else its absolute path
/// (run through `cargo run`, `target/release` is not on the PATH).
fn orch_command() -> String {
    let exe = std::env::current_exe().ok();
    command_for(exe.as_deref(), std::env::var_os("PATH").as_deref())
}

fn command_for(exe: Option<&Path>, path: Option<&OsStr>) -> String {
    let Some(exe) = exe.map(|e| e.canonicalize().unwrap_or_else(|_| e.to_path_buf())) else {
        return "orch".into();
    };
    // The first `orch` on the PATH is the one a shell would run.
    let first: Option<PathBuf> = path
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("orch"))
        .find(|c| c.is_file());
    match first.and_then(|c| c.canonicalize().ok()) {
        Some(found) if found == exe => "orch".into(),
        _ => shell_word(&exe.display().to_string()),
    }
}

/// A path as one shell word: quoted when it holds anything but the plainest
/// characters.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

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
    let orch = orch_command();

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
    let engine = Engine::start(&cfg, store.clone(), None, None, None).await?;
    let pipeline = engine.pipeline().clone();
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
                    "waiting for a person: read {}/.orch/repos/worktrees/demo/… or the docs, then in another terminal:\n          cd {} && {orch} task approve {KEY}     (or: {orch} task reject {KEY} --comment \"…\")",
                    dir.display(),
                    shell_word(&dir.display().to_string())
                ));
            }
            Stage::Done => break Ok(task),
            Stage::Failed | Stage::Cancelled => {
                break Err(anyhow::anyhow!("the task ended {}", task.stage));
            }
            Stage::NeedsAttention if a.auto => {
                break Err(anyhow::anyhow!(
                    "the task needs a person; `cd {} && {orch} task show {KEY}` says why",
                    shell_word(&dir.display().to_string())
                ));
            }
            _ => {}
        }
    };
    progress.finish();
    engine.shutdown().await;
    let task = outcome.map_err(CliError::Runtime)?;
    let merged = git(&dir.join("remotes/demo.git"), &["log", "--oneline", "main"])?;
    let usage = store.task_usage(id).await?;
    outln!();
    outln!(
        "done in {:.1}s: {KEY} went through every gate.",
        started.elapsed().as_secs_f64()
    );
    outln!(
        "  task:     {} [{}] on {}",
        task.id,
        task.stage,
        task.branch
    );
    outln!("  runs:     {}", store.runs_for_task(id).await?.len());
    outln!(
        "  usage:    {} tokens, ${:.4}",
        usage.total_tokens(),
        usage.cost_usd
    );
    outln!("  main of remotes/demo.git now:");
    for line in merged.lines() {
        outln!("    {line}");
    }
    outln!("  logs:     {}", cfg.runs_dir().display());
    outln!(
        "next: cd {} && {orch} task show {KEY}   (every orch command there uses its orch.toml)",
        shell_word(&dir.display().to_string())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn exe_in(dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("orch");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn the_hint_names_orch_only_when_the_path_runs_this_binary() {
        let tmp = tempfile::tempdir().unwrap();
        let built = exe_in(&tmp.path().join("target/release"));
        let other = exe_in(&tmp.path().join("usr/bin"));
        let path = |dirs: &[&Path]| std::env::join_paths(dirs).unwrap();
        let abs = built.canonicalize().unwrap().display().to_string();
        // `cargo run`: the binary is not on the PATH at all.
        assert_eq!(
            command_for(Some(&built), Some(&path(&[Path::new("/nonexistent")]))),
            abs
        );
        // Another orch comes first on the PATH: it is not this one.
        assert_eq!(
            command_for(
                Some(&built),
                Some(&path(&[other.parent().unwrap(), built.parent().unwrap()]))
            ),
            abs
        );
        // This binary is the PATH's orch.
        assert_eq!(
            command_for(Some(&built), Some(&path(&[built.parent().unwrap()]))),
            "orch"
        );
        assert_eq!(command_for(None, None), "orch");
    }

    #[test]
    fn paths_become_one_shell_word() {
        assert_eq!(
            shell_word("/opt/orch/target/release/orch"),
            "/opt/orch/target/release/orch"
        );
        assert_eq!(shell_word("/home/a b/orch"), "'/home/a b/orch'");
        assert_eq!(shell_word("/x/it's"), "'/x/it'\\''s'");
    }
}
