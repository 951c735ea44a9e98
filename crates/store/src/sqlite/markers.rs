//! Markers written before irreversible steps, and webhook delivery de-duplication.

use super::conn::first;
use super::{SqliteStore, rows};
use crate::error::{StoreError, StoreResult};
use crate::model::{Marker, MarkerState, MarkerStep};
use crate::traits::MarkerStore;
use async_trait::async_trait;
use orch_core::TaskId;
use rusqlite::params;

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
        self.writer
            .tx(|conn| {
                super::tasks::load_task(conn, task)?;
                let existing: Option<i64> = first(
                    conn,
                    "SELECT id FROM markers WHERE task_id = ? AND step = ? AND state = 'INITIATED'",
                    params![task.0, step.as_str()],
                    |r| Ok(r.get(0)?),
                )?;
                if let Some(marker) = existing {
                    return Err(StoreError::MarkerExists {
                        task,
                        step: step.as_str(),
                        marker,
                    });
                }
                first(
                    conn,
                    concat!(
                        "INSERT INTO markers (task_id, repo, step, state, detail, created_at)
                 VALUES (?, ?, ?, 'INITIATED', ?, ?) RETURNING ",
                        crate::rows::marker_columns!()
                    ),
                    params![task.0, repo, step.as_str(), detail, now.0],
                    rows::marker,
                )?
                .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))
            })
            .await
    }

    async fn finish_marker(&self, id: i64, state: MarkerState) -> StoreResult<bool> {
        if state == MarkerState::Initiated {
            return Ok(false);
        }
        let now = self.now();
        let n = self.write(
            "UPDATE markers SET state = ?, completed_at = ? WHERE id = ? AND state = 'INITIATED'",
            (&state.as_str(), &now.0, &id),
        ).await?;
        Ok(n == 1)
    }

    async fn initiated_markers(&self, task: Option<TaskId>) -> StoreResult<Vec<Marker>> {
        self.read_all(
            concat!("SELECT ", crate::rows::marker_columns!(), " FROM markers WHERE state = 'INITIATED' AND (?1 IS NULL OR task_id = ?1) ORDER BY id"),
            (&task.map(|t| t.0),),
            rows::marker,
        )
            .await
    }

    async fn task_markers(&self, task: TaskId) -> StoreResult<Vec<Marker>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::marker_columns!(),
                " FROM markers WHERE task_id = ?1 ORDER BY id"
            ),
            (&task.0,),
            rows::marker,
        )
        .await
    }

    async fn record_delivery(&self, provider: &str, delivery_id: &str) -> StoreResult<bool> {
        let now = self.now();
        let n = self.write(
            "INSERT INTO webhook_deliveries (provider, delivery_id, received_at) VALUES (?, ?, ?)
                ON CONFLICT DO NOTHING",
            (&provider, &delivery_id, &now.0),
        ).await?;
        Ok(n == 1)
    }
}
