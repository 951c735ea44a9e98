//! The Jira reconciler: per project and cycle, one JQL search of the
//! project's issues ordered by `updated` (oldest first), from the previous
//! cycle's newest `updated` on, followed by its `nextPageToken`; never one
//! call per task. The repair path behind the webhooks, with the same loop and
//! rule as the other trackers' (`reconcile_loop`, `repair::reconcile_item`);
//! an error changes nothing and keeps the watermark.
//!
//! JQL compares dates to the minute, in the time zone of the account's
//! profile: an absolute time would be read in a zone orch does not know.
//! The watermark goes into the query as a relative time instead
//! (`updated >= "-7m"`: minutes before Jira's now), rounded up and with a
//! minute to spare, so a clock apart by seconds loses nothing; what is
//! read twice is a no-op.

use super::client::{JiraIssue, parse_time};
use super::tracker::JiraTracker;
use crate::http::ApiError;
use crate::reconcile_loop::{Listing, ListingReconciler, Page};
use orch_engine::pipeline::Pipeline;

/// The search of project `key`'s issues changed in the last `minutes`
/// (all of them without), oldest change first.
pub fn project_jql(key: &str, minutes: Option<i64>) -> String {
    // Keys are letters, digits and `_` (validated); quoted all the same.
    let key: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    match minutes {
        Some(m) => format!("project = \"{key}\" AND updated >= \"-{m}m\" ORDER BY updated ASC"),
        None => format!("project = \"{key}\" ORDER BY updated ASC"),
    }
}

/// Whole minutes from `mark_ms` to `now_ms`, rounded up, plus one.
pub fn minutes_since(mark_ms: i64, now_ms: i64) -> i64 {
    ((now_ms - mark_ms).max(0) as u64).div_ceil(60_000) as i64 + 1
}

pub type JiraReconciler = ListingReconciler<JiraTracker>;

/// A project's search from its watermark on, oldest change first.
impl Listing for JiraTracker {
    const WHAT: &'static str = "searching Jira issues";
    /// Project key → the newest `updated` handled (unix ms).
    type Mark = i64;
    /// The JQL, made once per project and cycle (its `nextPageToken`s
    /// belong to it).
    type Query = String;
    /// `nextPageToken`.
    type Cursor = String;
    type Record = JiraIssue;

    fn requests_sent(&self) -> u64 {
        self.client().api().requests_sent()
    }

    fn listed_projects(&self) -> Vec<String> {
        self.projects().keys().cloned().collect()
    }

    fn query(&self, key: &str, mark: Option<&i64>) -> String {
        project_jql(key, mark.map(|m| minutes_since(*m, now_ms())))
    }

    async fn page(
        &self,
        _: &str,
        jql: &String,
        next: Option<&String>,
        _: u32,
    ) -> Result<Page<JiraIssue, String>, ApiError> {
        let page = self
            .client()
            .search_page(jql, next.map(String::as_str))
            .await?;
        Ok(Page {
            records: page.issues,
            malformed: page.malformed,
            next: page.next,
        })
    }

    fn updated(&self, issue: &JiraIssue) -> Option<i64> {
        issue.fields.updated.as_deref().and_then(parse_time)
    }

    fn newer(&self, a: &i64, b: &i64) -> bool {
        a > b
    }

    async fn target(
        &self,
        _: &Pipeline,
        key: &str,
        issue: JiraIssue,
    ) -> Result<Option<(String, String)>, ApiError> {
        let state = self.projects().get(key).and_then(|project| {
            let status = issue.fields.status.as_ref()?;
            self.orch_state(project, &status.name)
        });
        Ok(state.map(|s| (issue.key, s)))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_starts_a_minute_before_the_watermark() {
        assert_eq!(
            project_jql("ENG", None),
            "project = \"ENG\" ORDER BY updated ASC"
        );
        assert_eq!(
            project_jql("ENG\" OR x", Some(3)),
            "project = \"ENGORx\" AND updated >= \"-3m\" ORDER BY updated ASC"
        );
        assert_eq!(minutes_since(0, 0), 1);
        assert_eq!(minutes_since(0, 1), 2);
        assert_eq!(minutes_since(0, 60_000), 2);
        assert_eq!(minutes_since(0, 60_001), 3);
        assert_eq!(minutes_since(10, 0), 1, "a mark ahead of now");
    }
}
