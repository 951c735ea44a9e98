//! The Plane reconciler: one listing per project per cycle, newest
//! change first, stopping where the previous cycle stopped. It repairs missed
//! webhooks (a gate state the store did not see), skips terminal tasks, and
//! tells "absent" from "error": a listing that fails changes nothing and the
//! next cycle starts again from the same place.

use super::tracker::PlaneTracker;
use crate::repair::reconcile_item;
use orch_engine::pipeline::Pipeline;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Where a project's listing stopped: the newest `updated_at` handled, and the
/// items handled at exactly that time (the next cycle skips them).
#[derive(Debug, Clone, Default)]
struct Watermark {
    updated_at: String,
    ids: HashSet<String>,
}

/// What one cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileStats {
    pub projects: u32,
    pub pages: u32,
    pub items_seen: u32,
    pub skipped_terminal: u32,
    pub repaired: u32,
    pub errors: u32,
    /// Listed records that were not work items orch can read: skipped.
    pub malformed: u32,
    /// HTTP requests this cycle sent to Plane (retries and state lookups included).
    pub api_calls: u64,
}

pub struct PlaneReconciler {
    tracker: Arc<PlaneTracker>,
    pipeline: Arc<Pipeline>,
    per_page: u32,
    /// A bound on pages per project and cycle (the first cycle reads everything).
    max_pages: u32,
    marks: Mutex<HashMap<String, Watermark>>,
}

impl PlaneReconciler {
    pub fn new(tracker: Arc<PlaneTracker>, pipeline: Arc<Pipeline>) -> PlaneReconciler {
        PlaneReconciler {
            tracker,
            pipeline,
            per_page: 100,
            max_pages: 100,
            marks: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_page_size(mut self, per_page: u32) -> PlaneReconciler {
        self.per_page = per_page.max(1);
        self
    }

    /// One cycle over every served project. Cycles never overlap.
    pub async fn run_once(&self) -> ReconcileStats {
        let mut marks = self.marks.lock().await;
        let before = self.tracker.client().api().requests_sent();
        let mut st = ReconcileStats::default();
        let projects: Vec<String> = self.tracker.projects().keys().cloned().collect();
        for project in projects {
            st.projects += 1;
            let old = marks.get(&project).cloned();
            if let Some(new) = self.project_once(&project, old.as_ref(), &mut st).await {
                marks.insert(project, new);
            }
        }
        st.api_calls = self.tracker.client().api().requests_sent() - before;
        st
    }

    /// `Some(new watermark)` when the project was walked without an error.
    async fn project_once(
        &self,
        project: &str,
        old: Option<&Watermark>,
        st: &mut ReconcileStats,
    ) -> Option<Watermark> {
        let mut newest: Option<Watermark> = None;
        let mut failed = false;
        let mut cursor: Option<String> = None;
        'pages: for _ in 0..self.max_pages {
            let page = match self
                .tracker
                .client()
                .list_work_items(project, cursor.as_deref(), self.per_page)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    // An error is not "absent": nothing changes, the watermark stays.
                    st.errors += 1;
                    tracing::warn!(project, error = %e, "reconcile: listing Plane work items failed; nothing changed");
                    return None;
                }
            };
            st.pages += 1;
            st.malformed += page.malformed as u32;
            for w in &page.results {
                let updated = w.updated_at.clone().unwrap_or_default();
                if let Some(o) = old
                    && (is_older(&updated, &o.updated_at)
                        || (updated == o.updated_at && o.ids.contains(&w.id)))
                {
                    break 'pages;
                }
                st.items_seen += 1;
                match &mut newest {
                    None => {
                        newest = Some(Watermark {
                            updated_at: updated.clone(),
                            ids: HashSet::from([w.id.clone()]),
                        })
                    }
                    Some(n) if n.updated_at == updated => {
                        n.ids.insert(w.id.clone());
                    }
                    Some(_) => {}
                }
                self.tracker.remember(&w.id, project);
                let Some(state_id) = &w.state else { continue };
                let state = match self
                    .tracker
                    .state_cache()
                    .name_of(self.tracker.client(), project, state_id)
                    .await
                {
                    Ok(Some(n)) => n,
                    Ok(None) => continue,
                    Err(e) => {
                        st.errors += 1;
                        failed = true;
                        tracing::warn!(project, error = %e, "reconcile: Plane states unavailable");
                        continue;
                    }
                };
                failed |= !reconcile_item(&self.pipeline, &w.id, &state, st).await;
            }
            match page.next_cursor.filter(|_| page.next_page_results) {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        if failed {
            // Keep the old mark: the next cycle sees the failed items again.
            return None;
        }
        match (newest, old) {
            (Some(n), _) => Some(n),
            (None, Some(o)) => Some(o.clone()),
            (None, None) => Some(Watermark::default()),
        }
    }
}

/// `a` is strictly older than `b` (RFC 3339; Plane always writes UTC `Z`).
fn is_older(a: &str, b: &str) -> bool {
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    match (
        OffsetDateTime::parse(a, &Rfc3339),
        OffsetDateTime::parse(b, &Rfc3339),
    ) {
        (Ok(x), Ok(y)) => x < y,
        // Unparseable: never stop early on it (reading more is safe).
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn older_compares_instants_not_strings() {
        assert!(super::is_older(
            "2026-05-20T10:02:45Z",
            "2026-05-20T10:02:45.5Z"
        ));
        assert!(!super::is_older(
            "2026-05-20T10:02:45.5Z",
            "2026-05-20T10:02:45Z"
        ));
        assert!(!super::is_older("garbage", "2026-05-20T10:02:45Z"));
    }
}
