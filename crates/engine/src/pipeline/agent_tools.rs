//! What an agent's `orch mcp` tools may do, bound to its own run's task
//! (issue 16 point 5): read the work item and its log, post a progress note,
//! ask a person (R-8a).
//!
//! The preparer mints each Claude Code / Codex run a token
//! ([`crate::supervisor`]'s `agent_token`), writes it where only the run's
//! MCP server reads it, and hands the CLI the server's config. The API
//! resolves a token to its [`AgentSession`] through the supervisor, which
//! knows it only while it watches the run: the token dies with the run. No
//! tracker, forge or API credential is in anything the agent gets.

use super::task_view;
use super::{Pipeline, PipelineError, PipelineResult};
use crate::supervisor::{AgentSession, agent_token};
use orch_agent::adapters::{AdapterKind, MAX_QUESTION_CHARS};
use orch_core::pipeline::Gate;
use orch_core::{EventKind, Stage, Task, TaskEvent, Timestamp};
use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The token's file in the run folder, read by the run's `orch mcp` only.
pub const TOKEN_FILE: &str = "agent-token";
/// Claude Code's `--mcp-config` file in the run folder.
pub const MCP_CONFIG_FILE: &str = "mcp.json";
/// The MCP server's name: its tools reach the model as `mcp__orch__<tool>`.
pub const SERVER_NAME: &str = "orch";
/// The most characters of a progress note.
pub const MAX_NOTE_CHARS: usize = 4000;
/// The most progress notes one run may post: each is a comment on the
/// tracker item, and an agent in a loop must not flood it.
pub const MAX_NOTES_PER_RUN: u32 = 20;

/// The `orch mcp` program and the API it talks to.
#[derive(Debug, Clone)]
pub struct AgentToolsServer {
    pub program: PathBuf,
    pub api_url: String,
}

impl AgentToolsServer {
    /// Mints the run's token (its hash for the supervisor, the token for the
    /// MCP server) and returns the CLI arguments that hand the server over.
    pub fn prepare(
        &self,
        adapter: AdapterKind,
        task: &Task,
        run_dir: &Path,
    ) -> std::io::Result<Vec<String>> {
        if adapter == AdapterKind::Command {
            return Ok(Vec::new());
        }
        let (token, hash) = agent_token::mint();
        let token_file = run_dir.join(TOKEN_FILE);
        write_private(&token_file, token.as_bytes())?;
        agent_token::write_hash(run_dir, &hash)?;
        let args = vec![
            "mcp".to_owned(),
            "--url".to_owned(),
            self.api_url.clone(),
            "--task".to_owned(),
            task.id.to_string(),
            "--token-file".to_owned(),
            token_file.display().to_string(),
        ];
        let program = self.program.display().to_string();
        Ok(match adapter {
            AdapterKind::ClaudeCode => {
                let config = serde_json::json!({
                    "mcpServers": { SERVER_NAME: {
                        "type": "stdio",
                        "command": program,
                        "args": args,
                    }}
                });
                let path = run_dir.join(MCP_CONFIG_FILE);
                write_private(&path, config.to_string().as_bytes())?;
                // orch's own tools are allowed: in `-p` mode nobody could
                // grant them, and they can do nothing beyond the run's task.
                vec![
                    "--mcp-config".to_owned(),
                    path.display().to_string(),
                    "--allowedTools".to_owned(),
                    format!("mcp__{SERVER_NAME}"),
                ]
            }
            AdapterKind::Codex => {
                // TOML values: a JSON string or array of strings is one.
                let toml_str = |s: &str| serde_json::Value::from(s).to_string();
                let toml_args = serde_json::Value::from(args).to_string();
                vec![
                    "-c".to_owned(),
                    format!("mcp_servers.{SERVER_NAME}.command={}", toml_str(&program)),
                    "-c".to_owned(),
                    format!("mcp_servers.{SERVER_NAME}.args={toml_args}"),
                ]
            }
            AdapterKind::Command => Vec::new(),
        })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// The work item as an agent's `read_work_item` tool shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AgentWorkItem {
    pub task: i64,
    pub key: String,
    pub repo: String,
    pub branch: String,
    pub stage: String,
    pub title: String,
    pub body: String,
    /// The item's conversation as orch holds it: people's comments at the
    /// gates, the agents' notes, questions and their answers.
    pub comments: Vec<AgentComment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AgentComment {
    pub at: Timestamp,
    pub who: String,
    pub kind: EventKind,
    pub text: String,
}

/// The log lines that are a conversation about the item (not orch's own
/// bookkeeping, which may name hosts and errors of its integrations).
fn is_conversation(e: &TaskEvent) -> bool {
    matches!(
        e.kind,
        EventKind::Created
            | EventKind::Comment
            | EventKind::Approved
            | EventKind::Rejected
            | EventKind::ChangesRequested
            | EventKind::Resumed
            | EventKind::AgentQuestion
            | EventKind::Answered
            | EventKind::AgentNote
    )
}

/// `text` trimmed, refused when empty or longer than `max` characters.
fn bounded(what: &str, text: &str, max: usize) -> PipelineResult<String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(PipelineError::Invalid(format!("the {what} is empty")));
    }
    let n = text.chars().count();
    if n > max {
        return Err(PipelineError::Invalid(format!(
            "the {what} has {n} characters; at most {max} are accepted"
        )));
    }
    Ok(text.to_owned())
}

impl Pipeline {
    /// A person's comment on the tracker item of a task parked on its
    /// agent's question (any comment after the park, not orch's) answers
    /// it, as `orch task answer` would. Run with the reconciler's pass: one
    /// tracker read per task waiting on a question. Returns how many
    /// tasks were answered.
    pub async fn answers_from_tracker(&self) -> PipelineResult<usize> {
        let filter = orch_store::TaskFilter {
            stage: Some(Stage::NeedsAttention),
            ..Default::default()
        };
        let mut answered = 0;
        for task in self.store.list_tasks(&filter).await? {
            let Some(item) = task.original_tracker_id().map(str::to_owned) else {
                continue;
            };
            if task_view(self.store.as_ref(), &task)
                .await?
                .question
                .is_none()
            {
                continue;
            }
            let Some(answer) = self.person_comment(&task, &item, "tracker").await else {
                continue;
            };
            if self
                .gate(task.id, Gate::Answer, Some(&answer))
                .await?
                .applied
            {
                answered += 1;
            }
        }
        Ok(answered)
    }

    /// The watched run whose `orch mcp` token this is (`None`: no such run,
    /// or it ended, or no supervisor runs in this process).
    pub fn agent_session(&self, token: &str) -> Option<AgentSession> {
        self.supervisor.get()?.agent_session(token)
    }

    /// The session's task, as its agent may read it.
    pub async fn agent_work_item(&self, s: &AgentSession) -> PipelineResult<AgentWorkItem> {
        let task = self.task(s.task).await?;
        let events = self.store.events(task.id).await?;
        Ok(AgentWorkItem {
            task: task.id.0,
            key: task.original_work_item_id().to_owned(),
            repo: task.repo.clone(),
            branch: task.branch.clone(),
            stage: task.stage.to_string(),
            title: task.title.clone(),
            body: task.body.clone(),
            comments: events
                .iter()
                .filter(|e| is_conversation(e))
                .map(|e| AgentComment {
                    at: e.at,
                    who: e.actor.clone(),
                    kind: e.kind,
                    text: e.message.clone(),
                })
                .collect(),
        })
    }

    /// A progress note from the agent: in the task's log and on its
    /// tracker item (through the outbox, like every tracker write).
    pub async fn agent_note(&self, s: &AgentSession, text: &str) -> PipelineResult<()> {
        let text = bounded("note", text, MAX_NOTE_CHARS)?;
        let counted = self
            .supervisor
            .get()
            .is_some_and(|sup| sup.count_note(&s.run, MAX_NOTES_PER_RUN));
        if !counted {
            return Err(PipelineError::Invalid(format!(
                "run {} has posted its {MAX_NOTES_PER_RUN} notes, or has ended; no more are taken",
                s.run
            )));
        }
        let task = self.task(s.task).await?;
        let ev =
            orch_core::EventInput::new(format!("agent:{}", s.run), EventKind::AgentNote, &text)
                .with_tracker_comment(format!("orch: a note from the agent at work:\n\n{text}"));
        self.store.append_event(task.id, ev).await?;
        self.write_tracker(&task, Vec::new()).await;
        Ok(())
    }

    /// The agent asks a person: the question is kept with its run, and the
    /// task parks on it when the run ends (the tool tells the agent to end
    /// its turn; a person's answer resumes its session).
    pub fn agent_ask(&self, s: &AgentSession, question: &str) -> PipelineResult<()> {
        let question = bounded("question", question, MAX_QUESTION_CHARS)?;
        let recorded = self
            .supervisor
            .get()
            .is_some_and(|sup| sup.record_question(&s.run, question));
        if recorded {
            Ok(())
        } else {
            Err(PipelineError::NotFound(format!(
                "run {} has ended; its tools are closed",
                s.run
            )))
        }
    }
}
