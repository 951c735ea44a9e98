//! Atlassian Document Format (ADF), the JSON tree Jira's REST API v3 keeps
//! comments and descriptions in. orch writes plain text as a document of
//! paragraphs (a line break inside a paragraph is a `hardBreak`), and reads
//! any document back as plain text.
//!
//! Reading never fails: a tracker's documents are hostile input. Paragraphs,
//! headings, code blocks, quotes and list items become lines; text nodes
//! their text; `hardBreak` a line break; mentions, emoji, dates and cards
//! their visible text; an unknown node keeps the text of its children; a
//! non-object, a node without `content` or a tree deeper than
//! [`MAX_DEPTH`] adds nothing more. The text is capped at [`MAX_TEXT`].

use serde_json::{Value, json};

/// Nesting read at most: a document nested deeper is cut there (Jira's own
/// documents are a few levels deep).
pub const MAX_DEPTH: usize = 64;
/// Characters kept at most (a comment orch reads is a short reason).
pub const MAX_TEXT: usize = 64 * 1024;

/// `text` as an ADF document: blank lines separate paragraphs, other line
/// breaks are `hardBreak`s. Empty text is one empty paragraph (Jira refuses
/// a document without content).
pub fn from_text(text: &str) -> Value {
    let text = text.replace("\r\n", "\n");
    let mut paragraphs = Vec::new();
    for para in text.split("\n\n") {
        let para = para.trim_matches('\n');
        if para.is_empty() {
            continue;
        }
        let mut inline = Vec::new();
        for (i, line) in para.split('\n').enumerate() {
            if i > 0 {
                inline.push(json!({ "type": "hardBreak" }));
            }
            // ADF refuses an empty text node.
            if !line.is_empty() {
                inline.push(json!({ "type": "text", "text": line }));
            }
        }
        paragraphs.push(json!({ "type": "paragraph", "content": inline }));
    }
    if paragraphs.is_empty() {
        paragraphs.push(json!({ "type": "paragraph", "content": [] }));
    }
    json!({ "type": "doc", "version": 1, "content": paragraphs })
}

/// The plain text of an ADF document (or of a bare string, which the v2
/// API and old webhooks send).
pub fn to_text(doc: &Value) -> String {
    if let Some(s) = doc.as_str() {
        return s.chars().take(MAX_TEXT).collect();
    }
    let mut out = String::new();
    walk(doc, 0, &mut out);
    let text = out.trim_end_matches('\n').to_owned();
    if text.chars().count() > MAX_TEXT {
        return text.chars().take(MAX_TEXT).collect();
    }
    text
}

/// Nodes whose content is a block of its own: a line break after.
fn is_block(kind: &str) -> bool {
    matches!(
        kind,
        "paragraph"
            | "heading"
            | "codeBlock"
            | "blockquote"
            | "listItem"
            | "panel"
            | "rule"
            | "tableRow"
            | "mediaSingle"
            | "expand"
            | "nestedExpand"
            | "taskItem"
            | "decisionItem"
    )
}

fn walk(node: &Value, depth: usize, out: &mut String) {
    if depth > MAX_DEPTH || out.len() > MAX_TEXT * 4 {
        return;
    }
    let Some(obj) = node.as_object() else {
        return;
    };
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let attr = |k: &str| {
        obj.get("attrs")
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
    };
    match kind {
        "text" => {
            if let Some(t) = obj.get("text").and_then(Value::as_str) {
                out.push_str(t);
            }
            return;
        }
        "hardBreak" => {
            out.push('\n');
            return;
        }
        // Inline nodes whose visible text is an attribute.
        "mention" | "emoji" | "status" => {
            if let Some(t) = attr("text").or_else(|| attr("shortName")) {
                out.push_str(t);
            }
            return;
        }
        "inlineCard" | "blockCard" => {
            if let Some(u) = attr("url") {
                out.push_str(u);
            }
        }
        "date" => {
            if let Some(t) = attr("timestamp") {
                out.push_str(t);
            }
            return;
        }
        _ => {}
    }
    if let Some(children) = obj.get("content").and_then(Value::as_array) {
        for c in children {
            walk(c, depth + 1, out);
        }
    }
    if is_block(kind) && !out.is_empty() && !out.ends_with("\n\n") {
        // Paragraph-like blocks are separated as the text orch writes them.
        out.push_str(if kind == "listItem" || kind == "tableRow" {
            "\n"
        } else {
            "\n\n"
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_survives_a_round_trip() {
        for t in [
            "one line",
            "two\nlines",
            "a paragraph\n\nand another\nwith a break",
            "Analysis started\n\n<!-- orch:k1 -->",
        ] {
            assert_eq!(to_text(&from_text(t)), t, "{t:?}");
        }
        let empty = from_text("");
        assert_eq!(empty["content"][0]["type"], "paragraph");
        assert_eq!(to_text(&empty), "");
    }

    #[test]
    fn odd_and_hostile_documents_read_as_text_without_failing() {
        let doc = json!({ "type": "doc", "version": 1, "content": [
            { "type": "heading", "attrs": { "level": 2 }, "content": [{ "type": "text", "text": "Why" }] },
            { "type": "codeBlock", "attrs": { "language": "rust" }, "content": [{ "type": "text", "text": "fn main() {}" }] },
            { "type": "bulletList", "content": [
                { "type": "listItem", "content": [{ "type": "paragraph", "content": [
                    { "type": "mention", "attrs": { "id": "x", "text": "@Ann" } },
                    { "type": "text", "text": " see " },
                    { "type": "inlineCard", "attrs": { "url": "https://example.invalid/p" } } ] }] } ] },
            { "type": "madeUpNode", "content": [{ "type": "text", "text": "kept" }] },
            { "type": "paragraph", "content": [ 7, null, { "type": "text" }, { "type": "text", "text": 3 } ] },
            "not a node",
        ]});
        let t = to_text(&doc);
        assert!(t.contains("Why") && t.contains("fn main() {}"), "{t}");
        assert!(t.contains("@Ann see https://example.invalid/p"), "{t}");
        assert!(t.contains("kept"), "{t}");
        for v in [
            json!(null),
            json!(42),
            json!([1, 2]),
            json!({}),
            json!({ "content": "x" }),
        ] {
            assert_eq!(to_text(&v), "", "{v}");
        }
        assert_eq!(to_text(&json!("plain v2 text")), "plain v2 text");
        // Nested far deeper than any real document: cut, not a stack overflow.
        let mut deep = json!({ "type": "text", "text": "bottom" });
        for _ in 0..1_000 {
            deep = json!({ "type": "blockquote", "content": [deep] });
        }
        assert_eq!(to_text(&deep), "");
        // A huge text is capped.
        let big = json!({ "type": "doc", "content": [{ "type": "paragraph", "content": [
            { "type": "text", "text": "x".repeat(MAX_TEXT * 2) } ] }] });
        assert_eq!(to_text(&big).len(), MAX_TEXT);
    }
}
