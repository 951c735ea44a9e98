//! GitLab: the REST v4 client, the `Forge` port over merge requests, and
//! GitLab issues as a tracker with gate states as scoped labels.

pub mod client;
pub mod forge;

pub use client::GitlabClient;
pub use forge::GitlabForge;
