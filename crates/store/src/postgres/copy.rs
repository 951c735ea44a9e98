//! The PostgreSQL side of a copy (`crate::copy`): pages of any table, and a
//! load into this store as one transaction (a failed copy leaves nothing),
//! whose sequences end past the largest id copied.

use super::{PgQuery, PgStore, all, exec, first};
use crate::copy::{Kind, Load, Row, TABLES, Table, Value};
use crate::error::StoreResult;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Postgres, Row as _, Transaction};

fn placeholder(i: usize) -> String {
    format!("${i}")
}

fn query(sql: String) -> PgQuery<'static> {
    sqlx::query(AssertSqlSafe(sql))
}

/// A value bound as its column's kind (a NULL needs one too).
fn bind(q: PgQuery<'static>, v: &Value, kind: Kind) -> PgQuery<'static> {
    match (v, kind) {
        (Value::Null, Kind::Int) => q.bind(None::<i64>),
        (Value::Null, Kind::Real) => q.bind(None::<f64>),
        (Value::Null, Kind::Text) => q.bind(None::<String>),
        (Value::Int(i), _) => q.bind(*i),
        (Value::Real(f), _) => q.bind(*f),
        (Value::Text(s), _) => q.bind(s.clone()),
    }
}

fn row(r: &PgRow, table: &Table) -> StoreResult<Row> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| {
            Ok(match kind {
                Kind::Int => r
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Value::Null, Value::Int),
                Kind::Real => r
                    .try_get::<Option<f64>, _>(i)?
                    .map_or(Value::Null, Value::Real),
                Kind::Text => r
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Value::Null, Value::Text),
            })
        })
        .collect()
}

/// The name of the sequence that hands out `table`'s ids.
const SEQUENCE: &str = "pg_get_serial_sequence($1, 'id')";

impl PgStore {
    /// The server (its start time), the database and the schema: the same
    /// for two URLs that reach the same tables by different addresses.
    pub(crate) async fn copy_identity(&self) -> StoreResult<String> {
        let q = sqlx::query(
            "SELECT pg_postmaster_start_time()::text || ' db ' ||
                    (SELECT oid FROM pg_database WHERE datname = current_database())::text ||
                    ' schema ' || COALESCE(current_schema()::text, '') AS id",
        );
        let id = first(&self.pool, q, |r| {
            use crate::rows::Columns;
            r.text("id")
        })
        .await?;
        Ok(format!("postgres:{}", id.unwrap_or_default()))
    }

    pub(crate) fn copy_embedded() -> Vec<i64> {
        super::MIGRATOR.iter().map(|m| m.version).collect()
    }

    pub(crate) async fn copy_applied(&self) -> StoreResult<Vec<i64>> {
        if self.copy_columns("_sqlx_migrations").await?.is_empty() {
            return Ok(Vec::new());
        }
        let q = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success");
        all(&self.pool, q, |r| Ok(r.try_get::<i64, _>(0)?)).await
    }

    pub(crate) async fn copy_columns(
        &self,
        table: &str,
    ) -> StoreResult<Vec<(String, Option<Kind>)>> {
        let q = sqlx::query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table.to_owned());
        all(&self.pool, q, |r| {
            let kind = match r.try_get::<String, _>(1)?.as_str() {
                "bigint" => Some(Kind::Int),
                "double precision" => Some(Kind::Real),
                "text" => Some(Kind::Text),
                _ => None,
            };
            Ok((r.try_get::<String, _>(0)?, kind))
        })
        .await
    }

    pub(crate) async fn copy_count(&self, table: &Table) -> StoreResult<u64> {
        let q = query(format!("SELECT COUNT(*) FROM {}", table.name));
        let n = first(&self.pool, q, |r| Ok(r.try_get::<i64, _>(0)?)).await?;
        Ok(n.unwrap_or(0).max(0) as u64)
    }

    /// The sequence's last value (ids it handed out to writes that rolled
    /// back included), or the largest id if that is larger.
    pub(crate) async fn copy_counter(&self, table: &Table) -> StoreResult<i64> {
        let q = query(format!(
            "SELECT GREATEST(COALESCE(pg_sequence_last_value({SEQUENCE}::regclass), 0),
                             COALESCE((SELECT MAX(id) FROM {}), 0))",
            table.name
        ))
        .bind(table.name);
        let n = first(&self.pool, q, |r| Ok(r.try_get::<i64, _>(0)?)).await?;
        Ok(n.unwrap_or(0))
    }

    pub(crate) async fn copy_page(
        &self,
        table: &Table,
        after: Option<&[Value]>,
        limit: u32,
    ) -> StoreResult<Vec<Row>> {
        let mut q = query(table.page_sql(after.is_some(), limit, placeholder));
        for (v, kind) in after.unwrap_or(&[]).iter().zip(table.key_kinds()) {
            q = bind(q, v, kind);
        }
        all(&self.pool, q, |r| row(r, table)).await
    }

    /// Drop orch's tables, what depends on them (the claim function) and the
    /// migration history, in one transaction; nothing else in the schema.
    pub(crate) async fn copy_drop(&self) -> StoreResult<()> {
        let names: Vec<&str> = TABLES.iter().rev().map(|t| t.name).collect();
        let mut tx = self.pool.begin().await?;
        exec(
            &mut *tx,
            query(format!("DROP TABLE IF EXISTS {} CASCADE", names.join(", "))),
        )
        .await?;
        exec(
            &mut *tx,
            sqlx::query("DROP TABLE IF EXISTS _sqlx_migrations"),
        )
        .await?;
        self.commit(tx).await?;
        Ok(())
    }

    pub(crate) async fn copy_load(&self) -> StoreResult<PgLoad> {
        Ok(PgLoad {
            tx: self.pool.begin().await?,
            changes: self.changes.clone(),
        })
    }
}

/// A load into this store: one transaction; dropped uncommitted, it rolls back.
pub(crate) struct PgLoad {
    tx: Transaction<'static, Postgres>,
    changes: crate::signals::Changes,
}

impl PgLoad {
    pub(crate) async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await?;
        self.changes.bump();
        Ok(())
    }
}

impl Load for PgLoad {
    /// One INSERT per page (a page's parameters stay far below PostgreSQL's
    /// 65,535).
    async fn insert(&mut self, table: &Table, rows: &[Row]) -> StoreResult<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut q = query(table.insert_sql(rows.len(), placeholder));
        for r in rows {
            for (v, (_, kind)) in r.iter().zip(table.columns) {
                q = bind(q, v, *kind);
            }
        }
        exec(&mut *self.tx, q).await
    }

    /// The next id the sequence gives is `used + 1` (1 when none was used).
    async fn set_counter(&mut self, table: &Table, used: i64) -> StoreResult<()> {
        let q = query(format!(
            "SELECT setval({SEQUENCE}, GREATEST($2, 1), $2 >= 1)::bigint"
        ))
        .bind(table.name)
        .bind(used);
        exec(&mut *self.tx, q).await?;
        Ok(())
    }
}
