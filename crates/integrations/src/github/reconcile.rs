//! The GitHub Issues reconciler: per repository and cycle, one listing
//! of issues by `updated` descending, from the previous cycle's newest
//! `updated_at` on (`since`), never one call per task. The same repair rule
//! as Plane's (`repair::repair_due`); an error changes nothing and keeps the
//! watermark.

use super::tracker::{GithubIssuesTracker, state_of};
use crate::plane::ReconcileStats;
use crate::repair::reconcile_item;
use orch_engine::pipeline::Pipeline;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

pub struct GithubReconciler {
    tracker: Arc<GithubIssuesTracker>,
    pipeline: Arc<Pipeline>,
    per_page: u32,
    max_pages: u32,
    /// `owner/name` → the newest `updated_at` handled.
    marks: Mutex<HashMap<String, String>>,
}

impl GithubReconciler {
    pub fn new(tracker: Arc<GithubIssuesTracker>, pipeline: Arc<Pipeline>) -> GithubReconciler {
        GithubReconciler {
            tracker,
            pipeline,
            per_page: 100,
            max_pages: 100,
            marks: Mutex::new(HashMap::new()),
        }
    }

    pub async fn run_once(&self) -> ReconcileStats {
        let mut marks = self.marks.lock().await;
        let before = self.tracker.client().api().requests_sent();
        let mut st = ReconcileStats::default();
        let states = self.pipeline.config().tracker.states.clone();
        for full in self.tracker.repos().values() {
            st.projects += 1;
            let since = marks.get(full).cloned();
            let mut newest: Option<String> = None;
            let mut failed = false;
            'pages: for page in 1..=self.max_pages {
                let issues = match self
                    .tracker
                    .client()
                    .issues_page(full, since.as_deref(), page, self.per_page)
                    .await
                {
                    Ok(i) => i,
                    Err(e) => {
                        st.errors += 1;
                        failed = true;
                        tracing::warn!(repo = %full, error = %e, "reconcile: listing GitHub issues failed; nothing changed");
                        break 'pages;
                    }
                };
                st.pages += 1;
                let n = issues.on_page;
                for issue in issues
                    .items
                    .into_iter()
                    .filter(|i| i.pull_request.is_none())
                {
                    st.items_seen += 1;
                    if newest.is_none() {
                        newest = issue.updated_at.clone();
                    }
                    let Some(item) = self.tracker.item_id(full, issue.number) else {
                        continue;
                    };
                    let labels: Vec<String> = issue.labels.iter().map(|l| l.name.clone()).collect();
                    let Some(state) = state_of(&labels, &states) else {
                        continue;
                    };
                    failed |= !reconcile_item(&self.pipeline, &item, &state, &mut st).await;
                }
                if n < self.per_page as usize {
                    break;
                }
            }
            // `since` is inclusive, so the newest item is read again next
            // cycle; a replay of a state already applied is a no-op.
            if !failed && let Some(n) = newest {
                marks.insert(full.clone(), n);
            }
        }
        st.api_calls = self.tracker.client().api().requests_sent() - before;
        st
    }
}
