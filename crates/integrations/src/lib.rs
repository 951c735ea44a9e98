//! orch's integrations with the outside world (R-40…R-44).
//!
//! ```text
//! signature   HMAC-SHA256 over the raw body, constant-time (R-42)
//! webhook/    pure parsers: Plane v1/v2, Gitea/Forgejo, GitHub, GitLab → WebhookEvent
//! ```

pub mod doctor;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod gitea;
pub mod github;
pub mod gitlab;
pub mod http;
pub mod ingest;
pub mod jira;
pub mod labels;
pub mod linear;
pub mod notify;
pub mod plane;
pub mod pr_forge;
pub mod providers;
pub mod reconcile_loop;
pub mod refusals;
pub mod repair;
pub mod signature;
pub mod timestamps;
pub mod webhook;
