//! orch's durable state behind one `Store` trait: tasks and their audit log, the
//! job queue with its gates and fencing, runs, merge leases, markers, webhook
//! de-duplication, the builtin tracker's items and the notification outbox.
//!
//! `SqliteStore` is the embedded default; `PgStore` serves several orch nodes
//! sharing one PostgreSQL database. The trait speaks only domain types, and
//! `conformance` is the test suite every implementation must pass
//! (`conformance_suite!`).

pub mod clock;
mod common;
pub mod conformance;
pub mod copy;
pub mod error;
pub mod model;
pub mod postgres;
mod rows;
pub mod signals;
pub mod sqlite;
pub mod testing;
pub mod traits;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{StoreError, StoreResult};
pub use model::*;
pub use postgres::{PgOptions, PgStore};
pub use signals::{QueueSignal, QueueSignals};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use traits::{
    DiskStore, JobQueue, LeaseStore, MarkerStore, NotificationStore, RunStore, Store, TaskStore,
    TrackerStore,
};

use std::sync::Arc;

/// Open the store named by a URL: `sqlite://PATH` or `postgres://…`
/// (`postgresql://…`). The SQLite settings of `options` apply to SQLite only;
/// PostgreSQL takes its clock and otherwise `PgOptions::default()`. An unknown
/// scheme is a clear error, not a panic. Does not migrate.
pub async fn open(url: &str, options: SqliteOptions) -> StoreResult<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        let store = SqliteStore::open(path, options).await?;
        Ok(Arc::new(store))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pg = PgOptions {
            clock: options.clock,
            ..PgOptions::default()
        };
        Ok(Arc::new(PgStore::open(url, pg).await?))
    } else {
        Err(StoreError::Unsupported(format!(
            "store url {url:?}: unsupported scheme; use sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }
}
