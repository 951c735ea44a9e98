//! Disk care: each task's worktree size and cleanups (issue 12).

use super::{PgStore, all};
use crate::error::StoreResult;
use crate::model::WorktreeDisk;
use crate::rows;
use crate::traits::DiskStore;
use async_trait::async_trait;
use orch_core::disk::WorktreeSize;
use orch_core::{TaskId, Timestamp};

/// The row with its task's facts, then `$tail`: SQL text known at compile
/// time, never built from values.
macro_rules! select {
    ($tail:literal) => {
        concat!(
            "SELECT d.task_id, d.bytes, d.complete, d.measured_at, d.cleaned_at, d.freed_bytes,
        t.repo, t.branch, t.work_item_id, t.stage
   FROM worktree_disk d JOIN tasks t ON t.id = d.task_id",
            $tail
        )
    };
}

fn bytes(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[async_trait]
impl DiskStore for PgStore {
    async fn record_worktree_size(&self, task: TaskId, size: WorktreeSize) -> StoreResult<()> {
        let q = sqlx::query(
            "INSERT INTO worktree_disk (task_id, bytes, complete, measured_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (task_id) DO UPDATE SET bytes = $2, complete = $3, measured_at = $4",
        )
        .bind(task.0)
        .bind(bytes(size.bytes))
        .bind(i64::from(size.complete))
        .bind(self.now().0);
        self.write(q).await?;
        Ok(())
    }

    async fn record_worktree_cleanup(
        &self,
        task: TaskId,
        freed: u64,
        size: WorktreeSize,
    ) -> StoreResult<bool> {
        let q = sqlx::query(
            "UPDATE worktree_disk SET cleaned_at = $1, freed_bytes = $2, bytes = $3, complete = $4
             WHERE task_id = $5",
        )
        .bind(self.now().0)
        .bind(bytes(freed))
        .bind(bytes(size.bytes))
        .bind(i64::from(size.complete))
        .bind(task.0);
        Ok(self.write(q).await? == 1)
    }

    async fn worktree_disks(&self) -> StoreResult<Vec<WorktreeDisk>> {
        let sql = select!(" ORDER BY d.task_id");
        all(&self.pool, sqlx::query(sql), rows::worktree_disk).await
    }

    async fn idle_worktrees(&self, idle_since: Timestamp) -> StoreResult<Vec<WorktreeDisk>> {
        let sql = select!(
            "
             WHERE d.measured_at <= $1
               AND (d.cleaned_at IS NULL OR d.cleaned_at < d.measured_at)
               AND t.stage NOT IN ('done', 'cancelled', 'failed')
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task_id = d.task_id
                                 AND j.status IN ('queued', 'running'))
             ORDER BY d.task_id"
        );
        all(&self.pool, sqlx::query(sql).bind(idle_since.0), |r| {
            rows::worktree_disk(r)
        })
        .await
    }
}
