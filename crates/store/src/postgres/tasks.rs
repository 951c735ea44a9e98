//! Tasks, their dependencies and their append-only event log.
//!
//! Each write transaction locks the task rows it checks (`FOR UPDATE`), so a
//! check and the write that follows it see the same task, as under SQLite's
//! single writer.

use super::{ADVISORY_SPACE, PgStore, all, exec, first, returned, unique_violation};
use crate::common::{self, group_dependencies, minted_key, minted_key_base};
use crate::error::{StoreError, StoreResult};
use crate::model::{CancelledSnapshot, TaskFilter};
use crate::rows::{self, Columns};
use crate::traits::TaskStore;
use async_trait::async_trait;
use orch_core::EventKind;
use orch_core::keys::{self, branch_name, retire, tombstone};
use orch_core::{
    EventInput, Job, JobId, NewJob, NewTask, Stage, Task, TaskEvent, TaskId, Timestamp,
};
use sqlx::PgConnection;
use std::collections::BTreeMap;

/// The task, its row locked until the transaction ends.
pub(super) async fn lock_task(conn: &mut PgConnection, id: TaskId) -> StoreResult<Task> {
    let q = sqlx::query(concat!(
        "SELECT ",
        rows::task_columns!(),
        " FROM tasks WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.0);
    first(conn, q, rows::task)
        .await?
        .ok_or(StoreError::TaskNotFound(id))
}

pub(super) async fn insert_event(
    conn: &mut PgConnection,
    task: TaskId,
    at: Timestamp,
    event: &EventInput,
    from: Option<Stage>,
    to: Option<Stage>,
) -> StoreResult<TaskEvent> {
    let q = sqlx::query(concat!(
        "INSERT INTO task_events (task_id, at, actor, kind, from_stage, to_stage, message)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        rows::event_columns!()
    ))
    .bind(task.0)
    .bind(at.0)
    .bind(&event.actor)
    .bind(event.kind.as_str())
    .bind(from.map(|s| s.as_str()))
    .bind(to.map(|s| s.as_str()))
    .bind(&event.message);
    let inserted = returned(first(&mut *conn, q, rows::event).await?)?;
    if let Some(body) = &event.tracker_comment {
        insert_comment_write(conn, task, inserted.id, body, at).await?;
    }
    Ok(inserted)
}

/// The event's tracker comment goes out with it (`common::comment_write`).
async fn insert_comment_write(
    conn: &mut PgConnection,
    id: TaskId,
    event: i64,
    body: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let tracker_id: Option<String> =
        sqlx::query_scalar("SELECT tracker_id FROM tasks WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
    insert_tracker_write(
        conn,
        id,
        common::comment_write(tracker_id.as_deref(), event, body),
        now,
    )
    .await
}

/// Move `task` to `to` and log `event` as that move (callers checked the move).
async fn move_stage(
    conn: &mut PgConnection,
    task: &Task,
    to: Stage,
    now: Timestamp,
    event: &EventInput,
) -> StoreResult<()> {
    let q = sqlx::query("UPDATE tasks SET stage = $1, updated_at = $2 WHERE id = $3")
        .bind(to.as_str())
        .bind(now.0)
        .bind(task.id.0);
    exec(&mut *conn, q).await?;
    // The item's state before the move's comment: the outbox keeps an
    // item's writes in the order they are written.
    insert_stage_write(&mut *conn, task.id, task.tracker_id.as_deref(), to, now).await?;
    insert_event(conn, task.id, now, event, Some(task.stage), Some(to)).await?;
    Ok(())
}

/// The tracker hears of the stage in the move's own transaction: a crash
/// right after the move cannot lose the write (`common::stage_write`).
async fn insert_stage_write(
    conn: &mut PgConnection,
    id: TaskId,
    tracker_id: Option<&str>,
    to: Stage,
    now: Timestamp,
) -> StoreResult<()> {
    insert_tracker_write(conn, id, common::stage_write(tracker_id, to), now).await
}

/// One row of the tracker's outbox (`None`: the task has no tracker item).
async fn insert_tracker_write(
    conn: &mut PgConnection,
    id: TaskId,
    payload: Option<String>,
    now: Timestamp,
) -> StoreResult<()> {
    let Some(payload) = payload else {
        return Ok(());
    };
    let q = sqlx::query(
        "INSERT INTO notifications (sink, task_id, payload, next_at, created_at)
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(crate::TRACKER_SINK)
    .bind(id.0)
    .bind(payload)
    .bind(now.0);
    exec(&mut *conn, q).await.map(drop)
}

async fn key_taken(conn: &mut PgConnection, tracker: bool, value: &str) -> StoreResult<bool> {
    let sql = if tracker {
        "SELECT 1 FROM tasks WHERE tracker_id = $1"
    } else {
        "SELECT 1 FROM tasks WHERE work_item_id = $1"
    };
    Ok(first(conn, sqlx::query(sql).bind(value), |_| Ok(()))
        .await?
        .is_some())
}

/// The key minted for a task created without one: `<REPO>-<id>`, made unique.
async fn mint_work_item_id(conn: &mut PgConnection, repo: &str, id: TaskId) -> StoreResult<String> {
    let base = minted_key_base(repo, id);
    let mut n = 1;
    while key_taken(conn, false, &minted_key(&base, n)).await? {
        n += 1;
    }
    Ok(minted_key(&base, n))
}

async fn insert_dependency(conn: &mut PgConnection, task: TaskId, on: TaskId) -> StoreResult<()> {
    if task == on {
        return Err(StoreError::BadDependency {
            task,
            on,
            why: "a task cannot depend on itself",
        });
    }
    // Two edges added at once could close a cycle that neither sees: edits
    // of the dependency graph take turns (SQLite's writer serialises them).
    let lock = sqlx::query("SELECT pg_advisory_xact_lock($1, 'task_deps'::regclass::oid::int)")
        .bind(ADVISORY_SPACE);
    exec(&mut *conn, lock).await?;
    let exists = sqlx::query("SELECT 1 FROM tasks WHERE id = $1").bind(on.0);
    if first(&mut *conn, exists, |_| Ok(())).await?.is_none() {
        return Err(StoreError::BadDependency {
            task,
            on,
            why: "that task does not exist",
        });
    }
    // Does `on` (transitively) depend on `task` already?
    let reach = sqlx::query(
        "WITH RECURSIVE reach(id) AS (
             SELECT depends_on FROM task_deps WHERE task_id = $1
             UNION SELECT d.depends_on FROM task_deps d JOIN reach r ON d.task_id = r.id)
         SELECT 1 FROM reach WHERE id = $2 LIMIT 1",
    )
    .bind(on.0)
    .bind(task.0);
    if first(&mut *conn, reach, |_| Ok(())).await?.is_some() {
        return Err(StoreError::BadDependency {
            task,
            on,
            why: "it would close a cycle, and both would wait forever",
        });
    }
    let q = sqlx::query(
        "INSERT INTO task_deps (task_id, depends_on) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(task.0)
    .bind(on.0);
    exec(conn, q).await?;
    Ok(())
}

/// Retire the keys of a done or failed task whose item starts afresh, inside
/// the creating transaction. Returns the task and whether its dependents
/// should follow the item to the new task (it failed or was cancelled).
async fn retire_replaced(
    conn: &mut PgConnection,
    old: TaskId,
    now: Timestamp,
) -> StoreResult<(Task, bool)> {
    let task = lock_task(conn, old).await?;
    if matches!(task.stage, Stage::Done | Stage::Failed) && !keys::is_tombstoned(&task.work_item_id)
    {
        let q = sqlx::query(
            "UPDATE tasks SET tracker_id = $1, work_item_id = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(task.tracker_id.as_deref().map(|k| retire(k, old)))
        .bind(retire(&task.work_item_id, old))
        .bind(now.0)
        .bind(old.0);
        exec(&mut *conn, q).await?;
    }
    let follow = matches!(task.stage, Stage::Failed | Stage::Cancelled);
    Ok((task, follow))
}

/// Another task took the key between the check and the insert: the same
/// answer as the check's.
fn duplicate_key(e: StoreError, new: &NewTask) -> StoreError {
    match unique_violation(&e) {
        Some("tasks_tracker_id") => StoreError::Duplicate {
            key: "tracker id",
            value: new.tracker_id.clone().unwrap_or_default(),
        },
        Some("tasks_work_item_id") => StoreError::Duplicate {
            key: "work item id",
            value: new.work_item_id.clone().unwrap_or_default(),
        },
        _ => e,
    }
}

/// The newest task whose `column` is `key`, or was before its keys were
/// released (`key#…`). A live task is always the newest of its key.
fn newest_with_key(column: &str) -> String {
    format!(
        concat!(
            "SELECT ",
            rows::task_columns!(),
            " FROM tasks WHERE {column} = $1 OR substr({column}, 1, length($1) + 1) = $1 || '#'
             ORDER BY id DESC LIMIT 1"
        ),
        column = column
    )
}

impl PgStore {
    async fn create_in(
        &self,
        conn: &mut PgConnection,
        new: &NewTask,
        actor: &str,
    ) -> StoreResult<Task> {
        let now = self.now();
        let replaced = match new.replaces {
            Some(old) => Some(retire_replaced(conn, old, now).await?),
            None => None,
        };
        if let Some(tid) = &new.tracker_id
            && key_taken(conn, true, tid).await?
        {
            return Err(StoreError::Duplicate {
                key: "tracker id",
                value: tid.clone(),
            });
        }
        if let Some(wid) = &new.work_item_id
            && key_taken(conn, false, wid).await?
        {
            return Err(StoreError::Duplicate {
                key: "work item id",
                value: wid.clone(),
            });
        }
        // A placeholder key keeps the NOT NULL/UNIQUE constraints while the id is minted.
        let placeholder = format!("#new-{}", uuid::Uuid::new_v4());
        let wid = new.work_item_id.clone().unwrap_or(placeholder);
        let q = sqlx::query(
            "INSERT INTO tasks (tracker_id, work_item_id, repo, branch, stage, title, body, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(&new.tracker_id)
        .bind(&wid)
        .bind(&new.repo)
        .bind(branch_name(&wid, &new.title))
        .bind(new.stage.as_str())
        .bind(&new.title)
        .bind(&new.body)
        .bind(now.0);
        let id = TaskId(returned(first(&mut *conn, q, |r| r.int("id")).await?)?);
        if new.work_item_id.is_none() {
            let minted = mint_work_item_id(conn, &new.repo, id).await?;
            let q = sqlx::query("UPDATE tasks SET work_item_id = $1, branch = $2 WHERE id = $3")
                .bind(&minted)
                .bind(branch_name(&minted, &new.title))
                .bind(id.0);
            exec(&mut *conn, q).await?;
        }
        for on in &new.depends_on {
            insert_dependency(conn, id, *on).await?;
        }
        insert_stage_write(conn, id, new.tracker_id.as_deref(), new.stage, now).await?;
        let msg = match &replaced {
            Some((old, _)) => format!(
                "created in {} ({}); runs its item again after task {} ({})",
                new.stage, new.title, old.id, old.stage
            ),
            None => format!("created in {} ({})", new.stage, new.title),
        };
        let created = EventInput::new(actor, EventKind::Created, msg);
        insert_event(conn, id, now, &created, None, Some(new.stage)).await?;
        if let Some((old, follow)) = &replaced {
            let ev = EventInput::new(
                actor,
                EventKind::Retired,
                format!("its item runs again as task {id}; this task keeps its history"),
            );
            insert_event(conn, old.id, now, &ev, None, None).await?;
            if *follow {
                let q = sqlx::query(
                    "SELECT d.task_id FROM task_deps d JOIN tasks t ON t.id = d.task_id
                     WHERE d.depends_on = $1 AND t.stage NOT IN ('done', 'cancelled', 'failed')
                     ORDER BY d.task_id",
                )
                .bind(old.id.0);
                let dependents = all(&mut *conn, q, |r| r.int("task_id")).await?;
                for dependent in dependents {
                    let q =
                        sqlx::query("DELETE FROM task_deps WHERE task_id = $1 AND depends_on = $2")
                            .bind(dependent)
                            .bind(old.id.0);
                    exec(&mut *conn, q).await?;
                    insert_dependency(conn, TaskId(dependent), id).await?;
                    let ev = EventInput::new(
                        actor,
                        EventKind::DependencyMoved,
                        format!(
                            "now waits for task {id}, which runs {} again (task {} {})",
                            keys::original_key(&old.work_item_id),
                            old.id,
                            old.stage
                        ),
                    );
                    insert_event(conn, TaskId(dependent), now, &ev, None, None).await?;
                }
            }
        }
        lock_task(conn, id).await
    }

    /// Fail with `ActiveJob` if the task has a queued or running job. The
    /// caller holds the task's row lock, so no other transaction of this
    /// store adds one meanwhile.
    async fn no_active_job(conn: &mut PgConnection, id: TaskId) -> StoreResult<()> {
        let q = sqlx::query(
            "SELECT id FROM jobs WHERE task_id = $1 AND status IN ('queued', 'running') LIMIT 1",
        )
        .bind(id.0);
        match first(conn, q, |r| r.int("id")).await? {
            Some(active) => Err(StoreError::ActiveJob {
                task: id,
                job: JobId(active),
            }),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl TaskStore for PgStore {
    async fn create_task(&self, new: NewTask, actor: &str) -> StoreResult<Task> {
        keys::validate_repo_name(&new.repo)?;
        if let Some(id) = &new.work_item_id {
            keys::validate_work_item_id(id)?;
        }
        let mut tx = self.pool.begin().await?;
        let task = self
            .create_in(&mut tx, &new, actor)
            .await
            .map_err(|e| duplicate_key(e, &new))?;
        self.commit(tx)
            .await
            .map_err(|e| duplicate_key(e.into(), &new))?;
        Ok(task)
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::task_columns!(),
            " FROM tasks WHERE id = $1"
        ))
        .bind(id.0);
        first(&self.pool, q, rows::task).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::task_columns!(),
            " FROM tasks
             WHERE ($1::text IS NULL OR repo = $1) AND ($2::text IS NULL OR stage = $2)
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(&filter.repo)
        .bind(filter.stage.map(|s| s.as_str()))
        .bind(filter.limit.map(i64::from));
        all(&self.pool, q, rows::task).await
    }

    async fn find_live_task_by_tracker_id(&self, tracker_id: &str) -> StoreResult<Option<Task>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::task_columns!(),
            " FROM tasks WHERE tracker_id = $1"
        ))
        .bind(tracker_id);
        first(&self.pool, q, rows::task).await
    }

    async fn find_live_task_by_work_item(&self, work_item_id: &str) -> StoreResult<Option<Task>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::task_columns!(),
            " FROM tasks WHERE work_item_id = $1"
        ))
        .bind(work_item_id);
        first(&self.pool, q, rows::task).await
    }

    async fn find_task_by_key(&self, work_item_id: &str) -> StoreResult<Option<Task>> {
        let sql = newest_with_key("work_item_id");
        let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(work_item_id);
        first(&self.pool, q, rows::task).await
    }

    async fn latest_task_of_item(&self, tracker_id: &str) -> StoreResult<Option<Task>> {
        let sql = newest_with_key("tracker_id");
        let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tracker_id);
        first(&self.pool, q, rows::task).await
    }

    async fn set_stage(
        &self,
        id: TaskId,
        to: Stage,
        expected: Option<Stage>,
        event: EventInput,
    ) -> StoreResult<Task> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let task = lock_task(&mut tx, id).await?;
        if let Some(expected) = expected {
            common::expect_stage(&task, expected)?;
        }
        common::may_move(&task, to)?;
        move_stage(&mut tx, &task, to, now, &event).await?;
        let task = lock_task(&mut tx, id).await?;
        self.commit(tx).await?;
        Ok(task)
    }

    async fn advance(
        &self,
        id: TaskId,
        expected: Stage,
        to: Stage,
        event: EventInput,
        job: Option<NewJob>,
    ) -> StoreResult<(Task, Option<Job>)> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let task = lock_task(&mut tx, id).await?;
        common::expect_stage(&task, expected)?;
        let moves = to != expected;
        if moves {
            common::may_move(&task, to)?;
        }
        if job.is_some() {
            Self::no_active_job(&mut tx, id).await?;
        }
        if moves {
            move_stage(&mut tx, &task, to, now, &event).await?;
        } else {
            insert_event(&mut tx, id, now, &event, None, None).await?;
        }
        let job = match &job {
            Some(job) => Some(super::jobs::insert_job(&mut tx, job, now).await?),
            None => None,
        };
        let task = lock_task(&mut tx, id).await?;
        self.commit(tx).await?;
        Ok((task, job))
    }

    async fn reopen(
        &self,
        id: TaskId,
        to: Stage,
        event: EventInput,
        job: Option<NewJob>,
    ) -> StoreResult<(Task, Option<Job>)> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let task = lock_task(&mut tx, id).await?;
        common::may_reopen(&task, to)?;
        move_stage(&mut tx, &task, to, now, &event).await?;
        let job = match &job {
            Some(job) => Some(super::jobs::insert_job(&mut tx, job, now).await?),
            None => None,
        };
        let task = lock_task(&mut tx, id).await?;
        self.commit(tx).await?;
        Ok((task, job))
    }

    async fn append_event(&self, id: TaskId, event: EventInput) -> StoreResult<TaskEvent> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        lock_task(&mut tx, id).await?;
        let ev = insert_event(&mut tx, id, now, &event, None, None).await?;
        self.commit(tx).await?;
        Ok(ev)
    }

    async fn events(&self, id: TaskId) -> StoreResult<Vec<TaskEvent>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::event_columns!(),
            " FROM task_events WHERE task_id = $1 ORDER BY id"
        ))
        .bind(id.0);
        all(&self.pool, q, rows::event).await
    }

    async fn recent_events(&self, limit: u32) -> StoreResult<Vec<TaskEvent>> {
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::event_columns!(),
            " FROM task_events ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit));
        all(&self.pool, q, rows::event).await
    }

    async fn set_cancel_requested(&self, id: TaskId, event: EventInput) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        lock_task(&mut tx, id).await?;
        let q = sqlx::query(
            "UPDATE tasks SET cancel_requested_at = $1, updated_at = $1
             WHERE id = $2 AND cancel_requested_at IS NULL",
        )
        .bind(now.0)
        .bind(id.0);
        let first_stamp = exec(&mut *tx, q).await? == 1;
        if first_stamp {
            insert_event(&mut tx, id, now, &event, None, None).await?;
        }
        self.commit(tx).await?;
        Ok(first_stamp)
    }

    async fn mark_cancelled(&self, id: TaskId, event: EventInput) -> StoreResult<Task> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let task = lock_task(&mut tx, id).await?;
        if !common::needs_cancel(&task)? {
            return Ok(task);
        }
        let q = sqlx::query(
            "UPDATE tasks SET stage = 'cancelled', cancelled_at = $1, updated_at = $1,
                 tracker_id = $2, work_item_id = $3
             WHERE id = $4",
        )
        .bind(now.0)
        .bind(task.tracker_id.as_deref().map(|k| tombstone(k, id)))
        .bind(tombstone(&task.work_item_id, id))
        .bind(id.0);
        exec(&mut *tx, q).await?;
        // The state before the event's comment (their order on the item).
        insert_stage_write(
            &mut tx,
            id,
            task.tracker_id.as_deref(),
            Stage::Cancelled,
            now,
        )
        .await?;
        insert_event(
            &mut tx,
            id,
            now,
            &event,
            Some(task.stage),
            Some(Stage::Cancelled),
        )
        .await?;
        let task = lock_task(&mut tx, id).await?;
        self.commit(tx).await?;
        Ok(task)
    }

    async fn add_dependency(&self, task: TaskId, on: TaskId) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        lock_task(&mut tx, task).await?;
        insert_dependency(&mut tx, task, on).await?;
        self.commit(tx).await?;
        Ok(())
    }

    async fn dependencies(&self, task: TaskId) -> StoreResult<Vec<TaskId>> {
        let q =
            sqlx::query("SELECT depends_on FROM task_deps WHERE task_id = $1 ORDER BY depends_on")
                .bind(task.0);
        all(&self.pool, q, |r| Ok(TaskId(r.int("depends_on")?))).await
    }

    async fn waiting_on_dependencies(&self) -> StoreResult<Vec<(TaskId, Vec<TaskId>)>> {
        let q = sqlx::query(
            "SELECT d.task_id, d.depends_on FROM task_deps d
             JOIN tasks t ON t.id = d.task_id
             JOIN tasks dt ON dt.id = d.depends_on
             WHERE t.stage NOT IN ('done', 'cancelled', 'failed') AND dt.stage <> 'done'
             ORDER BY d.task_id, d.depends_on",
        );
        let pairs = all(&self.pool, q, |r| {
            Ok((r.int("task_id")?, r.int("depends_on")?))
        })
        .await?;
        Ok(group_dependencies(pairs))
    }

    async fn task_counts_by_stage(&self) -> StoreResult<BTreeMap<Stage, u64>> {
        let q = sqlx::query("SELECT stage, COUNT(*) AS n FROM tasks GROUP BY stage");
        let rows = all(&self.pool, q, |r| Ok((r.text("stage")?, r.int("n")?))).await?;
        common::stage_counts(rows)
    }

    async fn cancelled_snapshot(&self, limit: u32) -> StoreResult<CancelledSnapshot> {
        let q = sqlx::query("SELECT COUNT(*) AS n FROM tasks WHERE stage = 'cancelled'");
        let count = first(&self.pool, q, |r| r.int("n")).await?.unwrap_or(0);
        let q = sqlx::query(concat!(
            "SELECT ",
            rows::task_columns!(),
            " FROM tasks WHERE stage = 'cancelled' ORDER BY cancelled_at DESC, id DESC LIMIT $1"
        ))
        .bind(i64::from(limit));
        let recent = all(&self.pool, q, rows::task).await?;
        Ok(CancelledSnapshot {
            count: count.max(0) as u64,
            recent,
        })
    }
}
