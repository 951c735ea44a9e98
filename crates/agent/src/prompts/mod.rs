//! Prompts for agent runs (R-19): which template each agent kind gets, the
//! context it is rendered with, and how the rendered prompt reaches the agent.
//!
//! ```text
//! PromptSet::load(&[repo prompts_dir, config prompts dir])   templates.rs
//!   + PromptContext::new(task, base, kind)                    context.rs
//!       .artefacts = collect_artefacts(worktree, id, budget)  artefacts.rs
//!       .with_diff(diff, budget)  (reviewer)
//!   → PromptSet::render(kind, &ctx) → prompt text
//!   → invocation(adapter, command, prompt, run_dir, run)      invocation.rs
//!       writes run_dir/prompt.md, returns argv + ORCH_PROMPT_FILE
//! ```
//!
//! Templates are MiniJinja (Jinja2 syntax) with **strict undefined**: a misspelt
//! variable fails the render instead of silently producing an empty prompt
//! section. The built-in templates live in `prompts/defaults/*.md.j2` and are
//! compiled into the binary; a repo or the config may override any of them.

mod artefacts;
mod context;
mod invocation;
mod templates;
mod workflow;

pub use artefacts::{MAX_ARTEFACT_FILES, collect_artefacts};
pub use context::{
    Artefact, DEFAULT_ARTEFACT_BUDGET, DEFAULT_DIFF_BUDGET, PromptContext, TaskInfo, docs_dir,
    truncate_with_marker,
};
pub use invocation::{
    Invocation, MAX_ARG_BYTES, PROMPT_FILE, PROMPT_FILE_ENV, RunArgs, invocation,
};
pub use templates::{PromptSet, TemplateOrigin, default_template, template_file_name};
pub use workflow::{BlockerRef, WorkflowIssue};

use orch_core::AgentKind;
use std::path::PathBuf;

/// Why a prompt could not be built or handed to the agent. Every message names
/// the file or setting involved and what to change.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error(
        "cannot read prompt template {path}: {source}; fix its permissions or encoding (UTF-8), or remove it to use the built-in template"
    )]
    ReadTemplate {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("prompt template {template} does not parse at line {line}: {message}; fix the template, or remove it to use the built-in one", line = fmt_line(*.line))]
    ParseTemplate {
        /// The override's path, or `builtin:<kind>.md.j2`.
        template: String,
        line: Option<usize>,
        message: String,
    },
    #[error("rendering the {kind} prompt from {template} failed at line {line}: {message}; every variable must exist (strict undefined): check its spelling against PromptContext (a WORKFLOW.md template sees `issue`, `attempt` and `orch`), or guard optional ones with `is defined` / `| default(...)`", line = fmt_line(*.line))]
    Render {
        kind: AgentKind,
        template: String,
        line: Option<usize>,
        message: String,
    },
    #[error(transparent)]
    InvalidKey(#[from] orch_core::keys::KeyError),
    #[error("cannot write the prompt file {path}: {source}; check that the run folder is writable")]
    WritePrompt {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the {adapter} agent command is empty; configure the program and its flags (command = [...])"
    )]
    EmptyCommand { adapter: String },
    #[error(
        "the {adapter} agent command already contains `--`; remove it: orch appends `-- <prompt>` itself so the prompt can never be read as a flag"
    )]
    CommandHasSeparator { adapter: String },
    #[error(
        "the claude_code agent command sets `{flag}`, but orch reads only `--output-format stream-json`; remove that flag"
    )]
    ConflictingOutputFormat { flag: String },
    #[error(
        "the rendered prompt is {bytes} bytes, more than the {max} bytes one command-line argument may hold; lower the artefact or diff budget, shorten the work item's description, or use the command adapter (which reads $ORCH_PROMPT_FILE)"
    )]
    PromptTooLong { bytes: usize, max: usize },
    #[error(
        "the rendered prompt contains a NUL byte, which cannot be passed as a command-line argument; remove it from the template, work item or artefacts"
    )]
    PromptHasNul,
}

fn fmt_line(line: Option<usize>) -> String {
    line.map_or_else(|| "?".to_owned(), |l| l.to_string())
}
