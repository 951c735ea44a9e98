//! The example agents in `examples/agents/` (used by the embedded-defaults demo and
//! the end-to-end tests), run for real: each script is started the way orch starts
//! an agent (argv, a cleared environment with only the allowed and `ORCH_*`
//! variables, stdin null, cwd = a git checkout of the task branch without a
//! configured git identity) and checked for the artefacts and commits it leaves,
//! the verdict it ends with, and how it fails and stops on request.

use orch_agent::adapters::{
    CommandAdapter, OutputAdapter, ProcessExit, ReviewDecision, Verdict, parse_verdict,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const AGENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/agents/");
const WORK_ITEM: &str = "DEMO-1";
const BRANCH: &str = "feature/DEMO-1-x";
const DOCS_DIR: &str = "docs/work-items/DEMO-1";
const ARTEFACTS: [&str; 4] = [
    "01-analysis.md",
    "02-trz.md",
    "03-adr.md",
    "04-test-plan.yaml",
];

const PROMPT: &str = "# Analyse DEMO-1: Greet the user by name\n\n\
You are the **analyst** of orch.\n\n\
## The work item\n\n\
```markdown\nThe greeting must use the user's name.\n```\n\n\
## Rules\n\n\
- Finish with a short summary of the plan.\n";

/// A task branch checkout like the ones orch gives its agents, plus a HOME without
/// a git configuration and a prompt file outside the repository.
struct Sandbox {
    _dir: TempDir,
    repo: PathBuf,
    home: PathBuf,
    prompt: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("worktree");
        let home = dir.path().join("home");
        fs::create_dir_all(&repo).unwrap();
        fs::create_dir_all(&home).unwrap();
        let prompt = dir.path().join("prompt.md");
        fs::write(&prompt, PROMPT).unwrap();
        let sandbox = Sandbox {
            _dir: dir,
            repo,
            home,
            prompt,
        };
        sandbox.git(&["init", "-q", "-b", "main"]);
        fs::write(sandbox.repo.join("README.md"), "# demo\n").unwrap();
        sandbox.git(&["add", "README.md"]);
        sandbox.git(&[
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@localhost",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "initial commit",
        ]);
        sandbox.git(&["checkout", "-q", "-b", BRANCH]);
        sandbox
    }

    /// Runs git in the repository with the sandbox HOME; returns its trimmed stdout.
    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.repo)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    fn assert_clean(&self) {
        assert_eq!(
            self.git(&["status", "--porcelain"]),
            "",
            "the agent left uncommitted changes"
        );
    }

    /// The agent `kind` as orch starts it: only the allowed variables, stdin null.
    fn command(&self, kind: &str, stage: &str, extra: &[(&str, &str)]) -> Command {
        let script = Path::new(AGENTS_DIR).join(format!("{kind}.sh"));
        let mut cmd = Command::new(&script);
        cmd.current_dir(&self.repo)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .env("ORCH_TASK_ID", "1")
            .env("ORCH_WORK_ITEM", WORK_ITEM)
            .env("ORCH_STAGE", stage)
            .env("ORCH_AGENT", kind)
            .env("ORCH_DOCS_DIR", DOCS_DIR)
            .env("ORCH_BRANCH", BRANCH)
            .env("ORCH_RUN_ID", format!("run-{kind}"))
            .env("ORCH_PROMPT_FILE", &self.prompt)
            .stdin(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    fn run(&self, kind: &str, stage: &str, extra: &[(&str, &str)]) -> Output {
        self.command(kind, stage, extra)
            .output()
            .unwrap_or_else(|e| panic!("start {kind}.sh: {e}"))
    }

    /// Runs the agent and insists on exit 0; returns its stdout.
    fn run_ok(&self, kind: &str, stage: &str) -> String {
        let out = self.run(kind, stage, &[]);
        assert!(
            out.status.success(),
            "{kind}.sh failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs the reviewer and reads its verdict the way the command adapter does.
    fn review(&self) -> Verdict {
        let head = self.head();
        let stdout = self.run_ok("reviewer", "review");
        assert_eq!(self.head(), head, "the reviewer must not commit");
        self.assert_clean();
        verdict_of(&stdout)
    }
}

/// The verdict in `stdout` as orch reads it: every line through the command
/// adapter, whose final text (the output tail) goes to `parse_verdict`.
fn verdict_of(stdout: &str) -> Verdict {
    let mut adapter = CommandAdapter::new();
    for line in stdout.lines() {
        adapter.feed_line(line);
    }
    let outcome = adapter.finish(ProcessExit::Code(0));
    let text = outcome.final_text.expect("the reviewer printed something");
    parse_verdict(&text).unwrap_or_else(|e| panic!("no verdict in the output ({e}):\n{text}"))
}

#[test]
fn the_scripts_are_executable() {
    for kind in ["analyst", "developer", "reviewer"] {
        let path = Path::new(AGENTS_DIR).join(format!("{kind}.sh"));
        let mode = fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{} is not executable", path.display());
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("#!/usr/bin/env bash\n"),
            "{kind}.sh shebang"
        );
        assert!(text.contains("set -euo pipefail"), "{kind}.sh strict mode");
    }
}

#[test]
fn analysis_development_and_two_review_rounds() {
    let sb = Sandbox::new();
    let base = sb.head();

    // Analysis: four artefacts, one commit.
    let out = sb.run_ok("analyst", "analysis");
    assert!(
        out.contains("analyst: wrote docs/work-items/DEMO-1/01-analysis.md"),
        "{out}"
    );
    assert_ne!(sb.head(), base, "the analyst commits");
    assert_eq!(
        sb.git(&["log", "-1", "--format=%s"]),
        "docs(DEMO-1): analysis"
    );
    assert_eq!(
        sb.git(&["log", "-1", "--format=%an <%ae>"]),
        "orch-example <orch-example@localhost>"
    );
    let committed = sb.git(&["show", "--name-only", "--format=", "HEAD"]);
    for name in ARTEFACTS {
        let path = format!("{DOCS_DIR}/{name}");
        assert!(committed.lines().any(|l| l == path), "{path} not committed");
        let text = fs::read_to_string(sb.repo.join(&path)).unwrap();
        assert!(!text.trim().is_empty(), "{path} is empty");
    }
    sb.assert_clean();
    let analysis = fs::read_to_string(sb.repo.join(DOCS_DIR).join("01-analysis.md")).unwrap();
    assert!(
        analysis.contains("Analyse DEMO-1: Greet the user by name"),
        "{analysis}"
    );
    assert!(analysis.contains("## Prompt excerpt"), "{analysis}");
    assert!(
        analysis.contains("- Finish with a short summary of the plan."),
        "{analysis}"
    );
    let spec = fs::read_to_string(sb.repo.join(DOCS_DIR).join("02-trz.md")).unwrap();
    assert!(spec.contains("REQ-1") && spec.contains("REQ-2"), "{spec}");
    let plan = fs::read_to_string(sb.repo.join(DOCS_DIR).join("04-test-plan.yaml")).unwrap();
    assert!(plan.starts_with("work_item: 'DEMO-1'\n"), "{plan}");
    assert!(plan.contains("requirement: REQ-2"), "{plan}");

    // A second analysis round with the same prompt changes nothing: no empty commit.
    let analysed = sb.head();
    sb.run_ok("analyst", "analysis");
    assert_eq!(sb.head(), analysed, "an unchanged analysis makes no commit");
    sb.assert_clean();

    // Review before any implementation: changes requested.
    let verdict = sb.review();
    assert_eq!(verdict.decision, ReviewDecision::ChangesRequested);
    assert_eq!(verdict.comments, vec!["work/DEMO-1.md is missing"]);

    // Development: the work file, committed.
    let out = sb.run_ok("developer", "development");
    assert!(out.contains("developer: wrote work/DEMO-1.md"), "{out}");
    assert_eq!(
        sb.git(&["show", "--name-only", "--format=", "HEAD"]),
        "work/DEMO-1.md"
    );
    assert!(
        sb.git(&["log", "-1", "--format=%s"])
            .starts_with("feat(DEMO-1): ")
    );
    sb.assert_clean();
    let work = fs::read_to_string(sb.repo.join("work/DEMO-1.md")).unwrap();
    assert_eq!(
        work,
        "# DEMO-1: Greet the user by name\n\nImplemented by the example developer.\n"
    );

    // First review: changes requested (no tests yet), exit 0.
    let verdict = sb.review();
    assert_eq!(verdict.decision, ReviewDecision::ChangesRequested);
    assert_eq!(
        verdict.comments,
        vec!["Please add tests (a `Tests: added` line)"]
    );

    // Second development round adds the tests line, once.
    let before = sb.head();
    sb.run_ok("developer", "development");
    assert_ne!(sb.head(), before, "the second round commits");
    sb.assert_clean();
    let again = sb.head();
    sb.run_ok("developer", "development");
    assert_eq!(sb.head(), again, "a third round has nothing to add");
    let work = fs::read_to_string(sb.repo.join("work/DEMO-1.md")).unwrap();
    assert_eq!(work.matches("Tests: added").count(), 1, "{work}");
    assert!(work.lines().any(|l| l == "Tests: added"), "{work}");

    // Second review: approve.
    let verdict = sb.review();
    assert_eq!(verdict.decision, ReviewDecision::Approve);
    assert!(verdict.comments.is_empty(), "{:?}", verdict.comments);
    assert_eq!(sb.git(&["rev-parse", "--abbrev-ref", "HEAD"]), BRANCH);
}

#[test]
fn a_rejected_analysis_quotes_the_persons_comment() {
    let sb = Sandbox::new();
    fs::write(
        &sb.prompt,
        "# Analyse DEMO-1: Greet the user by name\n\n\
         ## ⚠ Your previous analysis was REJECTED — address this first\n\n\
         A person rejected it with this comment:\n\n\
         ````text\nCover the empty name.\nAnd quote ``` fences.\n````\n\n\
         Every point must be handled.\n",
    )
    .unwrap();
    sb.run_ok("analyst", "analysis");
    let analysis = fs::read_to_string(sb.repo.join(DOCS_DIR).join("01-analysis.md")).unwrap();
    assert!(analysis.contains("## Changes after review"), "{analysis}");
    assert!(analysis.contains("> Cover the empty name."), "{analysis}");
    assert!(analysis.contains("> And quote ``` fences."), "{analysis}");
    sb.assert_clean();
}

#[test]
fn example_fail_makes_only_the_named_agent_exit_1() {
    let sb = Sandbox::new();
    let fail = [("ORCH_EXAMPLE_FAIL", "developer")];

    let out = sb.run("developer", "development", &fail);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("developer: error:"),
        "{out:?}"
    );
    assert!(
        !sb.repo.join("work").exists(),
        "a failing developer writes nothing"
    );
    assert_eq!(sb.git(&["rev-list", "--count", "HEAD"]), "1");
    sb.assert_clean();

    // The other agents ignore a failure meant for the developer.
    let out = sb.run("analyst", "analysis", &fail);
    assert!(out.status.success(), "{out:?}");
    let out = sb.run("reviewer", "review", &fail);
    assert!(out.status.success(), "{out:?}");
    let verdict = verdict_of(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(verdict.decision, ReviewDecision::ChangesRequested);
}

/// The pids of the live processes whose parent is `parent`, with their names.
fn children(parent: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_owned();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().unwrap_or("");
        let ppid: Option<u32> = rest.next().and_then(|s| s.parse().ok());
        if ppid == Some(parent) && state != "Z" {
            found.push((pid, comm));
        }
    }
    found
}

/// Whether `pid` is still a live `sleep` process.
fn sleep_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.contains("(sleep)") && !stat.contains(") Z "),
        Err(_) => false,
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        // The agent script alone, no engine: nothing signals its exit.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_delayed_agent_ends_promptly_on_sigterm_without_leaving_its_sleep() {
    let sb = Sandbox::new();
    for kind in ["analyst", "developer", "reviewer"] {
        let mut child = sb
            .command(kind, "development", &[("ORCH_EXAMPLE_DELAY", "30")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let pid = child.id();

        // Wait until the agent sleeps in its delay.
        let start = Instant::now();
        let sleep_pid = loop {
            if let Some((p, _)) = children(pid).into_iter().find(|(_, c)| c == "sleep") {
                break p;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{kind}.sh ended before being stopped: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{kind}.sh never started its delay"
            );
            // The agent script alone, no engine: nothing signals its child.
            std::thread::sleep(Duration::from_millis(20));
        };

        let stopped_at = Instant::now();
        let kill = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success());
        let status = wait_timeout(&mut child, Duration::from_secs(3)).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("{kind}.sh still runs 3 s after SIGTERM")
        });
        assert!(
            stopped_at.elapsed() < Duration::from_secs(3),
            "{kind}.sh took {:?} to stop",
            stopped_at.elapsed()
        );
        assert_eq!(status.code(), Some(143), "{kind}.sh exit after SIGTERM");

        let deadline = Instant::now() + Duration::from_secs(2);
        while sleep_alive(sleep_pid) && Instant::now() < deadline {
            // A process ending, no engine: the kernel's news.
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !sleep_alive(sleep_pid),
            "{kind}.sh left its sleep ({sleep_pid}) behind"
        );

        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("working for 30s"), "{stdout}");
        assert!(
            !stdout.contains("orch-verdict"),
            "a stopped agent gives no verdict"
        );
        sb.assert_clean();
    }
    assert_eq!(sb.git(&["rev-list", "--count", "HEAD"]), "1");
}
