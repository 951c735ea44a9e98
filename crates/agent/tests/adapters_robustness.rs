//! Adapters never panic and never drop what they do not understand: garbage,
//! binary noise, unknown types and arbitrary strings all come back as events.

use orch_agent::adapters::{AdapterKind, AgentEvent, OutcomeKind, ProcessExit, adapter_for};
use proptest::prelude::*;

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/agents/"
);

fn is_unknown(events: &[AgentEvent]) -> bool {
    matches!(events, [AgentEvent::Unknown { .. }])
}

#[test]
fn garbage_and_binary_lines_are_kept_as_unknown() {
    let lossy_binary =
        String::from_utf8_lossy(&[0xff, 0xfe, 0x00, 0x1b, b'[', b'3', b'1', b'm', 0x80])
            .into_owned();
    let garbage = [
        "not json at all",
        "{\"type\":",
        "[1,2,3]",
        "42",
        "null",
        "\"just a string\"",
        "{\"type\":\"never.seen\"}",
        "{\"type\":17}",
        "{\"no_type\":true}",
        "\u{0}\u{1}\u{2}",
        lossy_binary.as_str(),
        "Reading additional input from stdin...",
    ];
    for kind in [AdapterKind::ClaudeCode, AdapterKind::Codex] {
        let mut adapter = adapter_for(kind);
        for line in garbage {
            let events = adapter.feed_line(line);
            assert!(is_unknown(&events), "{kind}: {line:?} gave {events:?}");
            if let [AgentEvent::Unknown { raw }] = &events[..] {
                assert_eq!(raw, line);
            }
        }
        assert!(adapter.feed_line("").is_empty());
        assert!(adapter.feed_line("   \r\n").is_empty());
        assert_eq!(
            adapter.finish(ProcessExit::Code(0)).kind,
            OutcomeKind::Interrupted
        );
    }
}

#[test]
fn unknown_subtypes_and_items_are_kept() {
    let mut claude = adapter_for(AdapterKind::ClaudeCode);
    for line in [
        r#"{"type":"system","subtype":"hook_started","session_id":"s"}"#,
        r#"{"type":"system"}"#,
        r#"{"type":"assistant","message":{"id":"m","content":[{"type":"server_tool_use_v9"}]}}"#,
        r#"{"type":"assistant"}"#,
        r#"{"type":"user","message":{"content":42}}"#,
        r#"{"type":"stream_event"}"#,
        r#"{"type":"rate_limit_event","rate_limit_info":{}}"#,
    ] {
        assert!(is_unknown(&claude.feed_line(line)), "{line}");
    }
    let mut codex = adapter_for(AdapterKind::Codex);
    for line in [
        r#"{"type":"item.completed","item":{"id":"item_9","type":"collab_tool_call"}}"#,
        r#"{"type":"item.completed"}"#,
    ] {
        assert!(is_unknown(&codex.feed_line(line)), "{line}");
    }
    // Codex asking for input is a question for a person (issue 16), even
    // an empty one: never an unknown line the run would go past.
    let events = codex.feed_line(r#"{"type":"request_user_input","id":"x","questions":[]}"#);
    assert!(
        matches!(&events[..], [AgentEvent::Question { text }] if text.contains("request_user_input")),
        "{events:?}"
    );
}

#[test]
fn hostile_numbers_and_types_do_not_panic() {
    let mut claude = adapter_for(AdapterKind::ClaudeCode);
    for line in [
        r#"{"type":"assistant","message":{"id":"a","usage":{"input_tokens":18446744073709551615,"output_tokens":1e400}}}"#,
        r#"{"type":"assistant","message":{"id":"b","usage":{"input_tokens":18446744073709551615,"cache_read_input_tokens":-5}}}"#,
        r#"{"type":"system","subtype":"api_retry","attempt":99999999999,"error_status":70000}"#,
        r#"{"type":"result","subtype":"success","is_error":"no","total_cost_usd":-1,"modelUsage":{"x":{"inputTokens":"many"},"y":null}}"#,
    ] {
        claude.feed_line(line);
    }
    let o = claude.finish(ProcessExit::Signal(9));
    assert!(matches!(o.kind, OutcomeKind::Failed { .. }));
    assert!(o.usage.cost_usd.is_finite());

    let mut codex = adapter_for(AdapterKind::Codex);
    codex.feed_line(
        r#"{"type":"turn.completed","usage":{"input_tokens":1,"cached_input_tokens":18446744073709551615,"output_tokens":2.5}}"#,
    );
    let o = codex.finish(ProcessExit::Code(0));
    assert_eq!(o.kind, OutcomeKind::Succeeded);
    assert_eq!(o.usage.output_tokens, 2);
}

/// Lines of the real transcripts, to mutate in the property tests below.
fn reference_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for name in [
        "claude-stream-json-success.jsonl",
        "claude-stream-json-error.jsonl",
        "codex-exec-json-success.jsonl",
        "extra/claude-stream-json-include-partial-messages.jsonl",
        "extra/codex-exec-json-turn-failed-500.jsonl",
    ] {
        let text = std::fs::read_to_string(format!("{REFERENCE}{name}")).unwrap_or_default();
        lines.extend(text.lines().map(str::to_owned));
    }
    lines
}

fn feed_all(kind: AdapterKind, lines: &[String], exit: ProcessExit) {
    let mut adapter = adapter_for(kind);
    for line in lines {
        let _ = adapter.feed_line(line);
        let usage = adapter.usage_so_far();
        assert!(!usage.cost_usd.is_nan());
    }
    let outcome = adapter.finish(exit);
    // The outcome always serialises for the store and the API.
    assert!(serde_json::to_string(&outcome).is_ok());
}

fn any_exit() -> impl Strategy<Value = ProcessExit> {
    prop_oneof![
        any::<i32>().prop_map(ProcessExit::Code),
        any::<i32>().prop_map(ProcessExit::Signal),
    ]
}

fn any_kind() -> impl Strategy<Value = AdapterKind> {
    prop_oneof![
        Just(AdapterKind::ClaudeCode),
        Just(AdapterKind::Codex),
        Just(AdapterKind::Command),
    ]
}

proptest! {
    #[test]
    fn arbitrary_strings_never_panic(kind in any_kind(), lines in proptest::collection::vec(any::<String>(), 0..20), exit in any_exit()) {
        feed_all(kind, &lines, exit);
    }

    #[test]
    fn arbitrary_json_shaped_lines_never_panic(
        kind in any_kind(),
        lines in proptest::collection::vec(
            r#"\{("type":"(system|assistant|user|result|stream_event|thread\.started|turn\.completed|turn\.failed|item\.completed|item\.started|error)",?)?("subtype":"[a-z_]{0,12}",?)?("message":(\{[^{}]{0,30}\}|"[^"]{0,10}"|[0-9]{1,25}|null),?)?("usage":\{("input_tokens":-?[0-9.e]{1,25})?\},?)?("item":\{"type":"[a-z_]{0,20}"\},?)?\}"#,
            0..20,
        ),
        exit in any_exit(),
    ) {
        feed_all(kind, &lines, exit);
    }

    #[test]
    fn mutated_reference_lines_never_panic(
        kind in any_kind(),
        picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()), 1..30),
        exit in any_exit(),
    ) {
        let source = reference_lines();
        prop_assume!(!source.is_empty());
        let lines: Vec<String> = picks
            .iter()
            .map(|(line, pos, byte)| {
                let mut bytes = source[line.index(source.len())].clone().into_bytes();
                // Cut the line short at a random byte and append noise: a truncated
                // write, as when a process dies mid-line.
                let cut = pos.index(bytes.len().max(1));
                bytes.truncate(cut);
                bytes.push(*byte);
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .collect();
        feed_all(kind, &lines, exit);
    }
}
