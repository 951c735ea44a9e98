//! Tasks, their dependencies and their append-only event log.

use super::{SqliteStore, rows};
use crate::error::{StoreError, StoreResult};
use crate::model::{CancelledSnapshot, TaskFilter};
use crate::traits::TaskStore;
use async_trait::async_trait;
use orch_core::keys::{self, branch_name, tombstone};
use orch_core::{EventInput, Job, NewJob, NewTask, Stage, Task, TaskEvent, TaskId, Timestamp};
use sqlx::sqlite::SqliteConnection;
use std::collections::BTreeMap;

pub(super) async fn load_task(conn: &mut SqliteConnection, id: TaskId) -> StoreResult<Task> {
    let row = sqlx::query("SELECT * FROM tasks WHERE id = ?")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(StoreError::TaskNotFound(id))?;
    rows::task(&row)
}

pub(super) async fn insert_event(
    conn: &mut SqliteConnection,
    task: TaskId,
    at: Timestamp,
    event: &EventInput,
    from: Option<Stage>,
    to: Option<Stage>,
) -> StoreResult<TaskEvent> {
    let row = sqlx::query(
        "INSERT INTO task_events (task_id, at, actor, kind, from_stage, to_stage, message)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING *",
    )
    .bind(task.0)
    .bind(at.0)
    .bind(event.actor.clone())
    .bind(event.kind.clone())
    .bind(from.map(|s| s.as_str()))
    .bind(to.map(|s| s.as_str()))
    .bind(event.message.clone())
    .fetch_one(&mut *conn)
    .await?;
    rows::event(&row)
}

async fn key_taken(
    conn: &mut SqliteConnection,
    column_is_tracker: bool,
    value: &str,
) -> StoreResult<bool> {
    let q = if column_is_tracker {
        "SELECT 1 FROM tasks WHERE tracker_id = ?"
    } else {
        "SELECT 1 FROM tasks WHERE work_item_id = ?"
    };
    Ok(sqlx::query(q)
        .bind(value.to_owned())
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

/// The key minted for a task created without one: `<REPO>-<id>`, made unique.
async fn mint_work_item_id(
    conn: &mut SqliteConnection,
    repo: &str,
    id: TaskId,
) -> StoreResult<String> {
    let prefix: String = repo
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '-'
            }
        })
        .collect();
    let base = format!("{prefix}-{id}");
    let mut candidate = base.clone();
    let mut n = 1;
    while key_taken(conn, false, &candidate).await? {
        n += 1;
        candidate = format!("{base}-{n}");
    }
    Ok(candidate)
}

async fn would_cycle(conn: &mut SqliteConnection, task: TaskId, on: TaskId) -> StoreResult<bool> {
    // Does `on` (transitively) depend on `task` already?
    let hit = sqlx::query(
        "WITH RECURSIVE reach(id) AS (
             SELECT depends_on FROM task_deps WHERE task_id = ?1
             UNION SELECT d.depends_on FROM task_deps d JOIN reach r ON d.task_id = r.id)
         SELECT 1 FROM reach WHERE id = ?2 LIMIT 1",
    )
    .bind(on.0)
    .bind(task.0)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(hit.is_some())
}

async fn insert_dependency(
    conn: &mut SqliteConnection,
    task: TaskId,
    on: TaskId,
) -> StoreResult<()> {
    if task == on {
        return Err(StoreError::BadDependency {
            task,
            on,
            why: "a task cannot depend on itself",
        });
    }
    if sqlx::query("SELECT 1 FROM tasks WHERE id = ?")
        .bind(on.0)
        .fetch_optional(&mut *conn)
        .await?
        .is_none()
    {
        return Err(StoreError::BadDependency {
            task,
            on,
            why: "that task does not exist",
        });
    }
    if would_cycle(conn, task, on).await? {
        return Err(StoreError::BadDependency {
            task,
            on,
            why: "it would close a cycle, and both would wait forever",
        });
    }
    sqlx::query("INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?) ON CONFLICT DO NOTHING")
        .bind(task.0)
        .bind(on.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn create_task(&self, new: NewTask, actor: &str) -> StoreResult<Task> {
        keys::validate_repo_name(&new.repo)?;
        if let Some(id) = &new.work_item_id {
            keys::validate_work_item_id(id)?;
        }
        let now = self.now();
        let mut tx = self.begin_write().await?;
        if let Some(tid) = &new.tracker_id
            && key_taken(&mut tx, true, tid).await?
        {
            return Err(StoreError::Duplicate {
                key: "tracker id",
                value: tid.clone(),
            });
        }
        if let Some(wid) = &new.work_item_id
            && key_taken(&mut tx, false, wid).await?
        {
            return Err(StoreError::Duplicate {
                key: "work item id",
                value: wid.clone(),
            });
        }
        // A placeholder key keeps the NOT NULL/UNIQUE constraints while the id is minted.
        let placeholder = format!("#new-{}", uuid::Uuid::new_v4());
        let wid = new
            .work_item_id
            .clone()
            .unwrap_or_else(|| placeholder.clone());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO tasks (tracker_id, work_item_id, repo, branch, stage, title, body, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(new.tracker_id.clone())
        .bind(wid.clone())
        .bind(new.repo.clone())
        .bind(branch_name(&wid, &new.title))
        .bind(new.stage.as_str())
        .bind(new.title.clone())
        .bind(new.body.clone())
        .bind(now.0)
        .bind(now.0)
        .fetch_one(&mut *tx)
        .await?;
        let id = TaskId(id);
        if new.work_item_id.is_none() {
            let minted = mint_work_item_id(&mut tx, &new.repo, id).await?;
            sqlx::query("UPDATE tasks SET work_item_id = ?, branch = ? WHERE id = ?")
                .bind(minted.clone())
                .bind(branch_name(&minted, &new.title))
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
        }
        for on in &new.depends_on {
            insert_dependency(&mut tx, id, *on).await?;
        }
        let msg = format!("created in {} ({})", new.stage, new.title);
        insert_event(
            &mut tx,
            id,
            now,
            &EventInput::new(actor, "created", msg),
            None,
            Some(new.stage),
        )
        .await?;
        let task = load_task(&mut tx, id).await?;
        tx.commit().await?;
        Ok(task)
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        let row = sqlx::query("SELECT * FROM tasks WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::task).transpose()
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
        let rows = sqlx::query(
            "SELECT * FROM tasks
             WHERE (?1 IS NULL OR repo = ?1) AND (?2 IS NULL OR stage = ?2)
             ORDER BY id DESC LIMIT ?3",
        )
        .bind(filter.repo.clone())
        .bind(filter.stage.map(|s| s.as_str()))
        .bind(filter.limit.map(i64::from).unwrap_or(-1))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(rows::task).collect()
    }

    async fn find_live_task_by_tracker_id(&self, tracker_id: &str) -> StoreResult<Option<Task>> {
        let row = sqlx::query("SELECT * FROM tasks WHERE tracker_id = ?")
            .bind(tracker_id.to_owned())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::task).transpose()
    }

    async fn find_live_task_by_work_item(&self, work_item_id: &str) -> StoreResult<Option<Task>> {
        let row = sqlx::query("SELECT * FROM tasks WHERE work_item_id = ?")
            .bind(work_item_id.to_owned())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(rows::task).transpose()
    }

    async fn set_stage(
        &self,
        id: TaskId,
        to: Stage,
        expected: Option<Stage>,
        event: EventInput,
    ) -> StoreResult<Task> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let task = load_task(&mut tx, id).await?;
        if let Some(expected) = expected
            && task.stage != expected
        {
            return Err(StoreError::StageConflict {
                task: id,
                expected,
                found: task.stage,
            });
        }
        if !task.stage.can_transition_to(to) {
            return Err(StoreError::IllegalTransition {
                task: id,
                from: task.stage,
                to,
            });
        }
        sqlx::query("UPDATE tasks SET stage = ?, updated_at = ? WHERE id = ?")
            .bind(to.as_str())
            .bind(now.0)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, id, now, &event, Some(task.stage), Some(to)).await?;
        let task = load_task(&mut tx, id).await?;
        tx.commit().await?;
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
        let mut tx = self.begin_write().await?;
        let task = load_task(&mut tx, id).await?;
        if task.stage != expected {
            return Err(StoreError::StageConflict {
                task: id,
                expected,
                found: task.stage,
            });
        }
        let moves = to != expected;
        if moves && !task.stage.can_transition_to(to) {
            return Err(StoreError::IllegalTransition {
                task: id,
                from: task.stage,
                to,
            });
        }
        if job.is_some() || moves {
            // Checked inside the write transaction: no other writer can slip a
            // job in between (BEGIN IMMEDIATE holds the write lock).
            let active: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE task_id = ? AND status IN ('queued', 'running') LIMIT 1",
            )
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
            if let (Some(active), true) = (active, job.is_some()) {
                return Err(StoreError::ActiveJob {
                    task: id,
                    job: orch_core::JobId(active),
                });
            }
        }
        if moves {
            sqlx::query("UPDATE tasks SET stage = ?, updated_at = ? WHERE id = ?")
                .bind(to.as_str())
                .bind(now.0)
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            insert_event(&mut tx, id, now, &event, Some(task.stage), Some(to)).await?;
        } else {
            insert_event(&mut tx, id, now, &event, None, None).await?;
        }
        let job = match job {
            Some(job) => Some(super::jobs::insert_job(&mut tx, &job, now).await?),
            None => None,
        };
        let task = load_task(&mut tx, id).await?;
        tx.commit().await?;
        Ok((task, job))
    }

    async fn append_event(&self, id: TaskId, event: EventInput) -> StoreResult<TaskEvent> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        load_task(&mut tx, id).await?;
        let ev = insert_event(&mut tx, id, now, &event, None, None).await?;
        tx.commit().await?;
        Ok(ev)
    }

    async fn events(&self, id: TaskId) -> StoreResult<Vec<TaskEvent>> {
        let rows = sqlx::query("SELECT * FROM task_events WHERE task_id = ? ORDER BY id")
            .bind(id.0)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::event).collect()
    }

    async fn recent_events(&self, limit: u32) -> StoreResult<Vec<TaskEvent>> {
        let rows = sqlx::query("SELECT * FROM task_events ORDER BY id DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rows::event).collect()
    }

    async fn set_cancel_requested(&self, id: TaskId) -> StoreResult<bool> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        load_task(&mut tx, id).await?;
        let first = sqlx::query(
            "UPDATE tasks SET cancel_requested_at = ?1, updated_at = ?1
             WHERE id = ?2 AND cancel_requested_at IS NULL",
        )
        .bind(now.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if first {
            let ev = EventInput::new(
                "system",
                "cancel_requested",
                "STOP deferred until the running step finishes",
            );
            insert_event(&mut tx, id, now, &ev, None, None).await?;
        }
        tx.commit().await?;
        Ok(first)
    }

    async fn mark_cancelled(&self, id: TaskId, event: EventInput) -> StoreResult<Task> {
        let now = self.now();
        let mut tx = self.begin_write().await?;
        let task = load_task(&mut tx, id).await?;
        if task.stage == Stage::Cancelled {
            return Ok(task);
        }
        if task.stage.is_terminal() {
            return Err(StoreError::IllegalTransition {
                task: id,
                from: task.stage,
                to: Stage::Cancelled,
            });
        }
        sqlx::query(
            "UPDATE tasks SET stage = 'cancelled', cancelled_at = ?1, updated_at = ?1,
                 tracker_id = ?2, work_item_id = ?3
             WHERE id = ?4",
        )
        .bind(now.0)
        .bind(task.tracker_id.as_deref().map(|k| tombstone(k, id)))
        .bind(tombstone(&task.work_item_id, id))
        .bind(id.0)
        .execute(&mut *tx)
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
        let task = load_task(&mut tx, id).await?;
        tx.commit().await?;
        Ok(task)
    }

    async fn add_dependency(&self, task: TaskId, on: TaskId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        load_task(&mut tx, task).await?;
        insert_dependency(&mut tx, task, on).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn dependencies(&self, task: TaskId) -> StoreResult<Vec<TaskId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT depends_on FROM task_deps WHERE task_id = ? ORDER BY depends_on",
        )
        .bind(task.0)
        .fetch_all(&self.read)
        .await?;
        Ok(ids.into_iter().map(TaskId).collect())
    }

    async fn waiting_on_dependencies(&self) -> StoreResult<Vec<(TaskId, Vec<TaskId>)>> {
        let pairs: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT d.task_id, d.depends_on FROM task_deps d
             JOIN tasks t ON t.id = d.task_id
             JOIN tasks dt ON dt.id = d.depends_on
             WHERE t.stage NOT IN ('done', 'cancelled', 'failed') AND dt.stage <> 'done'
             ORDER BY d.task_id, d.depends_on",
        )
        .fetch_all(&self.read)
        .await?;
        let mut out: Vec<(TaskId, Vec<TaskId>)> = Vec::new();
        for (t, on) in pairs {
            match out.last_mut() {
                Some((last, deps)) if last.0 == t => deps.push(TaskId(on)),
                _ => out.push((TaskId(t), vec![TaskId(on)])),
            }
        }
        Ok(out)
    }

    async fn task_counts_by_stage(&self) -> StoreResult<BTreeMap<Stage, u64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT stage, COUNT(*) FROM tasks GROUP BY stage")
                .fetch_all(&self.read)
                .await?;
        rows.into_iter()
            .map(|(s, n)| Ok((s.parse()?, n as u64)))
            .collect()
    }

    async fn cancelled_snapshot(&self, limit: u32) -> StoreResult<CancelledSnapshot> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE stage = 'cancelled'")
            .fetch_one(&self.read)
            .await?;
        let rows = sqlx::query(
            "SELECT * FROM tasks WHERE stage = 'cancelled' ORDER BY cancelled_at DESC, id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(CancelledSnapshot {
            count: count as u64,
            recent: rows.iter().map(rows::task).collect::<StoreResult<_>>()?,
        })
    }
}
