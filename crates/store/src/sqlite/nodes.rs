//! Nodes: who is alive, who drains, who leads (issue 11).

use super::SqliteStore;
use super::conn::{exec, first};
use crate::common;
use crate::error::{StoreError, StoreResult};
use crate::model::{Leadership, Node, NodeReport, TaskLock};
use crate::rows::{self, leader_columns, node_columns};
use crate::traits::NodeStore;
use async_trait::async_trait;
use rusqlite::params;
use std::time::Duration;

#[async_trait]
impl NodeStore for SqliteStore {
    async fn node_heartbeat(&self, report: NodeReport<'_>) -> StoreResult<Node> {
        let now = self.now();
        let NodeReport {
            name,
            boot_id,
            claims_stopped,
            api_url,
            machine,
        } = report;
        let stopped = i64::from(claims_stopped);
        self.writer
            .tx(|conn| {
                exec(
                    conn,
                    "INSERT INTO nodes (name, boot_id, started_at, heartbeat_at, claims_stopped, api_url, machine)
                     VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)
                     ON CONFLICT (name) DO UPDATE SET
                       started_at = CASE WHEN boot_id = ?2 THEN started_at ELSE ?3 END,
                       boot_id = ?2, heartbeat_at = ?3, claims_stopped = ?4, api_url = ?5,
                       machine = ?6",
                    params![name, boot_id, now.0, stopped, api_url, machine],
                )?;
                first(
                    conn,
                    concat!("SELECT ", node_columns!(), " FROM nodes WHERE name = ?"),
                    params![name],
                    |r| rows::node(r),
                )?
                .ok_or_else(|| StoreError::Corrupt(format!("node {name} vanished")))
            })
            .await
    }

    async fn nodes(&self) -> StoreResult<Vec<Node>> {
        self.read_all(
            concat!("SELECT ", node_columns!(), " FROM nodes ORDER BY name"),
            (),
            |r| rows::node(r),
        )
        .await
    }

    async fn set_node_draining(&self, name: &str, draining: bool) -> StoreResult<bool> {
        let n = self
            .write(
                "UPDATE nodes SET draining = ?1,
                   claims_stopped = CASE WHEN ?1 = 0 THEN 0 ELSE claims_stopped END
                 WHERE name = ?2",
                (&i64::from(draining), &name),
            )
            .await?;
        Ok(n == 1)
    }

    async fn lead(&self, name: &str, ttl: Duration) -> StoreResult<Option<i64>> {
        let now = self.now();
        self.writer
            .tx(|conn| {
                exec(
                    conn,
                    "INSERT INTO leader (id, node, epoch, expires_at) VALUES (1, '', 0, 0)
                     ON CONFLICT (id) DO NOTHING",
                    [],
                )?;
                let held = first(
                    conn,
                    concat!("SELECT ", leader_columns!(), " FROM leader WHERE id = 1"),
                    [],
                    |r| rows::leadership(r),
                )?
                .ok_or_else(|| StoreError::Corrupt("the leader row vanished".into()))?;
                let Some(next) =
                    common::lead(&held.node, held.epoch, held.expires_at.0, name, now.0, ttl)
                else {
                    return Ok(None);
                };
                exec(
                    conn,
                    "UPDATE leader SET node = ?1, epoch = ?2, expires_at = ?3 WHERE id = 1",
                    params![next.node, next.epoch, next.expires_at.0],
                )?;
                Ok(Some(next.epoch))
            })
            .await
    }

    async fn resign(&self, name: &str) -> StoreResult<bool> {
        let n = self
            .write(
                "UPDATE leader SET expires_at = 0 WHERE id = 1 AND node = ?1",
                (&name,),
            )
            .await?;
        Ok(n == 1)
    }

    async fn leader(&self) -> StoreResult<Option<Leadership>> {
        self.read_one(
            concat!(
                "SELECT ",
                leader_columns!(),
                " FROM leader WHERE id = 1 AND node <> ''"
            ),
            (),
            |r| rows::leadership(r),
        )
        .await
    }

    async fn try_lock_task(&self, _task: orch_core::TaskId) -> StoreResult<Option<TaskLock>> {
        Ok(Some(TaskLock::uncontended()))
    }
}
