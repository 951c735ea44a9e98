//! Outgoing HTTP shared by every provider client: per-attempt
//! timeouts, retries with backoff for transient failures, the call budget of
//! an API key with the server's 429 / `Retry-After` / `X-RateLimit-*`, and a
//! circuit breaker per provider.

pub mod breaker;
pub mod budget;
mod client;
pub mod policy;

pub use client::{ApiClient, ApiError, Listed, Response, records};
pub use policy::CallPolicy;
