//! orch's durable state behind one `Store` trait: tasks and their audit log, the
//! job queue with its gates and fencing, runs, merge leases, markers, webhook
//! de-duplication, the builtin tracker's items and the notification outbox.
//!
//! `SqliteStore` is the embedded default. The trait speaks only domain types, so a
//! PostgreSQL implementation can stand beside it; `conformance` is the test suite
//! every implementation must pass (`conformance_suite!`).

pub mod clock;
pub mod conformance;
pub mod error;
pub mod model;
pub mod sqlite;
pub mod traits;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{StoreError, StoreResult};
pub use model::*;
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use traits::{
    JobQueue, LeaseStore, MarkerStore, NotificationStore, RunStore, Store, TaskStore, TrackerStore,
};

use std::sync::Arc;

/// Open the store named by a URL (`sqlite://PATH`). Further schemes come with
/// their implementations; an unknown one is a clear error, not a panic.
pub async fn open(url: &str, options: SqliteOptions) -> StoreResult<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = SqliteStore::open(path, options).await?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Err(StoreError::Unsupported(
            "the PostgreSQL store is not built into this version of orch; use sqlite://PATH".into(),
        ))
    } else {
        Err(StoreError::Unsupported(format!(
            "store url {url:?}: unsupported scheme; use sqlite://PATH"
        )))
    }
}
