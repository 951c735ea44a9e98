//! An agent that needs a person, read from the CLIs' own output (R-8a):
//!
//! - Claude Code's `result` line lists the tool calls it was refused in
//!   `permission_denials` (`{tool_name, tool_use_id, tool_input}`, the
//!   authoritative list, `agent_clis.md` §2). In `-p` mode nobody can grant
//!   them, so the run ends without what it needed: a person must decide.
//! - Codex's `request_user_input` event (`{id, call_id, questions[]}`, from
//!   the Codex sources; `exec` has nobody to answer it).
//!
//! Both become the question the task parks on. What the agent wrote is
//! hostile input: only strings are taken, each cut short for display.

use super::json::{SUMMARY_CHARS, obj_field, str_field, summarize, text_of};
use serde_json::{Map, Value};

/// The most characters of a question kept (it is posted on the tracker item).
pub const MAX_QUESTION_CHARS: usize = 2000;

/// The question Claude's `permission_denials` ask, if it lists any.
pub(crate) fn from_permission_denials(result: &Map<String, Value>) -> Option<String> {
    let denials = result.get("permission_denials")?.as_array()?;
    let tools: Vec<String> = denials
        .iter()
        .filter_map(Value::as_object)
        .map(|d| {
            let tool = str_field(d, "tool_name").unwrap_or("a tool");
            match d.get("tool_input") {
                Some(input) if !input.is_null() => {
                    format!(
                        "{tool} ({})",
                        summarize(&input_summary(input), SUMMARY_CHARS)
                    )
                }
                _ => tool.to_owned(),
            }
        })
        .collect();
    if tools.is_empty() {
        return None;
    }
    Some(cut(format!(
        "the agent was denied permission for: {}. Allow it in the agent's command (e.g. --allowedTools) or answer how to go on without it.",
        tools.join("; ")
    )))
}

/// The question of Codex's `request_user_input` event.
pub(crate) fn from_request_user_input(v: &Map<String, Value>) -> Option<String> {
    let questions: Vec<String> = v
        .get("questions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|q| match q {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => ["question", "text", "header"]
                .iter()
                .find_map(|k| str_field(o, k))
                .map(|s| {
                    let options: Vec<&str> = o
                        .get("options")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|opt| match opt {
                            Value::String(s) => Some(s.as_str()),
                            Value::Object(o) => str_field(o, "label"),
                            _ => None,
                        })
                        .collect();
                    if options.is_empty() {
                        s.to_owned()
                    } else {
                        format!("{s} (options: {})", options.join(", "))
                    }
                }),
            _ => None,
        })
        .filter(|s| !s.trim().is_empty())
        .collect();
    if questions.is_empty() {
        return Some("the agent asked for input (request_user_input) without a question".into());
    }
    Some(cut(questions.join("\n")))
}

/// A tool input in a line: Bash's command, a file's path, else the JSON.
fn input_summary(input: &Value) -> String {
    if let Some(o) = input.as_object() {
        for key in ["command", "file_path", "path", "url", "pattern"] {
            if let Some(s) = str_field(o, key) {
                return s.to_owned();
            }
        }
        if let Some(inner) = obj_field(o, "input") {
            return Value::Object(inner.clone()).to_string();
        }
    }
    text_of(input)
}

fn cut(s: String) -> String {
    if s.chars().count() <= MAX_QUESTION_CHARS {
        s
    } else {
        s.chars().take(MAX_QUESTION_CHARS).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(s: &str) -> Map<String, Value> {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn permission_denials_name_each_refused_tool() {
        let q = from_permission_denials(&obj(
            r#"{"permission_denials":[{"tool_name":"Bash","tool_use_id":"t1","tool_input":{"command":"rm -rf build"}},{"tool_name":"Write","tool_use_id":"t2","tool_input":{"file_path":"/etc/x"}}]}"#,
        ))
        .unwrap();
        assert!(q.contains("Bash (rm -rf build); Write (/etc/x)"), "{q}");
        assert_eq!(
            from_permission_denials(&obj(r#"{"permission_denials":[]}"#)),
            None
        );
        assert_eq!(from_permission_denials(&obj(r#"{"result":"x"}"#)), None);
    }

    #[test]
    fn request_user_input_reads_questions_and_options() {
        let q = from_request_user_input(&obj(
            r#"{"type":"request_user_input","id":"r1","call_id":"c1","questions":[{"id":"q1","header":"Port","question":"Which port should the server use?","options":[{"label":"8080","description":"default"},{"label":"9090"}]}]}"#,
        ))
        .unwrap();
        assert_eq!(q, "Which port should the server use? (options: 8080, 9090)");
        let long = "x".repeat(MAX_QUESTION_CHARS + 10);
        let q = from_request_user_input(&obj(&format!(r#"{{"questions":["{long}"]}}"#))).unwrap();
        assert_eq!(q.chars().count(), MAX_QUESTION_CHARS + 1);
    }
}
