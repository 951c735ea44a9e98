//! Linear: the GraphQL client (API key, rate limits by requests and
//! complexity points), the documents orch sends, each team's workflow
//! states by name, the `Tracker` port over issues, and the reconciler.

pub mod client;
pub mod queries;
pub mod reconcile;
pub mod states;
pub mod tracker;

pub use client::LinearClient;
pub use reconcile::LinearReconciler;
pub use tracker::LinearTracker;
