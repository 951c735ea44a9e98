//! Parsers of agent output (Claude Code stream-json, Codex exec --json, plain command).
//!
//! An adapter is fed the agent's stdout one line at a time and turns each line into
//! [`AgentEvent`]s for the live dashboard; when the process has ended,
//! [`OutputAdapter::finish`] decides the run's [`AgentOutcome`] from what it saw.
//!
//! Rules every adapter keeps, because the real CLIs break the obvious ones:
//! - The outcome comes from the agent's own final line (Claude `result`, Codex
//!   `turn.completed` / `turn.failed`), not from the exit code: Claude exits 0 on a
//!   SIGINT while it waits on the API, and Codex has been seen exiting 0 after
//!   `turn.failed`. A run without that final line is [`OutcomeKind::Interrupted`],
//!   whatever its exit status.
//! - Lines the adapter does not know (new types, subtypes, non-JSON noise, binary
//!   garbage) come back as [`AgentEvent::Unknown`] and never fail or panic the parse.
//!
//! What [`OutputAdapter::usage_so_far`] can tell mid-run (for per-task budgets):
//! - Claude: every `assistant` line carries its API message's usage. Input and cache
//!   tokens are exact per message; `output_tokens` is not final (often `1`) unless
//!   `--include-partial-messages` streams `message_delta` events, which carry it.
//!   Cost is estimated from the [`PriceTable`] until the `result` line reports it.
//! - Codex: nothing until `turn.completed`, which reports the thread's running total
//!   (the adapter subtracts the previous run's total on a resumed thread). No usage
//!   at all on `turn.failed` or an interrupt, so only a wall-clock budget bounds it.
//! - Command: nothing, ever.

mod claude;
mod codex;
mod command;
mod event;
mod json;
mod outcome;
mod question;
mod usage;
pub mod verdict;

pub use claude::ClaudeAdapter;
pub use codex::CodexAdapter;
pub use command::CommandAdapter;
pub use event::AgentEvent;
pub use outcome::{AgentOutcome, FailureReason, OutcomeKind, ProcessExit};
pub use question::MAX_QUESTION_CHARS;
pub use usage::{CostSource, ModelPrice, PriceTable, TokenUsage};
pub use verdict::{ReviewDecision, Verdict, VerdictError, parse_verdict};

use orch_core::ParseError;
use orch_core::run::Usage;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which output format an agent speaks, so the launcher can pick its adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    /// `claude -p --output-format stream-json --verbose`.
    ClaudeCode,
    /// `codex exec --json`.
    Codex,
    /// Any other program: judged by its exit status only.
    Command,
}

impl AdapterKind {
    pub const ALL: [AdapterKind; 3] = [
        AdapterKind::ClaudeCode,
        AdapterKind::Codex,
        AdapterKind::Command,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::ClaudeCode => "claude_code",
            AdapterKind::Codex => "codex",
            AdapterKind::Command => "command",
        }
    }
}

impl fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AdapterKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AdapterKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError {
                kind: "adapter kind",
                value: s.to_owned(),
                expected: "claude_code, codex, command",
            })
    }
}

/// Settings an adapter needs beyond the output itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdapterOptions {
    /// The model the agent was started with (`--model` / `-m`). Codex never names
    /// its model in `--json` output, so its cost can only be priced from this.
    pub model: Option<String>,
    /// Prices for cost estimates; an unknown model costs zero ([`CostSource::Unpriced`]).
    pub prices: PriceTable,
    /// Codex resume: the thread's running total that the previous run on this
    /// thread reported ([`AgentOutcome::thread_total`]); it is subtracted so the
    /// run is charged only for its own tokens.
    pub previous_total: Option<TokenUsage>,
}

/// A streaming parser of one run's output. One adapter per run.
pub trait OutputAdapter {
    /// The format this adapter parses.
    fn kind(&self) -> AdapterKind;

    /// Parses one line of stdout (a trailing `\n` / `\r\n` is ignored) into the
    /// events it carries: often one, none for blank or uninteresting lines, several
    /// for a message with several content blocks.
    fn feed_line(&mut self, line: &str) -> Vec<AgentEvent>;

    /// Decides the run's outcome once the process has ended. Calling it again gives
    /// the same answer unless more lines were fed in between.
    fn finish(&mut self, exit: ProcessExit) -> AgentOutcome;

    /// Tokens and cost seen so far (see the module docs for what is known when).
    fn usage_so_far(&self) -> Usage;

    /// The id to resume the conversation with (Claude `session_id`, Codex
    /// `thread_id`), as soon as the output has named it.
    fn session_id(&self) -> Option<&str>;
}

/// An adapter for `kind` with default options (no prices, no previous total).
pub fn adapter_for(kind: AdapterKind) -> Box<dyn OutputAdapter + Send> {
    adapter_with(kind, AdapterOptions::default())
}

/// An adapter for `kind` with the given model, prices and previous thread total.
pub fn adapter_with(kind: AdapterKind, options: AdapterOptions) -> Box<dyn OutputAdapter + Send> {
    match kind {
        AdapterKind::ClaudeCode => Box::new(ClaudeAdapter::new(options)),
        AdapterKind::Codex => Box::new(CodexAdapter::new(options)),
        AdapterKind::Command => Box::new(CommandAdapter::new()),
    }
}

/// Feeds a whole saved output (e.g. a run's log file, when a run is re-adopted or
/// reaped) through `adapter` and finishes it.
pub fn replay(
    adapter: &mut dyn OutputAdapter,
    output: &str,
    exit: ProcessExit,
) -> (Vec<AgentEvent>, AgentOutcome) {
    let mut events = Vec::new();
    for line in output.lines() {
        events.extend(adapter.feed_line(line));
    }
    let outcome = adapter.finish(exit);
    (events, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_kind_round_trips_through_serde_and_from_str() {
        for kind in AdapterKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<AdapterKind>(&json).unwrap(), kind);
            assert_eq!(kind.as_str().parse::<AdapterKind>().unwrap(), kind);
        }
        assert!("claude".parse::<AdapterKind>().is_err());
    }

    #[test]
    fn factory_returns_the_requested_kind() {
        for kind in AdapterKind::ALL {
            assert_eq!(adapter_for(kind).kind(), kind);
        }
    }
}
