//! The SQLite side of a copy (`crate::copy`): pages of any table read on a
//! reader connection, and a load into this store as one `BEGIN IMMEDIATE`
//! transaction on the write connection, held across the copy's awaits.

use super::SqliteStore;
use super::conn;
use crate::copy::{Kind, Load, Row, TABLES, Table, Value};
use crate::error::{StoreError, StoreResult};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, params_from_iter};
use tokio::sync::MutexGuard;

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn placeholder(i: usize) -> String {
    format!("?{i}")
}

/// A column's value as its kind says; SQLite's dynamic typing lets any
/// value into any column, so a value of another kind is named, not guessed.
fn value(v: ValueRef<'_>, kind: Kind, table: &str, col: &str) -> StoreResult<Value> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("{table}.{col} holds {what}"));
    Ok(match (v, kind) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(i), Kind::Int) => Value::Int(i),
        // REAL affinity hands back whole numbers as integers.
        (ValueRef::Integer(i), Kind::Real) => Value::Real(i as f64),
        (ValueRef::Real(f), Kind::Real) => Value::Real(f),
        (ValueRef::Text(t), Kind::Text) => Value::Text(
            String::from_utf8(t.to_vec()).map_err(|_| corrupt("text that is not UTF-8"))?,
        ),
        (ValueRef::Integer(_), _) => return Err(corrupt("an integer")),
        (ValueRef::Real(_), _) => return Err(corrupt("a real number")),
        (ValueRef::Text(_), _) => return Err(corrupt("text")),
        (ValueRef::Blob(_), _) => return Err(corrupt("a blob")),
    })
}

impl SqliteStore {
    /// The database file's real path (links resolved).
    pub(crate) async fn copy_identity(&self) -> StoreResult<String> {
        let file: Option<String> = self
            .read_one(
                "SELECT file FROM pragma_database_list WHERE name = 'main'",
                [],
                |r| Ok(r.get(0)?),
            )
            .await?;
        let file = file.unwrap_or_default();
        let real = std::fs::canonicalize(&file).map_or(file, |p| p.display().to_string());
        Ok(format!("sqlite:{real}"))
    }

    pub(crate) fn copy_embedded() -> Vec<i64> {
        super::MIGRATOR.iter().map(|m| m.version).collect()
    }

    pub(crate) async fn copy_applied(&self) -> StoreResult<Vec<i64>> {
        if self.copy_columns("_sqlx_migrations").await?.is_empty() {
            return Ok(Vec::new());
        }
        self.read_all(
            "SELECT version FROM _sqlx_migrations WHERE success",
            [],
            |r| Ok(r.get(0)?),
        )
        .await
    }

    pub(crate) async fn copy_columns(
        &self,
        table: &str,
    ) -> StoreResult<Vec<(String, Option<Kind>)>> {
        self.read_all(
            "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid",
            [table],
            |r| {
                let kind = match r.get::<_, String>(1)?.to_ascii_uppercase().as_str() {
                    "INTEGER" => Some(Kind::Int),
                    "REAL" => Some(Kind::Real),
                    "TEXT" => Some(Kind::Text),
                    _ => None,
                };
                Ok((r.get(0)?, kind))
            },
        )
        .await
    }

    pub(crate) async fn copy_count(&self, table: &Table) -> StoreResult<u64> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name);
        let n: Option<i64> = self.read_one(&sql, [], |r| Ok(r.get(0)?)).await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// The AUTOINCREMENT counter, or the largest id where there is none.
    pub(crate) async fn copy_counter(&self, table: &Table) -> StoreResult<i64> {
        let sql = format!(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?1), 0),
                        COALESCE((SELECT MAX(id) FROM {}), 0))",
            table.name
        );
        let n: Option<i64> = self.read_one(&sql, [table.name], |r| Ok(r.get(0)?)).await?;
        Ok(n.unwrap_or(0))
    }

    pub(crate) async fn copy_page(
        &self,
        table: &Table,
        after: Option<&[Value]>,
        limit: u32,
    ) -> StoreResult<Vec<Row>> {
        let sql = table.page_sql(after.is_some(), limit, placeholder);
        let params = after.unwrap_or(&[]);
        self.read_all(&sql, params_from_iter(params.iter()), |r| {
            table
                .columns
                .iter()
                .enumerate()
                .map(|(i, (col, kind))| value(r.get_ref(i)?, *kind, table.name, col))
                .collect()
        })
        .await
    }

    /// Drop orch's tables, children first (a table's drop deletes its rows,
    /// which its children's foreign keys would refuse), and the migration
    /// history, in one transaction.
    pub(crate) async fn copy_drop(&self) -> StoreResult<()> {
        self.writer
            .tx(|c| {
                for t in TABLES.iter().rev() {
                    c.execute_batch(&format!("DROP TABLE IF EXISTS {}", t.name))?;
                }
                c.execute_batch("DROP TABLE IF EXISTS _sqlx_migrations")?;
                Ok(())
            })
            .await
    }

    /// Begin the load: the write connection is this copy's until it commits
    /// or is dropped (which rolls back).
    pub(crate) async fn copy_load(&self) -> StoreResult<SqliteLoad<'_>> {
        let conn = self.writer.lock().await;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(SqliteLoad {
            conn,
            open: true,
            changes: self.writer.signal(),
        })
    }
}

pub(crate) struct SqliteLoad<'a> {
    conn: MutexGuard<'a, Connection>,
    open: bool,
    changes: crate::signals::Changes,
}

impl SqliteLoad<'_> {
    pub(crate) fn commit(mut self) -> StoreResult<()> {
        self.conn.execute_batch("COMMIT")?;
        self.open = false;
        self.changes.bump();
        Ok(())
    }
}

impl Drop for SqliteLoad<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

impl Load for SqliteLoad<'_> {
    async fn insert(&mut self, table: &Table, rows: &[Row]) -> StoreResult<u64> {
        let sql = table.insert_sql(1, placeholder);
        let mut written = 0;
        for row in rows {
            written += conn::exec(&self.conn, &sql, params_from_iter(row.iter()))? as u64;
        }
        Ok(written)
    }

    /// SQLite keeps the AUTOINCREMENT counter in `sqlite_sequence`, whose row
    /// the inserts made; a table without AUTOINCREMENT (its counter is its
    /// largest rowid) has none, and nothing changes.
    async fn set_counter(&mut self, table: &Table, used: i64) -> StoreResult<()> {
        conn::exec(
            &self.conn,
            "UPDATE sqlite_sequence SET seq = MAX(seq, ?1) WHERE name = ?2",
            rusqlite::params![used, table.name],
        )?;
        Ok(())
    }
}
