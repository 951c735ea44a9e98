//! The Linear reconciler: per team and cycle, one listing of the
//! team's issues ordered by `updatedAt` (most recent first), from the
//! previous cycle's newest `updatedAt` on (`updatedAt: { gte }`), followed
//! by its cursor; never one call per task. Linear discourages polling, so
//! this is the repair path behind the webhooks, not the main one. The same
//! loop and repair rule as the other trackers' (`reconcile_loop`,
//! `repair::reconcile_item`); an error changes nothing and keeps the
//! watermark.

use super::client::LnIssue;
use super::tracker::LinearTracker;
use crate::http::ApiError;
use crate::reconcile_loop::{Listing, ListingReconciler, Page, Stamp};
use orch_engine::pipeline::Pipeline;

pub type LinearReconciler = ListingReconciler<LinearTracker>;

/// A team's issues since `since`, page by GraphQL cursor.
impl Listing for LinearTracker {
    const WHAT: &'static str = "listing Linear issues";
    /// Team key → the newest `updatedAt` handled.
    type Mark = Stamp;
    type Query = Option<String>;
    /// The connection's `endCursor`.
    type Cursor = String;
    type Record = LnIssue;

    fn requests_sent(&self) -> u64 {
        self.client().api().requests_sent()
    }

    fn listed_projects(&self) -> Vec<String> {
        self.teams().keys().cloned().collect()
    }

    fn query(&self, _: &str, mark: Option<&Stamp>) -> Option<String> {
        mark.map(|m| m.text.clone())
    }

    async fn page(
        &self,
        key: &str,
        since: &Option<String>,
        after: Option<&String>,
        _: u32,
    ) -> Result<Page<LnIssue, String>, ApiError> {
        let listing = self
            .client()
            .team_issues_page(key, since.as_deref(), after.map(String::as_str))
            .await?;
        Ok(Page {
            records: listing.items,
            malformed: listing.malformed,
            next: listing.next,
        })
    }

    fn updated(&self, issue: &LnIssue) -> Option<Stamp> {
        issue.updated_at.as_deref().and_then(Stamp::parse)
    }

    /// Compared as times: RFC 3339 text may leave out a zero fraction.
    fn newer(&self, a: &Stamp, b: &Stamp) -> bool {
        a.after(b)
    }

    async fn target(
        &self,
        _: &Pipeline,
        key: &str,
        issue: LnIssue,
    ) -> Result<Option<(String, String)>, ApiError> {
        let state = self.teams().get(key).and_then(|team| {
            let s = issue.state.as_ref()?;
            self.orch_state(team, &s.name)
        });
        Ok(state.map(|s| (issue.identifier, s)))
    }
}
