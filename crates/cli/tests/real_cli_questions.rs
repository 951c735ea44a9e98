//! The REAL Claude Code CLI asks a person through orch's `ask_person` tool
//! (issue 16 points 4 and 5), through `orch serve`, against the loopback fake
//! model API `../shared/tools/fake-model-api.py`:
//!
//! 1. the analyst's prompt carries `MOCK_CALLTOOL:mcp__orch__ask_person`, so
//!    the fake model calls the tool `orch mcp` offers (Claude Code runs with
//!    `ENABLE_TOOL_SEARCH=false`, else MCP tools hide behind ToolSearch);
//! 2. the task parks on the question (an `agent_question` event);
//! 3. `orch task answer` resumes the same session (`claude --resume`), and
//!    the analysis finishes.
//!
//! Ignored by default like `crates/agent/tests/real_cli.rs`: it needs the CLI,
//! which `scripts/install-agent-clis.sh` installs (CI does):
//!
//! ```text
//! eval "export $(scripts/install-agent-clis.sh | tr '\n' ' ')"
//! cargo test -p orch-cli --test real_cli_questions -- --ignored
//! ```
//!
//! Codex: the fake's `MOCK_CALLTOOL` scripts Claude's Messages API only, so
//! no Codex model calls the tool. The Codex test checks what can be checked
//! with the real CLI: it starts orch's MCP server from orch's `-c
//! mcp_servers.orch…` (its tools reach the model), the question is posted
//! the way `orch mcp` posts it (the run's token, the agent route) while the
//! run works, and `orch task answer` resumes the same thread (`codex exec …
//! resume <thread_id>`). Its `request_user_input` is checked on a recorded
//! transcript (`crates/agent/tests/adapters_questions.rs`).

mod common;

use common::{Serve, add_task, count_events, ok, quickstart_project, wait};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const FAKE_API: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/tools/fake-model-api.py"
);

/// A real run through the fake takes seconds; CI is a busy 2-core machine.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

fn cli_bin(var: &str) -> PathBuf {
    let path = std::env::var_os(var).unwrap_or_else(|| {
        panic!(
            "{var} is not set. This test runs the real agent CLIs: run \
             scripts/install-agent-clis.sh, export the ORCH_TEST_CLAUDE_BIN and \
             ORCH_TEST_CODEX_BIN it prints, then \
             cargo test -p orch-cli --test real_cli_questions -- --ignored"
        )
    });
    let path = PathBuf::from(path);
    assert!(path.is_file(), "{var}={} is no file", path.display());
    path
}

/// A folder not under /tmp, where Codex refuses some of its setup.
fn scratch() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("real-cli-questions");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::tempdir_in(&base).unwrap()
}

/// The fake model API on a free loopback port; killed on drop.
struct FakeApi {
    child: Child,
    port: u16,
}

impl FakeApi {
    fn start(dir: &Path) -> FakeApi {
        FakeApi::start_with(dir, &[])
    }

    fn start_with(dir: &Path, env: &[(&str, &str)]) -> FakeApi {
        assert!(Path::new(FAKE_API).is_file(), "{FAKE_API} not found");
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let mut child = Command::new("python3")
                .arg(FAKE_API)
                .arg(port.to_string())
                .current_dir(dir)
                .env("MOCK_LOG", dir.join("fake-api.requests.jsonl"))
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start python3 fake-model-api.py");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let end = Instant::now() + Duration::from_secs(60);
            loop {
                if child.try_wait().unwrap().is_some() {
                    break; // the port was taken meanwhile: another one
                }
                if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                    return FakeApi { child, port };
                }
                assert!(Instant::now() < end, "the fake API never listened");
                // The fake model API is not orch: no engine signal.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("the fake API would not start");
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs the real Claude Code CLI (ORCH_TEST_CLAUDE_BIN); CI runs it"]
fn claude_asks_through_orch_mcp_parks_and_resumes_the_same_session() {
    let claude = cli_bin("ORCH_TEST_CLAUDE_BIN");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let fake = FakeApi::start(tmp.path());
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        let analyst = format!(
            "[agents.analyst]\nadapter = \"claude_code\"\ncommand = [{:?}, \"--permission-mode\", \"acceptEdits\", \"--model\", \"claude-sonnet-4-5\", \"--max-turns\", \"10\"]",
            claude.display().to_string()
        );
        let c = c.replace(
            "[agents.analyst]\ncommand = [\"examples/agents/analyst.sh\"]",
            &analyst,
        );
        format!(
            "{c}\n[agent_env]\nset = {{ HOME = {home:?}, PATH = {path:?}, ANTHROPIC_BASE_URL = \"http://127.0.0.1:{port}\", ANTHROPIC_API_KEY = \"placeholder-not-a-credential\", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = \"1\", ENABLE_TOOL_SEARCH = \"false\" }}\n",
            home = home.display().to_string(),
            port = fake.port,
        )
    });
    assert!(
        std::fs::read_to_string(dir.join("orch.toml"))
            .unwrap()
            .contains("adapter = \"claude_code\""),
        "the quickstart's analyst section changed; update this test's edit"
    );
    let _serve = Serve::start(&dir);
    add_task(
        &dir,
        "DEMO-2",
        "Pick a port",
        &[
            "--body",
            "Ask a person which port to use. MOCK_CALLTOOL:mcp__orch__ask_person",
        ],
    );
    let parked = wait::task(&dir, "DEMO-2", RUN_DEADLINE, "parked on a question", |v| {
        v["task"]["stage"] == "needs_attention" || v["task"]["stage"] == "awaiting_approval"
    });
    let question = parked["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "agent_question")
        .unwrap_or_else(|| panic!("the agent's question was not recorded: {parked:#}"));
    // The fake fills the tool's required `question` from its description.
    let text = question["message"].as_str().unwrap();
    assert!(text.starts_with("mock "), "{text}");
    assert_eq!(parked["task"]["stage"], "needs_attention");
    let first = &parked["runs"][0];
    assert_eq!(first["outcome"], "succeeded", "{parked:#}");
    let session = first["session_id"].as_str().expect("the run's session id");
    assert!(!session.is_empty());

    ok(&dir, &["task", "answer", "DEMO-2", "Use port 8080."]);
    let done = wait::task(
        &dir,
        "DEMO-2",
        RUN_DEADLINE,
        "the resumed analysis done",
        |v| v["task"]["stage"] == "awaiting_approval" || v["task"]["stage"] == "needs_attention",
    );
    assert_eq!(done["task"]["stage"], "awaiting_approval", "{done:#}");
    assert_eq!(count_events(&done, "answered"), 1);
    let runs = done["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{done:#}");
    let resumed = runs
        .iter()
        .find(|r| r["run_id"] != first["run_id"])
        .unwrap();
    assert_eq!(resumed["outcome"], "succeeded", "{done:#}");
    assert_eq!(resumed["session_id"].as_str(), Some(session), "{done:#}");
}

/// `POST path` with a bearer token and a JSON body on `addr`: the status.
fn post(addr: &str, path: &str, token: &str, body: &str) -> u16 {
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut conn, &mut reply).unwrap();
    reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs the real Codex CLI (ORCH_TEST_CODEX_BIN); CI runs it"]
fn codex_gets_orch_tools_and_an_answer_resumes_the_same_thread() {
    let codex = cli_bin("ORCH_TEST_CODEX_BIN");
    let tmp = scratch();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Each model answer waits, so the question is asked while the run works.
    let fake = FakeApi::start_with(tmp.path(), &[("MOCK_DELAY", "3")]);
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let provider = format!(
        "model_providers.mock={{name=\"mock\",base_url=\"http://127.0.0.1:{}/v1\",wire_api=\"responses\"}}",
        fake.port
    );
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        let analyst = format!(
            "[agents.analyst]\nadapter = \"codex\"\ncommand = [{:?}, \"-c\", \"model_provider=mock\", \"-c\", {provider:?}, \"exec\", \"--json\", \"--skip-git-repo-check\", \"--sandbox\", \"workspace-write\", \"-m\", \"gpt-5.5\"]",
            codex.display().to_string()
        );
        let c = c.replace(
            "[agents.analyst]\ncommand = [\"examples/agents/analyst.sh\"]",
            &analyst,
        );
        format!(
            "{c}\n[agent_env]\nset = {{ HOME = {home:?}, PATH = {path:?} }}\n",
            home = home.display().to_string(),
        )
    });
    assert!(
        std::fs::read_to_string(dir.join("orch.toml"))
            .unwrap()
            .contains("adapter = \"codex\""),
        "the quickstart's analyst section changed; update this test's edit"
    );
    let _serve = Serve::start(&dir);
    add_task(&dir, "DEMO-2", "Pick a port", &[]);
    // Ask as `orch mcp` asks: the run's token, the agent route.
    let runs = dir.join(".orch/runs");
    let end = Instant::now() + RUN_DEADLINE;
    let (token, addr) = loop {
        let found = std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|e| std::fs::read_to_string(e.path().join("agent-token")).ok());
        if let Some(token) = found {
            let control: serde_json::Value =
                serde_json::from_slice(&std::fs::read(dir.join(".orch/serve.control")).unwrap())
                    .unwrap();
            let addr = control["url"]
                .as_str()
                .unwrap()
                .trim_start_matches("http://")
                .to_owned();
            break (token, addr);
        }
        assert!(Instant::now() < end, "no run got an orch token");
        // A file of the run the engine writes before the launch, before
        // anything commits: no signal to wait on.
        std::thread::sleep(Duration::from_millis(20));
    };
    let task = crate::common::show(&dir, "DEMO-2").unwrap()["task"]["id"].clone();
    let question = format!("/api/agent/tasks/{task}/question");
    let body = r#"{"question":"Which port should the server use?"}"#;
    loop {
        // 401 until the supervisor watches the run (just after its launch).
        match post(&addr, &question, token.trim(), body) {
            200 => break,
            401 => {}
            other => panic!("asking failed with {other}"),
        }
        assert!(Instant::now() < end, "the question was never accepted");
        // The supervisor starts watching the run in memory: nothing commits.
        std::thread::sleep(Duration::from_millis(20));
    }
    let parked = wait::task(&dir, "DEMO-2", RUN_DEADLINE, "parked on a question", |v| {
        v["task"]["stage"] != "analysis"
    });
    assert_eq!(parked["task"]["stage"], "needs_attention", "{parked:#}");
    assert_eq!(count_events(&parked, "agent_question"), 1);
    let first = &parked["runs"][0];
    assert_eq!(first["outcome"], "succeeded", "{parked:#}");
    let thread = first["session_id"].as_str().expect("the run's thread id");
    // Codex started orch's MCP server: its tools reached the model.
    let requests = std::fs::read_to_string(tmp.path().join("fake-api.requests.jsonl")).unwrap();
    assert!(
        requests.contains("ask_person"),
        "orch's tools were not offered to the model"
    );

    ok(&dir, &["task", "answer", "DEMO-2", "Use port 8080."]);
    let done = wait::task(
        &dir,
        "DEMO-2",
        RUN_DEADLINE,
        "the resumed analysis done",
        |v| v["task"]["stage"] == "awaiting_approval" || v["task"]["stage"] == "needs_attention",
    );
    assert_eq!(done["task"]["stage"], "awaiting_approval", "{done:#}");
    let runs = done["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{done:#}");
    let resumed = runs
        .iter()
        .find(|r| r["run_id"] != first["run_id"])
        .unwrap();
    assert_eq!(resumed["outcome"], "succeeded", "{done:#}");
    assert_eq!(resumed["session_id"].as_str(), Some(thread), "{done:#}");
    // Codex reports the thread's running total: the resumed run is charged
    // only its own requests (one answer), not the first run's (two) again.
    let input = |r: &serde_json::Value| r["usage"]["input_tokens"].as_u64().unwrap();
    assert!(input(first) > 0 && input(resumed) > 0, "{done:#}");
    assert!(input(resumed) < input(first), "{done:#}");
    // The resumed thread heard the answer.
    let requests = std::fs::read_to_string(tmp.path().join("fake-api.requests.jsonl")).unwrap();
    assert!(requests.contains("Use port 8080."));
}
