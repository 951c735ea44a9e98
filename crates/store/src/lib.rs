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
pub use signals::{Changes, QueueSignal, QueueSignals};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use traits::{
    DiskStore, JobQueue, LeaseStore, MarkerStore, NodeStore, NotificationStore, RunStore, Store,
    TaskStore, TrackerStore,
};

use std::sync::Arc;

/// Open the store named by a URL: `sqlite://PATH` or `postgres://…`
/// (`postgresql://…`). The SQLite settings of `options` apply to SQLite only;
/// PostgreSQL takes its clock and otherwise `PgOptions::default()`.
/// `max_connections` (`store.max_connections`) sizes the pool: PostgreSQL's
/// connections, or SQLite's read connections (its writer is one whatever
/// the setting); `None` keeps each backend's default. An unknown scheme is a
/// clear error, not a panic. Does not migrate.
pub async fn open(
    url: &str,
    options: SqliteOptions,
    max_connections: Option<u32>,
) -> StoreResult<Arc<dyn Store>> {
    Ok(match open_concrete(url, options, max_connections).await? {
        Opened::Sqlite(s) => Arc::new(s),
        Opened::Pg(p) => Arc::new(p),
    })
}

/// The store `open` gives, before it is erased to `dyn Store`: for tests
/// of what the options reached.
#[derive(Debug)]
pub enum Opened {
    Sqlite(SqliteStore),
    Pg(PgStore),
}

/// `open`, keeping the store's own type.
pub async fn open_concrete(
    url: &str,
    mut options: SqliteOptions,
    max_connections: Option<u32>,
) -> StoreResult<Opened> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if let Some(n) = max_connections {
            options.read_connections = n;
        }
        Ok(Opened::Sqlite(SqliteStore::open(path, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let defaults = PgOptions::default();
        let pg = PgOptions {
            clock: options.clock,
            max_connections: max_connections.unwrap_or(defaults.max_connections),
            ..defaults
        };
        Ok(Opened::Pg(PgStore::open(url, pg).await?))
    } else {
        Err(StoreError::Unsupported(format!(
            "store url {url:?}: unsupported scheme; use sqlite://PATH or postgres://USER@HOST/DB"
        )))
    }
}
