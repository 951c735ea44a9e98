//! The durable job queue: enqueue, the gated atomic claim, heartbeats, and the
//! end of an attempt (complete, fail with backoff, cancel, reap).
//!
//! Every write about a running job names its `run_id` and `status = 'running'`:
//! zero rows changed means the caller's attempt is stale (fenced off).

use super::conn::{exec, first, is_foreign_key_violation};
use super::{SqliteStore, rows};
use crate::common::{self, by_id, count_decision, decision_row, limit_maps, millis};
use crate::error::{StoreError, StoreResult};
use crate::model::{ClaimRequest, ReapSummary, RunFinish};
use crate::traits::JobQueue;
use async_trait::async_trait;
use orch_core::retry::{FailureDecision, RetryPolicy, after_failure};
use orch_core::{Job, JobId, JobStatus, NewJob, RunId, Stage, TaskId, Timestamp, WorkerId};
use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use std::time::Duration;

/// Running → succeeded, for the caller's run only (fenced).
const COMPLETE: &str = "UPDATE jobs SET status = 'succeeded', lease_expires_at = NULL, last_error = NULL, updated_at = ?1
     WHERE id = ?2 AND run_id = ?3 AND status = 'running'";

/// The claim: one statement picks and takes the job, with every gate of R-11 in
/// its WHERE clause (mirrors `orch_core::gates::blocked_by`, which the property
/// tests compare it against).
const CLAIM: &str = concat!(
    "
UPDATE jobs
SET status = 'running', run_id = ?1, worker_id = ?2, attempts = attempts + 1,
    lease_expires_at = ?3, updated_at = ?4
WHERE id = (
    SELECT j.id FROM jobs j
    WHERE j.status = 'queued' AND j.run_after <= ?4
      AND NOT EXISTS (SELECT 1 FROM tasks t
                      WHERE t.id = j.task_id AND t.stage IN ('done', 'cancelled', 'failed'))
      AND (?5 = 0 OR NOT EXISTS (
            SELECT 1 FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on
            WHERE d.task_id = j.task_id AND dt.stage <> 'done'))
      AND (?6 = 0 OR j.agent NOT IN ('merger', 'deployer') OR NOT EXISTS (
            SELECT 1 FROM merge_leases l JOIN tasks lt ON lt.id = l.holder_task_id
            WHERE l.repo = j.repo AND l.holder_task_id <> j.task_id
              AND lt.stage NOT IN ('done', 'cancelled', 'failed')))
      AND (?7 IS NULL OR (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running') < ?7)
      AND (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.repo = j.repo)
          < COALESCE(json_extract(?8, '$.' || json_quote(j.repo)), ?9, 9223372036854775807)
      AND (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' AND r.agent = j.agent)
          < COALESCE(json_extract(?10, '$.' || j.agent), 9223372036854775807)
    ORDER BY j.priority DESC, j.run_after, j.id
    LIMIT 1)
RETURNING ",
    crate::rows::job_columns!()
);

impl SqliteStore {
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
        self.writer.tx(|conn| {
            let row = first(
                conn,
                "SELECT j.attempts, j.max_attempts, t.stage FROM jobs j JOIN tasks t ON t.id = j.task_id
                 WHERE j.id = ?1 AND j.run_id = ?2 AND j.status = 'running'",
                params![job.0, run.0],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?)),
            )?;
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
                conn,
                "UPDATE jobs SET status = ?1, run_after = COALESCE(?2, run_after), last_error = ?3,
                     lease_expires_at = NULL, updated_at = ?4
                 WHERE id = ?5",
                params![status.as_str(), run_after, error, now.0, job.0],
            )?;
            if lost {
                // Nobody saw the run end: record that, unless its end was recorded.
                exec(
                    conn,
                    "UPDATE runs SET finished_at = ?1, outcome = 'unknown', error = ?2
                     WHERE run_id = ?3 AND finished_at IS NULL",
                    params![now.0, error, run.0],
                )?;
            }
            Ok(Some(decision))
        }).await
    }
}

/// A single INSERT of a queued job; the foreign key refuses a job for a
/// missing task. Shared by `enqueue` and the pipeline's atomic `advance`.
pub(super) fn insert_job(conn: &Connection, job: &NewJob, now: Timestamp) -> StoreResult<Job> {
    let payload = common::json_text(&job.payload, "job payload")?;
    first(
        conn,
        concat!("INSERT INTO jobs (task_id, agent, repo, status, priority, attempts, max_attempts, run_after, payload, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'queued', ?4, 0, ?5, ?6, ?7, ?8, ?8) RETURNING ", crate::rows::job_columns!()),
        params![
            job.task_id.0,
            job.agent.as_str(),
            job.repo,
            job.priority,
            i64::from(job.max_attempts.max(1)),
            job.run_after.0,
            payload,
            now.0
        ],
        rows::job,
    )
    .map_err(|e| {
        if is_foreign_key_violation(&e) {
            StoreError::TaskNotFound(job.task_id)
        } else {
            e
        }
    })?
    .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))
}

#[async_trait]
impl JobQueue for SqliteStore {
    async fn enqueue(&self, job: NewJob) -> StoreResult<Job> {
        let now = self.now();
        self.writer.run(|conn| insert_job(conn, &job, now)).await
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.read_one(
            concat!(
                "SELECT ",
                crate::rows::job_columns!(),
                " FROM jobs WHERE id = ?"
            ),
            (&id.0,),
            rows::job,
        )
        .await
    }

    async fn jobs_for_task(&self, task: TaskId) -> StoreResult<Vec<Job>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::job_columns!(),
                " FROM jobs WHERE task_id = ? ORDER BY id"
            ),
            (&task.0,),
            rows::job,
        )
        .await
    }

    async fn list_jobs(&self, status: Option<JobStatus>, limit: u32) -> StoreResult<Vec<Job>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::job_columns!(),
                " FROM jobs WHERE (?1 IS NULL OR status = ?1) ORDER BY id LIMIT ?2"
            ),
            (&status.map(|s| s.as_str()), &i64::from(limit)),
            rows::job,
        )
        .await
    }

    async fn claim(&self, req: &ClaimRequest) -> StoreResult<Option<Job>> {
        let now = self.now();
        let run_id = RunId(uuid::Uuid::now_v7().to_string());
        let (per_repo, per_agent) = limit_maps(req);
        // One statement: SQLite takes the write lock at its first step, so the
        // pick and the take cannot interleave with another writer; the trigger
        // `jobs_claim_mints_run` inserts the run row within it.
        self.writer
            .run(|conn| {
                first(
                    conn,
                    CLAIM,
                    params![
                        run_id.0,
                        req.worker.0,
                        now.plus(req.lease).0,
                        now.0,
                        req.gates.task_deps,
                        req.gates.serial,
                        req.limits.global.map(i64::from),
                        per_repo,
                        req.limits.per_repo.map(i64::from),
                        per_agent
                    ],
                    rows::job,
                )
            })
            .await
    }

    async fn heartbeat(&self, job: JobId, run: &RunId, lease: Duration) -> StoreResult<bool> {
        let now = self.now();
        let n = self
            .write(
                "UPDATE jobs SET lease_expires_at = ?1, updated_at = ?2
                 WHERE id = ?3 AND run_id = ?4 AND status = 'running'",
                (&now.0.saturating_add(millis(lease)), &now.0, &job.0, &run.0),
            )
            .await?;
        Ok(n == 1)
    }

    async fn complete(&self, job: JobId, run: &RunId) -> StoreResult<bool> {
        let now = self.now();
        let n = self.write(COMPLETE, (&now.0, &job.0, &run.0)).await?;
        Ok(n == 1)
    }

    async fn complete_run(&self, job: JobId, run: &RunId, f: &RunFinish) -> StoreResult<bool> {
        let now = self.now();
        self.writer
            .tx(|conn| {
                let ours = exec(conn, COMPLETE, params![now.0, job.0, run.0])? == 1;
                let finish = if ours { f.clone() } else { f.fenced() };
                super::runs::finish_run_in(conn, now, run, &finish)?;
                Ok(ours)
            })
            .await
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
        let n = self.write(
            "UPDATE jobs SET status = 'failed', lease_expires_at = NULL, last_error = ?1, updated_at = ?2
                WHERE id = ?3 AND run_id = ?4 AND status = 'running'",
            (&error, &now.0, &job.0, &run.0),
        ).await?;
        Ok(n == 1)
    }

    async fn cancel_jobs_for_task(&self, task: TaskId, only_queued: bool) -> StoreResult<u64> {
        let now = self.now();
        let n = self
            .write(
                "UPDATE jobs SET status = 'cancelled', lease_expires_at = NULL, updated_at = ?1
                 WHERE task_id = ?2 AND (status = 'queued' OR (?3 = 0 AND status = 'running'))",
                (&now.0, &task.0, &only_queued),
            )
            .await?;
        Ok(n as u64)
    }

    async fn running_jobs(&self, worker: Option<&WorkerId>) -> StoreResult<Vec<Job>> {
        let worker = worker.map(|w| w.0.as_str());
        let jobs = self.read_all(
            concat!(
                "SELECT ",
                crate::rows::job_columns!(),
                " FROM jobs WHERE status = 'running' AND (?1 IS NULL OR worker_id = ?1)"
            ),
            (&worker,),
            rows::job,
        );
        Ok(by_id(jobs.await?))
    }

    async fn expired_jobs(&self) -> StoreResult<Vec<Job>> {
        let now = self.now();
        let jobs = self.read_all(
            concat!(
                "SELECT ",
                crate::rows::job_columns!(),
                " FROM jobs WHERE status = 'running' AND lease_expires_at < ?"
            ),
            (&now.0,),
            rows::job,
        );
        Ok(by_id(jobs.await?))
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
        let rows: Vec<(String, i64)> = self
            .read_all(
                "SELECT status, COUNT(*) FROM jobs GROUP BY status",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .await?;
        common::job_counts(rows)
    }
}
