//! End-to-end runs of the REAL `claude` (Claude Code) and `codex` (Codex CLI)
//! binaries through orch's launcher, monitor, stop and adapters, against the
//! loopback fake model API `../shared/tools/fake-model-api.py`.
//!
//! Ignored by default: they need the CLIs, which `scripts/install-agent-clis.sh`
//! installs into `target/agent-clis` and names on its stdout:
//!
//! ```text
//! eval "$(scripts/install-agent-clis.sh)"   # or export the two lines by hand
//! export ORCH_TEST_CLAUDE_BIN ORCH_TEST_CODEX_BIN
//! cargo test -p orch-agent --test real_cli -- --ignored
//! ```
//!
//! Each test starts its own fake API on a free 127.0.0.1 port, makes a fresh
//! git repository (the agent's cwd) and a fresh HOME under the target folder
//! (Codex refuses some setup under /tmp), launches the CLI through
//! [`launch`] with the `orch-monitor` binary, and reads `output.log` back
//! through the matching adapter. Everything a test starts is killed on drop:
//! the fake by its guard, the run by [`stop`], and anything left that carries
//! the test's HOME by a final sweep.

use orch_agent::adapters::{
    AdapterKind, AdapterOptions, AgentOutcome, CostSource, ModelPrice, OutcomeKind, PriceTable,
    ProcessExit, TokenUsage, adapter_for, adapter_with, replay,
};
use orch_agent::process::procfs::ProcTable;
use orch_agent::process::sandbox::egress::{Allowlist, read_refusals};
use orch_agent::process::sandbox::{SandboxSpec, defaults};
use orch_agent::process::{
    CgroupMode, ExitRecord, LaunchSpec, MonitorCommand, ProcId, RunHandle, RunState, StopPolicy,
    StopReport, is_alive, launch, read_exit, stop, wait_exit, wait_started,
};
use orch_core::RunId;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FAKE_API: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/tools/fake-model-api.py"
);

/// How long a whole agent run may take. The fake answers at once and a run
/// takes about a second here; CI is a busy 2-core machine.
const RUN_DEADLINE: Duration = Duration::from_secs(180);
/// How long to wait for the fake to listen, or for a tool process to appear.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The model named on the command line. The fake echoes it back, and Claude
/// prices it from its own list prices.
const CLAUDE_MODEL: &str = "claude-sonnet-4-5";
const CODEX_MODEL: &str = "gpt-5.5";

/// What the fake's Write / apply_patch puts into `hello.txt`.
const HELLO: &str = "hello from the mock model\n";

const CLAUDE_PROMPT: &str = "Create hello.txt with a greeting.";
/// `MOCK_MULTI` makes the fake's Codex script add `hello.txt` with apply_patch
/// between its `ls -la` and its final answer; without it, it only lists files.
const CODEX_PROMPT: &str = "Create hello.txt with a greeting. MOCK_MULTI";
/// `MOCK_SLEEPTOOL`: the fake's first answer is a shell call of `sleep 60`.
const SLEEP_PROMPT: &str = "Wait a minute. MOCK_SLEEPTOOL";
/// Claude Code 2.1.331 refuses a foreground `sleep N` of 25 s or more while
/// background tasks are enabled ("Blocked: standalone sleep 60. To wait for a
/// condition, use Monitor …", an `is_error` tool_result), so the fake's
/// `sleep 60` would never run. Disabling background tasks lifts that check (and
/// keeps every tool in the foreground, where a stop can see it end).
const CLAUDE_FOREGROUND_SLEEP: &[(&str, &str)] = &[("CLAUDE_CODE_DISABLE_BACKGROUND_TASKS", "1")];

// ------------------------------------------------------------------ helpers

/// The path of a CLI from the environment; a clear failure when it is unset.
fn cli_bin(var: &str) -> PathBuf {
    let path = std::env::var_os(var).unwrap_or_else(|| {
        panic!(
            "{var} is not set. These tests run the real agent CLIs: run \
             scripts/install-agent-clis.sh, export the ORCH_TEST_CLAUDE_BIN and \
             ORCH_TEST_CODEX_BIN it prints, then \
             cargo test -p orch-agent --test real_cli -- --ignored"
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{var}={} does not name a file; rerun scripts/install-agent-clis.sh",
        path.display()
    );
    path
}

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A folder for one test under the target folder: not under /tmp, where Codex
/// refuses to set up its helper binaries (agent_clis.md §1).
fn scratch_root() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let base = if base.starts_with("/tmp") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/real-cli-tmp")
    } else {
        base.join("real-cli")
    };
    std::fs::create_dir_all(&base).expect("create the scratch base folder");
    tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&base)
        .expect("scratch folder")
}

/// One test's folders: a git repository (the agent's cwd), a fresh HOME and
/// the run folder. Removed on drop, after the guards below have ended every
/// process (locals drop in reverse order, so declare this first).
struct Sandbox {
    root: tempfile::TempDir,
    repo: PathBuf,
    home: PathBuf,
    run_dir: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let root = scratch_root();
        // Canonical, so paths compare equal to what the CLIs report (getcwd).
        let base = root.path().canonicalize().expect("canonical scratch path");
        let repo = base.join("repo");
        let home = base.join("home");
        for dir in [&repo, &home] {
            std::fs::create_dir(dir).expect("mkdir");
        }
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("README.md"), "a throwaway repository\n").expect("README");
        git(&repo, &["add", "README.md"]);
        git(
            &repo,
            &[
                "-c",
                "user.name=orch test",
                "-c",
                "user.email=orch-test@example.invalid",
                "commit",
                "-q",
                "-m",
                "initial commit",
            ],
        );
        Sandbox {
            run_dir: base.join("run"),
            root,
            repo,
            home,
        }
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.run_dir.join(name)).unwrap_or_default()
    }

    fn output(&self) -> String {
        self.file("output.log")
    }

    /// The run's logs, for assertion messages.
    fn describe(&self) -> String {
        let tail = |s: String, n: usize| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "\n--- output.log (last 30 lines)\n{}\n--- stderr.log (last 30 lines)\n{}\n\
             --- monitor.log\n{}\n--- exit.json\n{}\n",
            tail(self.output(), 30),
            tail(self.file("stderr.log"), 30),
            tail(self.file("monitor.log"), 30),
            self.file("exit.json"),
        )
    }
}

fn git(repo: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The fake model API, killed and reaped on drop.
struct FakeApi {
    child: Child,
    port: u16,
}

impl FakeApi {
    /// Starts the fake on a free loopback port and waits until it accepts
    /// connections. `mock_cwd` is where its Claude script writes `hello.txt`:
    /// Claude Code 2.1.331 states its working directory in the first user
    /// message, not in the system prompt where the fake looks, so without it
    /// the file would land in the fake's own cwd.
    fn start(sandbox: &Sandbox) -> FakeApi {
        assert!(
            Path::new(FAKE_API).is_file(),
            "{FAKE_API} not found: the shared/ folder must sit beside the repository"
        );
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("pick a free port")
                .port();
            let stderr = std::fs::File::create(sandbox.root.path().join("fake-api.stderr"))
                .expect("fake stderr file");
            let child = Command::new("python3")
                .arg(FAKE_API)
                .arg(port.to_string())
                .env("MOCK_CWD", &sandbox.repo)
                .env(
                    "MOCK_LOG",
                    sandbox.root.path().join("fake-api.requests.jsonl"),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("start python3 fake-model-api.py");
            let mut fake = FakeApi { child, port };
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let up = poll(START_DEADLINE, || {
                if let Ok(Some(status)) = fake.child.try_wait() {
                    return Some(Err(status));
                }
                TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    .ok()
                    .map(|_| Ok(()))
            });
            match up {
                Some(Ok(())) => return fake,
                // Most likely the port was taken between our probe and its bind.
                Some(Err(status)) => {
                    last_err = format!(
                        "exited with {status}: {}",
                        std::fs::read_to_string(sandbox.root.path().join("fake-api.stderr"))
                            .unwrap_or_default()
                    );
                }
                None => panic!("the fake API did not listen on {addr} within {START_DEADLINE:?}"),
            }
        }
        panic!("the fake API would not start: {last_err}");
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A launched run. On drop: stopped with no grace if still alive, then every
/// process still carrying the test's HOME is killed.
struct Run {
    handle: RunHandle,
    home: PathBuf,
    cwd_root: PathBuf,
}

impl Drop for Run {
    fn drop(&mut self) {
        if is_alive(&self.handle) {
            let policy = StopPolicy {
                grace_int: Duration::ZERO,
                grace_term: Duration::ZERO,
                kill_wait: Duration::from_secs(5),
            };
            let _ = stop(&self.handle, &policy, "test cleanup");
        }
        for p in leftovers(&self.home, &self.cwd_root) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn launch_cli(sandbox: &Sandbox, argv: Vec<OsString>, env: BTreeMap<String, String>) -> Run {
    launch_cli_in(sandbox, argv, env, None)
}

fn launch_cli_in(
    sandbox: &Sandbox,
    argv: Vec<OsString>,
    env: BTreeMap<String, String>,
    contained: Option<SandboxSpec>,
) -> Run {
    let handle = launch(LaunchSpec {
        run_id: RunId::from("run-real-cli"),
        run_dir: sandbox.run_dir.clone(),
        cwd: sandbox.repo.clone(),
        argv,
        env,
        monitor: MonitorCommand {
            program: env!("CARGO_BIN_EXE_orch-monitor").into(),
            args_prefix: vec![],
        },
        cgroup: CgroupMode::Auto,
        sandbox: contained,
        limits: Default::default(),
    })
    .expect("launch the monitor");
    Run {
        handle,
        home: sandbox.home.clone(),
        cwd_root: sandbox.root.path().canonicalize().expect("canonical root"),
    }
}

/// The agent's PATH: the test's own (node, git, bash, python3 live there).
fn agent_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned())
}

/// Claude Code as orch's README configures it (`-p --output-format stream-json
/// --verbose --permission-mode acceptEdits`), plus the model, a turn limit,
/// and the two shell commands the fake asks for. The prompt goes after `--`,
/// since `--allowedTools` takes several values.
fn claude_run(sandbox: &Sandbox, fake: &FakeApi, prompt: &str, extra_env: &[(&str, &str)]) -> Run {
    let (argv, env) = claude_command(sandbox, fake, prompt, extra_env);
    launch_cli(sandbox, argv, env)
}

fn claude_command(
    sandbox: &Sandbox,
    fake: &FakeApi,
    prompt: &str,
    extra_env: &[(&str, &str)],
) -> (Vec<OsString>, BTreeMap<String, String>) {
    let bin = cli_bin("ORCH_TEST_CLAUDE_BIN");
    let mut argv: Vec<OsString> = vec![bin.into_os_string()];
    argv.extend(
        [
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            "Bash(ls:*)",
            "Bash(sleep:*)",
            "--model",
            CLAUDE_MODEL,
            "--max-turns",
            "10",
            "--",
            prompt,
        ]
        .map(OsString::from),
    );
    let env = BTreeMap::from([
        ("PATH".to_owned(), agent_path()),
        ("HOME".to_owned(), sandbox.home.display().to_string()),
        ("ANTHROPIC_BASE_URL".to_owned(), fake.base_url()),
        (
            "ANTHROPIC_API_KEY".to_owned(),
            "placeholder-not-a-credential".to_owned(),
        ),
        (
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".to_owned(),
            "1".to_owned(),
        ),
    ]);
    let mut env = env;
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    (argv, env)
}

/// Codex as orch's README configures it (`exec --json --sandbox
/// workspace-write`), with the fake as a custom model provider (no key).
fn codex_run(sandbox: &Sandbox, fake: &FakeApi, prompt: &str) -> Run {
    let bin = cli_bin("ORCH_TEST_CODEX_BIN");
    let provider = format!(
        "model_providers.mock={{name=\"mock\",base_url=\"{}/v1\",wire_api=\"responses\"}}",
        fake.base_url()
    );
    let argv: Vec<OsString> = vec![
        bin.into_os_string(),
        "-c".into(),
        "model_provider=mock".into(),
        "-c".into(),
        provider.into(),
        "exec".into(),
        "--json".into(),
        "--sandbox".into(),
        "workspace-write".into(),
        "-m".into(),
        CODEX_MODEL.into(),
        prompt.into(),
    ];
    let env = BTreeMap::from([
        ("PATH".to_owned(), agent_path()),
        ("HOME".to_owned(), sandbox.home.display().to_string()),
    ]);
    launch_cli(sandbox, argv, env)
}

fn wait_done(run: &Run, sandbox: &Sandbox) -> ExitRecord {
    match wait_exit(&run.handle, RUN_DEADLINE) {
        RunState::Exited(rec) => rec,
        RunState::Running => panic!(
            "the agent did not finish within {RUN_DEADLINE:?}{}",
            sandbox.describe()
        ),
        RunState::Lost => panic!(
            "the monitor vanished without exit.json{}",
            sandbox.describe()
        ),
    }
}

fn process_exit(rec: &ExitRecord) -> ProcessExit {
    ProcessExit::from_parts(rec.exit_code, rec.signal)
        .unwrap_or_else(|| panic!("exit.json names neither code nor signal: {rec:?}"))
}

fn json_lines(output: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn of_type<'a>(lines: &'a [Value], ty: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["type"] == ty).collect()
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count in {v}"))
}

/// A process seen in /proc, with what identifies it as the run's.
#[derive(Debug, Clone)]
struct Seen {
    pid: i32,
    id: ProcId,
    comm: String,
    cmdline: String,
}

/// A process's command line, cut to a readable length (Codex's sandboxed
/// shell call carries a script of several kilobytes).
fn cmdline(pid: i32) -> String {
    let full = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .trim_end_matches('\0')
                .replace('\0', " ")
        })
        .unwrap_or_default();
    match full.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &full[..cut]),
        None => full,
    }
}

/// Every living descendant of the run's monitor.
fn run_tree(handle: &RunHandle) -> Vec<Seen> {
    let table = ProcTable::scan().expect("scan /proc");
    table
        .descendants(handle.pid)
        .into_iter()
        .filter_map(|id| {
            let stat = table.get(id.pid)?;
            Some(Seen {
                pid: id.pid,
                id,
                comm: stat.comm.clone(),
                cmdline: cmdline(id.pid),
            })
        })
        .collect()
}

/// Every living process, wherever it sits in the tree now, that belongs to the
/// test: its environment holds the test's HOME, or its cwd is in the test's
/// folder. Finds what escaped the run's tree (re-parented to init).
fn leftovers(home: &Path, root: &Path) -> Vec<Seen> {
    let marker = format!("HOME={}", home.display()).into_bytes();
    let me = std::process::id() as i32;
    let table = ProcTable::scan().expect("scan /proc");
    let mut found: Vec<Seen> = table
        .procs
        .values()
        .filter(|p| p.pid != me && !p.is_finished())
        .filter(|p| {
            let env_hit = std::fs::read(format!("/proc/{}/environ", p.pid))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_slice()))
                .unwrap_or(false);
            let cwd_hit = std::fs::read_link(format!("/proc/{}/cwd", p.pid))
                .map(|cwd| cwd.starts_with(root))
                .unwrap_or(false);
            env_hit || cwd_hit
        })
        .map(|p| Seen {
            pid: p.pid,
            id: ProcId::of(p),
            comm: p.comm.clone(),
            cmdline: cmdline(p.pid),
        })
        .collect();
    found.sort_by_key(|s| s.pid);
    found
}

/// Waits until the run's tree holds the fake's `sleep 60` tool process. Fails
/// at once if the run ends first (the CLI refused or skipped the tool call).
fn wait_for_sleep_tool(run: &Run, sandbox: &Sandbox) -> Seen {
    let found = poll(START_DEADLINE, || {
        if let Some(p) = run_tree(&run.handle)
            .into_iter()
            .find(|p| p.comm == "sleep" && p.cmdline == "sleep 60")
        {
            return Some(Some(p));
        }
        (!is_alive(&run.handle)).then_some(None)
    });
    match found {
        Some(Some(p)) => p,
        Some(None) => panic!(
            "the run ended without ever running `sleep 60`: the CLI refused or skipped \
             the fake's tool call (see its tool_result){}",
            sandbox.describe()
        ),
        None => panic!(
            "no `sleep 60` appeared under the monitor within {START_DEADLINE:?}; tree: {:#?}{}",
            run_tree(&run.handle),
            sandbox.describe()
        ),
    }
}

/// Stops the run mid-tool and checks that nothing of it is left: the stop's
/// own report, every process seen in the tree just before, and a sweep of
/// /proc for anything carrying the test's HOME or cwd.
fn stop_and_check_nothing_left(run: &Run, sandbox: &Sandbox, before: &[Seen]) -> StopReport {
    let policy = StopPolicy {
        grace_int: Duration::from_secs(2),
        grace_term: Duration::from_secs(2),
        kill_wait: Duration::from_secs(10),
    };
    let report = stop(&run.handle, &policy, "real_cli test: stop mid-tool").expect("stop");
    // Shown with --nocapture: what the CLI wrote around the stop.
    eprintln!("after the stop:{}", sandbox.describe());
    eprintln!(
        "stop report: signals {:?}, pids {:?}, survivors {:?}, all_gone {}, cgroup {}, elapsed {:?}, exit {:?}",
        report.signals,
        report.pids,
        report.survivors,
        report.all_gone,
        report.used_cgroup,
        report.elapsed,
        report.exit
    );
    assert!(report.refused.is_none(), "{report:#?}");
    assert!(
        !report.already_gone,
        "the run ended before the stop: {report:#?}{}",
        sandbox.describe()
    );
    assert!(
        report.all_gone && report.survivors.is_empty(),
        "{report:#?}{}",
        sandbox.describe()
    );
    assert!(!is_alive(&run.handle));
    let survivors: Vec<&Seen> = before.iter().filter(|p| p.id.is_alive()).collect();
    assert!(
        survivors.is_empty(),
        "processes of the run survived the stop: {survivors:#?}"
    );
    let left = leftovers(&run.home, &run.cwd_root);
    assert!(
        left.is_empty(),
        "processes with the test's HOME or cwd survived the stop: {left:#?}"
    );
    report
}

// -------------------------------------------------------------------- Claude

#[test]
#[ignore = "needs the real agent CLIs: scripts/install-agent-clis.sh, then cargo test -p orch-agent --test real_cli -- --ignored"]
fn claude_runs_a_stage_end_to_end() {
    let sandbox = Sandbox::new();
    let fake = FakeApi::start(&sandbox);
    let run = claude_run(&sandbox, &fake, CLAUDE_PROMPT, &[]);
    let rec = wait_done(&run, &sandbox);
    let log = sandbox.output();
    let ctx = sandbox.describe();

    assert_eq!(rec.spawn_error, None, "{ctx}");
    assert_eq!(rec.exit_code, Some(0), "{ctx}");

    let mut adapter = adapter_for(AdapterKind::ClaudeCode);
    let (_events, outcome) = replay(adapter.as_mut(), &log, process_exit(&rec));
    assert_eq!(outcome.kind, OutcomeKind::Succeeded, "{outcome:#?}{ctx}");

    // What the CLI itself printed, read independently of the adapter.
    let lines = json_lines(&log);
    let init = of_type(&lines, "system")
        .into_iter()
        .find(|v| v["subtype"] == "init")
        .unwrap_or_else(|| panic!("no system/init line{ctx}"));
    let results = of_type(&lines, "result");
    assert_eq!(results.len(), 1, "one result line per -p run{ctx}");
    let result = results[0];
    assert_eq!(result["subtype"], "success", "{ctx}");
    assert_eq!(result["is_error"], false, "{ctx}");
    assert_eq!(result["terminal_reason"], "completed", "{ctx}");
    assert_eq!(
        result["permission_denials"].as_array().map(Vec::len),
        Some(0),
        "the allowed tools were denied: {}",
        result["permission_denials"]
    );

    // Session id: present, and the one the CLI named.
    let sid = outcome.session_id.as_deref().expect("session id");
    assert!(!sid.is_empty());
    assert_eq!(init["session_id"], sid);
    assert_eq!(result["session_id"], sid);
    assert_eq!(adapter.session_id(), Some(sid));
    assert_eq!(init["cwd"], sandbox.repo.display().to_string());

    // Tokens: the sums over `modelUsage`, as the CLI reported them.
    let model_usage = result["modelUsage"]
        .as_object()
        .unwrap_or_else(|| panic!("no modelUsage{ctx}"));
    assert!(
        model_usage.contains_key(CLAUDE_MODEL),
        "modelUsage names {:?}",
        model_usage.keys()
    );
    let sum = |key: &str| model_usage.values().map(|m| u64_of(m, key)).sum::<u64>();
    let expected = TokenUsage {
        input: sum("inputTokens"),
        cache_read: sum("cacheReadInputTokens"),
        cache_write: sum("cacheCreationInputTokens"),
        output: sum("outputTokens"),
        reasoning_output: 0,
    };
    assert_eq!(outcome.tokens, expected, "{ctx}");
    assert!(outcome.tokens.input > 0 && outcome.tokens.output > 0);
    assert_eq!(outcome.usage.input_tokens, expected.total_input());
    assert_eq!(outcome.usage.output_tokens, expected.output);

    // Cost: Claude's own figure, taken verbatim.
    let reported = result["total_cost_usd"].as_f64().expect("total_cost_usd");
    assert!(reported > 0.0, "{ctx}");
    assert_eq!(outcome.cost_source, CostSource::Reported);
    assert_eq!(outcome.usage.cost_usd, reported);

    // The stage's work: the fake's Write, into the repository.
    assert_eq!(
        std::fs::read_to_string(sandbox.repo.join("hello.txt"))
            .ok()
            .as_deref(),
        Some(HELLO),
        "hello.txt not written in the repo{ctx}"
    );
    let tool_results: Vec<&Value> = of_type(&lines, "user")
        .into_iter()
        .flat_map(|v| v["message"]["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_result")
        .collect();
    assert_eq!(tool_results.len(), 2, "ls and Write{ctx}");
    assert!(
        tool_results.iter().all(|b| b["is_error"] != true),
        "a tool failed: {tool_results:#?}"
    );
    assert_eq!(
        outcome.final_text.as_deref(),
        result["result"].as_str(),
        "{ctx}"
    );

    // Nothing of the run is left once it has ended by itself.
    let left = leftovers(&run.home, &run.cwd_root);
    assert!(left.is_empty(), "left running after the run: {left:#?}");
    drop(run);
    drop(fake);
}

#[test]
#[ignore = "needs the real agent CLIs: scripts/install-agent-clis.sh, then cargo test -p orch-agent --test real_cli -- --ignored"]
fn claude_stopped_mid_tool_call_leaves_nothing_running() {
    let sandbox = Sandbox::new();
    let fake = FakeApi::start(&sandbox);
    let run = claude_run(&sandbox, &fake, SLEEP_PROMPT, CLAUDE_FOREGROUND_SLEEP);
    let info = wait_started(&run.handle, START_DEADLINE)
        .unwrap_or_else(|| panic!("the agent never started{}", sandbox.describe()));
    let sleep = wait_for_sleep_tool(&run, &sandbox);

    // Claude Code runs its tools in a session of their own, so the agent's
    // group does not reach the `sleep`.
    let sleep_sid = orch_agent::process::procfs::read_stat(sleep.pid)
        .expect("read stat")
        .map(|s| s.sid);
    eprintln!(
        "agent pid {} (sid {}), sleep pid {} (sid {:?}), tree: {:#?}",
        info.agent_pid,
        run.handle.pid,
        sleep.pid,
        sleep_sid,
        run_tree(&run.handle)
    );
    let before = run_tree(&run.handle);
    assert!(before.iter().any(|p| p.pid == info.agent_pid));

    let report = stop_and_check_nothing_left(&run, &sandbox, &before);
    let rec = read_exit(&run.handle.run_dir)
        .unwrap_or_else(|| panic!("no exit.json after the stop{}", sandbox.describe()));
    let log = sandbox.output();
    let ctx = format!("{}\n--- stop report\n{report:#?}", sandbox.describe());

    let mut adapter = adapter_for(AdapterKind::ClaudeCode);
    let (_events, outcome) = replay(adapter.as_mut(), &log, process_exit(&rec));
    assert_eq!(outcome.kind, OutcomeKind::Interrupted, "{outcome:#?}{ctx}");
    assert_interrupted_claude_log(&log, &outcome, &ctx);
    drop(run);
    drop(fake);
}

/// Claude's partial log after a stop: the tool call is there, and either no
/// `result` (SIGTERM/SIGKILL) or the SIGINT one, `error_during_execution` with
/// `terminal_reason:"aborted_tools"`, which the adapter maps to Interrupted.
fn assert_interrupted_claude_log(log: &str, outcome: &AgentOutcome, ctx: &str) {
    let lines = json_lines(log);
    let tool_use = of_type(&lines, "assistant").into_iter().any(|v| {
        v["message"]["content"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b["type"] == "tool_use" && b["input"]["command"] == "sleep 60")
    });
    assert!(tool_use, "the sleep tool call is not in the log{ctx}");
    assert!(outcome.session_id.is_some(), "{ctx}");
    for result in of_type(&lines, "result") {
        assert_eq!(result["subtype"], "error_during_execution", "{ctx}");
        assert_eq!(result["terminal_reason"], "aborted_tools", "{ctx}");
    }
}

// --------------------------------------------------------------------- Codex

/// A price for the Codex model, since Codex reports no cost: orch prices its
/// tokens from the configured table.
fn codex_options() -> AdapterOptions {
    AdapterOptions {
        model: Some(CODEX_MODEL.to_owned()),
        prices: PriceTable::new().with(
            CODEX_MODEL,
            ModelPrice {
                input_per_mtok: 1.25,
                cache_read_per_mtok: Some(0.125),
                cache_write_per_mtok: None,
                output_per_mtok: 10.0,
            },
        ),
        previous_total: None,
    }
}

#[test]
#[ignore = "needs the real agent CLIs: scripts/install-agent-clis.sh, then cargo test -p orch-agent --test real_cli -- --ignored"]
fn codex_runs_a_stage_end_to_end() {
    let sandbox = Sandbox::new();
    let fake = FakeApi::start(&sandbox);
    let run = codex_run(&sandbox, &fake, CODEX_PROMPT);
    let rec = wait_done(&run, &sandbox);
    let log = sandbox.output();
    let ctx = sandbox.describe();

    assert_eq!(rec.spawn_error, None, "{ctx}");
    assert_eq!(rec.exit_code, Some(0), "{ctx}");

    let options = codex_options();
    let price = *options.prices.get(CODEX_MODEL).expect("price");
    let mut adapter = adapter_with(AdapterKind::Codex, options);
    let (_events, outcome) = replay(adapter.as_mut(), &log, process_exit(&rec));
    assert_eq!(outcome.kind, OutcomeKind::Succeeded, "{outcome:#?}{ctx}");

    let lines = json_lines(&log);
    let started = of_type(&lines, "thread.started");
    assert_eq!(started.len(), 1, "{ctx}");
    let completed = of_type(&lines, "turn.completed");
    assert_eq!(completed.len(), 1, "{ctx}");
    assert!(of_type(&lines, "turn.failed").is_empty(), "{ctx}");

    // Thread id.
    let tid = outcome.session_id.as_deref().expect("thread id");
    assert!(!tid.is_empty());
    assert_eq!(started[0]["thread_id"], tid);
    assert_eq!(adapter.session_id(), Some(tid));

    // Tokens: `input_tokens` is all input with the cached part inside it.
    let u = &completed[0]["usage"];
    let cached = u64_of(u, "cached_input_tokens");
    let cache_write = u["cache_write_input_tokens"].as_u64().unwrap_or(0);
    let expected = TokenUsage {
        input: u64_of(u, "input_tokens") - cached - cache_write,
        cache_read: cached,
        cache_write,
        output: u64_of(u, "output_tokens"),
        reasoning_output: u64_of(u, "reasoning_output_tokens"),
    };
    assert_eq!(outcome.tokens, expected, "{ctx}");
    assert_eq!(outcome.thread_total, Some(expected));
    assert!(outcome.tokens.total_input() > 0 && outcome.tokens.output > 0);
    assert_eq!(outcome.usage.input_tokens, u64_of(u, "input_tokens"));
    assert_eq!(outcome.usage.output_tokens, expected.output);

    // Cost: Codex reports none; it is priced from the table.
    assert_eq!(outcome.cost_source, CostSource::PriceTable);
    assert!(outcome.usage.cost_usd > 0.0);
    assert!((outcome.usage.cost_usd - price.cost(&expected)).abs() < 1e-12);
    let mut unpriced = adapter_for(AdapterKind::Codex);
    let (_, unpriced) = replay(unpriced.as_mut(), &log, process_exit(&rec));
    assert_eq!(
        (
            unpriced.cost_source,
            unpriced.usage.cost_usd,
            unpriced.tokens
        ),
        (CostSource::Unpriced, 0.0, expected)
    );

    // The stage's work: the shell call ran, and apply_patch added hello.txt.
    let items: Vec<&Value> = of_type(&lines, "item.completed")
        .into_iter()
        .map(|v| &v["item"])
        .collect();
    assert!(
        items
            .iter()
            .any(|i| i["type"] == "command_execution" && i["exit_code"] == 0),
        "no successful command_execution{ctx}"
    );
    let hello = sandbox.repo.join("hello.txt").display().to_string();
    assert!(
        items.iter().any(|i| i["type"] == "file_change"
            && i["status"] == "completed"
            && i["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["path"] == hello.as_str() && c["kind"] == "add")),
        "no completed file_change adding {hello}{ctx}"
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.repo.join("hello.txt"))
            .ok()
            .as_deref(),
        Some(HELLO),
        "hello.txt not written in the repo{ctx}"
    );
    let last_message = items
        .iter()
        .rev()
        .find(|i| i["type"] == "agent_message")
        .and_then(|i| i["text"].as_str());
    assert!(last_message.is_some(), "{ctx}");
    assert_eq!(outcome.final_text.as_deref(), last_message);

    let left = leftovers(&run.home, &run.cwd_root);
    assert!(left.is_empty(), "left running after the run: {left:#?}");
    drop(run);
    drop(fake);
}

#[test]
#[ignore = "needs the real agent CLIs: scripts/install-agent-clis.sh, then cargo test -p orch-agent --test real_cli -- --ignored"]
fn codex_stopped_mid_tool_call_leaves_nothing_running() {
    let sandbox = Sandbox::new();
    let fake = FakeApi::start(&sandbox);
    let run = codex_run(&sandbox, &fake, SLEEP_PROMPT);
    let info = wait_started(&run.handle, START_DEADLINE)
        .unwrap_or_else(|| panic!("the agent never started{}", sandbox.describe()));
    let sleep = wait_for_sleep_tool(&run, &sandbox);
    // Codex may start the tool before its `item.started` line reaches stdout;
    // "mid-tool-call" means both, so wait for the line as well (a stop before
    // it would lose it with the rest of Codex's unflushed output).
    let announced = poll(START_DEADLINE, || {
        sandbox
            .output()
            .lines()
            .any(|l| l.contains("\"item.started\"") && l.contains("sleep 60"))
            .then_some(())
    });
    assert!(
        announced.is_some(),
        "Codex never announced the sleep command{}",
        sandbox.describe()
    );
    let before = run_tree(&run.handle);
    eprintln!(
        "agent pid {}, sleep pid {}, tree: {before:#?}",
        info.agent_pid, sleep.pid
    );

    let report = stop_and_check_nothing_left(&run, &sandbox, &before);
    let rec = read_exit(&run.handle.run_dir)
        .unwrap_or_else(|| panic!("no exit.json after the stop{}", sandbox.describe()));
    let log = sandbox.output();
    let ctx = format!("{}\n--- stop report\n{report:#?}", sandbox.describe());

    let mut adapter = adapter_with(AdapterKind::Codex, codex_options());
    let (_events, outcome) = replay(adapter.as_mut(), &log, process_exit(&rec));
    assert_eq!(outcome.kind, OutcomeKind::Interrupted, "{outcome:#?}{ctx}");
    let lines = json_lines(&log);
    assert!(
        of_type(&lines, "turn.completed").is_empty() && of_type(&lines, "turn.failed").is_empty(),
        "{ctx}"
    );
    assert!(
        of_type(&lines, "item.started")
            .into_iter()
            .any(|v| v["item"]["type"] == "command_execution"
                && v["item"]["command"]
                    .as_str()
                    .is_some_and(|c| c.contains("sleep 60"))),
        "the sleep command is not in the log{ctx}"
    );
    // The thread was named before the stop; no usage is reported on an interrupt.
    assert!(outcome.session_id.is_some(), "{ctx}");
    assert_eq!(outcome.thread_total, None);
    drop(run);
    drop(fake);
}

/// Issue 12: Claude Code in `[sandbox] mode = "namespaces"`: it sees its repo
/// (read-write), the toolchain and its own installation (read-only), and
/// reaches the fake model API only through orch's egress proxy, which admits
/// the fake's port alone.
#[test]
#[ignore = "needs the real agent CLIs: scripts/install-agent-clis.sh, then cargo test -p orch-agent --test real_cli -- --ignored"]
fn claude_runs_sandboxed_through_the_egress_proxy() {
    if let Err(why) = orch_agent::process::sandbox::probe().namespaces {
        eprintln!("SKIP: this machine cannot sandbox: {why}");
        return;
    }
    let sandbox = Sandbox::new();
    let fake = FakeApi::start(&sandbox);
    let (argv, env) = claude_command(&sandbox, &fake, CLAUDE_PROMPT, &[]);
    let bin = cli_bin("ORCH_TEST_CLAUDE_BIN");
    // The whole npm prefix: the binary, its package and node's modules.
    let install = bin
        .ancestors()
        .find(|p| p.ends_with("node_modules"))
        .and_then(Path::parent)
        .expect("the CLI lives under a node_modules folder")
        .to_owned();
    let mut readonly: Vec<PathBuf> = defaults::TOOLCHAIN.iter().map(PathBuf::from).collect();
    readonly.push(install);
    let contained = SandboxSpec {
        writable: vec![sandbox.repo.clone()],
        readonly,
        hidden: defaults::HIDDEN.iter().map(PathBuf::from).collect(),
        home: Some(sandbox.home.clone()),
        egress: Allowlist(vec![format!("127.0.0.1:{}", fake.port)]),
    };
    let run = launch_cli_in(&sandbox, argv, env, Some(contained));
    let rec = wait_done(&run, &sandbox);
    let ctx = sandbox.describe();
    assert_eq!(rec.spawn_error, None, "{ctx}");
    assert_eq!(rec.exit_code, Some(0), "{ctx}");
    let mut adapter = adapter_for(AdapterKind::ClaudeCode);
    let (_events, outcome) = replay(adapter.as_mut(), &sandbox.output(), process_exit(&rec));
    // The namespace's loopback has nothing on the fake's port: every answer
    // the CLI got came through the proxy (with an empty allowlist this fails).
    assert_eq!(outcome.kind, OutcomeKind::Succeeded, "{outcome:#?}{ctx}");
    assert_eq!(
        std::fs::read_to_string(sandbox.repo.join("hello.txt"))
            .ok()
            .as_deref(),
        Some(HELLO),
        "hello.txt not written in the repo{ctx}"
    );
    // Whatever else the CLI tried to reach was refused, and recorded.
    for r in read_refusals(&sandbox.run_dir) {
        eprintln!("refused: {} ({})", r.target, r.why);
    }
}
