//! Gitea and Forgejo: the REST client, the `Forge` port, and Gitea/Forgejo
//! issues as a tracker with gate states as labels.

pub mod actions;
pub mod client;
pub mod forge;
pub mod issues;
pub mod reconcile;
pub mod tracker;

pub use client::GiteaClient;
pub use forge::{GiteaForge, full_name_from_remote};
pub use reconcile::GiteaReconciler;
pub use tracker::GiteaIssuesTracker;
