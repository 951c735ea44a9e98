//! Runs: the process facts and outcome of each attempt, and usage per task.

use super::{PgQuery, PgStore, all, first};
use crate::common::{agent_work_kinds, tokens};
use crate::error::StoreResult;
use crate::model::{RepoUsage, RunFinish, RunProcess};
use crate::rows::{self, Columns};
use crate::traits::RunStore;
use async_trait::async_trait;
use orch_core::run::{Run, Usage};
use orch_core::{RunId, TaskId, Timestamp};
use std::collections::BTreeMap;

#[async_trait]
impl RunStore for PgStore {
    async fn record_run_process(&self, run: &RunId, p: &RunProcess) -> StoreResult<bool> {
        let q = sqlx::query(
            "UPDATE runs SET pid = $1, pgid = $2, proc_start_ticks = $3, log_path = $4
             WHERE run_id = $5 AND finished_at IS NULL",
        )
        .bind(i64::from(p.pid))
        .bind(i64::from(p.pgid))
        .bind(i64::try_from(p.proc_start_ticks).unwrap_or(i64::MAX))
        .bind(&p.log_path)
        .bind(&run.0);
        Ok(self.write(q).await? == 1)
    }

    async fn finish_run(&self, run: &RunId, f: &RunFinish) -> StoreResult<bool> {
        Ok(self.write(finish_run_query(self.now(), run, f)).await? == 1)
    }

    async fn get_run(&self, run: &RunId) -> StoreResult<Option<Run>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::run_columns!(),
            " FROM runs WHERE run_id = $1"
        ))
        .bind(&run.0);
        first(&self.pool, q, rows::run).await
    }

    async fn runs_for_task(&self, task: TaskId) -> StoreResult<Vec<Run>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::run_columns!(),
            " FROM runs WHERE task_id = $1 ORDER BY started_at, run_id COLLATE \"C\""
        ))
        .bind(task.0);
        all(&self.pool, q, rows::run).await
    }

    async fn task_usage(&self, task: TaskId) -> StoreResult<Usage> {
        // Agent wall time (the budget's): finished agent runs by duration,
        // plus the start of the one in progress — the run of the task's
        // running job, never a run left unfinished by a crash. (SUM of a
        // BIGINT is NUMERIC in PostgreSQL: cast back.)
        let agents = agent_work_kinds();
        let sql = format!(
            "SELECT COALESCE(SUM(input_tokens), 0)::bigint AS i, COALESCE(SUM(output_tokens), 0)::bigint AS o,
                    COALESCE(SUM(cost_usd), 0.0)::float8 AS c,
                    COALESCE(SUM(CASE WHEN agent IN ({agents}) AND finished_at IS NOT NULL
                                      THEN GREATEST(finished_at - started_at, 0) END), 0)::bigint AS wall,
                    (SELECT MIN(r.started_at) FROM runs r
                       JOIN jobs j ON j.run_id = r.run_id AND j.status = 'running'
                      WHERE r.task_id = $1 AND r.finished_at IS NULL AND r.agent IN ({agents})) AS running
               FROM runs WHERE task_id = $1"
        );
        let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(task.0);
        let sums = first(&self.pool, q, |r| {
            Ok((
                r.int("i")?,
                r.int("o")?,
                r.real("c")?,
                r.int("wall")?,
                r.opt_int("running")?,
            ))
        });
        let (i, o, c, wall, running) = sums.await?.unwrap_or((0, 0, 0.0, 0, None));
        Ok(Usage {
            input_tokens: i.max(0) as u64,
            output_tokens: o.max(0) as u64,
            cost_usd: c,
            agent_wall_ms: wall.max(0) as u64,
            agent_running_since: running.map(Timestamp),
        })
    }

    async fn usage_by_repo(&self, since: Timestamp) -> StoreResult<Vec<RepoUsage>> {
        let q = sqlx::query(
            "SELECT t.repo, COUNT(*) AS runs, COUNT(*) FILTER (WHERE r.started_at >= $1) AS since,
                    COALESCE(SUM(r.input_tokens), 0)::bigint AS i,
                    COALESCE(SUM(r.output_tokens), 0)::bigint AS o,
                    COALESCE(SUM(r.cost_usd), 0.0)::float8 AS c
             FROM runs r JOIN tasks t ON t.id = r.task_id
             GROUP BY t.repo ORDER BY t.repo COLLATE \"C\"",
        )
        .bind(since.0);
        let n = |v: i64| v.max(0) as u64;
        all(&self.pool, q, |r| {
            Ok(RepoUsage {
                repo: r.text("repo")?,
                runs: n(r.int("runs")?),
                runs_since: n(r.int("since")?),
                usage: Usage {
                    input_tokens: n(r.int("i")?),
                    output_tokens: n(r.int("o")?),
                    cost_usd: r.real("c")?,
                    ..Usage::default()
                },
            })
        })
        .await
    }

    async fn usage_by_task(&self, from: TaskId) -> StoreResult<BTreeMap<TaskId, Usage>> {
        let q = sqlx::query(
            "SELECT task_id, COALESCE(SUM(input_tokens), 0)::bigint AS i,
                    COALESCE(SUM(output_tokens), 0)::bigint AS o,
                    COALESCE(SUM(cost_usd), 0.0)::float8 AS c
             FROM runs WHERE task_id >= $1 GROUP BY task_id",
        )
        .bind(from.0);
        let n = |v: i64| v.max(0) as u64;
        let rows = all(&self.pool, q, |r| {
            Ok((
                TaskId(r.int("task_id")?),
                Usage {
                    input_tokens: n(r.int("i")?),
                    output_tokens: n(r.int("o")?),
                    cost_usd: r.real("c")?,
                    ..Usage::default()
                },
            ))
        })
        .await?;
        Ok(rows.into_iter().collect())
    }
}

/// Record a run's end (on the pool, or in a transaction); only the first
/// finish counts: 0 rows changed when its end was recorded.
pub(super) fn finish_run_query<'q>(
    now: Timestamp,
    run: &'q RunId,
    f: &'q RunFinish,
) -> PgQuery<'q> {
    sqlx::query(
        "UPDATE runs SET finished_at = $1, outcome = $2, exit_code = $3, signal = $4,
            input_tokens = $5, output_tokens = $6, cost_usd = $7, session_id = $8, error = $9,
            final_text = $10
         WHERE run_id = $11 AND finished_at IS NULL",
    )
    .bind(now.0)
    .bind(f.outcome.as_str())
    .bind(f.exit_code.map(i64::from))
    .bind(f.signal.map(i64::from))
    .bind(tokens(f.usage.input_tokens))
    .bind(tokens(f.usage.output_tokens))
    .bind(f.usage.cost_usd)
    .bind(&f.session_id)
    .bind(&f.error)
    .bind(&f.final_text)
    .bind(&run.0)
}
