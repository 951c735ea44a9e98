//! An agent that needs a person, read from the real CLIs' transcripts
//! (shared/reference/agents): Claude's `permission_denials` and Codex's
//! `request_user_input` become the run's question; the recorded runs that
//! asked nothing have none.
//!
//! No recording holds a `request_user_input` (Codex emits it in its sources
//! only, and `codex exec` has nobody to ask), nor a non-empty
//! `permission_denials` (the recordings allowed their tools), so those two
//! are the recorded runs with the line or the field as the sources and
//! `agent_clis.md` §2–3 describe them.

use orch_agent::adapters::{
    AdapterKind, AgentEvent, OutcomeKind, ProcessExit, adapter_for, replay,
};

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/agents/"
);

fn transcript(name: &str) -> String {
    let path = format!("{REFERENCE}{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

#[test]
fn recorded_runs_that_asked_nothing_have_no_question() {
    for (kind, name) in [
        (AdapterKind::ClaudeCode, "claude-stream-json-success.jsonl"),
        (AdapterKind::ClaudeCode, "claude-stream-json-error.jsonl"),
        (AdapterKind::Codex, "codex-exec-json-success.jsonl"),
    ] {
        let mut a = adapter_for(kind);
        let (_, outcome) = replay(a.as_mut(), &transcript(name), ProcessExit::Code(0));
        assert_eq!(outcome.question, None, "{name}");
    }
}

#[test]
fn claude_permission_denials_are_a_question() {
    let text = transcript("claude-stream-json-success.jsonl");
    assert!(text.contains(r#""permission_denials":[]"#));
    let text = text.replace(
        r#""permission_denials":[]"#,
        r#""permission_denials":[{"tool_name":"Bash","tool_use_id":"toolu_1","tool_input":{"command":"git push --force","description":"Push"}}]"#,
    );
    let mut a = adapter_for(AdapterKind::ClaudeCode);
    let (events, outcome) = replay(a.as_mut(), &text, ProcessExit::Code(0));
    // The run itself succeeded; the task parks on the question anyway.
    assert_eq!(outcome.kind, OutcomeKind::Succeeded);
    let q = outcome.question.expect("a question");
    assert!(
        q.starts_with("the agent was denied permission for: Bash (git push --force)."),
        "{q}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::Question { text } if *text == q))
    );
}

#[test]
fn codex_request_user_input_is_a_question() {
    let text = transcript("codex-exec-json-success.jsonl");
    let mut lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(r#""type":"turn.completed""#))
        .expect("the recording's turn.completed");
    let ask = r#"{"type":"request_user_input","id":"req_1","call_id":"call_1","questions":[{"id":"q1","header":"Database","question":"Which database should the migration target?","options":[{"label":"SQLite","description":"embedded"},{"label":"PostgreSQL","description":"shared"}]}]}"#;
    lines.insert(at, ask);
    let mut a = adapter_for(AdapterKind::Codex);
    let (events, outcome) = replay(a.as_mut(), &lines.join("\n"), ProcessExit::Code(0));
    assert_eq!(outcome.kind, OutcomeKind::Succeeded);
    assert_eq!(
        outcome.question.as_deref(),
        Some("Which database should the migration target? (options: SQLite, PostgreSQL)")
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, AgentEvent::Question { .. }))
    );
    assert!(
        !events.iter().any(
            |e| matches!(e, AgentEvent::Unknown { raw } if raw.contains("request_user_input"))
        )
    );
}
