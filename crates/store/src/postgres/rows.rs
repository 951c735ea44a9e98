//! PostgreSQL rows as `crate::rows::Columns`: the shared mappings read them
//! as they read SQLite's.

use crate::error::StoreResult;
use crate::rows::Columns;
use sqlx::Row;
use sqlx::postgres::PgRow;

impl Columns for PgRow {
    fn int(&self, col: &str) -> StoreResult<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn text(&self, col: &str) -> StoreResult<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn real(&self, col: &str) -> StoreResult<f64> {
        Ok(self.try_get(col)?)
    }
}
