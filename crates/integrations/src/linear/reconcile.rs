//! The Linear reconciler: per team and cycle, one listing of the
//! team's issues ordered by `updatedAt` (most recent first), from the
//! previous cycle's newest `updatedAt` on (`updatedAt: { gte }`), followed
//! by its cursor; never one call per task. Linear discourages polling, so
//! this is the repair path behind the webhooks, not the main one. The same
//! repair rule as the other trackers' (`repair::reconcile_item`); an error
//! changes nothing and keeps the watermark.

use super::tracker::LinearTracker;
use crate::plane::ReconcileStats;
use crate::repair::reconcile_item;
use orch_engine::pipeline::Pipeline;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

pub struct LinearReconciler {
    tracker: Arc<LinearTracker>,
    pipeline: Arc<Pipeline>,
    max_pages: u32,
    /// Team key → the newest `updatedAt` handled.
    marks: Mutex<HashMap<String, String>>,
}

impl LinearReconciler {
    pub fn new(tracker: Arc<LinearTracker>, pipeline: Arc<Pipeline>) -> LinearReconciler {
        LinearReconciler {
            tracker,
            pipeline,
            max_pages: 100,
            marks: Mutex::new(HashMap::new()),
        }
    }

    pub async fn run_once(&self) -> ReconcileStats {
        let mut marks = self.marks.lock().await;
        let client = self.tracker.client();
        let before = client.api().requests_sent();
        let mut st = ReconcileStats::default();
        for (key, team) in self.tracker.teams() {
            st.projects += 1;
            let since = marks.get(key).cloned();
            let mut newest: Option<(i64, String)> = None;
            let mut failed = false;
            let mut after: Option<String> = None;
            for _ in 0..self.max_pages {
                let listing = match client
                    .team_issues_page(key, since.as_deref(), after.as_deref())
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        st.errors += 1;
                        failed = true;
                        tracing::warn!(team = %key, error = %e, "reconcile: listing Linear issues failed; nothing changed");
                        break;
                    }
                };
                st.pages += 1;
                st.malformed += listing.malformed as u32;
                for issue in listing.items {
                    st.items_seen += 1;
                    // Compared as times: RFC 3339 text may leave out a zero fraction.
                    if let Some(u) = &issue.updated_at
                        && let Some(at) = crate::timestamps::parse_millis(u)
                        && newest.as_ref().is_none_or(|(n, _)| at > *n)
                    {
                        newest = Some((at, u.clone()));
                    }
                    let Some(state) = issue
                        .state
                        .as_ref()
                        .and_then(|s| self.tracker.orch_state(team, &s.name))
                    else {
                        continue;
                    };
                    failed |=
                        !reconcile_item(&self.pipeline, &issue.identifier, &state, &mut st).await;
                }
                match listing.next {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
            if !failed && let Some((_, n)) = newest {
                marks.insert(key.clone(), n);
            }
        }
        st.api_calls = client.api().requests_sent() - before;
        st
    }
}
