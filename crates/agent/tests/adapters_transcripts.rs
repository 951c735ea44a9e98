//! Every reference transcript of the real CLIs (shared/reference/agents) parses into
//! the right outcome, tokens and cost; plus truncated and interrupted variants.

use orch_agent::adapters::{
    AdapterKind, AdapterOptions, AgentEvent, AgentOutcome, CostSource, FailureReason, ModelPrice,
    OutcomeKind, PriceTable, ProcessExit, TokenUsage, adapter_for, adapter_with, replay,
};
use orch_core::RunOutcome;

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/agents/"
);

fn transcript(name: &str) -> String {
    let path = format!("{REFERENCE}{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn run_with(
    kind: AdapterKind,
    options: AdapterOptions,
    text: &str,
    exit: ProcessExit,
) -> (Vec<AgentEvent>, AgentOutcome) {
    let mut adapter = adapter_with(kind, options);
    replay(adapter.as_mut(), text, exit)
}

fn run(kind: AdapterKind, name: &str, exit: ProcessExit) -> (Vec<AgentEvent>, AgentOutcome) {
    run_with(kind, AdapterOptions::default(), &transcript(name), exit)
}

/// The transcript without its last line: the process died before the final message.
fn truncated(name: &str) -> String {
    let text = transcript(name);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.pop();
    lines.join("\n")
}

fn assert_cost(outcome: &AgentOutcome, expected: f64) {
    assert!(
        (outcome.usage.cost_usd - expected).abs() < 1e-12,
        "cost {} != {expected}",
        outcome.usage.cost_usd
    );
}

fn tokens(
    input: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
) -> TokenUsage {
    TokenUsage {
        input,
        cache_read,
        cache_write,
        output,
        reasoning_output: reasoning,
    }
}

fn failed_reason(outcome: &AgentOutcome) -> (&FailureReason, &[String]) {
    match &outcome.kind {
        OutcomeKind::Failed { reason, errors } => (reason, errors),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn no_unknowns(events: &[AgentEvent]) {
    let unknown: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::Unknown { .. }))
        .collect();
    assert!(unknown.is_empty(), "unexpected unknown events: {unknown:?}");
}

fn sonnet_prices() -> PriceTable {
    // The list prices that reproduce Claude's own cost (agent_clis.md §2.5).
    PriceTable::new().with(
        "claude-sonnet-4-5",
        ModelPrice {
            input_per_mtok: 3.0,
            cache_read_per_mtok: Some(0.30),
            cache_write_per_mtok: Some(3.75),
            output_per_mtok: 15.0,
        },
    )
}

// ---------------------------------------------------------------- Claude Code

#[test]
fn claude_success() {
    let (events, o) = run(
        AdapterKind::ClaudeCode,
        "claude-stream-json-success.jsonl",
        ProcessExit::Code(0),
    );
    assert_eq!(o.kind, OutcomeKind::Succeeded);
    assert_eq!(o.run_outcome(), RunOutcome::Succeeded);
    assert_eq!(o.tokens, tokens(7650, 18000, 5400, 251, 0));
    assert_eq!(o.usage.input_tokens, 7650 + 18000 + 5400);
    assert_eq!(o.usage.output_tokens, 251);
    assert_cost(&o, 0.052365);
    assert_eq!(o.cost_source, CostSource::Reported);
    assert_eq!(
        o.session_id.as_deref(),
        Some("5a4805af-11fa-4773-959d-084026020b8b")
    );
    assert_eq!(
        o.final_text.as_deref(),
        Some("Done: created hello.txt with a greeting.")
    );
    assert_eq!(o.thread_total, None);

    no_unknowns(&events);
    assert_eq!(
        events.first(),
        Some(&AgentEvent::Started {
            session_id: Some("5a4805af-11fa-4773-959d-084026020b8b".into()),
            model: Some("claude-sonnet-4-5".into()),
        })
    );
    let tools: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolUse { name, summary } => Some((name.as_str(), summary.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tools,
        vec![
            ("Bash", "ls -la"),
            ("Write", "/home/dev/agentcli/wt/hello.txt")
        ]
    );
    let results = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::ToolResult { is_error: false }))
        .count();
    assert_eq!(results, 2);
    assert!(matches!(
        events.last(),
        Some(AgentEvent::Result { success: true, usage }) if usage.output_tokens == 251
    ));
}

#[test]
fn claude_usage_so_far_tracks_assistant_lines_then_the_result() {
    let text = transcript("claude-stream-json-success.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    let mut adapter = adapter_with(
        AdapterKind::ClaudeCode,
        AdapterOptions {
            prices: sonnet_prices(),
            ..AdapterOptions::default()
        },
    );
    assert_eq!(adapter.usage_so_far().total_tokens(), 0);
    for line in &lines[..lines.len() - 1] {
        adapter.feed_line(line);
    }
    assert_eq!(
        adapter.session_id(),
        Some("5a4805af-11fa-4773-959d-084026020b8b")
    );
    // Three API messages (one repeated over two lines): input and cache exact,
    // output only 1 per message until the result.
    let before = adapter.usage_so_far();
    assert_eq!(before.input_tokens, 7650 + 18000 + 5400);
    assert_eq!(before.output_tokens, 3);
    let estimate = (7650.0 * 3.0 + 18000.0 * 0.30 + 5400.0 * 3.75 + 3.0 * 15.0) / 1e6;
    assert!((before.cost_usd - estimate).abs() < 1e-12);

    adapter.feed_line(lines[lines.len() - 1]);
    let after = adapter.usage_so_far();
    assert_eq!(after.output_tokens, 251);
    assert!((after.cost_usd - 0.052365).abs() < 1e-12);
}

#[test]
fn claude_error_max_turns() {
    let (events, o) = run(
        AdapterKind::ClaudeCode,
        "claude-stream-json-error.jsonl",
        ProcessExit::Code(1),
    );
    no_unknowns(&events);
    let (reason, errors) = failed_reason(&o);
    assert_eq!(reason, &FailureReason::MaxTurns);
    assert_eq!(errors, ["Reached maximum number of turns (1)"]);
    assert_eq!(o.run_outcome(), RunOutcome::Failed);
    assert_eq!(o.tokens, tokens(2400, 0, 1800, 97, 0));
    assert_cost(&o, 0.015405);
    assert_eq!(
        o.session_id.as_deref(),
        Some("d72ae263-adfc-4558-aed9-d8892b9c4cea")
    );
    // No `result` text on error subtypes: the last assistant text stands in.
    assert_eq!(
        o.final_text.as_deref(),
        Some("I'll look at the repository first.")
    );
}

#[test]
fn claude_error_max_budget_uses_model_usage_not_the_zeroed_usage() {
    let (_, o) = run(
        AdapterKind::ClaudeCode,
        "extra/claude-stream-json-error-max-budget.jsonl",
        ProcessExit::Code(1),
    );
    let (reason, errors) = failed_reason(&o);
    assert_eq!(reason, &FailureReason::MaxBudget);
    assert_eq!(errors, ["Reached maximum budget ($0.01)"]);
    assert_eq!(o.run_outcome(), RunOutcome::BudgetExceeded);
    assert_eq!(o.tokens, tokens(2400, 0, 1800, 97, 0));
    assert_eq!((o.usage.input_tokens, o.usage.output_tokens), (4200, 97));
    assert_cost(&o, 0.015405);
}

#[test]
fn claude_api_500_after_retries() {
    let (events, o) = run(
        AdapterKind::ClaudeCode,
        "extra/claude-stream-json-error-api500-after-retries.jsonl",
        ProcessExit::Code(1),
    );
    no_unknowns(&events);
    let retries: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Retry {
                attempt,
                max_attempts,
                error,
            } => Some((*attempt, *max_attempts, error.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        retries,
        vec![
            (Some(1), Some(2), "server_error (HTTP 500)"),
            (Some(2), Some(2), "server_error (HTTP 500)")
        ]
    );
    assert!(events.iter().any(
        |e| matches!(e, AgentEvent::Error { message } if message.starts_with("server_error: API Error: 500"))
    ));
    let (reason, errors) = failed_reason(&o);
    assert_eq!(reason, &FailureReason::ApiError { status: Some(500) });
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("API Error: 500 Internal server error."));
    assert_eq!(o.tokens, TokenUsage::default());
    assert_eq!(o.usage.cost_usd, 0.0);
    assert_eq!(o.cost_source, CostSource::Reported);
    assert_eq!(
        o.session_id.as_deref(),
        Some("4719dad8-2016-4ac5-9033-22a320a677ff")
    );
}

#[test]
fn claude_not_logged_in_is_success_subtype_with_is_error() {
    let (_, o) = run(
        AdapterKind::ClaudeCode,
        "extra/claude-stream-json-error-not-logged-in.jsonl",
        ProcessExit::Code(1),
    );
    let (reason, errors) = failed_reason(&o);
    assert_eq!(reason, &FailureReason::ApiError { status: None });
    assert_eq!(errors, ["Not logged in · Please run /login"]);
    assert_eq!(o.usage.total_tokens(), 0);
    assert_eq!(o.usage.cost_usd, 0.0);
}

#[test]
fn claude_output_format_json_single_line_result() {
    let (events, o) = run(
        AdapterKind::ClaudeCode,
        "extra/claude-output-format-json-not-logged-in.json",
        ProcessExit::Code(1),
    );
    assert_eq!(events.len(), 1);
    let (reason, errors) = failed_reason(&o);
    assert_eq!(reason, &FailureReason::ApiError { status: None });
    assert_eq!(errors, ["Not logged in · Please run /login"]);
    assert_eq!(
        o.session_id.as_deref(),
        Some("f9e68b95-1430-4dd7-9938-bbf435c2eb29")
    );
    assert_eq!(o.usage.total_tokens(), 0);
    assert_eq!(o.usage.cost_usd, 0.0);
}

#[test]
fn claude_prompt_too_long() {
    let (_, o) = run(
        AdapterKind::ClaudeCode,
        "extra/claude-stream-json-error-prompt-too-long.jsonl",
        ProcessExit::Code(1),
    );
    let (reason, errors) = failed_reason(&o);
    assert_eq!(reason, &FailureReason::ApiError { status: Some(400) });
    assert!(errors[0].starts_with("Prompt is too long"));
    assert_eq!(o.usage.total_tokens(), 0);
}

#[test]
fn claude_resume_unknown_id() {
    let (events, o) = run(
        AdapterKind::ClaudeCode,
        "extra/claude-stream-json-error-resume-unknown-id.jsonl",
        ProcessExit::Code(1),
    );
    assert_eq!(events.len(), 1);
    let (reason, errors) = failed_reason(&o);
    assert_eq!(reason, &FailureReason::ExecutionError);
    assert_eq!(
        errors,
        ["No conversation found with session ID: 11111111-2222-3333-4444-555555555555"]
    );
    assert_eq!(
        o.session_id.as_deref(),
        Some("11111111-2222-3333-4444-555555555555")
    );
    assert_eq!(o.final_text, None);
}

#[test]
fn claude_resume_charges_only_this_invocation() {
    let (_, o) = run(
        AdapterKind::ClaudeCode,
        "extra/claude-stream-json-resume.jsonl",
        ProcessExit::Code(0),
    );
    assert_eq!(o.kind, OutcomeKind::Succeeded);
    assert_eq!(o.tokens, tokens(2700, 9000, 1800, 77, 0));
    assert_cost(&o, 0.018705);
    // `--resume` keeps the session id of the first run.
    assert_eq!(
        o.session_id.as_deref(),
        Some("5a4805af-11fa-4773-959d-084026020b8b")
    );
}

#[test]
fn claude_include_partial_messages() {
    let text = transcript("extra/claude-stream-json-include-partial-messages.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    let mut adapter = adapter_for(AdapterKind::ClaudeCode);
    let mut events = Vec::new();
    for line in &lines[..lines.len() - 1] {
        events.extend(adapter.feed_line(line));
    }
    no_unknowns(&events);
    assert!(events.contains(&AgentEvent::Notice {
        message: "status: requesting".into()
    }));
    assert!(events.contains(&AgentEvent::TextDelta {
        text: "Done: created hello.txt with a greeting.".into()
    }));
    // message_delta carried the final output count before the result did.
    let so_far = adapter.usage_so_far();
    assert_eq!((so_far.input_tokens, so_far.output_tokens), (4200, 77));

    adapter.feed_line(lines[lines.len() - 1]);
    let o = adapter.finish(ProcessExit::Code(0));
    assert_eq!(o.kind, OutcomeKind::Succeeded);
    assert_eq!(o.tokens, tokens(2400, 0, 1800, 77, 0));
    assert_cost(&o, 0.015105);
}

#[test]
fn claude_sigint_during_tool_is_interrupted_with_its_usage() {
    let (events, o) = run(
        AdapterKind::ClaudeCode,
        "extra/claude-stream-json-SIGINT-during-tool.jsonl",
        ProcessExit::Code(1),
    );
    no_unknowns(&events);
    assert!(events.contains(&AgentEvent::ToolResult { is_error: true }));
    assert!(events.contains(&AgentEvent::Notice {
        message: "[Request interrupted by user for tool use]".into()
    }));
    assert_eq!(o.kind, OutcomeKind::Interrupted);
    assert_eq!(o.run_outcome(), RunOutcome::Interrupted);
    assert_eq!(o.tokens, tokens(2400, 0, 1800, 77, 0));
    assert_cost(&o, 0.015105);
    assert_eq!(
        o.session_id.as_deref(),
        Some("01a3eebe-df77-4cf2-8e4b-18d98728ec07")
    );
}

#[test]
fn claude_sigint_during_tool_matches_its_sigreport() {
    // The signal report holds the lines written after the SIGINT; with the two
    // lines before it (init, tool_use) they make the same run.
    let report: serde_json::Value =
        serde_json::from_str(&transcript("extra/claude-sigint-midtool.sigreport.json"))
            .expect("sigreport is JSON");
    assert_eq!(report["n_stdout_lines"], 5);
    assert_eq!(report["returncode"], 1);
    let after: Vec<&str> = report["stdout_lines_after_signal"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    let full = transcript("extra/claude-stream-json-SIGINT-during-tool.jsonl");
    let before: Vec<&str> = full.lines().take(2).collect();
    // The reported lines keep their own `\n`.
    let text = format!("{}\n{}", before.join("\n"), after.concat());
    let (_, o) = run_with(
        AdapterKind::ClaudeCode,
        AdapterOptions::default(),
        &text,
        ProcessExit::Code(1),
    );
    assert_eq!(o.kind, OutcomeKind::Interrupted);
    assert_cost(&o, 0.015105);
}

#[test]
fn claude_sigint_while_waiting_on_the_api_exits_0_but_is_interrupted() {
    // claude-sigint-midrequest*.sigreport.json: exit status 0, one stdout line
    // (system/init), nothing after the signal.
    for name in [
        "extra/claude-sigint-midrequest.sigreport.json",
        "extra/claude-sigint-midrequest-1.sigreport.json",
        "extra/claude-sigint-midrequest-2.sigreport.json",
    ] {
        let report: serde_json::Value =
            serde_json::from_str(&transcript(name)).expect("sigreport is JSON");
        assert_eq!(report["returncode"], 0, "{name}");
        assert_eq!(report["n_stdout_lines"], 1, "{name}");
    }
    let success = transcript("claude-stream-json-success.jsonl");
    let init = success.lines().next().unwrap_or_default();
    let (events, o) = run_with(
        AdapterKind::ClaudeCode,
        AdapterOptions::default(),
        init,
        ProcessExit::Code(0),
    );
    assert!(matches!(events[..], [AgentEvent::Started { .. }]));
    assert_eq!(o.kind, OutcomeKind::Interrupted);
    assert_eq!(
        o.session_id.as_deref(),
        Some("5a4805af-11fa-4773-959d-084026020b8b")
    );
    assert_eq!(o.usage.total_tokens(), 0);
}

#[test]
fn claude_sigterm_and_sighup_are_interrupted() {
    // Claude handles SIGTERM/SIGHUP and exits 143/129 without a result line.
    for (name, code) in [
        ("extra/claude-sigterm-midrequest.sigreport.json", 143),
        ("extra/claude-sigterm-midtool.sigreport.json", 143),
        ("extra/claude-sighup-midrequest.sigreport.json", 129),
    ] {
        let report: serde_json::Value =
            serde_json::from_str(&transcript(name)).expect("sigreport is JSON");
        assert_eq!(report["returncode"], code, "{name}");
        assert_eq!(report["stdout_lines_after_signal"], serde_json::json!([]));
        let n = report["n_stdout_lines"].as_u64().unwrap_or(0) as usize;
        // The lines before the signal were those of a normal run.
        let success = transcript("claude-stream-json-success.jsonl");
        let prefix: Vec<&str> = success.lines().take(n).collect();
        let (_, o) = run_with(
            AdapterKind::ClaudeCode,
            AdapterOptions::default(),
            &prefix.join("\n"),
            ProcessExit::Code(code),
        );
        assert_eq!(o.kind, OutcomeKind::Interrupted, "{name}");
    }
}

#[test]
fn claude_api401_retrying_then_sigterm() {
    let (events, o) = run(
        AdapterKind::ClaudeCode,
        "extra/claude-stream-json-api401-retrying-then-SIGTERM.jsonl",
        ProcessExit::Code(143),
    );
    no_unknowns(&events);
    let attempts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Retry {
                attempt,
                max_attempts: Some(10),
                error,
            } if error == "authentication_failed (HTTP 401)" => *attempt,
            _ => None,
        })
        .collect();
    assert_eq!(attempts, (1..=8).collect::<Vec<u32>>());
    assert_eq!(o.kind, OutcomeKind::Interrupted);
    assert_eq!(
        o.session_id.as_deref(),
        Some("6c1d8112-d0f0-4c70-ba6f-ffe7defb88ba")
    );
}

#[test]
fn claude_truncated_transcripts_are_interrupted_whatever_the_exit() {
    for name in [
        "claude-stream-json-success.jsonl",
        "claude-stream-json-error.jsonl",
        "extra/claude-stream-json-error-max-budget.jsonl",
        "extra/claude-stream-json-include-partial-messages.jsonl",
        "extra/claude-stream-json-resume.jsonl",
        "extra/claude-stream-json-SIGINT-during-tool.jsonl",
    ] {
        for exit in [
            ProcessExit::Code(0),
            ProcessExit::Code(1),
            ProcessExit::Signal(9),
        ] {
            let (_, o) = run_with(
                AdapterKind::ClaudeCode,
                AdapterOptions::default(),
                &truncated(name),
                exit,
            );
            assert_eq!(o.kind, OutcomeKind::Interrupted, "{name} {exit:?}");
            assert!(o.session_id.is_some(), "{name}");
        }
    }
    // Without prices the estimate is tokens only, marked unpriced.
    let (_, o) = run_with(
        AdapterKind::ClaudeCode,
        AdapterOptions::default(),
        &truncated("claude-stream-json-success.jsonl"),
        ProcessExit::Code(0),
    );
    assert_eq!(o.usage.input_tokens, 7650 + 18000 + 5400);
    assert_eq!(o.usage.cost_usd, 0.0);
    assert_eq!(o.cost_source, CostSource::Unpriced);
    assert_eq!(
        o.final_text.as_deref(),
        Some("Done: created hello.txt with a greeting.")
    );
    // With prices it is an estimate from the price table.
    let (_, o) = run_with(
        AdapterKind::ClaudeCode,
        AdapterOptions {
            prices: sonnet_prices(),
            ..AdapterOptions::default()
        },
        &truncated("claude-stream-json-success.jsonl"),
        ProcessExit::Code(0),
    );
    assert_eq!(o.cost_source, CostSource::PriceTable);
    let estimate = (7650.0 * 3.0 + 18000.0 * 0.30 + 5400.0 * 3.75 + 3.0 * 15.0) / 1e6;
    assert_cost(&o, estimate);
}

// ---------------------------------------------------------------------- Codex

fn gpt_prices() -> PriceTable {
    PriceTable::new().with(
        "gpt-5.5",
        ModelPrice {
            input_per_mtok: 1.25,
            cache_read_per_mtok: Some(0.125),
            cache_write_per_mtok: None,
            output_per_mtok: 10.0,
        },
    )
}

#[test]
fn codex_success() {
    let (events, o) = run(
        AdapterKind::Codex,
        "codex-exec-json-success.jsonl",
        ProcessExit::Code(0),
    );
    no_unknowns(&events);
    assert_eq!(o.kind, OutcomeKind::Succeeded);
    assert_eq!(
        o.session_id.as_deref(),
        Some("01a20a59-daff-7a62-aad4-f81624aeed01")
    );
    assert_eq!(o.tokens, tokens(25569 - 15872, 15872, 0, 291, 192));
    assert_eq!((o.usage.input_tokens, o.usage.output_tokens), (25569, 291));
    // No price for an unknown model: zero, and marked so.
    assert_eq!(o.usage.cost_usd, 0.0);
    assert_eq!(o.cost_source, CostSource::Unpriced);
    assert_eq!(
        o.thread_total,
        Some(tokens(25569 - 15872, 15872, 0, 291, 192))
    );
    assert_eq!(
        o.final_text.as_deref(),
        Some(
            "Created `hello.txt` containing a greeting. The repository previously only had an empty initial commit."
        )
    );
    let tools: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolUse { name, summary } => Some((name.as_str(), summary.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tools,
        vec![
            ("command", "/bin/bash -lc 'ls -la'"),
            ("file_change", "add /home/dev/agentcli/wt/hello.txt")
        ]
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, AgentEvent::ToolResult { is_error: false }))
            .count(),
        2
    );
}

#[test]
fn codex_cost_from_the_price_table() {
    let (_, o) = run_with(
        AdapterKind::Codex,
        AdapterOptions {
            model: Some("gpt-5.5".into()),
            prices: gpt_prices(),
            previous_total: None,
        },
        &transcript("codex-exec-json-success.jsonl"),
        ProcessExit::Code(0),
    );
    let expected = ((25569 - 15872) as f64 * 1.25 + 15872.0 * 0.125 + 291.0 * 10.0) / 1e6;
    assert_cost(&o, expected);
    assert_eq!(o.cost_source, CostSource::PriceTable);
}

#[test]
fn codex_usage_is_only_known_at_turn_end() {
    let text = transcript("codex-exec-json-success.jsonl");
    let lines: Vec<&str> = text.lines().collect();
    let mut adapter = adapter_for(AdapterKind::Codex);
    for line in &lines[..lines.len() - 1] {
        adapter.feed_line(line);
    }
    assert_eq!(
        adapter.session_id(),
        Some("01a20a59-daff-7a62-aad4-f81624aeed01")
    );
    assert_eq!(adapter.usage_so_far().total_tokens(), 0);
    adapter.feed_line(lines[lines.len() - 1]);
    assert_eq!(adapter.usage_so_far().total_tokens(), 25569 + 291);
}

#[test]
fn codex_resume_subtracts_the_previous_thread_total() {
    // The first run on the thread (agent_clis.md: 16646 input tokens) ...
    let (events, first) = run(
        AdapterKind::Codex,
        "extra/codex-exec-json-unknown-model-warning.jsonl",
        ProcessExit::Code(0),
    );
    no_unknowns(&events);
    assert!(events.iter().any(
        |e| matches!(e, AgentEvent::Notice { message } if message.starts_with("Model metadata for `gpt-5.1-codex` not found"))
    ));
    assert_eq!(first.kind, OutcomeKind::Succeeded);
    assert_eq!(first.usage.input_tokens, 16646);
    assert_eq!(first.usage.output_tokens, 194);
    let previous = first.thread_total;
    assert_eq!(previous, Some(tokens(16646 - 7936, 7936, 0, 194, 128)));

    // ... and the resumed run, whose turn.completed reports 25169 = 16646 + 8523.
    let (_, resumed) = run_with(
        AdapterKind::Codex,
        AdapterOptions {
            previous_total: previous,
            ..AdapterOptions::default()
        },
        &transcript("extra/codex-exec-json-resume.jsonl"),
        ProcessExit::Code(0),
    );
    assert_eq!(resumed.kind, OutcomeKind::Succeeded);
    assert_eq!(resumed.usage.input_tokens, 8523);
    assert_eq!(resumed.usage.output_tokens, 291 - 194);
    assert_eq!(
        resumed.tokens,
        tokens(8523 - (15872 - 7936), 15872 - 7936, 0, 97, 64)
    );
    assert_eq!(
        resumed.thread_total,
        Some(tokens(25169 - 15872, 15872, 0, 291, 192))
    );
    assert_eq!(
        resumed.final_text.as_deref(),
        Some("Done: the repository only contains an empty initial commit.")
    );

    // Without the previous total the whole running total is charged.
    let (_, naive) = run(
        AdapterKind::Codex,
        "extra/codex-exec-json-resume.jsonl",
        ProcessExit::Code(0),
    );
    assert_eq!(naive.usage.input_tokens, 25169);
}

#[test]
fn codex_turn_failed_500_after_retries() {
    let (events, o) = run(
        AdapterKind::Codex,
        "extra/codex-exec-json-turn-failed-500.jsonl",
        ProcessExit::Code(1),
    );
    no_unknowns(&events);
    let retries: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::Retry {
                attempt,
                max_attempts: Some(5),
                error,
            } if error
                == "We’re currently experiencing high demand, which may cause temporary errors." =>
            {
                *attempt
            }
            _ => None,
        })
        .collect();
    assert_eq!(retries, vec![1, 2, 3, 4, 5]);
    assert!(events.contains(&AgentEvent::TurnFailed {
        message:
            "We’re currently experiencing high demand, which may cause temporary errors.".into()
    }));
    let (reason, errors) = failed_reason(&o);
    assert_eq!(reason, &FailureReason::TurnFailed);
    assert_eq!(
        errors,
        ["We’re currently experiencing high demand, which may cause temporary errors."]
    );
    assert_eq!(o.usage.total_tokens(), 0);
    assert_eq!(o.thread_total, None);
    assert_eq!(
        o.session_id.as_deref(),
        Some("01a20a57-13a8-7913-b964-fd4cc10354ea")
    );
}

#[test]
fn codex_turn_failed_context_window() {
    let (_, o) = run(
        AdapterKind::Codex,
        "extra/codex-exec-json-turn-failed-context-window.jsonl",
        ProcessExit::Code(1),
    );
    let (reason, errors) = failed_reason(&o);
    assert_eq!(reason, &FailureReason::TurnFailed);
    assert!(errors[0].starts_with("Codex ran out of room in the model's context window."));
}

#[test]
fn codex_turn_failed_with_exit_0_is_still_a_failure() {
    let (_, o) = run(
        AdapterKind::Codex,
        "extra/codex-exec-json-turn-failed-500.jsonl",
        ProcessExit::Code(0),
    );
    assert_eq!(o.run_outcome(), RunOutcome::Failed);
}

#[test]
fn codex_sigint_during_command_is_interrupted() {
    let report: serde_json::Value =
        serde_json::from_str(&transcript("extra/codex-sigint-midtool.sigreport.json"))
            .expect("sigreport is JSON");
    assert_eq!(report["returncode"], 1);
    assert_eq!(report["n_stdout_lines"], 5);
    let (events, o) = run(
        AdapterKind::Codex,
        "extra/codex-exec-json-SIGINT-during-command.jsonl",
        ProcessExit::Code(1),
    );
    no_unknowns(&events);
    assert!(events.contains(&AgentEvent::ToolUse {
        name: "command".into(),
        summary: "/bin/bash -lc 'sleep 60'".into()
    }));
    assert_eq!(o.kind, OutcomeKind::Interrupted);
    assert_eq!(
        o.session_id.as_deref(),
        Some("01a20a56-ce0a-7353-aa39-7675b1b1d111")
    );
    // SIGTERM kills codex by the signal.
    let (_, o) = run(
        AdapterKind::Codex,
        "extra/codex-exec-json-SIGINT-during-command.jsonl",
        ProcessExit::Signal(15),
    );
    assert_eq!(o.kind, OutcomeKind::Interrupted);
}

#[test]
fn codex_truncated_transcripts_are_interrupted_whatever_the_exit() {
    for name in [
        "codex-exec-json-success.jsonl",
        "extra/codex-exec-json-resume.jsonl",
        "extra/codex-exec-json-turn-failed-500.jsonl",
        "extra/codex-exec-json-turn-failed-context-window.jsonl",
        "extra/codex-exec-json-unknown-model-warning.jsonl",
    ] {
        for exit in [
            ProcessExit::Code(0),
            ProcessExit::Code(1),
            ProcessExit::Signal(15),
        ] {
            let (_, o) = run_with(
                AdapterKind::Codex,
                AdapterOptions::default(),
                &truncated(name),
                exit,
            );
            assert_eq!(o.kind, OutcomeKind::Interrupted, "{name} {exit:?}");
            assert_eq!(o.usage.total_tokens(), 0, "{name}");
            assert!(o.session_id.is_some(), "{name}");
        }
    }
}

#[test]
fn the_codex_no_credentials_retry_loop_is_not_fatal() {
    let text = r#"{"type":"thread.started","thread_id":"01a20a51-5261-7610-ad54-827ed9009da3"}
{"type":"turn.started"}
{"type":"error","message":"Reconnecting... 2/5 (stream disconnected before completion: failed to lookup address information: Name does not resolve)"}
{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Falling back from WebSockets to HTTPS transport. stream disconnected before completion: failed to lookup address information: Name does not resolve"}}
{"type":"error","message":"Reconnecting... waiting for network (Connection failed: error sending request)"}"#;
    let (events, o) = run_with(
        AdapterKind::Codex,
        AdapterOptions::default(),
        text,
        ProcessExit::Signal(9),
    );
    no_unknowns(&events);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, AgentEvent::Retry { .. }))
            .count(),
        2
    );
    assert_eq!(o.kind, OutcomeKind::Interrupted);
}

// ------------------------------------------------------------- every adapter

#[test]
fn every_reference_transcript_parses_without_unknowns() {
    let dir = std::path::Path::new(REFERENCE);
    let mut files = Vec::new();
    for sub in ["", "extra/"] {
        let entries = std::fs::read_dir(dir.join(sub)).expect("reference dir");
        for entry in entries.flatten() {
            let name = format!("{sub}{}", entry.file_name().to_string_lossy());
            if name.ends_with(".jsonl") {
                files.push(name);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 17, "found only {files:?}");
    for name in files {
        let kind = if name.contains("codex") {
            AdapterKind::Codex
        } else {
            AdapterKind::ClaudeCode
        };
        let (events, o) = run(kind, &name, ProcessExit::Code(0));
        no_unknowns(&events);
        assert!(o.session_id.is_some(), "{name}");
        // Events round-trip through JSON for the live stream.
        for event in &events {
            let json = serde_json::to_string(event).expect("serialise");
            let back: AgentEvent = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(&back, event);
        }
    }
}

#[test]
fn command_adapter_reports_exit_status_only() {
    let (events, o) = run_with(
        AdapterKind::Command,
        AdapterOptions::default(),
        "building\nVERDICT: approve\n",
        ProcessExit::Code(0),
    );
    assert_eq!(events.len(), 2);
    assert_eq!(o.kind, OutcomeKind::Succeeded);
    assert_eq!(o.usage.total_tokens(), 0);
    assert_eq!(o.final_text.as_deref(), Some("building\nVERDICT: approve"));
    let (_, o) = run_with(
        AdapterKind::Command,
        AdapterOptions::default(),
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false}",
        ProcessExit::Code(2),
    );
    assert_eq!(o.run_outcome(), RunOutcome::Failed);
    let (_, o) = run_with(
        AdapterKind::Command,
        AdapterOptions::default(),
        "",
        ProcessExit::Signal(2),
    );
    assert_eq!(o.kind, OutcomeKind::Interrupted);
    assert_eq!(o.final_text, None);
}
