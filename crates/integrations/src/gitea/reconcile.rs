//! The Gitea/Forgejo issues reconciler: per repository and cycle, one
//! listing of issues updated at or after the previous cycle's newest
//! `updated_at` (`since`), never one call per task. Gitea's listing has no
//! sort order to rely on, so the watermark is the newest `updated_at` of the
//! whole listing, and `X-Total-Count` ends it without an empty extra page.
//! The same loop and repair rule as the other trackers'
//! (`reconcile_loop`, `repair::reconcile_item`); an error changes nothing
//! and keeps the watermark.

use super::issues::{GtIssue, PAGE_LIMIT};
use super::tracker::GiteaIssuesTracker;
use crate::http::ApiError;
use crate::labels::state_of;
use crate::reconcile_loop::{Listing, ListingReconciler, Page, Stamp};
use orch_engine::pipeline::Pipeline;

pub type GiteaReconciler = ListingReconciler<GiteaIssuesTracker>;

/// The next page of a listing, and the records read before it.
pub struct GiteaCursor {
    page: u32,
    seen: u64,
}

/// A repository's issues since `since`, page by page.
impl Listing for GiteaIssuesTracker {
    const WHAT: &'static str = "listing Gitea issues";
    /// `owner/name` → the newest `updated_at` handled.
    type Mark = Stamp;
    type Query = Option<String>;
    type Cursor = GiteaCursor;
    type Record = GtIssue;

    fn requests_sent(&self) -> u64 {
        self.client().api().requests_sent()
    }

    fn listed_projects(&self) -> Vec<String> {
        self.repos().values().cloned().collect()
    }

    /// `since` is inclusive, so the newest item is read again next cycle; a
    /// replay of a state already applied is a no-op.
    fn query(&self, _: &str, mark: Option<&Stamp>) -> Option<String> {
        mark.map(|m| m.text.clone())
    }

    async fn page(
        &self,
        full: &str,
        since: &Option<String>,
        cursor: Option<&GiteaCursor>,
        _: u32,
    ) -> Result<Page<GtIssue, GiteaCursor>, ApiError> {
        let (page, seen) = cursor.map_or((1, 0), |c| (c.page, c.seen));
        let listing = self
            .client()
            .issues_page(full, since.as_deref(), page)
            .await?;
        let n = listing.on_page;
        let seen = seen + n as u64;
        // The last page: the total is reached, or (a server that sends no
        // total) the page was not full.
        let done = match listing.total {
            Some(total) => seen >= total || n == 0,
            None => n < PAGE_LIMIT as usize,
        };
        // Left out and logged by the client; counted here.
        let malformed = n - listing.issues.len();
        Ok(Page {
            records: listing
                .issues
                .into_iter()
                .filter(|i| i.pull_request.is_none())
                .collect(),
            malformed,
            next: (!done).then_some(GiteaCursor {
                page: page + 1,
                seen,
            }),
        })
    }

    fn updated(&self, issue: &GtIssue) -> Option<Stamp> {
        issue.updated_at.as_deref().and_then(Stamp::parse)
    }

    /// No sort order: the newest of the whole listing.
    fn newer(&self, a: &Stamp, b: &Stamp) -> bool {
        a.after(b)
    }

    async fn target(
        &self,
        pipeline: &Pipeline,
        full: &str,
        issue: GtIssue,
    ) -> Result<Option<(String, String)>, ApiError> {
        let states = &pipeline.config().tracker.states;
        Ok(self
            .item_id(full, issue.number)
            .zip(state_of(&issue.label_names(), states)))
    }
}
