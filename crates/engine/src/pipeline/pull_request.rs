//! The pull request opened early (issue 16 point 1): when development first
//! hands over and its branch is pushed, the forge gets the task's pull
//! request as a draft, so people can follow and review the work while orch's
//! reviewer does; every later round's push updates it, and the merge gate
//! makes it ready and merges it. The tracker item links it once.

use super::Pipeline;
use orch_core::{EventKind, Task};

impl Pipeline {
    /// Open (or find) the task's pull request after development's push. A
    /// forge that refuses or fails is noted on the task and changes nothing
    /// else: the merge gate opens the pull request at the latest.
    pub(super) async fn open_pull_request(&self, task: &Task) {
        let base = self.base_branch(&task.repo);
        let event = match self
            .forge
            .open_pull_request(&task.repo, &task.branch, &base)
            .await
        {
            // The local forge: the branch and `orch task show` are the record.
            Ok(None) => return,
            Ok(Some(pr)) => {
                match self.store.events(task.id).await {
                    Ok(events) if events.iter().any(|e| e.kind == EventKind::PrOpened) => {
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(task = %task.id, error = %e, "reading the task's events failed");
                        return;
                    }
                }
                let text = match &pr.url {
                    Some(url) => format!(
                        "pull request #{} opened, a draft until the merge gate merges it: {url}",
                        pr.number
                    ),
                    None => format!(
                        "pull request #{} opened, a draft until the merge gate merges it",
                        pr.number
                    ),
                };
                self.event(EventKind::PrOpened, text.clone())
                    .with_tracker_comment(format!("orch: {text}"))
            }
            Err(e) => self.event(
                EventKind::ForgeError,
                format!(
                    "opening the pull request of {} failed ({e}); the merge gate opens it",
                    task.branch
                ),
            ),
        };
        if let Err(e) = self.store.append_event(task.id, event).await {
            tracing::warn!(task = %task.id, error = %e, "logging the pull request failed");
            return;
        }
        self.write_tracker(task, Vec::new()).await;
    }
}
