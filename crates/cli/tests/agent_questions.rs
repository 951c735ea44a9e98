//! An agent's `orch mcp` tools and its questions through the `orch` binary
//! (issue 16 points 4 and 5): the tools are bound to the run's task and die
//! with the run; `ask_person` parks the task with the question; `orch task
//! answer` resumes the same session with the answer.
//!
//! The analyst is a stand-in for Claude Code (adapter `claude_code`): a
//! script that prints stream-json, records its command line, and ends its
//! turn when the test releases it. The MCP server is started as Claude Code
//! starts it: from the `--mcp-config` file orch wrote for the run. The same
//! path with the real CLI is `real_cli_questions.rs`.

mod common;

use common::{Serve, add_task, count_events, ok, orch, quickstart_project, wait};
use orch_store::{SqliteOptions, SqliteStore, TrackerStore};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const SESSION: &str = "fake-session-1";

/// The builtin tracker's comments on `item` (orch's and people's), once
/// delivered from the outbox (waits for one containing `needle`).
fn wait_item_comment(dir: &Path, item: &str, needle: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(60);
    let mut signal = common::wait::Signal::new(dir);
    loop {
        signal.mark();
        let comments: Vec<String> = rt.block_on(async {
            let store = SqliteStore::open(dir.join(".orch/orch.db"), SqliteOptions::default())
                .await
                .unwrap();
            let c = store.item_comments(item).await.unwrap();
            store.close().await;
            c.into_iter().map(|c| c.body).collect()
        });
        if comments.iter().any(|c| c.contains(needle)) {
            return comments;
        }
        assert!(
            Instant::now() < end,
            "no comment with {needle:?} on {item}: {comments:#?}"
        );
        signal.next(end.saturating_duration_since(Instant::now()));
    }
}

/// `GET path` on the running engine's API with the CLI's control token.
fn api_get(dir: &Path, path: &str) -> Value {
    let control: Value =
        serde_json::from_slice(&std::fs::read(dir.join(".orch/serve.control")).unwrap()).unwrap();
    let addr = control["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        control["token"].as_str().unwrap()
    )
    .unwrap();
    let mut reply = String::new();
    std::io::Read::read_to_string(&mut conn, &mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A stand-in for `claude -p … --output-format stream-json`: names its
/// session, appends its argv (one per line, then `--end--`) to `argv.log`,
/// waits for `release`, then ends its turn with a successful result.
fn fake_claude(dir: &Path) -> PathBuf {
    let path = dir.join("fake-claude.sh");
    let log = dir.join("argv.log");
    let release = dir.join("release");
    std::fs::write(
        &path,
        format!(
            r#"#!/bin/sh
for a in "$@"; do printf '%s\n' "$a" >> '{log}'; done
echo --end-- >> '{log}'
echo '{{"type":"system","subtype":"init","session_id":"{SESSION}","model":"claude-sonnet-4-5"}}'
while [ ! -e '{release}' ]; do sleep 0.05; done
echo '{{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"{SESSION}","total_cost_usd":0,"usage":{{"input_tokens":1,"output_tokens":1}},"permission_denials":[]}}'
"#,
            log = log.display(),
            release = release.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    path
}

/// Waits until the stand-in was started `n` times; their argvs.
fn wait_invocations(dir: &Path, n: usize) -> Vec<Vec<String>> {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let all = invocations(dir);
        if all.len() >= n {
            return all;
        }
        assert!(
            Instant::now() < end,
            "the agent was started {} times, not {n}",
            all.len()
        );
        // A file the agent writes as it starts: no engine signal for it.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The argv of each of the stand-in's invocations so far.
fn invocations(dir: &Path) -> Vec<Vec<String>> {
    let log = std::fs::read_to_string(dir.join("argv.log")).unwrap_or_default();
    log.split("--end--\n")
        .filter(|s| !s.is_empty())
        .map(|s| s.lines().map(str::to_owned).collect())
        .collect()
}

/// The `orch mcp` server of a run, started from its MCP config as Claude
/// Code starts it.
struct McpServer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl McpServer {
    fn start(mcp_config: &Path) -> McpServer {
        let cfg: Value = serde_json::from_slice(&std::fs::read(mcp_config).unwrap()).unwrap();
        let server = &cfg["mcpServers"]["orch"];
        let args: Vec<&str> = server["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let mut child = Command::new(server["command"].as_str().unwrap())
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start orch mcp");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut s = McpServer {
            child,
            stdin,
            stdout,
            next_id: 1,
        };
        let init = s.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
        );
        assert_eq!(init["result"]["serverInfo"]["name"], "orch", "{init}");
        assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        s
    }

    fn send(&mut self, msg: &Value) {
        writeln!(self.stdin, "{msg}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read a reply");
        let reply: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }

    /// `tools/call`: (is it an error, its text).
    fn call(&mut self, tool: &str, args: Value) -> (bool, String) {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        let result = &r["result"];
        (
            result["isError"].as_bool().unwrap(),
            result["content"][0]["text"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The folder of the task's run that has an MCP config (waits for it).
fn run_with_mcp_config(dir: &Path, not: &[PathBuf]) -> PathBuf {
    let runs = dir.join(".orch/runs");
    let end = Instant::now() + Duration::from_secs(60);
    let mut signal = common::wait::Signal::new(dir);
    loop {
        signal.mark();
        if let Ok(entries) = std::fs::read_dir(&runs) {
            for e in entries.flatten() {
                let p = e.path();
                if p.join("mcp.json").exists() && !not.contains(&p) {
                    return p;
                }
            }
        }
        assert!(Instant::now() < end, "no run with an MCP config appeared");
        signal.next(end.saturating_duration_since(Instant::now()));
    }
}

#[test]
fn an_agent_asks_through_its_tools_and_the_answer_resumes_its_session() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_claude(tmp.path());
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        c.replace(
            "[agents.analyst]\ncommand = [\"examples/agents/analyst.sh\"]",
            &format!(
                "[agents.analyst]\nadapter = \"claude_code\"\ncommand = [\"{}\"]",
                fake.display()
            ),
        )
    });
    assert!(
        std::fs::read_to_string(dir.join("orch.toml"))
            .unwrap()
            .contains("adapter = \"claude_code\""),
        "the quickstart's analyst section changed; update this test's edit"
    );
    let _serve = Serve::start(&dir);
    add_task(&dir, "DEMO-2", "Pick a port", &[]);
    let run_dir = run_with_mcp_config(&dir, &[]);
    // The token is the run's own; its hash is what orch keeps.
    let token = std::fs::read_to_string(run_dir.join("agent-token")).unwrap();
    let hash = std::fs::read_to_string(run_dir.join("agent-token.sha256")).unwrap();
    assert!(!hash.contains(token.trim()));
    let first = wait_invocations(tmp.path(), 1);
    assert_eq!(first.len(), 1);
    let argv = &first[0];
    let at = argv.iter().position(|a| a == "--mcp-config").unwrap();
    assert_eq!(Path::new(&argv[at + 1]), run_dir.join("mcp.json"));
    assert_eq!(argv[at + 2..at + 4], ["--allowedTools", "mcp__orch"]);
    assert!(!argv.iter().any(|a| a == "--resume"));

    let mut mcp = McpServer::start(&run_dir.join("mcp.json"));
    let tools = mcp.request("tools/list", json!({}));
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["read_work_item", "post_note", "ask_person"]);

    // Its own item, by default and by key.
    let (err, text) = mcp.call("read_work_item", json!({}));
    assert!(!err, "{text}");
    let item: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(item["key"], "DEMO-2");
    assert_eq!(item["title"], "Pick a port");
    assert!(!mcp.call("read_work_item", json!({"item": "DEMO-2"})).0);
    // Another task's item is refused, though it exists (the quickstart's).
    let (err, text) = mcp.call("read_work_item", json!({"item": "DEMO-1"}));
    assert!(err && text.contains("403"), "{text}");
    let (err, text) = mcp.call("post_note", json!({"item": "DEMO-1", "text": "hi"}));
    assert!(err && text.contains("403"), "{text}");
    let (err, text) = mcp.call("ask_person", json!({"item": "1", "question": "x?"}));
    assert!(err && text.contains("403"), "{text}");
    // An unknown method and an unknown tool are protocol errors.
    assert_eq!(
        mcp.request("resources/list", json!({}))["error"]["code"],
        -32601
    );
    assert_eq!(
        mcp.request("tools/call", json!({"name": "rm", "arguments": {}}))["error"]["code"],
        -32602
    );
    // Arguments of the wrong type are tool errors naming the argument; the
    // session goes on (Symphony SPEC §17.5).
    let (err, text) = mcp.call("post_note", json!({"text": 42}));
    assert!(err && text.contains("`text` must be a string"), "{text}");
    let (err, text) = mcp.call("ask_person", json!({"question": ["a", "b"]}));
    assert!(
        err && text.contains("`question` must be a string"),
        "{text}"
    );
    let (err, text) = mcp.call("read_work_item", json!({"item": {"key": "DEMO-2"}}));
    assert!(err && text.contains("`item` must be"), "{text}");
    let (err, text) = mcp.call("post_note", json!({"text": "   "}));
    assert!(err && text.contains("empty"), "{text}");
    assert!(
        !mcp.call("read_work_item", json!({})).0,
        "the session still answers"
    );

    let (err, text) = mcp.call("post_note", json!({"text": "Looking at the config."}));
    assert!(!err, "{text}");
    // A run's notes are bounded: each is a comment on the tracker item.
    for n in 2..=20 {
        let (err, text) = mcp.call("post_note", json!({"text": format!("note {n}")}));
        assert!(!err, "{text}");
    }
    let (err, text) = mcp.call("post_note", json!({"text": "one too many"}));
    assert!(
        err && text.contains("400") && text.contains("20 notes"),
        "{text}"
    );
    let (err, text) = mcp.call(
        "ask_person",
        json!({"question": "Which port should the server use?"}),
    );
    assert!(!err, "{text}");
    assert!(text.contains("End your turn"), "{text}");

    // The agent ends its turn: the task parks on the question.
    std::fs::write(tmp.path().join("release"), "").unwrap();
    let parked = wait::task(&dir, "DEMO-2", Duration::from_secs(60), "parked", |v| {
        v["task"]["stage"] == "needs_attention"
    });
    let question = parked["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "agent_question")
        .unwrap_or_else(|| panic!("no agent_question event: {parked:#}"));
    assert_eq!(question["message"], "Which port should the server use?");
    assert_eq!(question["to_stage"], "needs_attention");
    assert_eq!(count_events(&parked, "agent_note"), 20);
    assert_eq!(parked["runs"][0]["session_id"], SESSION);
    // The question is on the tracker item, with how to answer; the note too.
    let comments = wait_item_comment(&dir, "DEMO-2", "the agent asks a person");
    let asked = comments
        .iter()
        .find(|c| c.contains("the agent asks a person"))
        .unwrap();
    assert!(
        asked.contains("> Which port should the server use?"),
        "{asked}"
    );
    assert!(asked.contains("orch task answer"), "{asked}");
    assert!(
        comments
            .iter()
            .any(|c| c.contains("Looking at the config.")),
        "{comments:#?}"
    );
    // The dashboard's inbox lists it as a question to answer.
    let inbox = api_get(&dir, "/api/inbox");
    let item = inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["task"]["key"] == "DEMO-2")
        .unwrap_or_else(|| panic!("{inbox:#}"));
    assert_eq!(item["kind"], "agent_question");
    assert_eq!(item["actions"], json!(["answer"]));
    assert_eq!(item["detail"], "Which port should the server use?");

    // The run ended: its tools are closed.
    let (err, text) = mcp.call("read_work_item", json!({}));
    assert!(err && text.contains("401"), "{text}");
    let (err, text) = mcp.call("ask_person", json!({"question": "again?"}));
    assert!(err && text.contains("401"), "{text}");

    // The answer resumes the same session, with the answer as its prompt.
    ok(&dir, &["task", "answer", "DEMO-2", "Use port 8080."]);
    let done = wait::task(
        &dir,
        "DEMO-2",
        Duration::from_secs(60),
        "the resumed analysis done",
        |v| v["task"]["stage"] == "awaiting_approval",
    );
    assert_eq!(count_events(&done, "answered"), 1);
    let all = invocations(tmp.path());
    assert_eq!(all.len(), 2, "{all:?}");
    let resumed = &all[1];
    let at = resumed.iter().position(|a| a == "--resume").unwrap();
    assert_eq!(resumed[at + 1], SESSION);
    // The prompt is the arguments after `--` (its lines were logged apart).
    let sep = resumed.iter().position(|a| a == "--").unwrap();
    assert!(at < sep, "{resumed:?}");
    let prompt = resumed[sep + 1..].join("\n");
    assert!(
        prompt.contains("A person answered your question:\n\nUse port 8080."),
        "{prompt}"
    );
    // A new run, a new token: the first run's is dead for good.
    let second = run_with_mcp_config(&dir, std::slice::from_ref(&run_dir));
    assert_ne!(
        std::fs::read_to_string(second.join("agent-token")).unwrap(),
        token
    );

    // Nothing waits for an answer now.
    let out = orch(&dir, &["task", "answer", "DEMO-2", "again"]);
    assert!(!out.status.success());
}

/// A person's comment on the parked item is the answer (the tracker is read
/// with the reconciler's pass), as `orch task answer` would give it.
#[test]
fn a_persons_comment_on_the_tracker_item_answers_the_question() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = fake_claude(tmp.path());
    let dir = quickstart_project(tmp.path(), "qs", |c| {
        c.replace(
            "[agents.analyst]\ncommand = [\"examples/agents/analyst.sh\"]",
            &format!(
                "[agents.analyst]\nadapter = \"claude_code\"\ncommand = [\"{}\"]",
                fake.display()
            ),
        )
    });
    let _serve = Serve::start(&dir);
    add_task(&dir, "DEMO-2", "Pick a port", &[]);
    let run_dir = run_with_mcp_config(&dir, &[]);
    wait_invocations(tmp.path(), 1);
    let mut mcp = McpServer::start(&run_dir.join("mcp.json"));
    let (err, text) = mcp.call("ask_person", json!({"question": "Which port?"}));
    assert!(!err, "{text}");
    std::fs::write(tmp.path().join("release"), "").unwrap();
    wait::task(&dir, "DEMO-2", Duration::from_secs(60), "parked", |v| {
        v["task"]["stage"] == "needs_attention"
    });
    // orch's own comments (the question) answer nothing; a person's does.
    wait_item_comment(&dir, "DEMO-2", "the agent asks a person");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SqliteStore::open(dir.join(".orch/orch.db"), SqliteOptions::default())
            .await
            .unwrap();
        store
            .add_item_comment("DEMO-2", "alice", "Port 9090, please.", None)
            .await
            .unwrap();
        store.close().await;
    });
    let done = wait::task(
        &dir,
        "DEMO-2",
        Duration::from_secs(60),
        "the analysis resumed with the comment",
        |v| v["task"]["stage"] == "awaiting_approval",
    );
    let answered = done["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "answered")
        .unwrap_or_else(|| panic!("{done:#}"));
    assert_eq!(answered["message"], "Port 9090, please.");
    let all = wait_invocations(tmp.path(), 2);
    let resumed = &all[1];
    let at = resumed.iter().position(|a| a == "--resume").unwrap();
    assert_eq!(resumed[at + 1], SESSION);
    assert!(
        resumed.iter().any(|a| a == "Port 9090, please."),
        "{resumed:?}"
    );
}
