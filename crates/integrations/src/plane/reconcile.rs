//! The Plane reconciler: one listing per project per cycle, newest
//! change first, stopping where the previous cycle stopped. It repairs missed
//! webhooks (a gate state the store did not see), skips terminal tasks, and
//! tells "absent" from "error": a listing that fails changes nothing and the
//! next cycle starts again from the same place.

use super::client::WorkItem;
use super::tracker::PlaneTracker;
use crate::http::ApiError;
use crate::reconcile_loop::{Listing, ListingReconciler, Page};
use orch_engine::pipeline::Pipeline;
use std::collections::HashSet;

pub use crate::reconcile_loop::ReconcileStats;

/// Where a project's listing stopped: the newest `updated_at` handled, and the
/// items handled at exactly that time (the next cycle skips them).
#[derive(Debug, Clone, Default)]
pub struct Watermark {
    updated_at: String,
    ids: HashSet<String>,
}

pub type PlaneReconciler = ListingReconciler<PlaneTracker>;

impl PlaneReconciler {
    pub fn with_page_size(mut self, per_page: u32) -> PlaneReconciler {
        self.set_page_size(per_page);
        self
    }
}

/// A project's work items, newest change first, read until the previous
/// cycle's watermark.
impl Listing for PlaneTracker {
    const WHAT: &'static str = "listing Plane work items";
    type Mark = Watermark;
    /// The whole listing, newest first: the loop stops at the watermark.
    type Query = ();
    type Cursor = String;
    type Record = WorkItem;

    fn requests_sent(&self) -> u64 {
        self.client().api().requests_sent()
    }

    fn listed_projects(&self) -> Vec<String> {
        self.projects().keys().cloned().collect()
    }

    fn query(&self, _: &str, _: Option<&Watermark>) {}

    async fn page(
        &self,
        project: &str,
        _: &(),
        cursor: Option<&String>,
        per_page: u32,
    ) -> Result<Page<WorkItem, String>, ApiError> {
        let page = self
            .client()
            .list_work_items(project, cursor.map(String::as_str), per_page)
            .await?;
        Ok(Page {
            records: page.results,
            malformed: page.malformed,
            next: page.next_cursor.filter(|_| page.next_page_results),
        })
    }

    fn updated(&self, w: &WorkItem) -> Option<Watermark> {
        Some(Watermark {
            updated_at: w.updated_at.clone().unwrap_or_default(),
            ids: HashSet::from([w.id.clone()]),
        })
    }

    /// The first listed is the newest; the items listed at its very time
    /// join it.
    fn fold(&self, newest: &mut Option<Watermark>, w: &WorkItem) {
        let Some(this) = self.updated(w) else { return };
        match newest {
            None => *newest = Some(this),
            Some(n) if n.updated_at == this.updated_at => n.ids.extend(this.ids),
            Some(_) => {}
        }
    }

    fn reached(&self, old: &Watermark, w: &WorkItem) -> bool {
        let updated = w.updated_at.as_deref().unwrap_or_default();
        is_older(updated, &old.updated_at) || (updated == old.updated_at && old.ids.contains(&w.id))
    }

    async fn target(
        &self,
        _: &Pipeline,
        project: &str,
        w: WorkItem,
    ) -> Result<Option<(String, String)>, ApiError> {
        self.remember(&w.id, project);
        let Some(state_id) = &w.state else {
            return Ok(None);
        };
        let state = self
            .state_cache()
            .name_of(self.client(), project, state_id)
            .await?;
        Ok(state.map(|s| (w.id, s)))
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
