//! Per-repo merge leases: one holder from the merge gate through deploy → done.
//!
//! A lease held by a task that is already terminal counts as free, so a crash
//! between "task done" and "lease released" can never wedge a repo.

use super::{PgStore, all, first};
use crate::common::lease_answer;
use crate::error::StoreResult;
use crate::model::{LeaseAcquire, MergeLease};
use crate::rows::{self, Columns};
use crate::traits::LeaseStore;
use async_trait::async_trait;
use orch_core::TaskId;

#[async_trait]
impl LeaseStore for PgStore {
    async fn acquire_merge_lease(
        &self,
        repo: &str,
        task: TaskId,
        branch: &str,
    ) -> StoreResult<LeaseAcquire> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let holder = sqlx::query(concat!(
            "SELECT ",
            rows::lease_columns!(),
            " FROM merge_leases WHERE repo = $1 AND holder_task_id IS NOT NULL FOR UPDATE"
        ))
        .bind(repo);
        let current = first(&mut *tx, holder, rows::lease).await?;
        if let Some(l) = &current
            && l.holder_task == task
        {
            // Held already: only checked, nothing to signal.
            tx.commit().await?;
            return Ok(lease_answer(repo, Some(l.epoch), current, task, branch));
        }
        // The upsert locks the row and re-checks its WHERE on the row as
        // committed: of two tasks racing for a free lease, one gets it.
        let q = sqlx::query(
            "INSERT INTO merge_leases (repo, holder_task_id, holder_branch, epoch, acquired_at, updated_at)
             VALUES ($1, $2, $3, 1, $4, $4)
             ON CONFLICT (repo) DO UPDATE SET
                 holder_task_id = excluded.holder_task_id, holder_branch = excluded.holder_branch,
                 epoch = merge_leases.epoch + 1, acquired_at = excluded.acquired_at,
                 updated_at = excluded.updated_at
             WHERE merge_leases.holder_task_id IS NULL
                OR merge_leases.holder_task_id IN
                   (SELECT id FROM tasks WHERE stage IN ('done', 'cancelled', 'failed'))
             RETURNING epoch",
        )
        .bind(repo)
        .bind(task.0)
        .bind(branch)
        .bind(now.0);
        let epoch = first(&mut *tx, q, |r| r.int("epoch")).await?;
        // Lost a race for a lease that looked free: name the winner.
        let current = match (epoch, current) {
            (None, None) => {
                let holder = sqlx::query(concat!(
                    "SELECT ",
                    rows::lease_columns!(),
                    " FROM merge_leases WHERE repo = $1 AND holder_task_id IS NOT NULL"
                ))
                .bind(repo);
                first(&mut *tx, holder, rows::lease).await?
            }
            (_, current) => current,
        };
        self.commit(tx).await?;
        Ok(lease_answer(repo, epoch, current, task, branch))
    }

    async fn merge_lease(&self, repo: &str) -> StoreResult<Option<MergeLease>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::lease_columns!(),
            " FROM merge_leases l WHERE l.repo = $1 AND EXISTS (
                   SELECT 1 FROM tasks t WHERE t.id = l.holder_task_id
                   AND t.stage NOT IN ('done', 'cancelled', 'failed'))"
        ))
        .bind(repo);
        first(&self.pool, q, rows::lease).await
    }

    async fn merge_leases(&self) -> StoreResult<Vec<MergeLease>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::lease_columns!(),
            " FROM merge_leases l WHERE EXISTS (
                   SELECT 1 FROM tasks t WHERE t.id = l.holder_task_id
                   AND t.stage NOT IN ('done', 'cancelled', 'failed'))
                 ORDER BY l.repo COLLATE \"C\""
        ));
        all(&self.pool, q, rows::lease).await
    }

    async fn release_merge_lease(&self, repo: &str, task: TaskId) -> StoreResult<bool> {
        let now = self.now();
        let q = sqlx::query(
            "UPDATE merge_leases SET holder_task_id = NULL, holder_branch = NULL, updated_at = $1
             WHERE repo = $2 AND holder_task_id = $3",
        )
        .bind(now.0)
        .bind(repo)
        .bind(task.0);
        Ok(self.write(q).await? == 1)
    }
}
