//! Plain command adapter: any program, judged by its exit status alone.
//!
//! Exit 0 succeeds, another code fails, death by a signal is an interrupt. A code
//! of 128+n is not read as a signal: a shell reports its child's signal that way,
//! but so may a program's own error code, and the engine knows whether it stopped
//! the run. The output tail is kept as the final text, so a command can act as a
//! reviewer and end with a verdict.

use super::event::AgentEvent;
use super::json::raw;
use super::outcome::{AgentOutcome, FailureReason, OutcomeKind, ProcessExit};
use super::usage::{CostSource, TokenUsage};
use super::{AdapterKind, OutputAdapter};
use orch_core::run::Usage;
use std::collections::VecDeque;

/// How much of the output is kept as the final text.
const TAIL_BYTES: usize = 64 * 1024;

/// Parses one plain command run.
#[derive(Debug, Clone, Default)]
pub struct CommandAdapter {
    tail: VecDeque<String>,
    tail_bytes: usize,
}

impl CommandAdapter {
    pub fn new() -> CommandAdapter {
        CommandAdapter::default()
    }

    fn remember(&mut self, line: String) {
        self.tail_bytes = self.tail_bytes.saturating_add(line.len() + 1);
        self.tail.push_back(line);
        // Keep at least the last line, however long, so the final text is never empty
        // after output.
        while self.tail_bytes > TAIL_BYTES && self.tail.len() > 1 {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes = self.tail_bytes.saturating_sub(old.len() + 1);
            }
        }
    }
}

impl OutputAdapter for CommandAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Command
    }

    fn feed_line(&mut self, line: &str) -> Vec<AgentEvent> {
        let line = raw(line);
        self.remember(line.clone());
        vec![AgentEvent::Output { line }]
    }

    fn finish(&mut self, exit: ProcessExit) -> AgentOutcome {
        let kind = match exit {
            ProcessExit::Code(0) => OutcomeKind::Succeeded,
            ProcessExit::Code(code) => OutcomeKind::Failed {
                reason: FailureReason::ExitStatus { code },
                errors: vec![format!("exited with code {code}")],
            },
            ProcessExit::Signal(_) => OutcomeKind::Interrupted,
        };
        let text = self
            .tail
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        AgentOutcome {
            kind,
            usage: Usage::default(),
            tokens: TokenUsage::default(),
            // A plain command uses no model: its zero cost is exact.
            cost_source: CostSource::Reported,
            session_id: None,
            thread_total: None,
            question: None,
            final_text: (!text.is_empty()).then_some(text),
            exit,
        }
    }

    fn usage_so_far(&self) -> Usage {
        Usage::default()
    }

    fn session_id(&self) -> Option<&str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_decides() {
        let mut a = CommandAdapter::new();
        assert_eq!(
            a.feed_line("hello\n"),
            vec![AgentEvent::Output {
                line: "hello".into()
            }]
        );
        let ok = a.finish(ProcessExit::Code(0));
        assert_eq!(ok.kind, OutcomeKind::Succeeded);
        assert_eq!(ok.final_text.as_deref(), Some("hello"));
        assert!(matches!(
            a.finish(ProcessExit::Code(3)).kind,
            OutcomeKind::Failed {
                reason: FailureReason::ExitStatus { code: 3 },
                ..
            }
        ));
        assert_eq!(
            a.finish(ProcessExit::Signal(9)).kind,
            OutcomeKind::Interrupted
        );
    }

    #[test]
    fn the_tail_is_bounded() {
        let mut a = CommandAdapter::new();
        let line = "x".repeat(1000);
        for _ in 0..200 {
            a.feed_line(&line);
        }
        let text = a
            .finish(ProcessExit::Code(0))
            .final_text
            .unwrap_or_default();
        assert!(text.len() <= TAIL_BYTES);
        assert!(text.len() > TAIL_BYTES - 2 * 1001);
    }
}
