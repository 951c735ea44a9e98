//! The SQLite store: WAL, one writer and a few reader connections used inline
//! (`conn.rs`), `busy_timeout`, every multi-statement write in `BEGIN
//! IMMEDIATE`, and sqlx's embedded migrator for the schema.

mod conn;
mod copy;
mod disk;
mod jobs;
mod leases;
mod markers;
mod nodes;
mod notifications;
mod rows;
mod runs;
mod tasks;
mod tracker;

use crate::clock::{Clock, SystemClock};
use crate::error::{StoreError, StoreResult};
use crate::traits::Store;
use async_trait::async_trait;
use conn::{Readers, Writer};
use orch_core::Timestamp;
use rusqlite::{Params, Row};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
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
    /// Read-only connections beside the one writer (see `conn.rs`). 4 by
    /// default: under WAL readers never wait for the writer, and more
    /// readers than the machine's cores buy little.
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
    readers: Arc<Readers>,
    /// The migrator's connection.
    migrator: SqlitePool,
    clock: Arc<dyn Clock>,
}

/// Migrations a newer orch applied are left alone (`ignore_missing`): in a
/// rolling upgrade an older node restarts on a database a newer one has
/// migrated, and migrations only add.
static MIGRATOR: sqlx::migrate::Migrator = {
    let mut m = sqlx::migrate!("./migrations/sqlite");
    m.ignore_missing = true;
    m
};

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
        // Creates the file (and the WAL) for the connections below.
        let migrator = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect)
            .await
            .map_err(open_err)?;
        let rusqlite_err = |e: rusqlite::Error| StoreError::Open {
            path: shown.clone(),
            source: Box::new(e),
        };
        // One writer: SQLite serialises writers anyway (see conn.rs).
        let writer =
            Writer::open(path, options.synchronous, options.busy_timeout).map_err(rusqlite_err)?;
        let readers = Readers::open(
            path,
            options.read_connections as usize,
            options.busy_timeout,
        )
        .map_err(rusqlite_err)?;
        Ok(SqliteStore {
            writer: Arc::new(writer),
            readers: Arc::new(readers),
            migrator,
            clock: options.clock,
        })
    }

    /// How many read connections this store keeps (`read_connections`).
    pub fn read_connections(&self) -> usize {
        self.readers.len()
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// One write statement, in autocommit; the number of rows it changed.
    async fn write(&self, sql: &str, params: impl Params + Send) -> StoreResult<usize> {
        self.writer.run(|c| conn::exec(c, sql, params)).await
    }

    /// The first row of a read, mapped.
    async fn read_one<T>(
        &self,
        sql: &str,
        params: impl Params + Send,
        map: impl FnOnce(&Row<'_>) -> StoreResult<T> + Send,
    ) -> StoreResult<Option<T>> {
        self.readers.run(|c| conn::first(c, sql, params, map)).await
    }

    /// Every row of a read, mapped.
    async fn read_all<T>(
        &self,
        sql: &str,
        params: impl Params + Send,
        map: impl FnMut(&Row<'_>) -> StoreResult<T> + Send,
    ) -> StoreResult<Vec<T>> {
        self.readers.run(|c| conn::all(c, sql, params, map)).await
    }

    /// Names of the columns of `table`, for schema checks (TC-14).
    pub async fn columns(&self, table: &str) -> StoreResult<Vec<String>> {
        self.readers
            .run(|c| {
                conn::all(
                    c,
                    "SELECT name FROM pragma_table_info(?)",
                    rusqlite::params![table],
                    |r| Ok(r.get(0)?),
                )
            })
            .await
    }

    /// Close the migrator's connection. The writer and the readers close (and
    /// the last one checkpoints the WAL) when the store is dropped.
    pub async fn close(&self) {
        self.migrator.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.migrator).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.readers
            .run(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writer.changes()
    }
}
