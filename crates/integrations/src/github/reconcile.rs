//! The GitHub Issues reconciler: per repository and cycle, one listing
//! of issues by `updated` descending, from the previous cycle's newest
//! `updated_at` on (`since`), never one call per task. The same loop and
//! repair rule as the other trackers' (`reconcile_loop`,
//! `repair::reconcile_item`); an error changes nothing and keeps the
//! watermark.

use super::client::GhIssue;
use super::tracker::{GithubIssuesTracker, state_of};
use crate::http::ApiError;
use crate::reconcile_loop::{Listing, ListingReconciler, Page};
use orch_engine::pipeline::Pipeline;

pub type GithubReconciler = ListingReconciler<GithubIssuesTracker>;

/// A repository's issues since `since`, most recently updated first.
impl Listing for GithubIssuesTracker {
    const WHAT: &'static str = "listing GitHub issues";
    /// The newest `updated_at` handled: the first listed.
    type Mark = String;
    type Query = Option<String>;
    /// The page number.
    type Cursor = u32;
    type Record = GhIssue;

    fn requests_sent(&self) -> u64 {
        self.client().api().requests_sent()
    }

    fn listed_projects(&self) -> Vec<String> {
        self.repos().values().cloned().collect()
    }

    /// `since` is inclusive, so the newest item is read again next cycle; a
    /// replay of a state already applied is a no-op.
    fn query(&self, _: &str, mark: Option<&String>) -> Option<String> {
        mark.cloned()
    }

    async fn page(
        &self,
        full: &str,
        since: &Option<String>,
        page: Option<&u32>,
        per_page: u32,
    ) -> Result<Page<GhIssue, u32>, ApiError> {
        let page = page.copied().unwrap_or(1);
        let issues = self
            .client()
            .issues_page(full, since.as_deref(), page, per_page)
            .await?;
        let full_page = issues.on_page >= per_page as usize;
        let malformed = issues.malformed();
        Ok(Page {
            records: issues
                .items
                .into_iter()
                .filter(|i| i.pull_request.is_none())
                .collect(),
            malformed,
            next: full_page.then_some(page + 1),
        })
    }

    fn updated(&self, issue: &GhIssue) -> Option<String> {
        issue.updated_at.clone()
    }

    async fn target(
        &self,
        pipeline: &Pipeline,
        full: &str,
        issue: GhIssue,
    ) -> Result<Option<(String, String)>, ApiError> {
        let states = &pipeline.config().tracker.states;
        let labels: Vec<String> = issue.labels.iter().map(|l| l.name.clone()).collect();
        Ok(self
            .item_id(full, issue.number)
            .zip(state_of(&labels, states)))
    }
}
