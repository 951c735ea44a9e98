//! The GitLab issues reconciler: per project and cycle, one listing
//! of issues by `updated_at` descending, from the previous cycle's newest
//! `updated_at` on (`updated_after`, inclusive), followed by `X-Next-Page`;
//! never one call per task. The same loop and repair rule as the other
//! trackers' (`reconcile_loop`, `repair::reconcile_item`); an error changes
//! nothing and keeps the watermark.

use super::issues::GlIssue;
use super::tracker::{GitlabIssuesTracker, state_of};
use crate::http::ApiError;
use crate::reconcile_loop::{Listing, ListingReconciler, Page};
use orch_engine::pipeline::Pipeline;

pub type GitlabReconciler = ListingReconciler<GitlabIssuesTracker>;

/// A project's issues since `updated_after`, most recently updated first.
impl Listing for GitlabIssuesTracker {
    const WHAT: &'static str = "listing GitLab issues";
    /// The newest `updated_at` handled: the first listed.
    type Mark = String;
    type Query = Option<String>;
    /// `X-Next-Page`.
    type Cursor = u32;
    type Record = GlIssue;

    fn requests_sent(&self) -> u64 {
        self.client().api().requests_sent()
    }

    fn listed_projects(&self) -> Vec<String> {
        self.projects().values().cloned().collect()
    }

    /// `updated_after` is inclusive, so the newest item is read again next
    /// cycle; a replay of a state already applied is a no-op.
    fn query(&self, _: &str, mark: Option<&String>) -> Option<String> {
        mark.cloned()
    }

    async fn page(
        &self,
        project: &str,
        since: &Option<String>,
        page: Option<&u32>,
        _: u32,
    ) -> Result<Page<GlIssue, u32>, ApiError> {
        let listing = self
            .client()
            .issues_page(project, since.as_deref(), page.copied().unwrap_or(1))
            .await?;
        Ok(Page {
            records: listing.items,
            malformed: listing.malformed,
            next: listing.next,
        })
    }

    fn updated(&self, issue: &GlIssue) -> Option<String> {
        issue.updated_at.clone()
    }

    async fn target(
        &self,
        pipeline: &Pipeline,
        project: &str,
        issue: GlIssue,
    ) -> Result<Option<(String, String)>, ApiError> {
        let states = &pipeline.config().tracker.states;
        Ok(self
            .item_id(project, issue.iid)
            .zip(state_of(&issue.labels, states)))
    }
}
