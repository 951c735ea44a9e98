//! Review verdict extraction: both formats, and every way a verdict can be missing
//! or ambiguous (which must be an error, never an approval).

use orch_agent::adapters::{ReviewDecision, Verdict, VerdictError, parse_verdict};
use proptest::prelude::*;

fn verdict(decision: ReviewDecision, comments: &[&str]) -> Verdict {
    Verdict {
        decision,
        comments: comments.iter().map(|c| (*c).to_owned()).collect(),
    }
}

#[test]
fn fenced_block_approve() {
    let text =
        "Looks good overall.\n\n```orch-verdict\n{\"verdict\":\"approve\",\"comments\":[]}\n```\n";
    assert_eq!(
        parse_verdict(text),
        Ok(verdict(ReviewDecision::Approve, &[]))
    );
}

#[test]
fn fenced_block_changes_requested_with_comments() {
    let text = "Review done.\n```orch-verdict\n{\n  \"verdict\": \"changes_requested\",\n  \"comments\": [\"Handle the empty list\", \"  Add a test  \", \"\"]\n}\n```";
    assert_eq!(
        parse_verdict(text),
        Ok(verdict(
            ReviewDecision::ChangesRequested,
            &["Handle the empty list", "Add a test"]
        ))
    );
}

#[test]
fn fenced_block_comments_are_optional_and_extra_keys_ignored() {
    let text = "```orch-verdict\n{\"verdict\":\"approve\",\"confidence\":0.9}\n```";
    assert_eq!(
        parse_verdict(text),
        Ok(verdict(ReviewDecision::Approve, &[]))
    );
}

#[test]
fn verdict_line_with_comments() {
    let text = "I read the diff.\n\nVERDICT: changes_requested\n- Rename `foo`\n\n* Document the retry cap\nplain comment\n";
    assert_eq!(
        parse_verdict(text),
        Ok(verdict(
            ReviewDecision::ChangesRequested,
            &["Rename `foo`", "Document the retry cap", "plain comment"]
        ))
    );
}

#[test]
fn verdict_line_is_case_insensitive_and_trimmed() {
    assert_eq!(
        parse_verdict("  verdict:  Approve  \r\n"),
        Ok(verdict(ReviewDecision::Approve, &[]))
    );
}

#[test]
fn missing_verdict_is_an_error() {
    assert_eq!(parse_verdict(""), Err(VerdictError::Missing));
    assert_eq!(
        parse_verdict("Looks good to me, approve!"),
        Err(VerdictError::Missing)
    );
    // Quoted in an ordinary code block: an example, not a verdict.
    assert_eq!(
        parse_verdict("End with a line like:\n```\nVERDICT: approve\n```\n"),
        Err(VerdictError::Missing)
    );
    assert_eq!(
        parse_verdict("~~~text\nVERDICT: approve\n~~~"),
        Err(VerdictError::Missing)
    );
}

#[test]
fn several_verdicts_are_ambiguous_even_when_they_agree() {
    assert_eq!(
        parse_verdict("VERDICT: approve\nVERDICT: changes_requested"),
        Err(VerdictError::Ambiguous { count: 2 })
    );
    let both = "```orch-verdict\n{\"verdict\":\"approve\"}\n```\nVERDICT: approve";
    assert_eq!(
        parse_verdict(both),
        Err(VerdictError::Ambiguous { count: 2 })
    );
    let blocks = "```orch-verdict\n{\"verdict\":\"approve\"}\n```\n```orch-verdict\n{\"verdict\":\"approve\"}\n```";
    assert_eq!(
        parse_verdict(blocks),
        Err(VerdictError::Ambiguous { count: 2 })
    );
}

#[test]
fn unknown_values_are_errors() {
    assert_eq!(
        parse_verdict("VERDICT: lgtm"),
        Err(VerdictError::UnknownVerdict {
            value: "lgtm".into()
        })
    );
    assert_eq!(
        parse_verdict("VERDICT:"),
        Err(VerdictError::UnknownVerdict { value: "".into() })
    );
    assert_eq!(
        parse_verdict("```orch-verdict\n{\"verdict\":\"approved\"}\n```"),
        Err(VerdictError::UnknownVerdict {
            value: "approved".into()
        })
    );
}

#[test]
fn broken_blocks_are_errors() {
    assert!(matches!(
        parse_verdict("```orch-verdict\n{\"verdict\": approve}\n```"),
        Err(VerdictError::InvalidJson { .. })
    ));
    assert!(matches!(
        parse_verdict("```orch-verdict\n{\"comments\":[]}\n```"),
        Err(VerdictError::InvalidJson { .. })
    ));
    assert!(matches!(
        parse_verdict("```orch-verdict\n\n```"),
        Err(VerdictError::InvalidJson { .. })
    ));
    assert_eq!(
        parse_verdict("text\n```orch-verdict\n{\"verdict\":\"approve\"}\n"),
        Err(VerdictError::Unterminated { line: 2 })
    );
}

#[test]
fn a_longer_fence_holds_inner_backticks() {
    let text = "````orch-verdict\n{\"verdict\":\"changes_requested\",\"comments\":[\"use ``` fences\"]}\n````";
    assert_eq!(
        parse_verdict(text),
        Ok(verdict(
            ReviewDecision::ChangesRequested,
            &["use ``` fences"]
        ))
    );
}

#[test]
fn errors_tell_the_agent_what_to_write() {
    let message = VerdictError::Missing.to_string();
    assert!(message.contains("orch-verdict"));
    assert!(message.contains("VERDICT: approve|changes_requested"));
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_and_never_approves_without_a_declaration(text in any::<String>()) {
        let lower = text.to_ascii_lowercase();
        let result = parse_verdict(&text);
        if !lower.contains("verdict") {
            prop_assert_eq!(result, Err(VerdictError::Missing));
        }
    }

    #[test]
    fn comments_round_trip_through_the_block(comments in proptest::collection::vec("[^\\r\\n]{1,40}", 0..5)) {
        let json = serde_json::json!({"verdict": "changes_requested", "comments": comments});
        let text = format!("Review.\n```orch-verdict\n{json}\n```\n");
        let parsed = parse_verdict(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected: Vec<String> = comments
            .iter()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect();
        prop_assert_eq!(parsed.decision, ReviewDecision::ChangesRequested);
        prop_assert_eq!(parsed.comments, expected);
    }
}
