//! Jira Cloud: the REST API v3 client (Basic auth with an API token, 429
//! and `Retry-After` honoured), ADF for comments and descriptions, the
//! `Tracker` port over issues (statuses by name per project, moved through
//! workflow transitions), and the reconciler (one JQL search per project
//! per cycle).

pub mod adf;
pub mod client;
pub mod reconcile;
pub mod tracker;

pub use client::JiraClient;
pub use reconcile::JiraReconciler;
pub use tracker::JiraTracker;
