//! GitLab: the REST v4 client, the `Forge` port over merge requests, and
//! GitLab issues as a tracker with gate states as scoped labels
//! (`orch::<state>`).

pub mod client;
pub mod forge;
pub mod issues;
pub mod reconcile;
pub mod tracker;

pub use client::GitlabClient;
pub use forge::GitlabForge;
pub use reconcile::GitlabReconciler;
pub use tracker::GitlabIssuesTracker;
