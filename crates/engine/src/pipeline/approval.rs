//! The approval request: what a person reads on the tracker when the
//! analysis waits for them — a short summary in the analyst's own words and
//! links to the analysis (on the forge, or the dashboard when the forge is
//! local) and to the task page. The analysis is pushed first, so the forge
//! has something to show while approval waits.

use super::Pipeline;
use orch_agent::prompts::{docs_dir, truncate_with_marker};
use orch_core::{AgentKind, Task};

/// The most of the analyst's final message quoted in the request: a
/// summary, not the analysis (the link leads to that).
const SUMMARY_MAX: usize = 1500;

impl Pipeline {
    /// The tracker comment that asks for Approved or Rejected. `pushed`:
    /// whether the branch reached the forge just now (else the forge's link
    /// would show stale work or nothing, and only the dashboard is named).
    pub(crate) async fn approval_request(&self, task: &Task, pushed: bool) -> String {
        let key = task.original_work_item_id();
        let mut text = format!(
            "orch: the analysis of {key} is ready. Move the item to Approved to start the development, \
             or to Rejected with a comment saying what to change (your latest comment reaches the analyst)."
        );
        if let Some(summary) = self.analysis_summary(task).await {
            text.push_str("\n\nSummary (the analyst's words):\n");
            text.push_str(&summary);
        }
        let task_page = format!("{}/#/task/{}", self.cfg.server.dashboard_url(), task.id);
        let on_forge = docs_dir(key)
            .ok()
            .filter(|_| pushed)
            .and_then(|dir| self.forge.browse_url(&task.repo, &task.branch, &dir));
        match on_forge {
            Some(url) => text.push_str(&format!("\n\nAnalysis: {url}")),
            None => text.push_str(&format!(
                "\n\nAnalysis: {task_page} (artefacts of branch {})",
                task.branch
            )),
        }
        if !pushed {
            text.push_str("\n(The branch could not be pushed; the task's log says why.)");
        }
        text.push_str(&format!("\nTask: {task_page}"));
        text
    }

    /// The final message of the analyst's newest run, cut to [`SUMMARY_MAX`].
    /// It is the agent's output: used as plain text, never interpreted.
    async fn analysis_summary(&self, task: &Task) -> Option<String> {
        let runs = match self.store.runs_for_task(task.id).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "reading the analyst's runs failed");
                return None;
            }
        };
        let text = runs
            .into_iter()
            .filter(|r| r.agent == AgentKind::Analyst)
            .filter_map(|r| r.final_text.map(|t| (r.started_at, t)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, t)| t)?;
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        Some(truncate_with_marker(
            text,
            SUMMARY_MAX,
            "summary",
            "The analysis itself is at the link below.",
        ))
    }
}
