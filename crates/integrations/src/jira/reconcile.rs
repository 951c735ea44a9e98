//! The Jira reconciler: per project and cycle, one JQL search of the
//! project's issues ordered by `updated` (oldest first), from the previous
//! cycle's newest `updated` on, followed by its `nextPageToken`; never one
//! call per task. The repair path behind the webhooks, with the same rule as
//! the other trackers' (`repair::reconcile_item`); an error changes nothing
//! and keeps the watermark.
//!
//! JQL compares dates to the minute, in the time zone of the account's
//! profile: an absolute time would be read in a zone orch does not know.
//! The watermark goes into the query as a relative time instead
//! (`updated >= "-7m"`: minutes before Jira's now), rounded up and with a
//! minute to spare, so a clock apart by seconds loses nothing; what is
//! read twice is a no-op.

use super::client::parse_time;
use super::tracker::JiraTracker;
use crate::plane::ReconcileStats;
use crate::repair::reconcile_item;
use orch_engine::pipeline::Pipeline;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Mutex;

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

pub struct JiraReconciler {
    tracker: Arc<JiraTracker>,
    pipeline: Arc<Pipeline>,
    max_pages: u32,
    /// Project key → the newest `updated` handled (unix ms).
    marks: Mutex<HashMap<String, i64>>,
}

impl JiraReconciler {
    pub fn new(tracker: Arc<JiraTracker>, pipeline: Arc<Pipeline>) -> JiraReconciler {
        JiraReconciler {
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
        for (key, project) in self.tracker.projects() {
            st.projects += 1;
            let jql = project_jql(key, marks.get(key).map(|m| minutes_since(*m, now_ms())));
            let mut newest: Option<i64> = None;
            let mut failed = false;
            let mut next: Option<String> = None;
            for _ in 0..self.max_pages {
                let page = match client.search_page(&jql, next.as_deref()).await {
                    Ok(p) => p,
                    Err(e) => {
                        st.errors += 1;
                        failed = true;
                        tracing::warn!(project = %key, error = %e, "reconcile: searching Jira issues failed; nothing changed");
                        break;
                    }
                };
                st.pages += 1;
                st.malformed += page.malformed as u32;
                for issue in page.issues {
                    st.items_seen += 1;
                    if let Some(at) = issue.fields.updated.as_deref().and_then(parse_time) {
                        newest = Some(newest.map_or(at, |n| n.max(at)));
                    }
                    let Some(state) = issue
                        .fields
                        .status
                        .as_ref()
                        .and_then(|s| self.tracker.orch_state(project, &s.name))
                    else {
                        continue;
                    };
                    failed |= !reconcile_item(&self.pipeline, &issue.key, &state, &mut st).await;
                }
                match page.next {
                    Some(t) => next = Some(t),
                    None => break,
                }
            }
            if !failed && let Some(n) = newest {
                marks.insert(key.clone(), n);
            }
        }
        st.api_calls = client.api().requests_sent() - before;
        st
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
