//! The durable job queue on PostgreSQL: enqueue, the gated atomic claim
//! (`orch_claim`, migration 0002), heartbeats, and the end of an attempt.
//!
//! Every write about a running job names its `run_id` and `status = 'running'`:
//! zero rows changed means the caller's attempt is stale (fenced off). An
//! UPDATE that finds the row locked by another waits for it and then
//! re-checks those conditions on the row as committed, so a stale worker
//! racing the reaper changes nothing either.

use super::{PgStore, all, exec, first, foreign_key_violation, returned};
use crate::common::{self, by_id, count_decision, decision_row, limit_maps, millis};
use crate::error::{StoreError, StoreResult};
use crate::model::{ClaimRequest, ReapSummary, RunFinish};
use crate::rows::{self, Columns};
use crate::traits::JobQueue;
use async_trait::async_trait;
use orch_core::retry::{FailureDecision, RetryPolicy, after_failure};
use orch_core::{Job, JobId, JobStatus, NewJob, RunId, Stage, TaskId, Timestamp, WorkerId};
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::time::Duration;

impl PgStore {
    /// Apply the decision for a running attempt that ended badly or was lost.
    async fn end_attempt(
        &self,
        job: JobId,
        run: &RunId,
        error: &str,
        policy: &RetryPolicy,
        lost: bool,
    ) -> StoreResult<Option<FailureDecision>> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        // The job's row is locked until the decision is written; the task's
        // is shared-locked so its stage cannot move under the decision.
        let row = first(
            &mut *tx,
            sqlx::query(
                "SELECT j.attempts, j.max_attempts, t.stage FROM jobs j JOIN tasks t ON t.id = j.task_id
                 WHERE j.id = $1 AND j.run_id = $2 AND j.status = 'running'
                 FOR UPDATE OF j FOR SHARE OF t",
            )
            .bind(job.0)
            .bind(&run.0),
            |r| Ok((r.int("attempts")?, r.int("max_attempts")?, r.text("stage")?)),
        )
        .await?;
        let Some((attempts, max_attempts, stage)) = row else {
            return Ok(None);
        };
        let stage: Stage = stage.parse()?;
        let decision = after_failure(
            attempts.max(0) as u32,
            max_attempts.max(0) as u32,
            stage,
            now,
            policy,
            rand::random::<f64>(),
        );
        let (status, run_after) = decision_row(decision);
        exec(
            &mut *tx,
            sqlx::query(
                "UPDATE jobs SET status = $1, run_after = COALESCE($2, run_after), last_error = $3,
                     lease_expires_at = NULL, updated_at = $4
                 WHERE id = $5",
            )
            .bind(status.as_str())
            .bind(run_after)
            .bind(error)
            .bind(now.0)
            .bind(job.0),
        )
        .await?;
        if lost {
            // Nobody saw the run end: record that, unless its end was recorded.
            exec(
                &mut *tx,
                sqlx::query(
                    "UPDATE runs SET finished_at = $1, outcome = 'unknown', error = $2
                     WHERE run_id = $3 AND finished_at IS NULL",
                )
                .bind(now.0)
                .bind(error)
                .bind(&run.0),
            )
            .await?;
        }
        self.commit(tx).await?;
        Ok(Some(decision))
    }
}

/// A single INSERT of a queued job; the foreign key refuses a job for a
/// missing task. Shared by `enqueue` and the pipeline's atomic `advance`.
pub(super) async fn insert_job(
    conn: &mut PgConnection,
    job: &NewJob,
    now: Timestamp,
) -> StoreResult<Job> {
    let payload = common::json_text(&job.payload, "job payload")?;
    let row = first(
        conn,
        sqlx::query(
            concat!("INSERT INTO jobs (task_id, agent, repo, status, priority, attempts, max_attempts, run_after, payload, created_at, updated_at)
             VALUES ($1, $2, $3, 'queued', $4, 0, $5, $6, $7, $8, $8) RETURNING ", rows::job_columns!()),
        )
        .bind(job.task_id.0)
        .bind(job.agent.as_str())
        .bind(&job.repo)
        .bind(i64::from(job.priority))
        .bind(i64::from(job.max_attempts.max(1)))
        .bind(job.run_after.0)
        .bind(payload)
        .bind(now.0),
        rows::job,
    )
    .await
    .map_err(|e| {
        if foreign_key_violation(&e) {
            StoreError::TaskNotFound(job.task_id)
        } else {
            e
        }
    })?;
    returned(row)
}

#[async_trait]
impl JobQueue for PgStore {
    async fn enqueue(&self, job: NewJob) -> StoreResult<Job> {
        let now = self.now();
        let mut conn = self.pool.acquire().await?;
        let job = insert_job(&mut conn, &job, now).await?;
        self.changes.bump();
        Ok(job)
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id.0);
        first(&self.pool, q, rows::job).await
    }

    async fn jobs_for_task(&self, task: TaskId) -> StoreResult<Vec<Job>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::job_columns!(),
            " FROM jobs WHERE task_id = $1 ORDER BY id"
        ))
        .bind(task.0);
        all(&self.pool, q, rows::job).await
    }

    async fn list_jobs(&self, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::job_columns!(),
            " FROM jobs WHERE ($1::text IS NULL OR status = $1) ORDER BY id LIMIT $2"
        ))
        .bind(status.map(|s| s.as_str()))
        .bind(i64::from(limit));
        all(&self.pool, q, rows::job).await
    }

    async fn claim(&self, req: &ClaimRequest) -> StoreResult<Option<Job>> {
        let now = self.now();
        let run_id = RunId(uuid::Uuid::now_v7().to_string());
        let (per_repo, per_agent) = limit_maps(req);
        // One statement, one round trip: the function picks with FOR UPDATE
        // SKIP LOCKED, evaluates every gate, takes the job and mints its run
        // (see migration 0002 for why limits take an advisory lock).
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::job_columns!(),
            " FROM orch_claim($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10::jsonb)"
        ))
        .bind(&run_id.0)
        .bind(&req.worker.0)
        .bind(now.plus(req.lease).0)
        .bind(now.0)
        .bind(req.gates.task_deps)
        .bind(req.gates.serial)
        .bind(req.limits.global.map(i64::from))
        .bind(per_repo)
        .bind(req.limits.per_repo.map(i64::from))
        .bind(per_agent);
        self.write_one(q, rows::job).await
    }

    async fn heartbeat(&self, job: JobId, run: &RunId, lease: Duration) -> StoreResult<bool> {
        let now = self.now();
        let q = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1, updated_at = $2
             WHERE id = $3 AND run_id = $4 AND status = 'running'",
        )
        .bind(now.0.saturating_add(millis(lease)))
        .bind(now.0)
        .bind(job.0)
        .bind(&run.0);
        Ok(self.write(q).await? == 1)
    }

    async fn complete(&self, job: JobId, run: &RunId) -> StoreResult<bool> {
        Ok(self.write(complete_query(self.now(), job, run)).await? == 1)
    }

    async fn complete_run(&self, job: JobId, run: &RunId, f: &RunFinish) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let ours = exec(&mut *tx, complete_query(now, job, run)).await? == 1;
        let fenced;
        let finish = if ours {
            f
        } else {
            fenced = f.fenced();
            &fenced
        };
        exec(&mut *tx, super::runs::finish_run_query(now, run, finish)).await?;
        self.commit(tx).await?;
        Ok(ours)
    }

    async fn fail(
        &self,
        job: JobId,
        run: &RunId,
        error: &str,
        policy: &RetryPolicy,
    ) -> StoreResult<Option<FailureDecision>> {
        self.end_attempt(job, run, error, policy, false).await
    }

    async fn give_up(&self, job: JobId, run: &RunId, error: &str) -> StoreResult<bool> {
        let now = self.now();
        let q = sqlx::query(
            "UPDATE jobs SET status = 'failed', lease_expires_at = NULL, last_error = $1, updated_at = $2
             WHERE id = $3 AND run_id = $4 AND status = 'running'",
        )
        .bind(error)
        .bind(now.0)
        .bind(job.0)
        .bind(&run.0);
        Ok(self.write(q).await? == 1)
    }

    async fn cancel_jobs_for_task(&self, task: TaskId, only_queued: bool) -> StoreResult<u64> {
        let now = self.now();
        let q = sqlx::query(
            "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = $1
             WHERE task_id = $2 AND (status = 'queued' OR (NOT $3 AND status = 'running'))",
        )
        .bind(now.0)
        .bind(task.0)
        .bind(only_queued);
        self.write(q).await
    }

    async fn running_jobs(&self, worker: Option<&WorkerId>) -> StoreResult<Vec<Job>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::job_columns!(),
            " FROM jobs WHERE status = 'running' AND ($1::text IS NULL OR worker_id = $1)"
        ))
        .bind(worker.map(|w| w.0.as_str()));
        Ok(by_id(all(&self.pool, q, rows::job).await?))
    }

    async fn expired_jobs(&self) -> StoreResult<Vec<Job>> {
        let now = self.now();
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::job_columns!(),
            " FROM jobs WHERE status = 'running' AND lease_expires_at < $1"
        ))
        .bind(now.0);
        Ok(by_id(all(&self.pool, q, rows::job).await?))
    }

    async fn reap_unknown_outcome(
        &self,
        job: JobId,
        run: &RunId,
        reason: &str,
        policy: &RetryPolicy,
    ) -> StoreResult<Option<FailureDecision>> {
        self.end_attempt(job, run, reason, policy, true).await
    }

    async fn requeue_running_jobs(
        &self,
        worker: Option<&WorkerId>,
        policy: &RetryPolicy,
    ) -> StoreResult<ReapSummary> {
        let mut summary = ReapSummary::default();
        for job in self.running_jobs(worker).await? {
            let Some(run) = job.run_id.as_ref() else {
                continue;
            };
            let reason = "orchestrator restarted while the job was running";
            let decision = self.end_attempt(job.id, run, reason, policy, true).await?;
            count_decision(&mut summary, decision);
        }
        Ok(summary)
    }

    async fn job_counts(&self) -> StoreResult<BTreeMap<JobStatus, u64>> {
        let q = sqlx::query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status");
        let rows = all(&self.pool, q, |r| Ok((r.text("status")?, r.int("n")?))).await?;
        common::job_counts(rows)
    }
}

/// Running → succeeded, for the caller's run only (fenced).
fn complete_query(now: Timestamp, job: JobId, run: &RunId) -> super::PgQuery<'_> {
    sqlx::query(
        "UPDATE jobs SET status = 'succeeded', lease_expires_at = NULL, last_error = NULL, updated_at = $1
         WHERE id = $2 AND run_id = $3 AND status = 'running'",
    )
    .bind(now.0)
    .bind(job.0)
    .bind(&run.0)
}
