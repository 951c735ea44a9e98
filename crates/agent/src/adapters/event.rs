//! The live events adapters extract from agent output, for logs and the dashboard.

use orch_core::run::Usage;
use serde::{Deserialize, Serialize};

/// One thing an agent reported while running. Serialised with an `event` tag
/// (`{"event":"tool_use","name":"Bash","summary":"ls -la"}`) for the live stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AgentEvent {
    /// The session began (Claude `system/init`, Codex `thread.started`).
    Started {
        session_id: Option<String>,
        model: Option<String>,
    },
    /// A complete block of text from the model.
    AssistantText { text: String },
    /// A streamed fragment of text (Claude `--include-partial-messages`).
    TextDelta { text: String },
    /// Thinking / reasoning text.
    Reasoning { text: String },
    /// The agent started a tool; `summary` is its main argument (command, path, …),
    /// shortened for display.
    ToolUse { name: String, summary: String },
    /// A tool finished.
    ToolResult { is_error: bool },
    /// The agent is retrying a failed model request; not fatal by itself.
    Retry {
        attempt: Option<u32>,
        max_attempts: Option<u32>,
        error: String,
    },
    /// Informational text: a warning, a status change, an interrupt marker.
    Notice { message: String },
    /// An error the agent reported (an API error message, a Codex `error` that is not
    /// a retry notice). Whether the run failed is decided only by its final line.
    Error { message: String },
    /// Claude's final `result` line; `usage` is the run's total.
    Result { success: bool, usage: Usage },
    /// Codex finished a turn; `usage` is this run's usage so far (previous thread
    /// total already subtracted).
    TurnCompleted { usage: Usage },
    /// Codex failed a turn.
    TurnFailed { message: String },
    /// The agent needs a person: a denied permission (Claude) or a request
    /// for input (Codex). The run's outcome carries it as its question.
    Question { text: String },
    /// A line of a plain command's output.
    Output { line: String },
    /// A line the adapter does not understand, kept verbatim.
    Unknown { raw: String },
}
