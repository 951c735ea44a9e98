//! `orch mcp`: the Model Context Protocol server orch hands to each Claude
//! Code / Codex run (issue 16 point 5), over stdio.
//!
//! The protocol part is small and hand-written (MCP's stdio transport is
//! newline-delimited JSON-RPC 2.0, and a server of three tools needs only
//! `initialize`, `ping`, `tools/list` and `tools/call`); the SDK crates
//! bring a macro and schema stack this does not need. The tools
//! (`tools.rs`) call the engine's API with the run's token: they can read
//! and write only the run's own task, and stop working when the run ends.
//!
//! stdout carries protocol messages only; diagnostics go to stderr.

mod tools;

use crate::error::{CliError, CliResult};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The protocol revision answered when the client asks for none we know.
const PROTOCOL_VERSION: &str = "2025-06-18";
/// Revisions whose shape of the four methods used here is the same.
const KNOWN_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18"];

#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// The engine's API (orch writes it into the run's MCP config).
    #[arg(long)]
    pub url: String,
    /// The id of the run's task: the only task the tools act on.
    #[arg(long)]
    pub task: i64,
    /// The file holding the run's token (in the run's folder, owner-only).
    #[arg(long, value_name = "PATH")]
    pub token_file: std::path::PathBuf,
}

pub async fn run(a: &McpArgs) -> CliResult {
    let token = std::fs::read_to_string(&a.token_file)
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot read the run's token from {}: {e}",
                a.token_file.display()
            ))
        })?
        .trim()
        .to_owned();
    let tools = tools::Tools::new(&a.url, a.task, token)?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| CliError::Runtime(anyhow::anyhow!("reading stdin: {e}")))?
    {
        if line.trim().is_empty() {
            continue;
        }
        let Some(reply) = handle(&tools, &line).await else {
            continue;
        };
        let mut bytes = reply.to_string().into_bytes();
        bytes.push(b'\n');
        out.write_all(&bytes)
            .await
            .and(out.flush().await)
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("writing stdout: {e}")))?;
    }
    Ok(())
}

/// The reply to one message; `None` for a notification (no id).
async fn handle(tools: &tools::Tools, line: &str) -> Option<Value> {
    let msg: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return Some(error(Value::Null, -32700, &format!("parse error: {e}"))),
    };
    let id = msg.get("id").cloned();
    let method = msg.get("method").and_then(Value::as_str);
    let (Some(id), Some(method)) = (id, method) else {
        // A notification (`notifications/initialized`, a cancel) or a reply
        // to a request this server never sends: nothing to answer.
        return None;
    };
    let params = msg.get("params").cloned().unwrap_or(Value::Null);
    Some(match method {
        "initialize" => {
            let asked = params.get("protocolVersion").and_then(Value::as_str);
            let version = asked
                .filter(|v| KNOWN_VERSIONS.contains(v))
                .unwrap_or(PROTOCOL_VERSION);
            result(
                id,
                json!({
                    "protocolVersion": version,
                    "capabilities": { "tools": { "listChanged": false } },
                    "serverInfo": { "name": "orch", "version": env!("CARGO_PKG_VERSION") },
                    "instructions": tools::INSTRUCTIONS,
                }),
            )
        }
        "ping" => result(id, json!({})),
        "tools/list" => result(id, json!({ "tools": tools::list() })),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            let args = params.get("arguments").cloned().unwrap_or(json!({}));
            match tools.call(name, &args).await {
                Some(outcome) => result(id, outcome.to_mcp()),
                None => error(id, -32602, &format!("unknown tool {name:?}")),
            }
        }
        other => error(id, -32601, &format!("method {other:?} is not offered")),
    })
}

fn result(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

fn error(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}
