//! The SQLite store: WAL, one writer connection (`writer.rs`, used inline)
//! plus a sqlx pool for reads and migrations, `busy_timeout`, and every
//! multi-statement write in `BEGIN IMMEDIATE`.

mod jobs;
mod leases;
mod markers;
mod rows;
mod runs;
mod tasks;
mod tracker;
mod writer;

use crate::clock::{Clock, SystemClock};
use crate::error::{StoreError, StoreResult};
use crate::traits::Store;
use async_trait::async_trait;
use orch_core::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use writer::Writer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// SQLite's `synchronous` setting. `Normal` is durable against process crashes
/// under WAL and much faster; `Full` also survives power loss of the last commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    pub busy_timeout: Duration,
    pub read_connections: u32,
    pub clock: Arc<dyn Clock>,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Normal,
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Arc<Writer>,
    /// Reads (any number at once, beside the writer under WAL) and migrations.
    read: SqlitePool,
    clock: Arc<dyn Clock>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl SqliteStore {
    /// Open (creating if missing) the database file at `path`. Does not migrate.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> StoreResult<Self> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: shown.clone(),
                source: Box::new(e),
            })?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        let open_err = |e: sqlx::Error| StoreError::Open {
            path: shown.clone(),
            source: Box::new(e),
        };
        // No ping before each acquire: a local file connection does not go
        // stale, and the ping is a second round trip for every statement.
        let read = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .test_before_acquire(false)
            .connect_with(connect)
            .await
            .map_err(open_err)?;
        // One writer: SQLite serialises writers anyway (see writer.rs).
        let writer = Writer::open(path, options.synchronous, options.busy_timeout).map_err(
            |e| StoreError::Open {
                path: shown.clone(),
                source: Box::new(e),
            },
        )?;
        Ok(SqliteStore {
            writer: Arc::new(writer),
            read,
            clock: options.clock,
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Names of the columns of `table`, for schema checks (TC-14).
    pub async fn columns(&self, table: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT name FROM pragma_table_info(?)")
            .bind(table.to_owned())
            .fetch_all(&self.read)
            .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    /// Close the read pool. The write connection closes (and checkpoints the
    /// WAL, as the last connection) when the store is dropped.
    pub async fn close(&self) {
        self.read.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.read).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}
