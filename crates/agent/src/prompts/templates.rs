//! The prompt templates: the built-in one per agent kind, the override folders
//! that replace them, and rendering with strict undefined.
//!
//! Syntax is MiniJinja's (Jinja2) with `trim_blocks` and `lstrip_blocks` on, so
//! a `{% … %}` tag on its own line leaves no blank line behind, and the trailing
//! newline is kept. Besides the built-in filters (`default`, `join`, `trim`,
//! `length`, `lines`, …) there is `fenced(info="")`: wraps a text in a Markdown
//! code fence longer than any run of backticks inside it, so quoted files and
//! diffs that contain fences themselves cannot end the quote early.

use super::PromptError;
use super::context::PromptContext;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use orch_core::AgentKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the template used for an agent kind came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateOrigin {
    /// Compiled into the binary (`prompts/defaults/<kind>.md.j2`).
    Builtin,
    /// An override file.
    File(PathBuf),
    /// The body of a workflow file (`WORKFLOW.md`), rendered with Symphony's
    /// variables (see `prompts/workflow.rs`).
    Workflow(PathBuf),
}

/// `<kind>.md.j2`: the file name an override folder uses for `kind`.
pub fn template_file_name(kind: AgentKind) -> String {
    format!("{}.md.j2", kind.as_str())
}

/// The built-in template source for `kind`.
pub fn default_template(kind: AgentKind) -> &'static str {
    match kind {
        AgentKind::Analyst => include_str!("defaults/analyst.md.j2"),
        AgentKind::Developer => include_str!("defaults/developer.md.j2"),
        AgentKind::Reviewer => include_str!("defaults/reviewer.md.j2"),
        AgentKind::Merger => include_str!("defaults/merger.md.j2"),
        AgentKind::Deployer => include_str!("defaults/deployer.md.j2"),
    }
}

/// One parsed template per agent kind, ready to render.
#[derive(Debug)]
pub struct PromptSet {
    env: Environment<'static>,
    /// The template's name in `env` (also the name its errors carry) and origin.
    templates: BTreeMap<AgentKind, (String, TemplateOrigin)>,
}

impl PromptSet {
    /// The built-in templates only.
    pub fn builtin() -> Result<PromptSet, PromptError> {
        PromptSet::load(&[])
    }

    /// For each agent kind, the first `<dir>/<kind>.md.j2` found in `overrides`
    /// (in order: e.g. the repo's `prompts_dir`, then a config-wide folder), else
    /// the built-in template.
    ///
    /// A missing folder or file is skipped (a repo need not override anything);
    /// any other read error, and a template that does not parse, is an error
    /// naming the file (and line), so a broken override is never replaced by the
    /// default unnoticed.
    pub fn load(overrides: &[PathBuf]) -> Result<PromptSet, PromptError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Prompts are Markdown for a model, not HTML: nothing may be escaped.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| parse_error("syntax configuration".to_owned(), &e))?;
        env.set_syntax(syntax);
        env.add_filter("fenced", fenced);

        let mut templates = BTreeMap::new();
        for kind in AgentKind::ALL {
            let (name, source, origin) = match find_override(overrides, kind)? {
                Some((path, source)) => (
                    path.display().to_string(),
                    source,
                    TemplateOrigin::File(path),
                ),
                None => (
                    format!("builtin:{}", template_file_name(kind)),
                    default_template(kind).to_owned(),
                    TemplateOrigin::Builtin,
                ),
            };
            env.add_template_owned(name.clone(), source)
                .map_err(|e| parse_error(name.clone(), &e))?;
            templates.insert(kind, (name, origin));
        }
        env.add_template(
            super::workflow::FEEDBACK_NAME,
            super::workflow::FEEDBACK_TEMPLATE,
        )
        .map_err(|e| parse_error(super::workflow::FEEDBACK_NAME.to_owned(), &e))?;
        Ok(PromptSet { env, templates })
    }

    /// The developer's template becomes `source`, the body of the workflow
    /// file at `path`; it is parsed now, so a broken template is an error
    /// naming the file and line before any run.
    pub fn with_workflow(mut self, path: &Path, source: &str) -> Result<PromptSet, PromptError> {
        let name = format!("workflow:{}", path.display());
        self.env
            .add_template_owned(name.clone(), source.to_owned())
            .map_err(|e| parse_error(name.clone(), &e))?;
        self.templates.insert(
            AgentKind::Developer,
            (name, TemplateOrigin::Workflow(path.to_path_buf())),
        );
        Ok(self)
    }

    /// Where the template for `kind` came from (for logs and `orch` diagnostics).
    pub fn origin(&self, kind: AgentKind) -> &TemplateOrigin {
        // Every kind is inserted by `load`; the fallback is never taken.
        static BUILTIN: TemplateOrigin = TemplateOrigin::Builtin;
        self.templates
            .get(&kind)
            .map_or(&BUILTIN, |(_, origin)| origin)
    }

    /// Renders the prompt for `kind`. A variable that does not exist (a typo, or
    /// an optional value used without a guard) is an error, not an empty string.
    pub fn render(&self, kind: AgentKind, ctx: &PromptContext) -> Result<String, PromptError> {
        let name = self.templates.get(&kind).map_or_else(
            || format!("builtin:{}", template_file_name(kind)),
            |(n, _)| n.clone(),
        );
        let render_error = |e: minijinja::Error| PromptError::Render {
            kind,
            template: e.name().map_or_else(|| name.clone(), str::to_owned),
            line: e.line(),
            message: describe(&e),
        };
        let template = self.env.get_template(&name).map_err(render_error)?;
        if !matches!(self.origin(kind), TemplateOrigin::Workflow(_)) {
            return template.render(Serde(ctx)).map_err(render_error);
        }
        let mut prompt = template
            .render(Serde(super::workflow::WorkflowVars::of(ctx)))
            .map_err(render_error)?;
        if super::workflow::has_feedback(ctx) {
            let feedback = self
                .env
                .get_template(super::workflow::FEEDBACK_NAME)
                .and_then(|t| t.render(Serde(ctx)))
                .map_err(render_error)?;
            prompt.push_str(&feedback);
        }
        Ok(prompt)
    }
}

/// The override for `kind`: the first folder in `dirs` holding its file.
fn find_override(
    dirs: &[PathBuf],
    kind: AgentKind,
) -> Result<Option<(PathBuf, String)>, PromptError> {
    let file = template_file_name(kind);
    for dir in dirs {
        let path: PathBuf = Path::new(dir).join(&file);
        match std::fs::read_to_string(&path) {
            Ok(source) => return Ok(Some((path, source))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(PromptError::ReadTemplate { path, source }),
        }
    }
    Ok(None)
}

fn parse_error(template: String, e: &minijinja::Error) -> PromptError {
    PromptError::ParseTemplate {
        template,
        line: e.line(),
        message: describe(e),
    }
}

/// The error's kind and detail, without the `(in file:line)` suffix that the
/// [`PromptError`] message already carries.
fn describe(e: &minijinja::Error) -> String {
    let mut message = match e.detail() {
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    // A failure inside a filter or include carries its cause as a source.
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(" (caused by: {cause})"));
        source = cause.source();
    }
    message
}

/// The `fenced` filter (module docs).
fn fenced(text: String, info: Option<String>) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    let info = info.unwrap_or_default();
    let newline = if text.ends_with('\n') || text.is_empty() {
        ""
    } else {
        "\n"
    };
    format!("{fence}{info}\n{text}{newline}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_outgrows_the_backticks_inside() {
        assert_eq!(fenced("a".into(), None), "```\na\n```");
        assert_eq!(fenced("x\n".into(), Some("diff".into())), "```diff\nx\n```");
        assert_eq!(
            fenced("```rust\n````\n".into(), None),
            "`````\n```rust\n````\n`````"
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(template_file_name(AgentKind::Reviewer), "reviewer.md.j2");
    }
}
