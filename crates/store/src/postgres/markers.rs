//! Markers written before irreversible steps, and webhook delivery de-duplication.

use super::{PgStore, all, first, returned};
use crate::error::{StoreError, StoreResult};
use crate::model::{Marker, MarkerState, MarkerStep};
use crate::rows::{self, Columns};
use crate::traits::MarkerStore;
use async_trait::async_trait;
use orch_core::TaskId;

#[async_trait]
impl MarkerStore for PgStore {
    async fn write_marker(
        &self,
        task: TaskId,
        repo: &str,
        step: MarkerStep,
        detail: &str,
    ) -> StoreResult<Marker> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        // The task's row lock orders two writers of the same task's markers.
        super::tasks::lock_task(&mut tx, task).await?;
        let q = sqlx::query(
            "SELECT id FROM markers WHERE task_id = $1 AND step = $2 AND state = 'INITIATED'",
        )
        .bind(task.0)
        .bind(step.as_str());
        if let Some(marker) = first(&mut *tx, q, |r| r.int("id")).await? {
            return Err(StoreError::MarkerExists {
                task,
                step: step.as_str(),
                marker,
            });
        }
        let q = sqlx::query(concat!(
            "INSERT INTO markers (task_id, repo, step, state, detail, created_at)
             VALUES ($1, $2, $3, 'INITIATED', $4, $5) RETURNING ",
            rows::marker_columns!()
        ))
        .bind(task.0)
        .bind(repo)
        .bind(step.as_str())
        .bind(detail)
        .bind(now.0);
        let marker = returned(first(&mut *tx, q, rows::marker).await?)?;
        self.commit(tx).await?;
        Ok(marker)
    }

    async fn finish_marker(&self, id: i64, state: MarkerState) -> StoreResult<bool> {
        if state == MarkerState::Initiated {
            return Ok(false);
        }
        let now = self.now();
        let q = sqlx::query(
            "UPDATE markers SET state = $1, completed_at = $2 WHERE id = $3 AND state = 'INITIATED'",
        )
        .bind(state.as_str())
        .bind(now.0)
        .bind(id);
        Ok(self.write(q).await? == 1)
    }

    async fn initiated_markers(&self, task: Option<TaskId>) -> StoreResult<Vec<Marker>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::marker_columns!(),
            " FROM markers WHERE state = 'INITIATED' AND ($1::bigint IS NULL OR task_id = $1)
             ORDER BY id"
        ))
        .bind(task.map(|t| t.0));
        all(&self.pool, q, rows::marker).await
    }

    async fn task_markers(&self, task: TaskId) -> StoreResult<Vec<Marker>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::marker_columns!(),
            " FROM markers WHERE task_id = $1 ORDER BY id"
        ))
        .bind(task.0);
        all(&self.pool, q, rows::marker).await
    }

    async fn record_delivery(&self, provider: &str, delivery_id: &str) -> StoreResult<bool> {
        let now = self.now();
        let q = sqlx::query(
            "INSERT INTO webhook_deliveries (provider, delivery_id, received_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(provider)
        .bind(delivery_id)
        .bind(now.0);
        Ok(self.write(q).await? == 1)
    }
}
