//! Markers written before irreversible steps, and webhook delivery de-duplication.

use super::{SqliteStore, rows};
use crate::error::{StoreError, StoreResult};
use crate::model::{Marker, MarkerState, MarkerStep};
use crate::traits::MarkerStore;
use async_trait::async_trait;
use orch_core::TaskId;

#[async_trait]
impl MarkerStore for SqliteStore {
    async fn write_marker(
        &self,
        task: TaskId,
        repo: &str,
        step: MarkerStep,
        detail: &str,
    ) -> StoreResult<Marker> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        super::tasks::load_task(&mut tx, task).await?;
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM markers WHERE task_id = ? AND step = ? AND state = 'INITIATED'",
        )
        .bind(task.0)
        .bind(step.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(marker) = existing {
            return Err(StoreError::MarkerExists {
                task,
                step: step.as_str(),
                marker,
            });
        }
        let row = sqlx::query(
            "INSERT INTO markers (task_id, repo, step, state, detail, created_at)
             VALUES (?, ?, ?, 'INITIATED', ?, ?) RETURNING *",
        )
        .bind(task.0)
        .bind(repo.to_owned())
        .bind(step.as_str())
        .bind(detail.to_owned())
        .bind(now.0)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        rows::marker(&row)
    }

    async fn finish_marker(&self, id: i64, state: MarkerState) -> StoreResult<bool> {
        if state == MarkerState::Initiated {
            return Ok(false);
        }
        let n = sqlx::query(
            "UPDATE markers SET state = ?, completed_at = ? WHERE id = ? AND state = 'INITIATED'",
        )
        .bind(state.as_str())
        .bind(self.now().0)
        .bind(id)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn initiated_markers(&self, task: Option<TaskId>) -> StoreResult<Vec<Marker>> {
        let rows = sqlx::query(
            "SELECT * FROM markers WHERE state = 'INITIATED' AND (?1 IS NULL OR task_id = ?1) ORDER BY id",
        )
        .bind(task.map(|t| t.0))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::marker).collect()
    }

    async fn record_delivery(&self, provider: &str, delivery_id: &str) -> StoreResult<bool> {
        let n = sqlx::query(
            "INSERT INTO webhook_deliveries (provider, delivery_id, received_at) VALUES (?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(provider.to_owned())
        .bind(delivery_id.to_owned())
        .bind(self.now().0)
        .execute(&self.write)
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}
