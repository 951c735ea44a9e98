//! Review verdicts: the machine-readable decision a review-stage agent must end with,
//! read from its final text.
//!
//! # Format
//!
//! The final text must declare **exactly one** verdict, in either form:
//!
//! 1. A fenced block with the info string `orch-verdict` holding a JSON object:
//!
//!    ````text
//!    ```orch-verdict
//!    {"verdict": "changes_requested", "comments": ["Handle the empty list in parse()", "Add a test"]}
//!    ```
//!    ````
//!
//!    `verdict` is `"approve"` or `"changes_requested"`; `comments` is an optional
//!    list of strings (default empty). Other keys are ignored.
//!
//! 2. A line `VERDICT: approve` or `VERDICT: changes_requested`, on its own line
//!    (surrounding whitespace allowed, keyword and value case-insensitive). Every
//!    non-blank line after it is a comment; a leading `- ` or `* ` is dropped.
//!
//!    ```text
//!    VERDICT: changes_requested
//!    - Handle the empty list in parse()
//!    - Add a test
//!    ```
//!
//! `VERDICT:` lines inside other fenced code blocks are quoted examples and are not
//! read. No verdict, more than one (even if they agree), an unknown value, invalid
//! JSON or an unclosed `orch-verdict` block are errors: a review never passes by
//! accident (fail closed).

use serde::{Deserialize, Serialize};

/// The reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Approve,
    ChangesRequested,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Approve => "approve",
            ReviewDecision::ChangesRequested => "changes_requested",
        }
    }

    fn parse(value: &str) -> Result<ReviewDecision, VerdictError> {
        let v = value.trim();
        if v.eq_ignore_ascii_case("approve") {
            Ok(ReviewDecision::Approve)
        } else if v.eq_ignore_ascii_case("changes_requested") {
            Ok(ReviewDecision::ChangesRequested)
        } else {
            Err(VerdictError::UnknownVerdict {
                value: value.to_owned(),
            })
        }
    }
}

/// A parsed review verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub decision: ReviewDecision,
    /// The reviewer's comments, for the developer's next prompt.
    pub comments: Vec<String>,
}

/// Why no verdict could be read. Each message says what the agent must write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdictError {
    #[error(
        "no review verdict found: the review must end with an ```orch-verdict block or a `VERDICT: approve|changes_requested` line"
    )]
    Missing,
    #[error("{count} review verdicts found; exactly one is allowed")]
    Ambiguous { count: usize },
    #[error("unknown review verdict {value:?}; expected approve or changes_requested")]
    UnknownVerdict { value: String },
    #[error(
        "the orch-verdict block is not valid JSON ({message}); expected {{\"verdict\":\"approve\"|\"changes_requested\",\"comments\":[\"...\"]}}"
    )]
    InvalidJson { message: String },
    #[error("the orch-verdict block opened on line {line} is never closed with ```")]
    Unterminated { line: usize },
}

/// One verdict declaration found in the text.
enum Declaration {
    /// The body of an `orch-verdict` block.
    Block(String),
    /// A `VERDICT:` line: its value and the lines after it.
    Line { value: String, after: usize },
}

/// An open fence: its character, length, and whether it is an `orch-verdict` block
/// (with the line it opened on and its body so far).
struct Fence {
    ch: char,
    len: usize,
    verdict: Option<(usize, String)>,
}

/// Reads the verdict from a review agent's final text (see the module docs).
pub fn parse_verdict(final_text: &str) -> Result<Verdict, VerdictError> {
    let lines: Vec<&str> = final_text.lines().collect();
    let mut declarations = Vec::new();
    let mut fence: Option<Fence> = None;

    for (idx, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if let Some(open) = &mut fence {
            if closes(trimmed, open.ch, open.len) {
                if let Some((_, body)) = open.verdict.take() {
                    declarations.push(Declaration::Block(body));
                }
                fence = None;
            } else if let Some((_, body)) = &mut open.verdict {
                body.push_str(line);
                body.push('\n');
            }
            continue;
        }
        if let Some((ch, len, info)) = opens(trimmed) {
            let verdict = (info == "orch-verdict").then(|| (idx + 1, String::new()));
            fence = Some(Fence { ch, len, verdict });
            continue;
        }
        if let Some(value) = verdict_line(trimmed) {
            declarations.push(Declaration::Line {
                value: value.to_owned(),
                after: idx + 1,
            });
        }
    }
    if let Some(Fence {
        verdict: Some((line, _)),
        ..
    }) = fence
    {
        return Err(VerdictError::Unterminated { line });
    }

    match declarations.len() {
        0 => return Err(VerdictError::Missing),
        1 => {}
        count => return Err(VerdictError::Ambiguous { count }),
    }
    match declarations.remove(0) {
        Declaration::Block(body) => parse_block(&body),
        Declaration::Line { value, after } => Ok(Verdict {
            decision: ReviewDecision::parse(&value)?,
            comments: lines
                .get(after..)
                .unwrap_or_default()
                .iter()
                .map(|l| comment(l))
                .filter(|c| !c.is_empty())
                .collect(),
        }),
    }
}

#[derive(Deserialize)]
struct BlockJson {
    verdict: String,
    #[serde(default)]
    comments: Vec<String>,
}

fn parse_block(body: &str) -> Result<Verdict, VerdictError> {
    let json: BlockJson = serde_json::from_str(body).map_err(|e| VerdictError::InvalidJson {
        message: e.to_string(),
    })?;
    Ok(Verdict {
        decision: ReviewDecision::parse(&json.verdict)?,
        comments: json
            .comments
            .into_iter()
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect(),
    })
}

/// A fence opening: three or more backticks or tildes, then the info string.
fn opens(trimmed: &str) -> Option<(char, usize, &str)> {
    let ch = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = trimmed.chars().take_while(|c| *c == ch).count();
    // Both fence characters are one byte, so `len` is also a byte offset.
    let info = trimmed.get(len..)?.trim();
    (len >= 3).then_some((ch, len, info))
}

/// A fence closing: only fence characters, at least as many as the opening.
fn closes(trimmed: &str, ch: char, len: usize) -> bool {
    trimmed.len() >= len && trimmed.chars().all(|c| c == ch)
}

/// The value of a `VERDICT: <value>` line.
fn verdict_line(trimmed: &str) -> Option<&str> {
    let head = trimmed.get(..7)?;
    if !head.eq_ignore_ascii_case("verdict") {
        return None;
    }
    trimmed
        .get(7..)?
        .trim_start()
        .strip_prefix(':')
        .map(str::trim)
}

/// A comment line without its list marker.
fn comment(line: &str) -> String {
    let t = line.trim();
    t.strip_prefix("- ")
        .or_else(|| t.strip_prefix("* "))
        .unwrap_or(t)
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_keyword_must_start_the_line() {
        assert_eq!(verdict_line("VERDICT: approve"), Some("approve"));
        assert_eq!(verdict_line("verdict :approve"), Some("approve"));
        assert_eq!(verdict_line("VERDICTS: approve"), None);
        assert_eq!(verdict_line("The VERDICT: approve"), None);
        // Multi-byte text near the keyword must not split a char.
        assert_eq!(verdict_line("vérdict: approve"), None);
    }

    #[test]
    fn fences_need_three_marks() {
        assert!(opens("``x").is_none());
        assert_eq!(opens("```orch-verdict").map(|f| f.2), Some("orch-verdict"));
        assert!(closes("````", '`', 3));
        assert!(!closes("``", '`', 3));
        assert!(!closes("~~~", '`', 3));
    }
}
