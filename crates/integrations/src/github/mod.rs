//! GitHub: the REST client, the `Forge` port, and GitHub Issues as a tracker
//! with gate states as labels.

pub mod client;
pub mod forge;
pub mod reconcile;
pub mod tracker;

pub use client::GithubClient;
pub use forge::GithubForge;
pub use reconcile::GithubReconciler;
pub use tracker::GithubIssuesTracker;
