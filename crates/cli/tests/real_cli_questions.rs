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
//! Codex is not driven here: the fake's `MOCK_CALLTOOL` scripts Claude's
//! Messages API only, so no Codex model would call the tool (see
//! docs/feedback.md); its `request_user_input` is checked on a transcript in
//! `crates/agent/tests/adapters_transcripts.rs`.

mod common;

use common::{Serve, count_events, ok, quickstart_project, wait_for};
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

fn claude_bin() -> PathBuf {
    let path = std::env::var_os("ORCH_TEST_CLAUDE_BIN").unwrap_or_else(|| {
        panic!(
            "ORCH_TEST_CLAUDE_BIN is not set. This test runs the real Claude Code CLI: run \
             scripts/install-agent-clis.sh, export the ORCH_TEST_CLAUDE_BIN it prints, then \
             cargo test -p orch-cli --test real_cli_questions -- --ignored"
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "ORCH_TEST_CLAUDE_BIN={} is no file",
        path.display()
    );
    path
}

/// The fake model API on a free loopback port; killed on drop.
struct FakeApi {
    child: Child,
    port: u16,
}

impl FakeApi {
    fn start(dir: &Path) -> FakeApi {
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
    let claude = claude_bin();
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
    ok(
        &dir,
        &[
            "task",
            "add",
            "--repo",
            "demo",
            "--title",
            "Pick a port",
            "--id",
            "DEMO-2",
            "--body",
            "Ask a person which port to use. MOCK_CALLTOOL:mcp__orch__ask_person",
        ],
    );
    let parked = wait_for(&dir, "DEMO-2", RUN_DEADLINE, "parked on a question", |v| {
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
    let done = wait_for(
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
