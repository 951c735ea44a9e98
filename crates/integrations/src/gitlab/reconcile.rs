//! The GitLab issues reconciler: per project and cycle, one listing
//! of issues by `updated_at` descending, from the previous cycle's newest
//! `updated_at` on (`updated_after`, inclusive), followed by `X-Next-Page`;
//! never one call per task. The same repair rule as the other trackers'
//! (`repair::reconcile_item`); an error changes nothing and keeps the
//! watermark.

use super::tracker::{GitlabIssuesTracker, state_of};
use crate::plane::ReconcileStats;
use crate::repair::reconcile_item;
use orch_engine::pipeline::Pipeline;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

pub struct GitlabReconciler {
    tracker: Arc<GitlabIssuesTracker>,
    pipeline: Arc<Pipeline>,
    max_pages: u32,
    /// project → the newest `updated_at` handled.
    marks: Mutex<HashMap<String, String>>,
}

impl GitlabReconciler {
    pub fn new(tracker: Arc<GitlabIssuesTracker>, pipeline: Arc<Pipeline>) -> GitlabReconciler {
        GitlabReconciler {
            tracker,
            pipeline,
            max_pages: 100,
            marks: Mutex::new(HashMap::new()),
        }
    }

    pub async fn run_once(&self) -> ReconcileStats {
        let mut marks = self.marks.lock().await;
        let before = self.tracker.client().api().requests_sent();
        let mut st = ReconcileStats::default();
        let states = self.pipeline.config().tracker.states.clone();
        for project in self.tracker.projects().values() {
            st.projects += 1;
            let since = marks.get(project).cloned();
            let mut newest: Option<String> = None;
            let mut failed = false;
            let mut page = 1;
            for _ in 0..self.max_pages {
                let listing = match self
                    .tracker
                    .client()
                    .issues_page(project, since.as_deref(), page)
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        st.errors += 1;
                        failed = true;
                        tracing::warn!(project = %project, error = %e, "reconcile: listing GitLab issues failed; nothing changed");
                        break;
                    }
                };
                st.pages += 1;
                for issue in listing.items {
                    st.items_seen += 1;
                    if newest.is_none() {
                        newest = issue.updated_at.clone();
                    }
                    let Some(item) = self.tracker.item_id(project, issue.iid) else {
                        continue;
                    };
                    let Some(state) = state_of(&issue.labels, &states) else {
                        continue;
                    };
                    failed |= !reconcile_item(&self.pipeline, &item, &state, &mut st).await;
                }
                match listing.next {
                    Some(n) => page = n,
                    None => break,
                }
            }
            // `updated_after` is inclusive, so the newest item is read again
            // next cycle; a replay of a state already applied is a no-op.
            if !failed && let Some(n) = newest {
                marks.insert(project.clone(), n);
            }
        }
        st.api_calls = self.tracker.client().api().requests_sent() - before;
        st
    }
}
