//! How a rendered prompt reaches the agent: the command line and the one
//! variable an [`Invocation`] adds to the agent's environment.
//!
//! The prompt is always written to `<run_dir>/prompt.md` (the run's record of
//! what was asked, and the only channel for a plain command, which reads
//! `$ORCH_PROMPT_FILE`). Claude Code and Codex take it as their final argument:
//!
//! | adapter       | argv                                                          |
//! |---------------|---------------------------------------------------------------|
//! | `claude_code` | `<command…> [-p] [--output-format stream-json] [--verbose] -- <prompt>` |
//! | `codex`       | `<command…> [--json] -- <prompt>`                             |
//!
//! orch's own arguments for the run ([`RunArgs`]: the `orch mcp` server's
//! config, `--resume <id>` / `resume <id>` when a person's answer resumes the
//! session that asked) go between the configured command and the `--`.
//! | `command`     | `<command…>` unchanged                                        |
//!
//! Flags in brackets are added only when the configured command lacks them,
//! because the output adapters need them: Claude Code prints stream-json only in
//! print mode (`-p`/`--print`), and refuses stream-json in print mode without
//! `--verbose`; Codex prints JSONL events only with `--json`. A claude command
//! that asks for another output format is refused rather than overridden.
//!
//! The `--` before the prompt ends option parsing, so the prompt is never read as
//! a flag (a template could start with `-`) nor swallowed by a variadic option at
//! the end of the configured command (Claude's `--allowedTools A B`, Codex's
//! `--image F…`). Claude's own Agent SDK passes its prompt the same way.

use super::PromptError;
use crate::adapters::AdapterKind;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The prompt's file name in the run folder.
pub const PROMPT_FILE: &str = "prompt.md";
/// The variable holding the prompt file's absolute path.
pub const PROMPT_FILE_ENV: &str = "ORCH_PROMPT_FILE";
/// The most bytes one command-line argument may hold on Linux
/// (`MAX_ARG_STRLEN`, 32 pages, including the terminating NUL). A longer
/// prompt would make the agent's exec fail with E2BIG.
pub const MAX_ARG_BYTES: usize = 32 * 4096 - 1;

/// What a run adds to the agent's configured command beyond the prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunArgs {
    /// Resume this session (Claude `--resume <id>`, Codex `exec … resume
    /// <id>`): the prompt is then the next message of that conversation.
    pub resume_session: Option<String>,
    /// Arguments orch adds for this run (its `orch mcp` server's config),
    /// after the configured command and before the prompt.
    pub extra: Vec<String>,
}

/// The command line and extra environment for one agent run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub argv: Vec<String>,
    /// Variables to add to the run's (allowlisted) environment: [`PROMPT_FILE_ENV`].
    pub env: BTreeMap<String, String>,
}

/// Writes `prompt` to `<run_dir>/prompt.md` (creating the folder) and builds the
/// agent's command line from its configured `base_command` (see the module docs).
///
/// The file is written before the command line is checked, so a prompt that is
/// refused (too long for an argument, or holding a NUL byte) can still be read
/// by a person in the run folder.
pub fn invocation(
    adapter: AdapterKind,
    base_command: &[String],
    prompt: &str,
    run_dir: &Path,
    run: &RunArgs,
) -> Result<Invocation, PromptError> {
    if base_command.is_empty() {
        return Err(PromptError::EmptyCommand {
            adapter: adapter.to_string(),
        });
    }
    if adapter != AdapterKind::Command && base_command.iter().any(|a| a == "--") {
        return Err(PromptError::CommandHasSeparator {
            adapter: adapter.to_string(),
        });
    }
    let prompt_file = write_prompt(run_dir, prompt)?;
    let env = BTreeMap::from([(PROMPT_FILE_ENV.to_owned(), prompt_file)]);

    let mut argv = base_command.to_vec();
    match adapter {
        AdapterKind::Command => return Ok(Invocation { argv, env }),
        AdapterKind::ClaudeCode => claude_flags(&mut argv)?,
        AdapterKind::Codex => {
            if !argv.iter().any(|a| a == "--json") {
                argv.push("--json".to_owned());
            }
        }
    }
    if prompt.len() > MAX_ARG_BYTES {
        return Err(PromptError::PromptTooLong {
            bytes: prompt.len(),
            max: MAX_ARG_BYTES,
        });
    }
    if prompt.contains('\0') {
        return Err(PromptError::PromptHasNul);
    }
    argv.extend(run.extra.iter().cloned());
    if let Some(session) = &run.resume_session {
        match adapter {
            AdapterKind::ClaudeCode => argv.extend(["--resume".to_owned(), session.clone()]),
            // `codex exec [OPTIONS] resume <SESSION_ID> [PROMPT]`: the
            // configured command ends with exec and its options.
            AdapterKind::Codex => argv.extend(["resume".to_owned(), session.clone()]),
            AdapterKind::Command => {}
        }
    }
    argv.push("--".to_owned());
    argv.push(prompt.to_owned());
    Ok(Invocation { argv, env })
}

/// Adds what Claude Code needs for the stream-json adapter (module docs).
fn claude_flags(argv: &mut Vec<String>) -> Result<(), PromptError> {
    let mut stream_json = false;
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let format = if arg == "--output-format" {
            args.next().map(String::as_str)
        } else {
            arg.strip_prefix("--output-format=")
        };
        match format {
            Some("stream-json") => stream_json = true,
            Some(other) => {
                return Err(PromptError::ConflictingOutputFormat {
                    flag: format!("--output-format {other}"),
                });
            }
            None => {}
        }
    }
    if !argv.iter().skip(1).any(|a| a == "-p" || a == "--print") {
        argv.push("-p".to_owned());
    }
    if !stream_json {
        argv.extend(["--output-format".to_owned(), "stream-json".to_owned()]);
    }
    if !argv.iter().skip(1).any(|a| a == "--verbose") {
        argv.push("--verbose".to_owned());
    }
    Ok(())
}

/// Writes the prompt file (owner-only: it may quote private work items) and
/// returns its absolute path, since the agent runs in another folder.
fn write_prompt(run_dir: &Path, prompt: &str) -> Result<String, PromptError> {
    let path = run_dir.join(PROMPT_FILE);
    let err = |source| PromptError::WritePrompt {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(run_dir).map_err(err)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(err)?;
    file.write_all(prompt.as_bytes()).map_err(err)?;
    let absolute = std::path::absolute(&path).map_err(err)?;
    absolute
        .into_os_string()
        .into_string()
        .map_err(|p| err(std::io::Error::other(format!("path {p:?} is not UTF-8"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(adapter: AdapterKind, base: &[&str], run: &RunArgs) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let base: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        invocation(adapter, &base, "the answer", dir.path(), run)
            .unwrap()
            .argv
    }

    #[test]
    fn a_resumed_run_names_its_session_before_the_prompt() {
        let run = RunArgs {
            resume_session: Some("sess-1".into()),
            extra: vec!["--mcp-config".into(), "/run/mcp.json".into()],
        };
        assert_eq!(
            argv(AdapterKind::ClaudeCode, &["claude"], &run),
            [
                "claude",
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--mcp-config",
                "/run/mcp.json",
                "--resume",
                "sess-1",
                "--",
                "the answer"
            ]
        );
        let run = RunArgs {
            resume_session: Some("thread-1".into()),
            extra: vec![],
        };
        assert_eq!(
            argv(AdapterKind::Codex, &["codex", "exec"], &run),
            [
                "codex",
                "exec",
                "--json",
                "resume",
                "thread-1",
                "--",
                "the answer"
            ]
        );
        assert_eq!(
            argv(AdapterKind::Codex, &["codex", "exec"], &RunArgs::default()),
            ["codex", "exec", "--json", "--", "the answer"]
        );
    }
}
