//! Claude Code adapter: parses `claude -p --output-format stream-json --verbose`.
//!
//! Lines are dispatched on `type` then `subtype` (agent_clis.md §2):
//! `system/init` starts the session, `assistant` lines carry one content block each,
//! `user` lines carry tool results, `system/api_retry` reports retries, and the last
//! line is `result`. The run succeeded only when that line has `subtype:"success"`
//! and `is_error:false`: an API or auth error arrives as `subtype:"success"` with
//! `is_error:true`. Tokens and cost come from the result's `modelUsage` (summed over
//! models) and `total_cost_usd`; `usage` on the result is main-loop only and was
//! seen all zeros on `error_max_budget_usd`, so it is only a fallback.
//!
//! Resumed sessions (`--resume`): 2.1.197 reports `total_cost_usd` for the one
//! invocation only, which is what this adapter charges. The SDK warns a resumed
//! session may continue from a saved total; nothing here detects that.

use super::event::AgentEvent;
use super::json::{
    Line, SUMMARY_CHARS, cost_field, count_field, obj_field, parse_line, raw, small_field,
    str_field, summarize, text_of,
};
use super::outcome::{AgentOutcome, FailureReason, OutcomeKind, ProcessExit};
use super::usage::{CostSource, PriceTable, TokenUsage};
use super::{AdapterKind, AdapterOptions, OutputAdapter};
use orch_core::run::Usage;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};

type Obj = Map<String, Value>;

/// How many API messages keep their own usage entry. A message's lines come
/// together (one per content block), so an older message is settled: its
/// tokens and cost join a running total and its entry goes. Memory stays
/// bounded however long the output, and no realistic interleaving of
/// messages (parallel sub-agents) reaches back this far.
const RECENT_MESSAGES: usize = 256;

/// Parses one Claude Code run. Build it with [`ClaudeAdapter::new`] or
/// [`super::adapter_for`].
#[derive(Debug, Clone)]
pub struct ClaudeAdapter {
    prices: PriceTable,
    /// The `--model` the run was started with: the pricing fallback when the
    /// output names none.
    configured_model: Option<String>,
    /// The resolved model from `system/init`.
    model: Option<String>,
    session_id: Option<String>,
    /// Usage per API message id, for the last `RECENT_MESSAGES` messages.
    /// Several `assistant` lines share one message (one line per content
    /// block) and repeat its usage, so they must not be summed.
    messages: HashMap<String, MessageUsage>,
    /// The ids in `messages`, oldest first.
    order: VecDeque<String>,
    /// Messages settled out of the window (and those without an id, which no
    /// later line can repeat).
    settled: Settled,
    /// The message being streamed (`--include-partial-messages`), whose
    /// `message_delta` carries the final output token count.
    streaming: Option<String>,
    last_text: Option<String>,
    result: Option<Finished>,
    /// The result line's `permission_denials`, as a question for a person.
    question: Option<String>,
}

#[derive(Debug, Clone)]
struct MessageUsage {
    model: Option<String>,
    tokens: TokenUsage,
}

/// The sum of settled messages: tokens, cost priced when settled, and
/// whether every one of them had a price.
#[derive(Debug, Clone, Copy)]
struct Settled {
    tokens: TokenUsage,
    cost: f64,
    all_priced: bool,
}

impl Default for Settled {
    fn default() -> Self {
        Settled {
            tokens: TokenUsage::default(),
            cost: 0.0,
            all_priced: true,
        }
    }
}

/// What the `result` line said.
#[derive(Debug, Clone)]
struct Finished {
    kind: OutcomeKind,
    tokens: TokenUsage,
    cost: f64,
    cost_source: CostSource,
    text: Option<String>,
}

impl ClaudeAdapter {
    /// `options.model` and `options.prices` price the mid-run estimate;
    /// `previous_total` does not apply to Claude.
    pub fn new(options: AdapterOptions) -> ClaudeAdapter {
        ClaudeAdapter {
            prices: options.prices,
            configured_model: options.model,
            model: None,
            session_id: None,
            messages: HashMap::new(),
            order: VecDeque::new(),
            settled: Settled::default(),
            streaming: None,
            last_text: None,
            result: None,
            question: None,
        }
    }

    fn system(&mut self, v: &Obj, line: &str) -> Vec<AgentEvent> {
        match str_field(v, "subtype") {
            Some("init") => {
                self.model = str_field(v, "model").map(str::to_owned);
                // A new turn begins (multi-turn input): it must end with its own result.
                self.result = None;
                vec![AgentEvent::Started {
                    session_id: self.session_id.clone(),
                    model: self.model.clone(),
                }]
            }
            Some("api_retry") => {
                let error = str_field(v, "error").unwrap_or("unknown");
                let error = match small_field::<u16>(v, "error_status") {
                    Some(status) => format!("{error} (HTTP {status})"),
                    None => error.to_owned(),
                };
                vec![AgentEvent::Retry {
                    attempt: small_field(v, "attempt"),
                    max_attempts: small_field(v, "max_retries"),
                    error,
                }]
            }
            Some("status") => match str_field(v, "status") {
                Some(status) => vec![AgentEvent::Notice {
                    message: format!("status: {}", summarize(status, SUMMARY_CHARS)),
                }],
                // `status:null` clears the status: nothing to show.
                None => Vec::new(),
            },
            Some("compact_boundary") => vec![AgentEvent::Notice {
                message: "conversation compacted".to_owned(),
            }],
            _ => vec![AgentEvent::Unknown { raw: raw(line) }],
        }
    }

    /// Records the usage of one API message, keeping the most complete figures seen.
    fn record_usage(&mut self, id: Option<&str>, model: Option<&str>, tokens: TokenUsage) {
        let Some(id) = id else {
            // Nothing can repeat a message without an id: counted once, now.
            self.settle(&MessageUsage {
                model: model.map(str::to_owned),
                tokens,
            });
            return;
        };
        if !self.messages.contains_key(id) {
            if self.order.len() >= RECENT_MESSAGES
                && let Some(old) = self.order.pop_front()
                && let Some(m) = self.messages.remove(&old)
            {
                self.settle(&m);
            }
            self.order.push_back(id.to_owned());
        }
        let entry = self.messages.entry(id.to_owned()).or_insert(MessageUsage {
            model: None,
            tokens: TokenUsage::default(),
        });
        entry.tokens = entry.tokens.max(tokens);
        if entry.model.is_none() {
            entry.model = model.map(str::to_owned);
        }
    }

    /// The model a message is priced as: its own, else the run's.
    fn price_of(&self, m: &MessageUsage) -> Option<f64> {
        let fallback = self.model.as_deref().or(self.configured_model.as_deref());
        self.prices.cost(m.model.as_deref().or(fallback), &m.tokens)
    }

    /// Adds a finished message to the running total.
    fn settle(&mut self, m: &MessageUsage) {
        if m.tokens.is_zero() {
            return;
        }
        let price = self.price_of(m);
        let s = &mut self.settled;
        s.tokens = s.tokens.saturating_add(m.tokens);
        match price {
            Some(c) => s.cost += c,
            None => s.all_priced = false,
        }
    }

    fn assistant(&mut self, v: &Obj, line: &str) -> Vec<AgentEvent> {
        let Some(message) = obj_field(v, "message") else {
            return vec![AgentEvent::Unknown { raw: raw(line) }];
        };
        if let Some(usage) = obj_field(message, "usage") {
            let tokens = api_usage(usage);
            self.record_usage(
                str_field(message, "id"),
                str_field(message, "model"),
                tokens,
            );
        }
        let blocks = message
            .get("content")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();

        // A synthetic message (`model:"<synthetic>"` + top-level `error`) is the CLI
        // reporting an API/auth error in the model's voice: show it as an error.
        if let Some(error) = str_field(v, "error") {
            let text: Vec<&str> = blocks
                .iter()
                .filter_map(|b| b.as_object().and_then(|b| str_field(b, "text")))
                .collect();
            let message = if text.is_empty() {
                error.to_owned()
            } else {
                format!("{error}: {}", text.join(" "))
            };
            return vec![AgentEvent::Error { message }];
        }

        let mut events = Vec::new();
        let mut unknown_block = false;
        for block in blocks {
            let Some(block) = block.as_object() else {
                unknown_block = true;
                continue;
            };
            match str_field(block, "type") {
                Some("text") => {
                    let text = str_field(block, "text").unwrap_or_default().to_owned();
                    self.last_text = Some(text.clone());
                    events.push(AgentEvent::AssistantText { text });
                }
                Some("tool_use") => events.push(AgentEvent::ToolUse {
                    name: str_field(block, "name").unwrap_or("unknown").to_owned(),
                    summary: tool_summary(block.get("input")),
                }),
                Some("thinking") => events.push(AgentEvent::Reasoning {
                    text: str_field(block, "thinking").unwrap_or_default().to_owned(),
                }),
                // Encrypted thinking carries nothing to show.
                Some("redacted_thinking") => {}
                _ => unknown_block = true,
            }
        }
        if unknown_block {
            events.push(AgentEvent::Unknown { raw: raw(line) });
        }
        events
    }

    fn user(&mut self, v: &Obj, line: &str) -> Vec<AgentEvent> {
        let Some(content) = obj_field(v, "message").and_then(|m| m.get("content")) else {
            return vec![AgentEvent::Unknown { raw: raw(line) }];
        };
        let blocks = match content {
            Value::String(text) => {
                return vec![AgentEvent::Notice {
                    message: summarize(text, SUMMARY_CHARS),
                }];
            }
            Value::Array(blocks) => blocks,
            _ => return vec![AgentEvent::Unknown { raw: raw(line) }],
        };
        let mut events = Vec::new();
        for block in blocks.iter().filter_map(Value::as_object) {
            match str_field(block, "type") {
                Some("tool_result") => events.push(AgentEvent::ToolResult {
                    is_error: block
                        .get("is_error")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                }),
                // e.g. "[Request interrupted by user for tool use]" after a SIGINT.
                Some("text") => events.push(AgentEvent::Notice {
                    message: summarize(str_field(block, "text").unwrap_or_default(), SUMMARY_CHARS),
                }),
                _ => {}
            }
        }
        events
    }

    /// `--include-partial-messages`: raw Anthropic SSE events. Only text deltas are
    /// shown; message_start / message_delta refine the usage estimate.
    fn stream_event(&mut self, v: &Obj, line: &str) -> Vec<AgentEvent> {
        let Some(event) = obj_field(v, "event") else {
            return vec![AgentEvent::Unknown { raw: raw(line) }];
        };
        match str_field(event, "type") {
            Some("message_start") => {
                if let Some(message) = obj_field(event, "message") {
                    let id = str_field(message, "id");
                    self.streaming = id.map(str::to_owned);
                    if let Some(usage) = obj_field(message, "usage") {
                        self.record_usage(id, str_field(message, "model"), api_usage(usage));
                    }
                }
                Vec::new()
            }
            Some("message_delta") => {
                if let (Some(usage), Some(id)) = (obj_field(event, "usage"), self.streaming.clone())
                {
                    self.record_usage(Some(&id), None, api_usage(usage));
                }
                Vec::new()
            }
            Some("content_block_delta") => {
                let delta = obj_field(event, "delta");
                match delta.filter(|d| str_field(d, "type") == Some("text_delta")) {
                    Some(d) => vec![AgentEvent::TextDelta {
                        text: str_field(d, "text").unwrap_or_default().to_owned(),
                    }],
                    None => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn result(&mut self, v: &Obj) -> Vec<AgentEvent> {
        let subtype = str_field(v, "subtype").unwrap_or_default();
        // Fail closed: success needs an explicit `is_error:false`.
        let success =
            subtype == "success" && v.get("is_error").and_then(Value::as_bool) == Some(false);
        let text = str_field(v, "result").map(str::to_owned);

        let tokens = model_usage(v)
            .or_else(|| {
                obj_field(v, "usage")
                    .map(api_usage)
                    .filter(|t| !t.is_zero())
            })
            .unwrap_or_else(|| self.estimate().0);
        let (cost, cost_source) = match cost_field(v, "total_cost_usd").or_else(|| model_cost(v)) {
            Some(cost) => (cost, CostSource::Reported),
            None => {
                let (_, cost, source) = self.estimate();
                (cost, source)
            }
        };

        let kind = if success {
            OutcomeKind::Succeeded
        } else if str_field(v, "terminal_reason").is_some_and(|r| r.starts_with("aborted")) {
            // SIGINT during a tool: Claude writes `error_during_execution` with
            // `terminal_reason:"aborted_tools"`. The run was stopped, not failed by the agent.
            OutcomeKind::Interrupted
        } else {
            let mut errors: Vec<String> = v
                .get("errors")
                .and_then(Value::as_array)
                .map(|errs| errs.iter().map(text_of).collect())
                .unwrap_or_default();
            if errors.is_empty() {
                errors.extend(text.clone());
            }
            if errors.is_empty() && !subtype.is_empty() {
                errors.push(subtype.to_owned());
            }
            let reason = match subtype {
                "success" => FailureReason::ApiError {
                    status: small_field(v, "api_error_status"),
                },
                "error_max_turns" => FailureReason::MaxTurns,
                "error_max_budget_usd" => FailureReason::MaxBudget,
                "error_during_execution" => FailureReason::ExecutionError,
                "error_max_structured_output_retries" => FailureReason::StructuredOutputRetries,
                other => FailureReason::OtherResultError {
                    subtype: other.to_owned(),
                },
            };
            OutcomeKind::Failed { reason, errors }
        };

        self.question = super::question::from_permission_denials(v);
        let usage = tokens.to_core(cost);
        self.result = Some(Finished {
            kind,
            tokens,
            cost,
            cost_source,
            text,
        });
        let mut events = vec![AgentEvent::Result { success, usage }];
        events.extend(
            self.question
                .clone()
                .map(|text| AgentEvent::Question { text }),
        );
        events
    }

    /// Tokens and cost from the `assistant` lines so far: exact input and cache
    /// counts, output undercounted unless partial messages were streamed.
    fn estimate(&self) -> (TokenUsage, f64, CostSource) {
        let Settled {
            mut tokens,
            mut cost,
            mut all_priced,
        } = self.settled;
        for m in self.messages.values() {
            tokens = tokens.saturating_add(m.tokens);
            if m.tokens.is_zero() {
                continue;
            }
            match self.price_of(m) {
                Some(c) => cost += c,
                None => all_priced = false,
            }
        }
        let source = if all_priced {
            CostSource::PriceTable
        } else {
            CostSource::Unpriced
        };
        (tokens, cost, source)
    }
}

impl OutputAdapter for ClaudeAdapter {
    fn kind(&self) -> AdapterKind {
        AdapterKind::ClaudeCode
    }

    fn feed_line(&mut self, line: &str) -> Vec<AgentEvent> {
        let v = match parse_line(line) {
            Line::Blank => return Vec::new(),
            Line::Other => return vec![AgentEvent::Unknown { raw: raw(line) }],
            Line::Object(v) => v,
        };
        // Every line names the session; keep the latest (`--fork-session` changes it).
        if let Some(sid) = str_field(&v, "session_id").filter(|s| !s.is_empty()) {
            self.session_id = Some(sid.to_owned());
        }
        match str_field(&v, "type") {
            Some("system") => self.system(&v, line),
            Some("assistant") => self.assistant(&v, line),
            Some("user") => self.user(&v, line),
            Some("stream_event") => self.stream_event(&v, line),
            Some("result") => self.result(&v),
            _ => vec![AgentEvent::Unknown { raw: raw(line) }],
        }
    }

    fn finish(&mut self, exit: ProcessExit) -> AgentOutcome {
        // The exit code is deliberately not consulted: the result line decides, and
        // without one the run was interrupted (SIGINT while waiting on the API exits 0).
        let (kind, tokens, cost, cost_source, text) = match &self.result {
            Some(f) => (
                f.kind.clone(),
                f.tokens,
                f.cost,
                f.cost_source,
                f.text.clone(),
            ),
            None => {
                let (tokens, cost, source) = self.estimate();
                (OutcomeKind::Interrupted, tokens, cost, source, None)
            }
        };
        AgentOutcome {
            kind,
            usage: tokens.to_core(cost),
            tokens,
            cost_source,
            session_id: self.session_id.clone(),
            thread_total: None,
            final_text: text.or_else(|| self.last_text.clone()),
            question: self.question.clone(),
            exit,
        }
    }

    fn usage_so_far(&self) -> Usage {
        match &self.result {
            Some(f) => f.tokens.to_core(f.cost),
            None => {
                let (tokens, cost, _) = self.estimate();
                tokens.to_core(cost)
            }
        }
    }

    fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
}

/// Anthropic API usage (`message.usage`, the result's `usage`): snake_case keys.
fn api_usage(u: &Obj) -> TokenUsage {
    TokenUsage {
        input: count_field(u, "input_tokens"),
        cache_read: count_field(u, "cache_read_input_tokens"),
        cache_write: count_field(u, "cache_creation_input_tokens"),
        output: count_field(u, "output_tokens"),
        reasoning_output: 0,
    }
}

/// The result's `modelUsage`, summed over models; `None` when absent or empty.
fn model_usage(v: &Obj) -> Option<TokenUsage> {
    let models = obj_field(v, "modelUsage").filter(|m| !m.is_empty())?;
    let total =
        models
            .values()
            .filter_map(Value::as_object)
            .fold(TokenUsage::default(), |acc, m| {
                acc.saturating_add(TokenUsage {
                    input: count_field(m, "inputTokens"),
                    cache_read: count_field(m, "cacheReadInputTokens"),
                    cache_write: count_field(m, "cacheCreationInputTokens"),
                    output: count_field(m, "outputTokens"),
                    reasoning_output: 0,
                })
            });
    Some(total)
}

/// The sum of `modelUsage.*.costUSD`, when any model reports one.
fn model_cost(v: &Obj) -> Option<f64> {
    let costs: Vec<f64> = obj_field(v, "modelUsage")?
        .values()
        .filter_map(|m| m.as_object().and_then(|m| cost_field(m, "costUSD")))
        .collect();
    (!costs.is_empty()).then(|| costs.iter().sum())
}

/// The argument that says what a tool call does, for the dashboard.
fn tool_summary(input: Option<&Value>) -> String {
    const KEYS: [&str; 10] = [
        "command",
        "file_path",
        "notebook_path",
        "path",
        "pattern",
        "url",
        "query",
        "description",
        "prompt",
        "skill",
    ];
    let Some(input) = input else {
        return String::new();
    };
    if let Some(obj) = input.as_object()
        && let Some(s) = KEYS.iter().find_map(|k| str_field(obj, k))
    {
        return summarize(s, SUMMARY_CHARS);
    }
    summarize(&input.to_string(), SUMMARY_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::ModelPrice;

    fn feed(adapter: &mut ClaudeAdapter, lines: &[&str]) -> Vec<AgentEvent> {
        lines.iter().flat_map(|l| adapter.feed_line(l)).collect()
    }

    #[test]
    fn repeated_message_usage_is_counted_once_and_priced() {
        let prices = PriceTable::new().with(
            "m",
            ModelPrice {
                input_per_mtok: 1.0,
                cache_read_per_mtok: None,
                cache_write_per_mtok: None,
                output_per_mtok: 2.0,
            },
        );
        let mut a = ClaudeAdapter::new(AdapterOptions {
            prices,
            ..AdapterOptions::default()
        });
        let line = r#"{"type":"assistant","message":{"id":"x","model":"m","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":1000000,"output_tokens":1}}}"#;
        feed(&mut a, &[line, line]);
        let u = a.usage_so_far();
        assert_eq!((u.input_tokens, u.output_tokens), (1_000_000, 1));
        assert!((u.cost_usd - 1.000002).abs() < 1e-9);
    }

    #[test]
    fn a_long_run_keeps_few_messages_and_counts_every_one_once() {
        let prices = PriceTable::new().with(
            "m",
            ModelPrice {
                input_per_mtok: 1.0,
                cache_read_per_mtok: None,
                cache_write_per_mtok: None,
                output_per_mtok: 2.0,
            },
        );
        let mut a = ClaudeAdapter::new(AdapterOptions {
            prices,
            ..AdapterOptions::default()
        });
        let messages = 10 * RECENT_MESSAGES as u64;
        for i in 0..messages {
            // Three lines per message, as Claude writes one per content block,
            // the last with the most complete usage.
            for out in [1, 1, 5] {
                a.feed_line(&format!(
                    r#"{{"type":"assistant","message":{{"id":"m-{i}","model":"m","content":[{{"type":"text","text":"t"}}],"usage":{{"input_tokens":100,"output_tokens":{out}}}}}}}"#
                ));
            }
            // And one message without an id.
            a.feed_line(r#"{"type":"assistant","message":{"model":"m","content":[],"usage":{"input_tokens":1,"output_tokens":1}}}"#);
        }
        assert!(
            a.messages.len() <= RECENT_MESSAGES && a.order.len() <= RECENT_MESSAGES,
            "the window is bounded: {} entries",
            a.messages.len()
        );
        let u = a.usage_so_far();
        assert_eq!(
            (u.input_tokens, u.output_tokens),
            (messages * 101, messages * 6)
        );
        let cost = (messages * 101) as f64 / 1e6 + (messages * 6) as f64 * 2.0 / 1e6;
        assert!((u.cost_usd - cost).abs() < 1e-9, "{} vs {cost}", u.cost_usd);
        let o = a.finish(ProcessExit::Code(0));
        assert_eq!(o.cost_source, CostSource::PriceTable);
        assert_eq!(o.tokens.input, messages * 101);
    }

    #[test]
    fn partial_message_delta_completes_output_tokens() {
        let mut a = ClaudeAdapter::new(AdapterOptions::default());
        feed(
            &mut a,
            &[
                r#"{"type":"stream_event","event":{"type":"message_start","message":{"id":"m1","usage":{"input_tokens":10,"output_tokens":1}}}}"#,
                r#"{"type":"stream_event","event":{"type":"message_delta","usage":{"output_tokens":77}}}"#,
            ],
        );
        let u = a.usage_so_far();
        assert_eq!((u.input_tokens, u.output_tokens, u.cost_usd), (10, 77, 0.0));
    }

    #[test]
    fn tool_summary_prefers_the_command() {
        let input = serde_json::json!({"command":"ls -la","description":"List files"});
        assert_eq!(tool_summary(Some(&input)), "ls -la");
        let input = serde_json::json!({"todos":[1]});
        assert_eq!(tool_summary(Some(&input)), r#"{"todos":[1]}"#);
    }

    #[test]
    fn success_without_is_error_fails_closed() {
        let mut a = ClaudeAdapter::new(AdapterOptions::default());
        feed(
            &mut a,
            &[r#"{"type":"result","subtype":"success","result":"ok"}"#],
        );
        let o = a.finish(ProcessExit::Code(0));
        assert!(matches!(
            o.kind,
            OutcomeKind::Failed {
                reason: FailureReason::ApiError { status: None },
                ..
            }
        ));
    }

    #[test]
    fn a_new_init_after_a_result_reopens_the_run() {
        let mut a = ClaudeAdapter::new(AdapterOptions::default());
        feed(
            &mut a,
            &[
                r#"{"type":"result","subtype":"success","is_error":false,"result":"ok"}"#,
                r#"{"type":"system","subtype":"init","session_id":"s"}"#,
            ],
        );
        assert_eq!(
            a.finish(ProcessExit::Code(0)).kind,
            OutcomeKind::Interrupted
        );
    }
}
