//! The reconcile loop every tracker shares. Per project and cycle,
//! one listing of the items changed since the previous cycle's watermark,
//! page after page, never one call per task; each listed item goes through
//! the one repair rule (`repair::reconcile_item`). An error changes nothing
//! and keeps the watermark: the watermark advances only on a clean pass.
//!
//! What differs between trackers (paging, the query, which `updated` time
//! is the newest, how a record names its item and state) is the tracker's
//! [`Listing`]; [`ListingReconciler`] owns the rest: the watermarks, the page
//! bound, the stats, the error handling and the count of calls made.

use crate::http::ApiError;
use crate::repair::reconcile_item;
use orch_engine::pipeline::Pipeline;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Mutex;

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
    /// HTTP requests this cycle sent to the tracker (retries and state
    /// lookups included).
    pub api_calls: u64,
}

/// One page of a listing.
pub struct Page<R, C> {
    /// The page's records, in the listing's order (malformed ones and
    /// records that are not items, such as pull requests, left out).
    pub records: Vec<R>,
    /// Records left out as malformed (each logged where it was read).
    pub malformed: usize,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<C>,
}

/// A tracker's listing of the items changed since a watermark.
pub trait Listing: Send + Sync + Sized {
    /// What a failed page was doing, for the log ("listing Gitea issues").
    const WHAT: &'static str;
    /// A project's watermark: where the previous clean pass stopped.
    type Mark: Clone + Send + Sync;
    /// What a project's listing asks for, made once per project and cycle.
    type Query: Send + Sync;
    /// Where a page after the first starts.
    type Cursor: Send + Sync;
    /// One listed record.
    type Record: Send + Sync;

    /// HTTP requests sent so far (the cycle's calls are the difference).
    fn requests_sent(&self) -> u64;

    /// The projects listed each cycle, by the key their watermark is kept under.
    fn listed_projects(&self) -> Vec<String>;

    /// The query of `project`'s listing from `mark` on (everything without).
    fn query(&self, project: &str, mark: Option<&Self::Mark>) -> Self::Query;

    /// One page of the listing: the first without a cursor; `per_page`
    /// records where the tracker lets the caller choose.
    fn page(
        &self,
        project: &str,
        query: &Self::Query,
        cursor: Option<&Self::Cursor>,
        per_page: u32,
    ) -> impl Future<Output = Result<Page<Self::Record, Self::Cursor>, ApiError>> + Send;

    /// The record's `updated` time as a watermark, if it has one.
    fn updated(&self, record: &Self::Record) -> Option<Self::Mark>;

    /// `a` is newer than `b`. By default the first record with a time is
    /// the newest (a listing most recent first).
    fn newer(&self, a: &Self::Mark, b: &Self::Mark) -> bool {
        let _ = (a, b);
        false
    }

    /// Take `record` into the pass's newest watermark.
    fn fold(&self, newest: &mut Option<Self::Mark>, record: &Self::Record) {
        if let Some(m) = self.updated(record)
            && newest.as_ref().is_none_or(|n| self.newer(&m, n))
        {
            *newest = Some(m);
        }
    }

    /// `record` was handled by the pass that left `old`: the listing stops
    /// there. By default never (the query starts at the watermark).
    fn reached(&self, old: &Self::Mark, record: &Self::Record) -> bool {
        let _ = (old, record);
        false
    }

    /// The item id and the tracker state of a listed record; `None` for a
    /// record that is not an item orch serves or is in no state orch reads.
    /// An error counts, keeps the watermark, and the listing goes on.
    fn target(
        &self,
        pipeline: &Pipeline,
        project: &str,
        record: Self::Record,
    ) -> impl Future<Output = Result<Option<(String, String)>, ApiError>> + Send;
}

/// A tracker's reconciler: its listing, walked by the one loop.
pub struct ListingReconciler<L: Listing> {
    listing: Arc<L>,
    pipeline: Arc<Pipeline>,
    /// Records asked for per page, where the listing takes a size.
    per_page: u32,
    /// A bound on pages per project and cycle (the first cycle reads everything).
    max_pages: u32,
    /// Project key → the watermark of its last clean pass.
    marks: Mutex<HashMap<String, L::Mark>>,
}

impl<L: Listing> ListingReconciler<L> {
    pub fn new(listing: Arc<L>, pipeline: Arc<Pipeline>) -> ListingReconciler<L> {
        ListingReconciler {
            listing,
            pipeline,
            per_page: 100,
            max_pages: 100,
            marks: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn set_page_size(&mut self, per_page: u32) {
        self.per_page = per_page.max(1);
    }

    /// One cycle over every served project. Cycles never overlap.
    pub async fn run_once(&self) -> ReconcileStats {
        let mut marks = self.marks.lock().await;
        let before = self.listing.requests_sent();
        let mut st = ReconcileStats::default();
        for project in self.listing.listed_projects() {
            st.projects += 1;
            let old = marks.get(&project).cloned();
            if let Some(new) = self.project_once(&project, old.as_ref(), &mut st).await {
                marks.insert(project, new);
            }
        }
        st.api_calls = self.listing.requests_sent() - before;
        st
    }

    /// `Some(new watermark)` when the project was walked without an error
    /// and listed something with a time; `None` keeps the old one.
    async fn project_once(
        &self,
        project: &str,
        old: Option<&L::Mark>,
        st: &mut ReconcileStats,
    ) -> Option<L::Mark> {
        let l = &*self.listing;
        let query = l.query(project, old);
        let mut newest: Option<L::Mark> = None;
        let mut failed = false;
        let mut cursor: Option<L::Cursor> = None;
        'pages: for _ in 0..self.max_pages {
            let page = match l
                .page(project, &query, cursor.as_ref(), self.per_page)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    // An error is not "absent": nothing changes, the watermark stays.
                    st.errors += 1;
                    tracing::warn!(project, error = %e, "reconcile: {} failed; nothing changed", L::WHAT);
                    return None;
                }
            };
            st.pages += 1;
            st.malformed += page.malformed as u32;
            for record in page.records {
                if old.is_some_and(|o| l.reached(o, &record)) {
                    break 'pages;
                }
                st.items_seen += 1;
                l.fold(&mut newest, &record);
                let (item, state) = match l.target(&self.pipeline, project, record).await {
                    Ok(Some(t)) => t,
                    Ok(None) => continue,
                    Err(e) => {
                        st.errors += 1;
                        failed = true;
                        tracing::warn!(project, error = %e, "reconcile: a listed item's state is unavailable ({})", L::WHAT);
                        continue;
                    }
                };
                failed |= !reconcile_item(&self.pipeline, &item, &state, st).await;
            }
            match page.next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        // Keep the old mark on a failure: the next cycle sees the failed items again.
        if failed { None } else { newest }
    }
}

/// An RFC 3339 time as listed, with its instant: compared as times, since
/// the text may leave out a zero fraction; handed back as it was listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub ms: i64,
    pub text: String,
}

impl Stamp {
    pub fn parse(text: &str) -> Option<Stamp> {
        crate::timestamps::parse_millis(text).map(|ms| Stamp {
            ms,
            text: text.to_owned(),
        })
    }

    /// Strictly later than `other`.
    pub fn after(&self, other: &Stamp) -> bool {
        self.ms > other.ms
    }
}
