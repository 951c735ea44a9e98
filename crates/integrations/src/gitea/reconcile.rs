//! The Gitea/Forgejo issues reconciler: per repository and cycle, one
//! listing of issues updated at or after the previous cycle's newest
//! `updated_at` (`since`), never one call per task. Gitea's listing has no
//! sort order to rely on, so the watermark is the newest `updated_at` of the
//! whole listing, and `X-Total-Count` ends it without an empty extra page.
//! The same repair rule as Plane's and GitHub's (`repair::repair_due`); an
//! error changes nothing and keeps the watermark.

use super::issues::PAGE_LIMIT;
use super::tracker::GiteaIssuesTracker;
use crate::labels::state_of;
use crate::plane::ReconcileStats;
use crate::repair::reconcile_item;
use crate::timestamps::parse_millis;
use orch_engine::pipeline::Pipeline;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

pub struct GiteaReconciler {
    tracker: Arc<GiteaIssuesTracker>,
    pipeline: Arc<Pipeline>,
    max_pages: u32,
    /// `owner/name` → the newest `updated_at` handled.
    marks: Mutex<HashMap<String, String>>,
}

impl GiteaReconciler {
    pub fn new(tracker: Arc<GiteaIssuesTracker>, pipeline: Arc<Pipeline>) -> GiteaReconciler {
        GiteaReconciler {
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
        for full in self.tracker.repos().values() {
            st.projects += 1;
            let since = marks.get(full).cloned();
            let mut newest: Option<(i64, String)> = None;
            let mut failed = false;
            let mut seen: u64 = 0;
            for page in 1..=self.max_pages {
                let listing = match self
                    .tracker
                    .client()
                    .issues_page(full, since.as_deref(), page)
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        st.errors += 1;
                        failed = true;
                        tracing::warn!(repo = %full, error = %e, "reconcile: listing Gitea issues failed; nothing changed");
                        break;
                    }
                };
                st.pages += 1;
                let n = listing.on_page;
                seen += n as u64;
                for issue in listing
                    .issues
                    .into_iter()
                    .filter(|i| i.pull_request.is_none())
                {
                    st.items_seen += 1;
                    if let Some(u) = &issue.updated_at
                        && let Some(ms) = parse_millis(u)
                        && newest.as_ref().is_none_or(|(m, _)| ms > *m)
                    {
                        newest = Some((ms, u.clone()));
                    }
                    let Some(item) = self.tracker.item_id(full, issue.number) else {
                        continue;
                    };
                    let Some(state) = state_of(&issue.label_names(), &states) else {
                        continue;
                    };
                    failed |= !reconcile_item(&self.pipeline, &item, &state, &mut st).await;
                }
                // The last page: the total is reached, or (a server that
                // sends no total) the page was not full.
                let done = match listing.total {
                    Some(total) => seen >= total || n == 0,
                    None => n < PAGE_LIMIT as usize,
                };
                if done {
                    break;
                }
            }
            // `since` is inclusive, so the newest item is read again next
            // cycle; a replay of a state already applied is a no-op.
            if !failed && let Some((_, n)) = newest {
                marks.insert(full.clone(), n);
            }
        }
        st.api_calls = self.tracker.client().api().requests_sent() - before;
        st
    }
}
