//! Nodes: who is alive, who drains, who leads (issue 11).

use super::{PgStore, all, exec, first};
use crate::common;
use crate::error::{StoreError, StoreResult};
use crate::model::{Leadership, Node, NodeReport, TaskLock};
use crate::rows;
use crate::traits::NodeStore;
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
impl NodeStore for PgStore {
    async fn node_heartbeat(&self, report: NodeReport<'_>) -> StoreResult<Node> {
        let name = report.name;
        let q = sqlx::query(concat!(
            "INSERT INTO nodes (name, boot_id, started_at, heartbeat_at, claims_stopped, api_url, machine)
             VALUES ($1, $2, $3, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET
               started_at = CASE WHEN nodes.boot_id = $2 THEN nodes.started_at ELSE $3 END,
               boot_id = $2, heartbeat_at = $3, claims_stopped = $4, api_url = $5, machine = $6
             RETURNING ",
            rows::node_columns!()
        ))
        .bind(name)
        .bind(report.boot_id)
        .bind(self.now().0)
        .bind(i64::from(report.claims_stopped))
        .bind(report.api_url)
        .bind(report.machine);
        self.write_one(q, rows::node)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("node {name} vanished")))
    }

    async fn nodes(&self) -> StoreResult<Vec<Node>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::node_columns!(),
            " FROM nodes ORDER BY name"
        ));
        all(&self.pool, q, rows::node).await
    }

    async fn set_node_draining(&self, name: &str, draining: bool) -> StoreResult<bool> {
        let q = sqlx::query(
            "UPDATE nodes SET draining = $1,
               claims_stopped = CASE WHEN $1 = 0 THEN 0 ELSE claims_stopped END
             WHERE name = $2",
        )
        .bind(i64::from(draining))
        .bind(name);
        Ok(self.write(q).await? == 1)
    }

    async fn lead(&self, name: &str, ttl: Duration) -> StoreResult<Option<i64>> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let seed = sqlx::query(
            "INSERT INTO leader (id, node, epoch, expires_at) VALUES (1, '', 0, 0)
             ON CONFLICT (id) DO NOTHING",
        );
        exec(&mut *tx, seed).await?;
        // The row lock makes two nodes asking at once decide one after the other.
        let held = sqlx::query(concat!(
            "SELECT ",
            rows::leader_columns!(),
            " FROM leader WHERE id = 1 FOR UPDATE"
        ));
        let held = first(&mut *tx, held, rows::leadership)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the leader row vanished".into()))?;
        let Some(next) = common::lead(&held.node, held.epoch, held.expires_at.0, name, now.0, ttl)
        else {
            // Another node leads: only checked (the seed inserts nothing
            // once the row exists), nothing to signal.
            tx.commit().await?;
            return Ok(None);
        };
        let q =
            sqlx::query("UPDATE leader SET node = $1, epoch = $2, expires_at = $3 WHERE id = 1")
                .bind(&next.node)
                .bind(next.epoch)
                .bind(next.expires_at.0);
        exec(&mut *tx, q).await?;
        self.commit(tx).await?;
        Ok(Some(next.epoch))
    }

    async fn resign(&self, name: &str) -> StoreResult<bool> {
        let q =
            sqlx::query("UPDATE leader SET expires_at = 0 WHERE id = 1 AND node = $1").bind(name);
        Ok(self.write(q).await? == 1)
    }

    async fn leader(&self) -> StoreResult<Option<Leadership>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::leader_columns!(),
            " FROM leader WHERE id = 1 AND node <> ''"
        ));
        first(&self.pool, q, rows::leadership).await
    }

    async fn try_lock_task(&self, task: orch_core::TaskId) -> StoreResult<Option<TaskLock>> {
        let mut tx = self.pool.begin().await?;
        // Keyed by this schema's `tasks` table and the task: the schemas of
        // one database (other installations, tests) never contend.
        let taken: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_xact_lock('tasks'::regclass::oid::int, $1::int)",
        )
        .bind(task.0)
        .fetch_one(&mut *tx)
        .await?;
        if !taken {
            tx.rollback().await?;
            return Ok(None);
        }
        Ok(Some(TaskLock { held: Some(tx) }))
    }
}
