//! The variables a prompt template sees ([`PromptContext`]) and the truncation
//! that keeps large inputs (artefacts, diffs) inside a byte budget.
//!
//! Everything the templates may use is a field here; the templates are rendered
//! with strict undefined, so a field that is not listed cannot be used by
//! accident. Optional inputs are `Option` (rendered as `none`, false in `if`) or
//! empty lists, never missing keys.

use super::PromptError;
use orch_core::keys::{KeyError, validate_work_item_id};
use orch_core::{AgentKind, Stage, Task, TaskId};
use serde::Serialize;
use std::collections::BTreeMap;

/// Default byte budget for the artefacts' contents in one prompt. With the diff
/// budget and the template text it stays well below [`super::MAX_ARG_BYTES`],
/// the most one command-line argument can carry.
pub const DEFAULT_ARTEFACT_BUDGET: usize = 40 * 1024;
/// Default byte budget for the reviewer's diff.
pub const DEFAULT_DIFF_BUDGET: usize = 56 * 1024;

/// The task as a template sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    pub id: TaskId,
    /// The original key (`ORCH-090`), never a cancel tombstone.
    pub work_item_id: String,
    pub title: String,
    /// The work item's description from the tracker, as written by a person.
    pub body: String,
    pub repo: String,
    /// The task branch, checked out in the agent's working directory.
    pub branch: String,
    /// The branch the task branch is merged into (`main`); in the worktree it is
    /// the remote-tracking ref `origin/<base_branch>`.
    pub base_branch: String,
    pub stage: Stage,
}

/// One file the analyst wrote under `docs/work-items/<id>/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artefact {
    /// Relative to the worktree: `docs/work-items/<id>/02-trz.md`.
    pub path: String,
    /// The text, possibly cut to the budget and ended with a truncation note.
    pub content: String,
}

/// Everything a prompt template is rendered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromptContext {
    pub task: TaskInfo,
    /// Which agent the prompt is for (`analyst`, `developer`, …).
    pub agent: AgentKind,
    /// The job's attempt, from 1; above 1 the previous attempt failed or was lost.
    pub attempt: u32,
    /// The development/review round, from 1. For the developer a round above 1
    /// means the reviewer asked for changes; for the reviewer it is the round
    /// being reviewed.
    pub review_round: u32,
    /// After this many rounds with changes requested the task fails.
    pub max_review_rounds: u32,
    /// `docs/work-items/<work_item_id>`, relative to the worktree.
    pub docs_dir: String,
    /// The analysis artefacts so far (see [`super::collect_artefacts`]).
    pub artefacts: Vec<Artefact>,
    /// The last review's comments, for a changes-requested development round.
    pub reviewer_comments: Vec<String>,
    /// The failed required CI checks that sent the work back (name,
    /// conclusion, link and the tail of the log), for a CI round.
    pub ci_failures: Vec<String>,
    /// The CI round, from 1 (a development round caused by a CI failure).
    pub ci_round: u32,
    /// After this many CI failures the task parks for a person.
    pub max_ci_rounds: u32,
    /// The person's comment at the analysis gate: for the analyst, the
    /// **rejection** that re-queued it; for the developer, the approval.
    pub gate_comment: Option<String>,
    /// The branch's diff against the base, for the reviewer; possibly truncated
    /// (see [`PromptContext::with_diff`]).
    pub diff: Option<String>,
    /// Free-form inputs for custom templates and the merge/deploy helpers, e.g.
    /// `conflict_files` (one path per line) for an agent-assisted merge.
    pub extra: BTreeMap<String, String>,
}

impl PromptContext {
    /// A context for `agent` working on `task`, with no artefacts, comments or
    /// diff yet: attempt 1, review round 1, at most 3 review rounds.
    ///
    /// Fails when the task's work item id could not be a safe path component.
    pub fn new(
        task: &Task,
        base_branch: &str,
        agent: AgentKind,
    ) -> Result<PromptContext, PromptError> {
        // A cancelled task's key carries a tombstone suffix; the docs were written
        // under the original key, which is also what a person recognises.
        let work_item_id = task.original_work_item_id().to_owned();
        let docs_dir = docs_dir(&work_item_id)?;
        Ok(PromptContext {
            task: TaskInfo {
                id: task.id,
                work_item_id,
                title: task.title.clone(),
                body: task.body.clone(),
                repo: task.repo.clone(),
                branch: task.branch.clone(),
                base_branch: base_branch.to_owned(),
                stage: task.stage,
            },
            agent,
            attempt: 1,
            review_round: 1,
            max_review_rounds: 3,
            docs_dir,
            artefacts: Vec::new(),
            reviewer_comments: Vec::new(),
            ci_failures: Vec::new(),
            ci_round: 1,
            max_ci_rounds: 3,
            gate_comment: None,
            diff: None,
            extra: BTreeMap::new(),
        })
    }

    /// Sets the reviewer's diff, cut to `budget_bytes` with a note that tells the
    /// agent how to see the rest itself.
    pub fn with_diff(mut self, diff: &str, budget_bytes: usize) -> PromptContext {
        let hint = format!(
            "Run `git diff origin/{}...HEAD` to see all of it.",
            self.task.base_branch
        );
        self.diff = Some(truncate_with_marker(diff, budget_bytes, "diff", &hint));
        self
    }
}

/// `docs/work-items/<work_item_id>`, after checking the id cannot leave that folder.
pub fn docs_dir(work_item_id: &str) -> Result<String, KeyError> {
    validate_work_item_id(work_item_id)?;
    Ok(format!("docs/work-items/{work_item_id}"))
}

/// `text` if it fits in `budget_bytes`; otherwise its first bytes (at most
/// `budget_bytes`, cut at a line end when one is near, never inside a UTF-8
/// character) followed by a one-line note naming `what` and `hint`. The note is
/// not counted in the budget, so a caller can rely on the cut text being no
/// longer than the budget.
pub fn truncate_with_marker(text: &str, budget_bytes: usize, what: &str, hint: &str) -> String {
    cut_to_budget(text, text.len(), budget_bytes, what, hint).0
}

/// [`truncate_with_marker`] for a text of which only a prefix was read:
/// `total_len` is the size of the whole, `text` at least its first
/// `budget_bytes` (or all of it). Also returns how many bytes of `text` were kept.
pub(super) fn cut_to_budget(
    text: &str,
    total_len: usize,
    budget_bytes: usize,
    what: &str,
    hint: &str,
) -> (String, usize) {
    if total_len <= budget_bytes && text.len() == total_len {
        return (text.to_owned(), text.len());
    }
    let mut cut = budget_bytes.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    // Whole lines read better (and a diff hunk cut mid-line looks like a real
    // change), but not at the price of throwing away most of the budget.
    if let Some(nl) = text[..cut].rfind('\n')
        && nl + 1 >= cut / 2
    {
        cut = nl + 1;
    }
    let mut out = String::with_capacity(cut + 160);
    out.push_str(&text[..cut]);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!(
        "[… {what} truncated by orch: {cut} of {total_len} bytes shown. {hint}]\n"
    ));
    (out, cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_unchanged() {
        assert_eq!(truncate_with_marker("abc", 3, "x", "h"), "abc");
    }

    #[test]
    fn cuts_at_a_line_end_and_notes_it() {
        let text = "line one\nline two\nline three\n";
        let out = truncate_with_marker(text, 20, "diff", "See more.");
        assert_eq!(
            out,
            "line one\nline two\n[… diff truncated by orch: 18 of 29 bytes shown. See more.]\n"
        );
    }

    #[test]
    fn never_splits_a_character() {
        // 'é' is two bytes; a budget of 3 falls inside the second one.
        let out = truncate_with_marker("éééé", 3, "x", "h");
        assert!(out.starts_with("é\n[…"), "{out}");
    }

    #[test]
    fn zero_budget_keeps_only_the_note() {
        let out = truncate_with_marker("abc", 0, "x", "h");
        assert_eq!(out, "[… x truncated by orch: 0 of 3 bytes shown. h]\n");
    }

    #[test]
    fn docs_dir_refuses_traversal() {
        assert_eq!(
            docs_dir("ORCH-1").ok().as_deref(),
            Some("docs/work-items/ORCH-1")
        );
        assert!(docs_dir("../etc").is_err());
        assert!(docs_dir("a/b").is_err());
    }
}
