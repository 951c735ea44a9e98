//! Codex adapter: parses `codex exec --json` (agent_clis.md §3).
//!
//! `thread.started` names the thread (the id for `codex exec resume`); a turn ends
//! with `turn.completed` (success, with usage) or `turn.failed`. `error` lines are
//! often only retry notices (`Reconnecting... 2/5 (…)`) and never decide the outcome.
//!
//! `turn.completed` usage is the thread's running total, summed over all model
//! requests so far, including those of earlier runs on a resumed thread. The adapter
//! subtracts [`AdapterOptions::previous_total`] and reports the raw total in
//! [`AgentOutcome::thread_total`] for the next resume. If the reported total is
//! smaller than the previous one it cannot be cumulative from it (a fresh thread,
//! a changed CLI), so it is taken as this run's own usage rather than clamped to 0.
//!
//! Codex reports no cost: it is priced from the [`PriceTable`] with the configured
//! model (its output never names the model), and is zero when unknown.

use super::event::AgentEvent;
use super::json::{
    Line, SUMMARY_CHARS, count_field, obj_field, parse_line, raw, str_field, summarize,
};
use super::outcome::{AgentOutcome, FailureReason, OutcomeKind, ProcessExit};
use super::usage::{CostSource, PriceTable, TokenUsage};
use super::{AdapterKind, AdapterOptions, OutputAdapter};
use orch_core::run::Usage;
use serde_json::{Map, Value};
use std::collections::HashSet;

type Obj = Map<String, Value>;

/// Tool items started and not completed yet that are remembered. An agent
/// that starts items without end must not grow orch's memory; forgetting
/// them only shows a later completion as a tool use again.
const OPEN_ITEMS: usize = 1024;

/// Where the current turn stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Turn {
    /// No terminal line yet (also before `turn.started`).
    Open,
    Completed,
    Failed(String),
}

/// Parses one `codex exec --json` run. Build it with [`CodexAdapter::new`] or
/// [`super::adapter_with`].
#[derive(Debug, Clone)]
pub struct CodexAdapter {
    model: Option<String>,
    prices: PriceTable,
    previous_total: Option<TokenUsage>,
    thread_id: Option<String>,
    /// A `request_user_input` seen: the question for a person.
    question: Option<String>,
    turn: Turn,
    /// The latest running total reported by `turn.completed`.
    reported_total: Option<TokenUsage>,
    last_message: Option<String>,
    /// The last non-retry `error` message: the reason when `turn.failed` has none.
    last_error: Option<String>,
    /// Items seen in `item.started`, so a tool item seen only completed still shows
    /// as a tool use.
    started: HashSet<String>,
}

impl CodexAdapter {
    pub fn new(options: AdapterOptions) -> CodexAdapter {
        CodexAdapter {
            model: options.model,
            prices: options.prices,
            previous_total: options.previous_total,
            thread_id: None,
            question: None,
            turn: Turn::Open,
            reported_total: None,
            last_message: None,
            last_error: None,
            started: HashSet::new(),
        }
    }

    /// This run's own tokens: the reported running total minus the previous one.
    fn run_tokens(&self) -> TokenUsage {
        let Some(total) = self.reported_total else {
            return TokenUsage::default();
        };
        match self.previous_total {
            Some(prev)
                if total.total_input() >= prev.total_input() && total.output >= prev.output =>
            {
                total.saturating_sub(prev)
            }
            _ => total,
        }
    }

    fn priced(&self, tokens: &TokenUsage) -> (f64, CostSource) {
        if tokens.is_zero() {
            return (0.0, CostSource::PriceTable);
        }
        match self.prices.cost(self.model.as_deref(), tokens) {
            Some(cost) => (cost, CostSource::PriceTable),
            None => (0.0, CostSource::Unpriced),
        }
    }

    fn usage(&self) -> Usage {
        let tokens = self.run_tokens();
        tokens.to_core(self.priced(&tokens).0)
    }

    fn item(&mut self, v: &Obj, line: &str, completed: bool) -> Vec<AgentEvent> {
        let Some(item) = obj_field(v, "item") else {
            return vec![AgentEvent::Unknown { raw: raw(line) }];
        };
        let id = str_field(item, "id").unwrap_or_default();
        let status = str_field(item, "status");
        match str_field(item, "type") {
            Some("agent_message") if completed => {
                let text = str_field(item, "text").unwrap_or_default().to_owned();
                self.last_message = Some(text.clone());
                vec![AgentEvent::AssistantText { text }]
            }
            Some("reasoning") if completed => vec![AgentEvent::Reasoning {
                text: str_field(item, "text").unwrap_or_default().to_owned(),
            }],
            // Non-fatal warnings, e.g. unknown model metadata.
            Some("error") if completed => vec![AgentEvent::Notice {
                message: str_field(item, "message").unwrap_or_default().to_owned(),
            }],
            Some("command_execution") => {
                let use_ = || AgentEvent::ToolUse {
                    name: "command".to_owned(),
                    summary: summarize(
                        str_field(item, "command").unwrap_or_default(),
                        SUMMARY_CHARS,
                    ),
                };
                let exit_ok = item
                    .get("exit_code")
                    .and_then(Value::as_i64)
                    .is_none_or(|c| c == 0);
                self.tool(id, completed, use_, status == Some("completed") && exit_ok)
            }
            Some("file_change") => {
                let use_ = || AgentEvent::ToolUse {
                    name: "file_change".to_owned(),
                    summary: file_change_summary(item),
                };
                self.tool(id, completed, use_, status == Some("completed"))
            }
            Some("mcp_tool_call") => {
                let use_ = || AgentEvent::ToolUse {
                    name: format!(
                        "{}/{}",
                        str_field(item, "server").unwrap_or("mcp"),
                        str_field(item, "tool").unwrap_or("unknown")
                    ),
                    summary: item
                        .get("arguments")
                        .map(|a| summarize(&a.to_string(), SUMMARY_CHARS))
                        .unwrap_or_default(),
                };
                let ok =
                    status == Some("completed") && item.get("error").is_none_or(Value::is_null);
                self.tool(id, completed, use_, ok)
            }
            Some("web_search") => {
                let use_ = || AgentEvent::ToolUse {
                    name: "web_search".to_owned(),
                    summary: summarize(str_field(item, "query").unwrap_or_default(), SUMMARY_CHARS),
                };
                // web_search items carry no status; a completed one succeeded.
                self.tool(id, completed, use_, status.is_none_or(|s| s == "completed"))
            }
            // In-progress text items (and todo lists, plans) update too often to show.
            Some("agent_message" | "reasoning" | "error" | "todo_list" | "plan") => Vec::new(),
            _ => vec![AgentEvent::Unknown { raw: raw(line) }],
        }
    }

    /// Tool items: `ToolUse` when started, `ToolResult` when completed (with the
    /// `ToolUse` first if the start was never seen).
    fn tool(
        &mut self,
        id: &str,
        completed: bool,
        use_: impl FnOnce() -> AgentEvent,
        ok: bool,
    ) -> Vec<AgentEvent> {
        if !completed {
            if self.started.len() >= OPEN_ITEMS {
                self.started.clear();
            }
            self.started.insert(id.to_owned());
            return vec![use_()];
        }
        let mut events = Vec::new();
        if !self.started.remove(id) {
            events.push(use_());
        }
        events.push(AgentEvent::ToolResult { is_error: !ok });
        events
    }
}

impl OutputAdapter for CodexAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Codex
    }

    fn feed_line(&mut self, line: &str) -> Vec<AgentEvent> {
        let v = match parse_line(line) {
            Line::Blank => return Vec::new(),
            Line::Other => return vec![AgentEvent::Unknown { raw: raw(line) }],
            Line::Object(v) => v,
        };
        match str_field(&v, "type") {
            Some("thread.started") => {
                if let Some(id) = str_field(&v, "thread_id").filter(|s| !s.is_empty()) {
                    self.thread_id = Some(id.to_owned());
                }
                vec![AgentEvent::Started {
                    session_id: self.thread_id.clone(),
                    model: self.model.clone(),
                }]
            }
            Some("turn.started") => {
                // A later turn must reach its own terminal line.
                self.turn = Turn::Open;
                Vec::new()
            }
            Some("item.started") | Some("item.updated") => self.item(&v, line, false),
            Some("item.completed") => self.item(&v, line, true),
            Some("turn.completed") => {
                if let Some(usage) = obj_field(&v, "usage") {
                    self.reported_total = Some(codex_usage(usage));
                }
                self.turn = Turn::Completed;
                vec![AgentEvent::TurnCompleted {
                    usage: self.usage(),
                }]
            }
            Some("turn.failed") => {
                let message = obj_field(&v, "error")
                    .and_then(|e| str_field(e, "message"))
                    .map(str::to_owned)
                    .or_else(|| self.last_error.clone())
                    .unwrap_or_else(|| "turn failed".to_owned());
                self.turn = Turn::Failed(message.clone());
                vec![AgentEvent::TurnFailed { message }]
            }
            Some("error") => {
                let message = str_field(&v, "message").unwrap_or_default();
                match retry_notice(message) {
                    Some(retry) => vec![retry],
                    None => {
                        self.last_error = Some(message.to_owned());
                        vec![AgentEvent::Error {
                            message: message.to_owned(),
                        }]
                    }
                }
            }
            Some("request_user_input") => {
                let text = super::question::from_request_user_input(&v).unwrap_or_default();
                self.question = Some(text.clone());
                vec![AgentEvent::Question { text }]
            }
            // Streamed plan text: too fine-grained to show.
            Some("item.plan.delta") => Vec::new(),
            _ => vec![AgentEvent::Unknown { raw: raw(line) }],
        }
    }

    fn finish(&mut self, exit: ProcessExit) -> AgentOutcome {
        // Judged from the events, not the exit code: codex has exited 0 after
        // `turn.failed`, and exits 1 on SIGINT without a terminal line.
        let kind = match &self.turn {
            Turn::Completed => OutcomeKind::Succeeded,
            Turn::Failed(message) => OutcomeKind::Failed {
                reason: FailureReason::TurnFailed,
                errors: vec![message.clone()],
            },
            Turn::Open => OutcomeKind::Interrupted,
        };
        let tokens = self.run_tokens();
        let (cost, cost_source) = self.priced(&tokens);
        AgentOutcome {
            kind,
            usage: tokens.to_core(cost),
            tokens,
            cost_source,
            session_id: self.thread_id.clone(),
            thread_total: self.reported_total,
            question: self.question.clone(),
            final_text: self.last_message.clone(),
            exit,
        }
    }

    fn usage_so_far(&self) -> Usage {
        self.usage()
    }

    fn session_id(&self) -> Option<&str> {
        self.thread_id.as_deref()
    }
}

/// Codex usage: `input_tokens` is all input, with the cache counts as subsets.
fn codex_usage(u: &Obj) -> TokenUsage {
    let input = count_field(u, "input_tokens");
    let cache_read = count_field(u, "cached_input_tokens");
    let cache_write = count_field(u, "cache_write_input_tokens");
    TokenUsage {
        input: input.saturating_sub(cache_read).saturating_sub(cache_write),
        cache_read,
        cache_write,
        output: count_field(u, "output_tokens"),
        reasoning_output: count_field(u, "reasoning_output_tokens"),
    }
}

/// `Reconnecting... 2/5 (cause)` or `Reconnecting... waiting for network (cause)`
/// as a [`AgentEvent::Retry`]; `None` for any other message.
fn retry_notice(message: &str) -> Option<AgentEvent> {
    let rest = message.strip_prefix("Reconnecting...")?.trim();
    let (counter, cause) = match rest.split_once(' ') {
        Some((head, tail)) => (head, tail.trim()),
        None => (rest, ""),
    };
    let parsed = counter
        .split_once('/')
        .and_then(|(n, m)| Some((n.parse::<u32>().ok()?, m.parse::<u32>().ok()?)));
    let (attempt, max_attempts, cause) = match parsed {
        Some((n, m)) => (Some(n), Some(m), cause),
        None => (None, None, rest),
    };
    let cause = cause
        .strip_prefix('(')
        .and_then(|c| c.strip_suffix(')'))
        .unwrap_or(cause);
    Some(AgentEvent::Retry {
        attempt,
        max_attempts,
        error: cause.to_owned(),
    })
}

fn file_change_summary(item: &Obj) -> String {
    let paths: Vec<String> = item
        .get("changes")
        .and_then(Value::as_array)
        .map(|changes| {
            changes
                .iter()
                .filter_map(Value::as_object)
                .map(|c| {
                    format!(
                        "{} {}",
                        str_field(c, "kind").unwrap_or("change"),
                        str_field(c, "path").unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    summarize(&paths.join(", "), SUMMARY_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_started_without_end_are_not_all_remembered() {
        let mut a = CodexAdapter::new(AdapterOptions::default());
        for i in 0..10 * OPEN_ITEMS {
            a.feed_line(&format!(
                r#"{{"type":"item.started","item":{{"id":"item_{i}","type":"command_execution","command":"ls","status":"in_progress"}}}}"#
            ));
        }
        assert!(
            a.started.len() <= OPEN_ITEMS,
            "{} remembered",
            a.started.len()
        );
        // A recent one still completes as a plain result.
        let last = 10 * OPEN_ITEMS - 1;
        let ev = a.feed_line(&format!(
            r#"{{"type":"item.completed","item":{{"id":"item_{last}","type":"command_execution","command":"ls","status":"completed","exit_code":0}}}}"#
        ));
        assert_eq!(ev, vec![AgentEvent::ToolResult { is_error: false }]);
    }

    #[test]
    fn retry_notices_are_parsed() {
        assert_eq!(
            retry_notice("Reconnecting... 2/5 (stream disconnected)"),
            Some(AgentEvent::Retry {
                attempt: Some(2),
                max_attempts: Some(5),
                error: "stream disconnected".into()
            })
        );
        assert_eq!(
            retry_notice("Reconnecting... waiting for network (Connection failed: x)"),
            Some(AgentEvent::Retry {
                attempt: None,
                max_attempts: None,
                error: "waiting for network (Connection failed: x)".into()
            })
        );
        assert_eq!(
            retry_notice("Reconnecting..."),
            Some(AgentEvent::Retry {
                attempt: None,
                max_attempts: None,
                error: String::new()
            })
        );
        assert_eq!(retry_notice("context window exceeded"), None);
    }

    #[test]
    fn a_completed_tool_without_start_still_shows_its_use() {
        let mut a = CodexAdapter::new(AdapterOptions::default());
        let events = a.feed_line(
            r#"{"type":"item.completed","item":{"id":"item_1","type":"command_execution","command":"false","exit_code":1,"status":"failed"}}"#,
        );
        assert_eq!(
            events,
            vec![
                AgentEvent::ToolUse {
                    name: "command".into(),
                    summary: "false".into()
                },
                AgentEvent::ToolResult { is_error: true }
            ]
        );
    }

    #[test]
    fn a_smaller_total_than_the_previous_is_not_subtracted() {
        let mut a = CodexAdapter::new(AdapterOptions {
            previous_total: Some(TokenUsage {
                input: 1000,
                ..TokenUsage::default()
            }),
            ..AdapterOptions::default()
        });
        a.feed_line(r#"{"type":"turn.completed","usage":{"input_tokens":10,"output_tokens":2}}"#);
        let u = a.usage_so_far();
        assert_eq!((u.input_tokens, u.output_tokens), (10, 2));
    }

    #[test]
    fn turn_failed_without_message_uses_the_last_error() {
        let mut a = CodexAdapter::new(AdapterOptions::default());
        a.feed_line(r#"{"type":"error","message":"quota exhausted"}"#);
        a.feed_line(r#"{"type":"turn.failed"}"#);
        let o = a.finish(ProcessExit::Code(0));
        assert_eq!(
            o.kind,
            OutcomeKind::Failed {
                reason: FailureReason::TurnFailed,
                errors: vec!["quota exhausted".into()]
            }
        );
    }
}
