//! The tools of `orch mcp`, each one call of the engine's agent routes
//! (`/api/agent/tasks/{id}…`, `orch_server`'s `agent.rs`) with the run's
//! token. The engine decides what is allowed; a refusal comes back to the
//! model as a tool error with the engine's words.

use crate::error::{CliError, CliResult};
use serde_json::{Value, json};
use std::time::Duration;

/// What the model is told about these tools when the session starts.
pub const INSTRUCTIONS: &str = "orch's tools for the task this run works on. \
read_work_item shows the work item and its comments; post_note posts a short \
progress note on it; ask_person asks a person a question when you cannot go on \
without one: then end your turn, and this session resumes with the answer.";

/// A tool call's result, as MCP's `CallToolResult`.
pub struct Outcome {
    text: String,
    is_error: bool,
}

impl Outcome {
    pub fn to_mcp(&self) -> Value {
        json!({
            "content": [{ "type": "text", "text": self.text }],
            "isError": self.is_error,
        })
    }
}

pub struct Tools {
    client: reqwest::Client,
    url: String,
    task: i64,
    token: String,
}

/// The optional `item` every tool takes: the run's own task is the default,
/// and anything else is refused by the engine.
fn item_property() -> Value {
    json!({
        "type": "string",
        "description": "The work item key or task id; only this run's own task is allowed (the default)."
    })
}

pub fn list() -> Value {
    json!([
        {
            "name": "read_work_item",
            "description": "Read the work item this run works on: title, description, stage and its comments (people's comments at the gates, notes, questions and answers).",
            "inputSchema": {
                "type": "object",
                "properties": { "item": item_property() },
            },
        },
        {
            "name": "post_note",
            "description": "Post a short progress note on the work item, for the people following it.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "The note" },
                    "item": item_property(),
                },
                "required": ["text"],
            },
        },
        {
            "name": "ask_person",
            "description": "Ask a person a question you cannot go on without. The question is posted on the work item; end your turn after asking: this session resumes with the answer.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "question": { "type": "string", "description": "The question for a person" },
                    "item": item_property(),
                },
                "required": ["question"],
            },
        },
    ])
}

impl Tools {
    pub fn new(url: &str, task: i64, token: String) -> CliResult<Tools> {
        // The engine is on this machine: never through a proxy.
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("building the HTTP client: {e}")))?;
        Ok(Tools {
            client,
            url: url.trim_end_matches('/').to_owned(),
            task,
            token,
        })
    }

    /// Runs the tool `name`; `None` when there is no such tool.
    pub async fn call(&self, name: &str, args: &Value) -> Option<Outcome> {
        // Arguments come from a model: a wrong type is said back as a tool
        // error naming the argument, never taken as something else.
        let item = match args.get("item") {
            None | Some(Value::Null) => self.task.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Some(failed(format!(
                    "`item` must be a work item key or a task id, not {}",
                    short(other)
                )));
            }
        };
        let base = format!("{}/api/agent/tasks/{}", self.url, segment(&item));
        let text_arg = |key: &str| -> Result<String, Outcome> {
            match args.get(key) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(failed(format!(
                    "`{key}` must be a string, not {}",
                    short(other)
                ))),
            }
        };
        Some(match name {
            "read_work_item" => self.send(self.client.get(&base)).await,
            "post_note" => {
                let text = match text_arg("text") {
                    Ok(t) => t,
                    Err(o) => return Some(o),
                };
                let body = json!({ "text": text });
                match self
                    .send(self.client.post(format!("{base}/notes")).json(&body))
                    .await
                {
                    o if o.is_error => o,
                    _ => ok("The note was posted on the work item."),
                }
            }
            "ask_person" => {
                let question = match text_arg("question") {
                    Ok(t) => t,
                    Err(o) => return Some(o),
                };
                let body = json!({ "question": question });
                match self
                    .send(self.client.post(format!("{base}/question")).json(&body))
                    .await
                {
                    o if o.is_error => o,
                    _ => ok(
                        "Your question was recorded and is posted on the work item for a person. \
                         End your turn now without further changes: this session resumes with the answer.",
                    ),
                }
            }
            _ => return None,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Outcome {
        let resp = match req.bearer_auth(&self.token).send().await {
            Ok(r) => r,
            Err(e) => return failed(format!("orch did not answer: {e}")),
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            ok(&text)
        } else {
            let why = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or(text);
            failed(format!("refused ({}): {why}", status.as_u16()))
        }
    }
}

fn ok(text: &str) -> Outcome {
    Outcome {
        text: text.to_owned(),
        is_error: false,
    }
}

/// A value as a model wrote it, cut for an error message.
fn short(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn failed(text: String) -> Outcome {
    Outcome {
        text,
        is_error: true,
    }
}

/// A task id or key as one URL path segment.
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
