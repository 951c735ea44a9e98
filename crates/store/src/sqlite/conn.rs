//! The store's SQLite connections, used inline on the caller's thread: one
//! writer and a few readers.
//!
//! Why not sqlx: sqlx runs each SQLite connection on a worker thread
//! and every statement is a round trip to it (two cross-thread wake-ups). On a
//! small VM that hop costs a few hundred µs, ten times what the statement
//! itself takes, and the queue's enqueue → claim → complete cycle is three
//! statements. A statement here is prepared once (cached) and run on the
//! calling thread under an async mutex: waiting for it parks the task, not the thread,
//! and the guard is held only while SQLite works, never across an `.await`.
//! A task woken by the release usually runs next on the releasing thread, so
//! concurrent writers hand the connection on without cross-thread wake-ups.
//!
//! WAL checkpoints (which fsync) run on a thread of their own (`Checkpointer`)
//! instead of inside whichever commit crosses the auto-checkpoint threshold,
//! so no write waits for the disk's flush.
//!
//! All of the process's writes go through this one connection: two writer
//! connections in one process would fight over SQLite's file lock, and one of
//! them could sleep in the busy handler while holding a runtime thread the other
//! needs to commit. Readers are read-only connections of their own: under WAL
//! they never wait for the writer, and a long listing never delays a write.
//! (Migrations run on sqlx's migrator, once at start.)

use super::Synchronous;
use crate::error::{StoreError, StoreResult};
use crate::signals::Changes;
use rusqlite::{Connection, OpenFlags, Params, Row, TransactionBehavior};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Room for every write statement of the store, so none is re-prepared.
const STATEMENT_CACHE: usize = 96;

/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// The writer's own auto-checkpoint, in pages: only a safety net for a WAL that
/// the checkpointer could not keep short (SQLite's default is 1,000).
const AUTOCHECKPOINT_PAGES: u32 = 20_000;

pub(super) struct Writer {
    conn: Mutex<Connection>,
    /// Bumped after each commit that changed rows (`Store::changes`).
    changes: Changes,
    /// Dropping it stops the checkpointer thread.
    _checkpointer: Option<mpsc::Sender<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    pub(super) fn open(
        path: &Path,
        synchronous: Synchronous,
        busy_timeout: Duration,
    ) -> rusqlite::Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(busy_timeout)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match synchronous {
                Synchronous::Normal => "NORMAL",
                Synchronous::Full => "FULL",
            },
        )?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // Without its thread the writer still works: the auto-checkpoint does
        // the job, only less smoothly.
        let checkpointer = Checkpointer::start(path, busy_timeout)
            .inspect_err(|e| orch_core::note!("warning: no background WAL checkpoints: {e}"))
            .ok();
        Ok(Writer {
            conn: Mutex::new(conn),
            changes: Changes::default(),
            _checkpointer: checkpointer,
        })
    }

    /// Run `f` on the write connection in autocommit mode (one statement is its
    /// own transaction).
    pub(super) async fn run<T>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let conn = self.conn.lock().await;
        let before = conn.total_changes();
        let out = f(&conn);
        // Committed (autocommit) and changed rows: a write to signal.
        let wrote = conn.total_changes() != before && conn.is_autocommit();
        drop(conn);
        if wrote {
            self.changes.bump();
        }
        out
    }

    /// The counter bumped after each commit that changed rows.
    pub(super) fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The counter itself, for a write outside `run` and `tx` (a copy's load).
    pub(super) fn signal(&self) -> Changes {
        self.changes.clone()
    }

    /// The write connection itself, for a transaction that spans awaits (a
    /// copy into this store, `super::copy`): no other write runs meanwhile.
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, Connection> {
        self.conn.lock().await
    }

    /// Run `f` in a `BEGIN IMMEDIATE` transaction: it holds the write lock
    /// from the start (a deferred one that reads then writes can fail with
    /// SQLITE_BUSY_SNAPSHOT instead of waiting). An error (or a panic) rolls
    /// back: the transaction's drop does.
    pub(super) async fn tx<T>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut conn = self.conn.lock().await;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let before = tx.total_changes();
        let out = f(&tx)?;
        let wrote = tx.total_changes() != before;
        tx.commit()?;
        drop(conn);
        // After the commit, never before: whoever wakes reads the write.
        if wrote {
            self.changes.bump();
        }
        Ok(out)
    }
}

/// Read-only connections. At most as many reads run at once as the runtime
/// has threads, so a few connections are plenty.
pub(super) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Readers({})", self.conns.len())
    }
}

impl Readers {
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }

    pub(super) fn open(path: &Path, n: usize, busy_timeout: Duration) -> rusqlite::Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conns = (0..n.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(path, flags)?;
                conn.busy_timeout(busy_timeout)?;
                conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
                Ok(Mutex::new(conn))
            })
            .collect::<rusqlite::Result<_>>()?;
        Ok(Readers {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// Run `f` on a free reader, or wait for one. Each statement reads a
    /// consistent snapshot; `f` is not a transaction across statements.
    pub(super) async fn run<T>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T>,
    ) -> StoreResult<T> {
        for c in &self.conns {
            if let Ok(conn) = c.try_lock() {
                return f(&conn);
            }
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let conn = self.conns[i].lock().await;
        f(&conn)
    }
}

/// A thread with its own connection that runs a PASSIVE checkpoint every
/// `CHECKPOINT_EVERY`: it never blocks the writer or the readers, and it does
/// the fsync that would otherwise stall a commit.
struct Checkpointer;

impl Checkpointer {
    fn start(path: &Path, busy_timeout: Duration) -> std::io::Result<mpsc::Sender<()>> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .and_then(|c| c.busy_timeout(busy_timeout).map(|()| c))
            .map_err(std::io::Error::other)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("orch-sqlite-checkpoint".into())
            .spawn(move || {
                // Disconnected (the writer is gone) ends the loop; nothing is
                // ever sent.
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(CHECKPOINT_EVERY)
                {
                    // A failed checkpoint is retried next time; the WAL only
                    // grows meanwhile, and the writer's auto-checkpoint bounds it.
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                }
            })?;
        Ok(stop)
    }
}

/// Execute a statement that returns no rows; the number of rows it changed.
pub(super) fn exec(conn: &Connection, sql: &str, params: impl Params) -> StoreResult<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

/// The first row of a query (or of an `INSERT/UPDATE … RETURNING`), mapped.
pub(super) fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    map: impl FnOnce(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    match rows.next()? {
        Some(row) => map(row).map(Some),
        None => Ok(None),
    }
}

/// Every row of a query, mapped.
pub(super) fn all<T>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
    mut map: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// Whether a write failed on a foreign key.
pub(super) fn is_foreign_key_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The change signal comes after the commit: inside the transaction
    /// (its rows written, not yet committed) nothing is signalled.
    #[tokio::test]
    async fn a_write_is_signalled_after_its_commit_not_before() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::open(
            &dir.path().join("t.db"),
            Synchronous::Normal,
            Duration::from_secs(5),
        )
        .unwrap();
        w.run(|c| exec(c, "CREATE TABLE t (x INTEGER)", []))
            .await
            .unwrap();
        let mut rx = w.changes();
        rx.borrow_and_update();
        let seen_inside = w
            .tx(|c| {
                exec(c, "INSERT INTO t (x) VALUES (1)", [])?;
                Ok(rx.has_changed().unwrap())
            })
            .await
            .unwrap();
        assert!(!seen_inside, "signalled before the commit");
        assert!(rx.has_changed().unwrap(), "not signalled after the commit");
        rx.borrow_and_update();
        // A transaction that fails rolls back and signals nothing.
        let failed = w
            .tx(|c| {
                exec(c, "INSERT INTO t (x) VALUES (2)", [])?;
                Err::<(), _>(StoreError::Corrupt("no".into()))
            })
            .await;
        assert!(failed.is_err());
        assert!(
            !rx.has_changed().unwrap(),
            "a rolled back write was signalled"
        );
        // A statement that changes no row signals nothing.
        w.run(|c| exec(c, "UPDATE t SET x = 3 WHERE x = 99", []))
            .await
            .unwrap();
        assert!(!rx.has_changed().unwrap());
        w.run(|c| exec(c, "UPDATE t SET x = 3 WHERE x = 1", []))
            .await
            .unwrap();
        assert!(rx.has_changed().unwrap());
    }
}
