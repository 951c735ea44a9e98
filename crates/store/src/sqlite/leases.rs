//! Per-repo merge leases: one holder from the merge gate through deploy → done.
//!
//! A lease held by a task that is already terminal counts as free, so a crash
//! between "task done" and "lease released" can never wedge a repo.

use super::conn::first;
use super::{SqliteStore, rows};
use crate::common::lease_answer;
use crate::error::StoreResult;
use crate::model::{LeaseAcquire, MergeLease};
use crate::traits::LeaseStore;
use async_trait::async_trait;
use orch_core::TaskId;
use rusqlite::params;

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_merge_lease(
        &self,
        repo: &str,
        task: TaskId,
        branch: &str,
    ) -> StoreResult<LeaseAcquire> {
        let now = self.now();
        let (epoch, current) = self.writer.tx(|conn| {
            let current = first(
                conn,
                concat!("SELECT ", crate::rows::lease_columns!(), " FROM merge_leases WHERE repo = ? AND holder_task_id IS NOT NULL"),
                params![repo],
                rows::lease,
            )?;
            if let Some(l) = &current
                && l.holder_task == task
            {
                return Ok((Some(l.epoch), current));
            }
            let epoch: Option<i64> = first(
                conn,
                "INSERT INTO merge_leases (repo, holder_task_id, holder_branch, epoch, acquired_at, updated_at)
                 VALUES (?1, ?2, ?3, 1, ?4, ?4)
                 ON CONFLICT (repo) DO UPDATE SET
                     holder_task_id = excluded.holder_task_id, holder_branch = excluded.holder_branch,
                     epoch = merge_leases.epoch + 1, acquired_at = excluded.acquired_at,
                     updated_at = excluded.updated_at
                 WHERE merge_leases.holder_task_id IS NULL
                    OR merge_leases.holder_task_id IN
                       (SELECT id FROM tasks WHERE stage IN ('done', 'cancelled', 'failed'))
                 RETURNING epoch",
                params![repo, task.0, branch, now.0],
                |r| Ok(r.get(0)?),
            )?;
            Ok((epoch, current))
        }).await?;
        Ok(lease_answer(repo, epoch, current, task, branch))
    }

    async fn merge_lease(&self, repo: &str) -> StoreResult<Option<MergeLease>> {
        self.read_one(
            concat!(
                "SELECT ",
                crate::rows::lease_columns!(),
                " FROM merge_leases l WHERE l.repo = ? AND EXISTS (
                   SELECT 1 FROM tasks t WHERE t.id = l.holder_task_id
                   AND t.stage NOT IN ('done', 'cancelled', 'failed'))"
            ),
            (&repo,),
            rows::lease,
        )
        .await
    }

    async fn merge_leases(&self) -> StoreResult<Vec<MergeLease>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::lease_columns!(),
                " FROM merge_leases l WHERE EXISTS (
                   SELECT 1 FROM tasks t WHERE t.id = l.holder_task_id
                   AND t.stage NOT IN ('done', 'cancelled', 'failed'))
                 ORDER BY l.repo"
            ),
            (),
            rows::lease,
        )
        .await
    }

    async fn release_merge_lease(&self, repo: &str, task: TaskId) -> StoreResult<bool> {
        let now = self.now();
        let n = self.write(
            "UPDATE merge_leases SET holder_task_id = NULL, holder_branch = NULL, updated_at = ?
                WHERE repo = ? AND holder_task_id = ?",
            (&now.0, &repo, &task.0),
        )
            .await?;
        Ok(n == 1)
    }
}
