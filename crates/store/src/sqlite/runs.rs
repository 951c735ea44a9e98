//! Runs: the process facts and outcome of each attempt, and usage per task.

use super::{SqliteStore, rows};
use crate::common::{agent_work_kinds, tokens};
use crate::error::StoreResult;
use crate::model::{RepoUsage, RunFinish, RunProcess};
use crate::traits::RunStore;
use async_trait::async_trait;
use orch_core::run::{Run, Usage};
use orch_core::{RunId, TaskId, Timestamp};
use std::collections::BTreeMap;

#[async_trait]
impl RunStore for SqliteStore {
    async fn record_run_process(&self, run: &RunId, p: &RunProcess) -> StoreResult<bool> {
        let n = self
            .write(
                "UPDATE runs SET pid = ?, pgid = ?, proc_start_ticks = ?, log_path = ?
                 WHERE run_id = ? AND finished_at IS NULL",
                (
                    &p.pid,
                    &p.pgid,
                    &i64::try_from(p.proc_start_ticks).unwrap_or(i64::MAX),
                    &p.log_path,
                    &run.0,
                ),
            )
            .await?;
        Ok(n == 1)
    }

    async fn finish_run(&self, run: &RunId, f: &RunFinish) -> StoreResult<bool> {
        let now = self.now();
        let n = self.writer.run(|c| finish_run_in(c, now, run, f)).await?;
        Ok(n == 1)
    }

    async fn get_run(&self, run: &RunId) -> StoreResult<Option<Run>> {
        self.read_one(
            concat!(
                "SELECT ",
                crate::rows::run_columns!(),
                " FROM runs WHERE run_id = ?"
            ),
            (&run.0,),
            rows::run,
        )
        .await
    }

    async fn runs_for_task(&self, task: TaskId) -> StoreResult<Vec<Run>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::run_columns!(),
                " FROM runs WHERE task_id = ? ORDER BY started_at, run_id"
            ),
            (&task.0,),
            rows::run,
        )
        .await
    }

    async fn task_usage(&self, task: TaskId) -> StoreResult<Usage> {
        // Agent wall time (the budget's): finished agent runs by duration,
        // plus the start of the one in progress — the run of the task's
        // running job, never a run left unfinished by a crash.
        let agents = agent_work_kinds();
        let sql = format!(
            "SELECT COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0.0),
                    COALESCE(SUM(CASE WHEN agent IN ({agents}) AND finished_at IS NOT NULL
                                      THEN max(finished_at - started_at, 0) END), 0),
                    (SELECT MIN(r.started_at) FROM runs r
                       JOIN jobs j ON j.run_id = r.run_id AND j.status = 'running'
                      WHERE r.task_id = ?1 AND r.finished_at IS NULL AND r.agent IN ({agents}))
               FROM runs WHERE task_id = ?1"
        );
        let sums = self.read_one(&sql, (&task.0,), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
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
        // One pass over runs joined to their task's repo: cheap enough to run
        // on every board change (runs_task covers the join).
        let rows: Vec<(String, i64, i64, i64, i64, f64)> = self
            .read_all(
                "SELECT t.repo, COUNT(*), COALESCE(SUM(r.started_at >= ?), 0),
                            COALESCE(SUM(r.input_tokens), 0), COALESCE(SUM(r.output_tokens), 0),
                            COALESCE(SUM(r.cost_usd), 0.0)
                     FROM runs r JOIN tasks t ON t.id = r.task_id
                     GROUP BY t.repo ORDER BY t.repo",
                (&since.0,),
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .await?;
        let n = |v: i64| v.max(0) as u64;
        Ok(rows
            .into_iter()
            .map(|(repo, runs, since, i, o, c)| RepoUsage {
                repo,
                runs: n(runs),
                runs_since: n(since),
                usage: Usage {
                    input_tokens: n(i),
                    output_tokens: n(o),
                    cost_usd: c,
                    ..Usage::default()
                },
            })
            .collect())
    }

    async fn usage_by_task(&self, from: TaskId) -> StoreResult<BTreeMap<TaskId, Usage>> {
        // One grouped pass over the newest tasks' runs (runs_task covers it).
        let rows: Vec<(i64, i64, i64, f64)> = self
            .read_all(
                "SELECT task_id, COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
                        COALESCE(SUM(cost_usd), 0.0)
                 FROM runs WHERE task_id >= ? GROUP BY task_id",
                (&from.0,),
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(t, i, o, c)| (TaskId(t), summed(i, o, c)))
            .collect())
    }
}

/// A task's summed tokens and cost as a `Usage` (no wall time).
fn summed(input: i64, output: i64, cost: f64) -> Usage {
    Usage {
        input_tokens: input.max(0) as u64,
        output_tokens: output.max(0) as u64,
        cost_usd: cost,
        ..Usage::default()
    }
}

/// Record a run's end on `conn` (a transaction's, or the writer's); only the
/// first finish counts. Rows changed: 1, or 0 when its end was recorded.
pub(super) fn finish_run_in(
    conn: &rusqlite::Connection,
    now: Timestamp,
    run: &RunId,
    f: &RunFinish,
) -> StoreResult<usize> {
    super::conn::exec(
        conn,
        "UPDATE runs SET finished_at = ?, outcome = ?, exit_code = ?, signal = ?,
            input_tokens = ?, output_tokens = ?, cost_usd = ?, session_id = ?, error = ?, final_text = ?
            WHERE run_id = ? AND finished_at IS NULL",
        rusqlite::params![
            now.0,
            f.outcome.as_str(),
            f.exit_code,
            f.signal,
            tokens(f.usage.input_tokens),
            tokens(f.usage.output_tokens),
            f.usage.cost_usd,
            f.session_id,
            f.error,
            f.final_text,
            run.0,
        ],
    )
}
