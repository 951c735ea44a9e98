//! Moving an installation from one store to another (`orch db copy`): every
//! row of every table, ids and counters included, into an empty target, in
//! one transaction of the target, then a count of each table on both sides.
//!
//! Why not through the `Store` trait: its writes are the pipeline's (a new
//! task gets a new id and a `created` event, a claim mints a run); a copy
//! must write the rows as they are. Why not SQL per table and dialect: the
//! tables are described once (`tables.rs`) and each store reads and writes
//! a page of any of them (`sqlite/copy.rs`, `postgres/copy.rs`); the
//! description is checked against both databases before anything is written.

mod tables;

pub use tables::{Kind, Row, TABLES, Table, Value, table};

use crate::error::{StoreError, StoreResult};
use crate::postgres::{PgOptions, PgStore};
use crate::sqlite::{SqliteOptions, SqliteStore};
use std::collections::BTreeMap;

/// Rows read and written at a time.
const PAGE: u32 = 500;

/// A store URL fit to print: a PostgreSQL password is masked.
pub fn shown_url(url: &str) -> String {
    crate::postgres::redact(url)
}

/// Why a copy did not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("--from and --to name the same database")]
    SameDatabase,
    #[error(
        "the target already holds orch data ({0}); copying into it would mix two installations. Name an empty database, or add --replace to delete orch's tables there first"
    )]
    TargetNotEmpty(String),
    #[error("the {side} is not at this orch's schema: {why}")]
    Schema { side: &'static str, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One end of a copy: a store opened by URL, not migrated by opening.
#[derive(Debug)]
pub enum Db {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Db {
    /// `sqlite://PATH` or `postgres://…` (`postgresql://…`), as `crate::open`.
    pub async fn open(url: &str) -> StoreResult<Db> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Unsupported(format!(
                    "store url {url:?} names no file; use sqlite://PATH"
                )));
            }
            Ok(Db::Sqlite(
                SqliteStore::open(path, SqliteOptions::default()).await?,
            ))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Db::Postgres(
                PgStore::open(url, PgOptions::default()).await?,
            ))
        } else {
            Err(StoreError::Unsupported(format!(
                "store url {url:?}: unsupported scheme; use sqlite://PATH or postgres://USER@HOST/DB"
            )))
        }
    }

    /// The store behind it, for reading it through the `Store` trait.
    pub fn store(&self) -> &dyn crate::Store {
        match self {
            Db::Sqlite(s) => s,
            Db::Postgres(p) => p,
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(s) => s.close().await,
            Db::Postgres(p) => p.close().await,
        }
    }

    /// Something that tells this database apart from another one, to refuse
    /// a copy onto itself.
    async fn identity(&self) -> StoreResult<String> {
        match self {
            Db::Sqlite(s) => s.copy_identity().await,
            Db::Postgres(p) => p.copy_identity().await,
        }
    }

    /// Applied migration versions (none when the database is new).
    async fn applied(&self) -> StoreResult<Vec<i64>> {
        match self {
            Db::Sqlite(s) => s.copy_applied().await,
            Db::Postgres(p) => p.copy_applied().await,
        }
    }

    /// The migration versions this orch embeds for the database.
    fn embedded(&self) -> Vec<i64> {
        match self {
            Db::Sqlite(_) => SqliteStore::copy_embedded(),
            Db::Postgres(_) => PgStore::copy_embedded(),
        }
    }

    /// The table's columns and their kinds as the database declares them
    /// (an unknown type has no kind); empty when the table is absent.
    async fn columns(&self, table: &str) -> StoreResult<Vec<(String, Option<Kind>)>> {
        match self {
            Db::Sqlite(s) => s.copy_columns(table).await,
            Db::Postgres(p) => p.copy_columns(table).await,
        }
    }

    async fn count(&self, table: &Table) -> StoreResult<u64> {
        match self {
            Db::Sqlite(s) => s.copy_count(table).await,
            Db::Postgres(p) => p.copy_count(table).await,
        }
    }

    /// The largest id the table's counter has handed out.
    async fn counter(&self, table: &Table) -> StoreResult<i64> {
        match self {
            Db::Sqlite(s) => s.copy_counter(table).await,
            Db::Postgres(p) => p.copy_counter(table).await,
        }
    }

    /// Up to `limit` rows of `table` in key order, after `after`.
    pub async fn page(
        &self,
        table: &Table,
        after: Option<&[Value]>,
        limit: u32,
    ) -> StoreResult<Vec<Row>> {
        match self {
            Db::Sqlite(s) => s.copy_page(table, after, limit).await,
            Db::Postgres(p) => p.copy_page(table, after, limit).await,
        }
    }

    /// Every row of `table`, in key order.
    pub async fn rows(&self, table: &Table) -> StoreResult<Vec<Row>> {
        let mut out: Vec<Row> = Vec::new();
        loop {
            let after = out.last().map(|r| table.key_of_row(r));
            let page = self.page(table, after.as_deref(), PAGE).await?;
            let done = page.len() < PAGE as usize;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Drop orch's tables and its migration history.
    async fn drop_tables(&self) -> StoreResult<()> {
        match self {
            Db::Sqlite(s) => s.copy_drop().await,
            Db::Postgres(p) => p.copy_drop().await,
        }
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.store().migrate().await
    }

    /// Rows in every table of orch that exists here.
    async fn held(&self) -> StoreResult<Vec<(&'static str, u64)>> {
        let mut out = Vec::new();
        for t in TABLES {
            if !self.columns(t.name).await?.is_empty() {
                let n = self.count(t).await?;
                if n > 0 {
                    out.push((t.name, n));
                }
            }
        }
        Ok(out)
    }
}

/// What a copy tells as it goes. Every method has a default that says nothing.
pub trait CopyProgress {
    /// The copy of `table` begins; it has `rows` rows.
    fn table_started(&mut self, _table: &'static str, _rows: u64) {}
    /// `done` of the table's `total` rows are written.
    fn rows_copied(&mut self, _table: &'static str, _done: u64, _total: u64) {}
}

/// Says nothing.
pub struct Quiet;
impl CopyProgress for Quiet {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Drop orch's tables in the target first (and everything in it that
    /// depends on them) instead of refusing a target that holds data.
    pub replace: bool,
    /// Rows read and written at a time (at least 1).
    pub page: u32,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            replace: false,
            page: PAGE,
        }
    }
}

/// One table's rows on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: u64,
    pub target: u64,
}

/// Rows per table in the source and in the target, counted after a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountReport {
    pub tables: Vec<TableCount>,
}

impl CountReport {
    /// The tables whose counts differ.
    pub fn differing(&self) -> Vec<&TableCount> {
        self.tables
            .iter()
            .filter(|c| c.source != c.target)
            .collect()
    }

    pub fn all_equal(&self) -> bool {
        self.differing().is_empty()
    }
}

/// Copy every row of `from` into `to`. The target is checked to be empty
/// (or emptied with `replace`), migrated, written in one transaction (a copy
/// that fails leaves it empty), its id counters set at least to the
/// source's, and then both are counted table by table. The caller decides
/// what differing counts mean (`CountReport::all_equal`).
///
/// The source must not change meanwhile: the caller makes sure no engine
/// runs on it.
pub async fn copy_all(
    from: &Db,
    to: &Db,
    options: CopyOptions,
    progress: &mut dyn CopyProgress,
) -> Result<CountReport, CopyError> {
    if from.identity().await? == to.identity().await? {
        return Err(CopyError::SameDatabase);
    }
    check_schema(from, "source").await?;
    let held = to.held().await?;
    if !held.is_empty() {
        if !options.replace {
            let what: Vec<String> = held.iter().map(|(t, n)| format!("{t}: {n}")).collect();
            return Err(CopyError::TargetNotEmpty(what.join(", ")));
        }
        to.drop_tables().await?;
    }
    to.migrate().await?;
    check_schema(to, "target").await?;

    let totals: BTreeMap<&str, u64> = {
        let mut m = BTreeMap::new();
        for t in TABLES {
            m.insert(t.name, from.count(t).await?);
        }
        m
    };
    match to {
        Db::Sqlite(s) => {
            let mut load = s.copy_load().await?;
            load_all(from, &mut load, &totals, options.page.max(1), progress).await?;
            load.commit()?;
        }
        Db::Postgres(p) => {
            let mut load = p.copy_load().await?;
            load_all(from, &mut load, &totals, options.page.max(1), progress).await?;
            load.commit().await?;
        }
    }
    Ok(compare_counts(from, to).await?)
}

/// Rows of every table on both sides.
pub async fn compare_counts(from: &Db, to: &Db) -> StoreResult<CountReport> {
    let mut tables = Vec::new();
    for t in TABLES {
        tables.push(TableCount {
            table: t.name,
            source: from.count(t).await?,
            target: to.count(t).await?,
        });
    }
    Ok(CountReport { tables })
}

/// The writing side of a copy: one open transaction of the target.
#[allow(async_fn_in_trait)] // used in this crate only, never boxed
pub(crate) trait Load {
    /// Insert the rows; the number written.
    async fn insert(&mut self, table: &Table, rows: &[Row]) -> StoreResult<u64>;
    /// Make the table's counter hand out ids after `used`.
    async fn set_counter(&mut self, table: &Table, used: i64) -> StoreResult<()>;
}

async fn load_all(
    from: &Db,
    load: &mut impl Load,
    totals: &BTreeMap<&str, u64>,
    limit: u32,
    progress: &mut dyn CopyProgress,
) -> StoreResult<()> {
    for t in TABLES {
        let total = totals.get(t.name).copied().unwrap_or(0);
        progress.table_started(t.name, total);
        let mut after: Option<Vec<Value>> = None;
        let mut done = 0u64;
        loop {
            let page = from.page(t, after.as_deref(), limit).await?;
            if page.is_empty() {
                break;
            }
            let written = load.insert(t, &page).await?;
            if written != page.len() as u64 {
                return Err(StoreError::Corrupt(format!(
                    "{}: {} rows read, {written} written",
                    t.name,
                    page.len()
                )));
            }
            done += written;
            progress.rows_copied(t.name, done, total.max(done));
            if page.len() < limit as usize {
                break;
            }
            after = page.last().map(|r| t.key_of_row(r));
        }
        if t.counter {
            load.set_counter(t, from.counter(t).await?).await?;
        }
    }
    Ok(())
}

/// The database holds exactly this orch's migrations, and every table the
/// columns the copy knows.
pub async fn check_schema(db: &Db, side: &'static str) -> Result<(), CopyError> {
    let schema = |why: String| CopyError::Schema { side, why };
    let mut applied = db.applied().await?;
    applied.sort_unstable();
    let embedded = db.embedded();
    if let Some(v) = applied.iter().find(|v| !embedded.contains(v)) {
        return Err(schema(format!(
            "it has migration {v}, which this orch does not know; copy it with the orch that wrote it"
        )));
    }
    if let Some(v) = embedded.iter().find(|v| !applied.contains(v)) {
        return Err(schema(format!(
            "migration {v} is not applied; run `orch db migrate` with it as the store first"
        )));
    }
    for t in TABLES {
        let found = db.columns(t.name).await?;
        let want: Vec<(String, Option<Kind>)> = t
            .columns
            .iter()
            .map(|(c, k)| ((*c).to_owned(), Some(*k)))
            .collect();
        let mut found_sorted = found.clone();
        found_sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want_sorted = want;
        want_sorted.sort_by(|a, b| a.0.cmp(&b.0));
        if found_sorted != want_sorted {
            return Err(schema(format!(
                "table {} has columns {found:?}, the copy knows {:?}",
                t.name, t.columns
            )));
        }
    }
    Ok(())
}
