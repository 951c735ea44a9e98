//! The PostgreSQL store, for several orch nodes sharing one queue: a sqlx
//! connection pool, the claim as one statement (`orch_claim`, migration
//! 0002: `FOR UPDATE SKIP LOCKED`, every gate inside it), every
//! multi-statement write in one READ COMMITTED transaction that locks the
//! rows it decides on, and sqlx's embedded migrator for the schema.
//!
//! The schema, the row mapping (`crate::rows`) and the store's logic
//! (`crate::common`) are SQLite's; only the SQL dialect and the locking
//! differ. Where SQLite's single writer serialises a check and the write
//! that follows it, this store takes a row lock (`FOR UPDATE`) on what the
//! check read, or a transaction-level advisory lock where there is no row to
//! lock (claims under a limit, dependency edges). Listings ordered by text
//! use `COLLATE "C"`, SQLite's byte order, whatever the database's collation.

mod copy;
mod disk;
mod jobs;
mod leases;
mod markers;
mod nodes;
mod notifications;
mod rows;
mod runs;
mod signals;
mod tasks;
mod tracker;

use crate::clock::{Clock, SystemClock};
use crate::error::{StoreError, StoreResult};
use crate::signals::Changes;
use crate::traits::Store;
use async_trait::async_trait;
use orch_core::Timestamp;
pub use signals::listener_app_name;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgExecutor, PgPool, Postgres};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// orch's key space for transaction-level advisory locks (the two-int form;
/// the second int names what is locked). "orch" in ASCII.
pub(crate) const ADVISORY_SPACE: i32 = 0x6f72_6368;

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections in the pool: each in-flight statement holds one. 8 by
    /// default: a node's dispatcher, its workers' heartbeats and run
    /// records, the ticker and the API rarely have more statements in
    /// flight at once, and ten nodes stay well inside PostgreSQL's default
    /// `max_connections` of 100 (each also keeps one LISTEN connection).
    pub max_connections: u32,
    /// How long a caller waits for a free connection before the call fails.
    pub acquire_timeout: Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(10),
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    /// Bumped after each of this handle's committed writes (`Store::changes`).
    changes: Changes,
}

/// Migrations a newer orch applied are left alone (`ignore_missing`): in a
/// rolling upgrade an older node restarts on a database a newer one has
/// migrated, and migrations only add.
static MIGRATOR: sqlx::migrate::Migrator = {
    let mut m = sqlx::migrate!("./migrations/postgres");
    m.ignore_missing = true;
    m
};

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

impl PgStore {
    /// Connect to the database at `url` (`postgres://USER@HOST/DB`; libpq's
    /// URL parameters such as `options[search_path]=…` apply). Does not migrate.
    pub async fn open(url: &str, options: PgOptions) -> StoreResult<Self> {
        let open_err = |e: sqlx::Error| StoreError::Open {
            path: redact(url),
            source: Box::new(e),
        };
        let connect = PgConnectOptions::from_str(url).map_err(open_err)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(open_err)?;
        Ok(PgStore {
            pool,
            clock: options.clock,
            changes: Changes::default(),
        })
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Commit a write transaction, then signal it (`Store::changes`).
    /// A transaction that only checked and changed nothing commits with
    /// `tx.commit()` and signals nothing.
    async fn commit(&self, tx: sqlx::Transaction<'_, Postgres>) -> sqlx::Result<()> {
        tx.commit().await?;
        self.changes.bump();
        Ok(())
    }

    /// One write statement on the pool (autocommit); signalled when it
    /// changed rows. The number of rows it changed.
    async fn write(&self, q: PgQuery<'_>) -> StoreResult<u64> {
        let n = exec(&self.pool, q).await?;
        if n > 0 {
            self.changes.bump();
        }
        Ok(n)
    }

    /// One `INSERT/UPDATE … RETURNING` on the pool (autocommit), mapped;
    /// signalled when it gave a row.
    async fn write_one<T>(
        &self,
        q: PgQuery<'_>,
        map: impl FnOnce(&PgRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = first(&self.pool, q, map).await?;
        if row.is_some() {
            self.changes.bump();
        }
        Ok(row)
    }

    /// The pool's size, as opened (`PgOptions::max_connections`).
    pub fn max_connections(&self) -> u32 {
        self.pool.options().get_max_connections()
    }

    /// Names of the columns of `table` in the store's schema, for schema checks.
    pub async fn columns(&self, table: &str) -> StoreResult<Vec<String>> {
        let q = sqlx::query(
            "SELECT column_name::text AS name FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table);
        all(&self.pool, q, |r| r.text("name")).await
    }

    /// Close the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

use crate::rows::Columns;

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn queue_signals(&self) -> StoreResult<Option<crate::signals::QueueSignals>> {
        self.subscribe().await.map(Some)
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

/// Execute a statement that returns no rows; the number of rows it changed.
async fn exec<'c>(ex: impl PgExecutor<'c>, q: PgQuery<'_>) -> StoreResult<u64> {
    Ok(q.execute(ex).await?.rows_affected())
}

/// The first row of a query (or of an `INSERT/UPDATE … RETURNING`), mapped.
async fn first<'c, T>(
    ex: impl PgExecutor<'c>,
    q: PgQuery<'_>,
    map: impl FnOnce(&PgRow) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    match q.fetch_optional(ex).await? {
        Some(row) => map(&row).map(Some),
        None => Ok(None),
    }
}

/// Every row of a query, mapped.
async fn all<'c, T>(
    ex: impl PgExecutor<'c>,
    q: PgQuery<'_>,
    map: impl FnMut(&PgRow) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    q.fetch_all(ex).await?.iter().map(map).collect()
}

/// The row an `INSERT … RETURNING` must give.
fn returned<T>(v: Option<T>) -> StoreResult<T> {
    v.ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))
}

/// The constraint a write broke, if it broke a unique (`23505`) or foreign
/// key (`23503`) constraint.
fn violated<'e>(e: &'e StoreError, code: &str) -> Option<&'e str> {
    match e {
        StoreError::Postgres(sqlx::Error::Database(db)) if db.code().as_deref() == Some(code) => {
            Some(db.constraint().unwrap_or(""))
        }
        _ => None,
    }
}

fn unique_violation(e: &StoreError) -> Option<&str> {
    violated(e, "23505")
}

fn foreign_key_violation(e: &StoreError) -> bool {
    violated(e, "23503").is_some()
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_hides_the_password_only() {
        assert_eq!(
            super::redact("postgres://orch:s3cret@db/orch"),
            "postgres://orch:***@db/orch"
        );
        assert_eq!(
            super::redact("postgres://orch@db/orch"),
            "postgres://orch@db/orch"
        );
    }
}
