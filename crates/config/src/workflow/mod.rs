//! A Symphony-style `WORKFLOW.md` (issue 13): YAML front matter that maps
//! onto orch's configuration keys, and a Markdown body that becomes the
//! developer's prompt template.
//!
//! ```text
//! ---                      front matter: tracker, polling, workspace, hooks,
//! tracker: {kind: linear}  agent, codex (Symphony SPEC §5.3) → map.rs
//! agent: {max_concurrent_agents: 4}
//! ---
//! You are working on {{ issue.identifier }} …   → the developer's template
//! ```
//!
//! Parsing follows Symphony's rules (§5.2): a file that starts with a `---`
//! line has front matter up to the next `---` line; without one the whole
//! file is the prompt and the front matter is empty; the front matter must be
//! a map; the body is trimmed. The file is read from the orch host (the path
//! an operator gives), never from an agent's worktree.

mod layer;
mod map;

pub(crate) use layer::{PROVIDER_NAME, load_layer};
pub use map::{Mapped, map_front_matter};

use std::path::{Path, PathBuf};

/// A `WORKFLOW.md`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowFile {
    pub path: PathBuf,
    /// The front matter's root map (empty without front matter).
    pub front: serde_json::Map<String, serde_json::Value>,
    /// The trimmed Markdown body: the developer's prompt template.
    pub prompt_template: String,
}

/// The developer's prompt template a workflow file gives, with where it
/// came from (its errors name the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowPrompt {
    pub path: PathBuf,
    pub template: String,
}

/// Why a workflow file cannot be used; Symphony's error classes (§5.5).
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error(
        "workflow file {} cannot be read: {source}; check the path given to --workflow or `workflow` in orch.toml",
        path.display()
    )]
    MissingWorkflowFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("workflow file {}: the front matter is not valid YAML{}: {message}", path.display(), at_line(*line))]
    WorkflowParseError {
        path: PathBuf,
        /// Line in the file (not in the front matter), when known.
        line: Option<usize>,
        message: String,
    },
    #[error(
        "workflow file {}: the front matter must be a map of keys (tracker, agent, codex, …), not {found}",
        path.display()
    )]
    FrontMatterNotAMap { path: PathBuf, found: &'static str },
}

fn at_line(line: Option<usize>) -> String {
    line.map_or_else(String::new, |l| format!(" at line {l}"))
}

impl WorkflowFile {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<WorkflowFile, WorkflowError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| WorkflowError::MissingWorkflowFile {
                path: path.to_path_buf(),
                source,
            })?;
        WorkflowFile::parse(&text, path)
    }

    /// Parses the text of the file at `path` (the path only names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<WorkflowFile, WorkflowError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let (yaml, body) = match split_front_matter(text) {
            Split::None => (None, text),
            Split::Unclosed => {
                return Err(WorkflowError::WorkflowParseError {
                    path: path.to_path_buf(),
                    line: Some(1),
                    message: "the front matter that starts at line 1 has no closing `---` line"
                        .into(),
                });
            }
            Split::Some { yaml, body } => (Some(yaml), body),
        };
        let front = match yaml {
            None => serde_json::Map::new(),
            Some(yaml) => parse_front(yaml, path)?,
        };
        Ok(WorkflowFile {
            path: path.to_path_buf(),
            front,
            prompt_template: body.trim().to_owned(),
        })
    }
}

enum Split<'a> {
    None,
    Unclosed,
    Some { yaml: &'a str, body: &'a str },
}

/// Front matter: from a first line `---` to the next line `---`.
fn split_front_matter(text: &str) -> Split<'_> {
    let mut lines = text.split_inclusive('\n');
    match lines.next() {
        Some(first) if first.trim_end() == "---" => {}
        _ => return Split::None,
    }
    let start = text.split_inclusive('\n').next().map_or(0, str::len);
    let mut at = start;
    for line in lines {
        if line.trim_end() == "---" {
            return Split::Some {
                yaml: &text[start..at],
                body: &text[at + line.len()..],
            };
        }
        at += line.len();
    }
    Split::Unclosed
}

fn parse_front(
    yaml: &str,
    path: &Path,
) -> Result<serde_json::Map<String, serde_json::Value>, WorkflowError> {
    if yaml.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    let value: serde_json::Value =
        yaml_serde::from_str(yaml).map_err(|e| WorkflowError::WorkflowParseError {
            path: path.to_path_buf(),
            // +1: the opening `---` line comes before the YAML.
            line: e.location().map(|l| l.line() + 1),
            message: e.to_string(),
        })?;
    match value {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(WorkflowError::FrontMatterNotAMap {
            path: path.to_path_buf(),
            found: kind_of(&other),
        }),
    }
}

pub(crate) fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "nothing (null)",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "a map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WorkflowFile, WorkflowError> {
        WorkflowFile::parse(text, Path::new("WORKFLOW.md"))
    }

    #[test]
    fn front_matter_and_a_trimmed_body() {
        let w =
            parse("---\nagent:\n  max_turns: 3\n---\n\n  Do {{ issue.identifier }}.\n\n").unwrap();
        assert_eq!(w.front["agent"]["max_turns"], 3);
        assert_eq!(w.prompt_template, "Do {{ issue.identifier }}.");
    }

    #[test]
    fn without_front_matter_the_whole_file_is_the_prompt() {
        let w = parse("Just a prompt.\n---\nnot: front matter\n").unwrap();
        assert!(w.front.is_empty());
        assert!(w.prompt_template.starts_with("Just a prompt."));
    }

    #[test]
    fn empty_front_matter_is_an_empty_map() {
        let w = parse("---\n---\nBody").unwrap();
        assert!(w.front.is_empty());
        assert_eq!(w.prompt_template, "Body");
    }

    #[test]
    fn bad_yaml_is_a_typed_error_with_its_line() {
        let e = parse("---\ntracker:\n  kind: [linear\n---\nBody").unwrap_err();
        match &e {
            WorkflowError::WorkflowParseError { line, .. } => assert!(line.is_some(), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("WORKFLOW.md"), "{e}");
    }

    #[test]
    fn unclosed_front_matter_is_a_parse_error() {
        let e = parse("---\nagent: {}\nBody").unwrap_err();
        assert!(
            matches!(e, WorkflowError::WorkflowParseError { .. }),
            "{e:?}"
        );
    }

    #[test]
    fn front_matter_that_is_not_a_map_is_a_typed_error() {
        for (yaml, found) in [("- a\n- b\n", "a list"), ("just text\n", "a string")] {
            let e = parse(&format!("---\n{yaml}---\nBody")).unwrap_err();
            match e {
                WorkflowError::FrontMatterNotAMap { found: f, .. } => assert_eq!(f, found),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_file_is_a_typed_error() {
        let e = WorkflowFile::read(Path::new("/nonexistent/WORKFLOW.md")).unwrap_err();
        assert!(
            matches!(e, WorkflowError::MissingWorkflowFile { .. }),
            "{e:?}"
        );
    }
}
