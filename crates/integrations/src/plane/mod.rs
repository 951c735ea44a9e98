//! Plane: the REST client, the state cache, the `Tracker` port and the
//! reconciler that repairs missed webhooks.

pub mod client;
pub mod reconcile;
pub mod states;
pub mod tracker;

pub use client::{PlaneClient, PlaneState, WorkItem};
pub use reconcile::{PlaneReconciler, ReconcileStats};
pub use tracker::PlaneTracker;
