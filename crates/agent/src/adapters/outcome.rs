//! How an agent process ended ([`ProcessExit`]) and what the adapter concluded
//! about the run ([`AgentOutcome`]).

use super::usage::{CostSource, TokenUsage};
use orch_core::RunOutcome;
use orch_core::run::Usage;
use serde::{Deserialize, Serialize};

/// The exit status of the agent process, as the monitor recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessExit {
    /// It exited with this code. A program that handles a signal and exits
    /// (Claude on SIGTERM: 143) lands here, not in `Signal`.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
}

impl ProcessExit {
    /// Builds an exit from the two optional halves a `waitpid` status yields;
    /// `None` when neither is known.
    pub fn from_parts(code: Option<i32>, signal: Option<i32>) -> Option<ProcessExit> {
        match (code, signal) {
            (_, Some(sig)) => Some(ProcessExit::Signal(sig)),
            (Some(code), None) => Some(ProcessExit::Code(code)),
            (None, None) => None,
        }
    }

    pub fn code(self) -> Option<i32> {
        match self {
            ProcessExit::Code(c) => Some(c),
            ProcessExit::Signal(_) => None,
        }
    }

    pub fn signal(self) -> Option<i32> {
        match self {
            ProcessExit::Signal(s) => Some(s),
            ProcessExit::Code(_) => None,
        }
    }

    pub fn is_success(self) -> bool {
        self == ProcessExit::Code(0)
    }
}

#[cfg(unix)]
impl From<std::process::ExitStatus> for ProcessExit {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ProcessExit::Code(code),
            (None, Some(sig)) => ProcessExit::Signal(sig),
            // Stopped/continued statuses never reach a reaped child; keep a code
            // that no agent uses for success.
            (None, None) => ProcessExit::Code(-1),
        }
    }
}

/// Why a run failed, with stable names for logs, the API and retry decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    /// Claude `result` with `subtype:"success"` but `is_error:true`: an API or auth
    /// error (`status` is `api_error_status`: 400/401/500, none for "not logged in").
    ApiError { status: Option<u16> },
    /// Claude `error_max_turns`.
    MaxTurns,
    /// Claude `error_max_budget_usd` (`--max-budget-usd` reached).
    MaxBudget,
    /// Claude `error_during_execution` (e.g. `--resume` of an unknown session).
    ExecutionError,
    /// Claude `error_max_structured_output_retries`.
    StructuredOutputRetries,
    /// A Claude error subtype this adapter does not know.
    OtherResultError { subtype: String },
    /// Codex `turn.failed`.
    TurnFailed,
    /// A plain command exited non-zero.
    ExitStatus { code: i32 },
}

impl FailureReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureReason::ApiError { .. } => "api_error",
            FailureReason::MaxTurns => "max_turns",
            FailureReason::MaxBudget => "max_budget",
            FailureReason::ExecutionError => "execution_error",
            FailureReason::StructuredOutputRetries => "structured_output_retries",
            FailureReason::OtherResultError { .. } => "other_result_error",
            FailureReason::TurnFailed => "turn_failed",
            FailureReason::ExitStatus { .. } => "exit_status",
        }
    }
}

/// The adapter's verdict on a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutcomeKind {
    Succeeded,
    /// The agent reported a failure; `errors` are its messages, verbatim.
    Failed {
        reason: FailureReason,
        errors: Vec<String>,
    },
    /// The run ended without the agent's final line (signal, crash, stop), or the
    /// agent itself said it was aborted (Claude `terminal_reason:"aborted_*"`).
    Interrupted,
}

impl OutcomeKind {
    pub fn is_success(&self) -> bool {
        matches!(self, OutcomeKind::Succeeded)
    }

    /// The core outcome this maps to. Timeouts, stalls and cancels are decided by
    /// the engine, which knows why it stopped a run; the adapter only sees output.
    pub fn run_outcome(&self) -> RunOutcome {
        match self {
            OutcomeKind::Succeeded => RunOutcome::Succeeded,
            OutcomeKind::Failed {
                reason: FailureReason::MaxBudget,
                ..
            } => RunOutcome::BudgetExceeded,
            OutcomeKind::Failed { .. } => RunOutcome::Failed,
            OutcomeKind::Interrupted => RunOutcome::Interrupted,
        }
    }
}

/// Everything the adapter concluded about a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentOutcome {
    pub kind: OutcomeKind,
    /// This run's tokens and cost, in the core's terms: `input_tokens` counts all
    /// input including cache reads and writes, `output_tokens` all output.
    pub usage: Usage,
    /// The same tokens, broken down.
    pub tokens: TokenUsage,
    /// Where `usage.cost_usd` came from.
    pub cost_source: CostSource,
    /// Claude `session_id` / Codex `thread_id`, for resuming.
    pub session_id: Option<String>,
    /// Codex only: the thread's running total as reported, to pass as
    /// [`AdapterOptions::previous_total`](super::AdapterOptions) when resuming.
    pub thread_total: Option<TokenUsage>,
    /// The agent's last words: Claude's `result` text (else its last assistant text),
    /// Codex's last `agent_message`, a command's output tail. Parse a review verdict
    /// from it only when `kind` is `Succeeded`.
    pub final_text: Option<String>,
    /// What the agent asked a person, read from its output (Claude's
    /// `permission_denials`, Codex's `request_user_input`): the task parks
    /// on it instead of going on.
    #[serde(default)]
    pub question: Option<String>,
    pub exit: ProcessExit,
}

impl AgentOutcome {
    pub fn run_outcome(&self) -> RunOutcome {
        self.kind.run_outcome()
    }

    /// A one-line error for the run record (`Run::error`); `None` on success.
    pub fn error_message(&self) -> Option<String> {
        let exit = match self.exit {
            ProcessExit::Code(c) => format!("exit code {c}"),
            ProcessExit::Signal(s) => format!("signal {s}"),
        };
        match &self.kind {
            OutcomeKind::Succeeded => None,
            OutcomeKind::Failed { reason, errors } if errors.is_empty() => {
                Some(format!("{} ({exit})", reason.as_str()))
            }
            OutcomeKind::Failed { reason, errors } => Some(format!(
                "{}: {} ({exit})",
                reason.as_str(),
                errors.join("; ")
            )),
            OutcomeKind::Interrupted => Some(format!(
                "interrupted: the agent ended without its final message ({exit})"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_parts_prefers_the_signal() {
        assert_eq!(
            ProcessExit::from_parts(None, Some(15)),
            Some(ProcessExit::Signal(15))
        );
        assert_eq!(
            ProcessExit::from_parts(Some(1), None),
            Some(ProcessExit::Code(1))
        );
        assert_eq!(ProcessExit::from_parts(None, None), None);
    }

    #[test]
    fn max_budget_maps_to_budget_exceeded() {
        let kind = OutcomeKind::Failed {
            reason: FailureReason::MaxBudget,
            errors: vec![],
        };
        assert_eq!(kind.run_outcome(), RunOutcome::BudgetExceeded);
        assert_eq!(
            OutcomeKind::Interrupted.run_outcome(),
            RunOutcome::Interrupted
        );
    }

    #[test]
    fn error_message_names_reason_errors_and_exit() {
        let mut o = AgentOutcome {
            kind: OutcomeKind::Failed {
                reason: FailureReason::MaxTurns,
                errors: vec!["Reached maximum number of turns (1)".into()],
            },
            usage: Usage::default(),
            tokens: TokenUsage::default(),
            cost_source: CostSource::Reported,
            session_id: None,
            thread_total: None,
            final_text: None,
            question: None,
            exit: ProcessExit::Code(1),
        };
        assert_eq!(
            o.error_message().as_deref(),
            Some("max_turns: Reached maximum number of turns (1) (exit code 1)")
        );
        o.kind = OutcomeKind::Interrupted;
        o.exit = ProcessExit::Signal(15);
        assert!(
            o.error_message()
                .is_some_and(|m| m.ends_with("(signal 15)"))
        );
        o.kind = OutcomeKind::Succeeded;
        assert_eq!(o.error_message(), None);
    }

    #[test]
    fn outcome_kind_serialises_with_stable_names() {
        let kind = OutcomeKind::Failed {
            reason: FailureReason::ApiError { status: Some(500) },
            errors: vec!["boom".into()],
        };
        let json = serde_json::to_value(&kind).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind":"failed","reason":{"kind":"api_error","status":500},"errors":["boom"]})
        );
    }
}
