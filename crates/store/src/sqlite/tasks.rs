//! Tasks, their dependencies and their append-only event log.

use super::conn::{all, exec, first};
use super::{SqliteStore, rows};
use crate::common::{self, group_dependencies, minted_key, minted_key_base};
use crate::error::{StoreError, StoreResult};
use crate::model::{CancelledSnapshot, TaskFilter};
use crate::traits::TaskStore;
use async_trait::async_trait;
use orch_core::EventKind;
use orch_core::keys::{self, branch_name, retire, tombstone};
use orch_core::{EventInput, Job, NewJob, NewTask, Stage, Task, TaskEvent, TaskId, Timestamp};
use rusqlite::{Connection, params};
use std::collections::BTreeMap;

pub(super) fn load_task(conn: &Connection, id: TaskId) -> StoreResult<Task> {
    first(
        conn,
        concat!(
            "SELECT ",
            crate::rows::task_columns!(),
            " FROM tasks WHERE id = ?"
        ),
        params![id.0],
        rows::task,
    )?
    .ok_or(StoreError::TaskNotFound(id))
}

pub(super) fn insert_event(
    conn: &Connection,
    task: TaskId,
    at: Timestamp,
    event: &EventInput,
    from: Option<Stage>,
    to: Option<Stage>,
) -> StoreResult<TaskEvent> {
    let inserted = first(
        conn,
        concat!(
            "INSERT INTO task_events (task_id, at, actor, kind, from_stage, to_stage, message)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ",
            crate::rows::event_columns!()
        ),
        params![
            task.0,
            at.0,
            event.actor,
            event.kind.as_str(),
            from.map(|s| s.as_str()),
            to.map(|s| s.as_str()),
            event.message
        ],
        rows::event,
    )?
    .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
    if let Some(body) = &event.tracker_comment {
        insert_comment_write(conn, task, inserted.id, body, at)?;
    }
    Ok(inserted)
}

/// The event's tracker comment goes out with it (`common::comment_write`).
fn insert_comment_write(
    conn: &Connection,
    id: TaskId,
    event: i64,
    body: &str,
    now: Timestamp,
) -> StoreResult<()> {
    let tracker_id: Option<String> = first(
        conn,
        "SELECT tracker_id FROM tasks WHERE id = ?",
        params![id.0],
        |r| Ok(r.get::<_, Option<String>>(0)?),
    )?
    .flatten();
    insert_tracker_write(
        conn,
        id,
        common::comment_write(tracker_id.as_deref(), event, body),
        now,
    )
}

/// Move `task` to `to` and log `event` as that move (callers checked the move).
fn move_stage(
    conn: &Connection,
    task: &Task,
    to: Stage,
    now: Timestamp,
    event: &EventInput,
) -> StoreResult<()> {
    exec(
        conn,
        "UPDATE tasks SET stage = ?, updated_at = ? WHERE id = ?",
        params![to.as_str(), now.0, task.id.0],
    )?;
    // The item's state before the move's comment: the outbox keeps an
    // item's writes in the order they are written.
    insert_stage_write(conn, task.id, task.tracker_id.as_deref(), to, now)?;
    insert_event(conn, task.id, now, event, Some(task.stage), Some(to))?;
    Ok(())
}

/// The tracker hears of the stage in the move's own transaction: a crash
/// right after the move cannot lose the write (`common::stage_write`).
fn insert_stage_write(
    conn: &Connection,
    id: TaskId,
    tracker_id: Option<&str>,
    to: Stage,
    now: Timestamp,
) -> StoreResult<()> {
    insert_tracker_write(conn, id, common::stage_write(tracker_id, to), now)
}

/// One row of the tracker's outbox (`None`: the task has no tracker item).
fn insert_tracker_write(
    conn: &Connection,
    id: TaskId,
    payload: Option<String>,
    now: Timestamp,
) -> StoreResult<()> {
    if let Some(payload) = payload {
        exec(
            conn,
            "INSERT INTO notifications (sink, task_id, payload, next_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?4)",
            params![crate::TRACKER_SINK, id.0, payload, now.0],
        )?;
    }
    Ok(())
}

fn key_taken(conn: &Connection, column_is_tracker: bool, value: &str) -> StoreResult<bool> {
    let q = if column_is_tracker {
        "SELECT 1 FROM tasks WHERE tracker_id = ?"
    } else {
        "SELECT 1 FROM tasks WHERE work_item_id = ?"
    };
    Ok(first(conn, q, params![value], |_| Ok(()))?.is_some())
}

/// The key minted for a task created without one: `<REPO>-<id>`, made unique.
fn mint_work_item_id(conn: &Connection, repo: &str, id: TaskId) -> StoreResult<String> {
    let base = minted_key_base(repo, id);
    let mut n = 1;
    while key_taken(conn, false, &minted_key(&base, n))? {
        n += 1;
    }
    Ok(minted_key(&base, n))
}

fn would_cycle(conn: &Connection, task: TaskId, on: TaskId) -> StoreResult<bool> {
    // Does `on` (transitively) depend on `task` already?
    let hit = first(
        conn,
        "WITH RECURSIVE reach(id) AS (
             SELECT depends_on FROM task_deps WHERE task_id = ?1
             UNION SELECT d.depends_on FROM task_deps d JOIN reach r ON d.task_id = r.id)
         SELECT 1 FROM reach WHERE id = ?2 LIMIT 1",
        params![on.0, task.0],
        |_| Ok(()),
    )?;
    Ok(hit.is_some())
}

fn insert_dependency(conn: &Connection, task: TaskId, on: TaskId) -> StoreResult<()> {
    if task == on {
        return Err(StoreError::BadDependency {
            task,
            on,
            why: "a task cannot depend on itself",
        });
    }
    if first(
        conn,
        "SELECT 1 FROM tasks WHERE id = ?",
        params![on.0],
        |_| Ok(()),
    )?
    .is_none()
    {
        return Err(StoreError::BadDependency {
            task,
            on,
            why: "that task does not exist",
        });
    }
    if would_cycle(conn, task, on)? {
        return Err(StoreError::BadDependency {
            task,
            on,
            why: "it would close a cycle, and both would wait forever",
        });
    }
    exec(
        conn,
        "INSERT INTO task_deps (task_id, depends_on) VALUES (?, ?) ON CONFLICT DO NOTHING",
        params![task.0, on.0],
    )?;
    Ok(())
}

/// Retire the keys of a done or failed task whose item starts afresh, inside
/// the creating transaction. Returns the task and whether its dependents
/// should follow the item to the new task (it failed or was cancelled).
fn retire_replaced(conn: &Connection, old: TaskId, now: Timestamp) -> StoreResult<(Task, bool)> {
    let task = load_task(conn, old)?;
    if matches!(task.stage, Stage::Done | Stage::Failed) && !keys::is_tombstoned(&task.work_item_id)
    {
        exec(
            conn,
            "UPDATE tasks SET tracker_id = ?1, work_item_id = ?2, updated_at = ?3 WHERE id = ?4",
            params![
                task.tracker_id.as_deref().map(|k| retire(k, old)),
                retire(&task.work_item_id, old),
                now.0,
                old.0
            ],
        )?;
    }
    let follow = matches!(task.stage, Stage::Failed | Stage::Cancelled);
    Ok((task, follow))
}

/// The newest task whose `column` is `key`, or was before its keys were
/// released (`key#…`). A live task is always the newest of its key.
fn newest_with_key(column: &str) -> String {
    format!(
        concat!(
            "SELECT ",
            crate::rows::task_columns!(),
            " FROM tasks WHERE {column} = ?1 OR substr({column}, 1, length(?1) + 1) = ?1 || '#'
             ORDER BY id DESC LIMIT 1"
        ),
        column = column
    )
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn create_task(&self, new: NewTask, actor: &str) -> StoreResult<Task> {
        keys::validate_repo_name(&new.repo)?;
        if let Some(id) = &new.work_item_id {
            keys::validate_work_item_id(id)?;
        }
        let now = self.now();
        self.writer.tx(|conn| {
            let replaced = match new.replaces {
                Some(old) => Some(retire_replaced(conn, old, now)?),
                None => None,
            };
            if let Some(tid) = &new.tracker_id
                && key_taken(conn, true, tid)?
            {
                return Err(StoreError::Duplicate {
                    key: "tracker id",
                    value: tid.clone(),
                });
            }
            if let Some(wid) = &new.work_item_id
                && key_taken(conn, false, wid)?
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
            let id: i64 = first(
                conn,
                "INSERT INTO tasks (tracker_id, work_item_id, repo, branch, stage, title, body, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                params![
                    new.tracker_id,
                    wid,
                    new.repo,
                    branch_name(&wid, &new.title),
                    new.stage.as_str(),
                    new.title,
                    new.body,
                    now.0,
                    now.0
                ],
                |r| Ok(r.get(0)?),
            )?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING gave no row".into()))?;
            let id = TaskId(id);
            if new.work_item_id.is_none() {
                let minted = mint_work_item_id(conn, &new.repo, id)?;
                exec(
                    conn,
                    "UPDATE tasks SET work_item_id = ?, branch = ? WHERE id = ?",
                    params![minted, branch_name(&minted, &new.title), id.0],
                )?;
            }
            for on in &new.depends_on {
                insert_dependency(conn, id, *on)?;
            }
            insert_stage_write(conn, id, new.tracker_id.as_deref(), new.stage, now)?;
            let msg = match &replaced {
                Some((old, _)) => format!(
                    "created in {} ({}); runs its item again after task {} ({})",
                    new.stage, new.title, old.id, old.stage
                ),
                None => format!("created in {} ({})", new.stage, new.title),
            };
            insert_event(
                conn,
                id,
                now,
                &EventInput::new(actor, EventKind::Created, msg),
                None,
                Some(new.stage),
            )?;
            if let Some((old, follow)) = &replaced {
                let ev = EventInput::new(
                    actor,
                    EventKind::Retired,
                    format!("its item runs again as task {id}; this task keeps its history"),
                );
                insert_event(conn, old.id, now, &ev, None, None)?;
                if *follow {
                    let dependents: Vec<i64> = all(
                        conn,
                        "SELECT d.task_id FROM task_deps d JOIN tasks t ON t.id = d.task_id
                         WHERE d.depends_on = ? AND t.stage NOT IN ('done', 'cancelled', 'failed')
                         ORDER BY d.task_id",
                        params![old.id.0],
                        |r| Ok(r.get(0)?),
                    )?;
                    for dependent in dependents {
                        exec(
                            conn,
                            "DELETE FROM task_deps WHERE task_id = ? AND depends_on = ?",
                            params![dependent, old.id.0],
                        )?;
                        insert_dependency(conn, TaskId(dependent), id)?;
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
                        insert_event(conn, TaskId(dependent), now, &ev, None, None)?;
                    }
                }
            }
            load_task(conn, id)
        }).await
    }

    async fn get_task(&self, id: TaskId) -> StoreResult<Option<Task>> {
        self.read_one(
            concat!(
                "SELECT ",
                crate::rows::task_columns!(),
                " FROM tasks WHERE id = ?"
            ),
            (&id.0,),
            rows::task,
        )
        .await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> StoreResult<Vec<Task>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::task_columns!(),
                " FROM tasks
             WHERE (?1 IS NULL OR repo = ?1) AND (?2 IS NULL OR stage = ?2)
             ORDER BY id DESC LIMIT ?3"
            ),
            (
                &filter.repo,
                &filter.stage.map(|s| s.as_str()),
                &filter.limit.map(i64::from).unwrap_or(-1),
            ),
            rows::task,
        )
        .await
    }

    async fn find_live_task_by_tracker_id(&self, tracker_id: &str) -> StoreResult<Option<Task>> {
        self.read_one(
            concat!(
                "SELECT ",
                crate::rows::task_columns!(),
                " FROM tasks WHERE tracker_id = ?"
            ),
            (&tracker_id,),
            rows::task,
        )
        .await
    }

    async fn find_live_task_by_work_item(&self, work_item_id: &str) -> StoreResult<Option<Task>> {
        self.read_one(
            concat!(
                "SELECT ",
                crate::rows::task_columns!(),
                " FROM tasks WHERE work_item_id = ?"
            ),
            (&work_item_id,),
            rows::task,
        )
        .await
    }

    async fn find_task_by_key(&self, work_item_id: &str) -> StoreResult<Option<Task>> {
        self.read_one(
            &newest_with_key("work_item_id"),
            (&work_item_id,),
            rows::task,
        )
        .await
    }

    async fn latest_task_of_item(&self, tracker_id: &str) -> StoreResult<Option<Task>> {
        self.read_one(&newest_with_key("tracker_id"), (&tracker_id,), rows::task)
            .await
    }

    async fn set_stage(
        &self,
        id: TaskId,
        to: Stage,
        expected: Option<Stage>,
        event: EventInput,
    ) -> StoreResult<Task> {
        let now = self.now();
        self.writer
            .tx(|conn| {
                let task = load_task(conn, id)?;
                if let Some(expected) = expected {
                    common::expect_stage(&task, expected)?;
                }
                common::may_move(&task, to)?;
                move_stage(conn, &task, to, now, &event)?;
                load_task(conn, id)
            })
            .await
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
        self.writer.tx(|conn| {
            let task = load_task(conn, id)?;
            common::expect_stage(&task, expected)?;
let moves = to != expected;
if moves {
common::may_move(&task, to)?;
}
            if job.is_some() {
                // Checked inside the write transaction: no other writer can slip a
                // job in between (BEGIN IMMEDIATE holds the write lock).
                let active: Option<i64> = first(
                    conn,
                    "SELECT id FROM jobs WHERE task_id = ? AND status IN ('queued', 'running') LIMIT 1",
                    params![id.0],
                    |r| Ok(r.get(0)?),
                )?;
                if let Some(active) = active {
                    return Err(StoreError::ActiveJob {
                        task: id,
                        job: orch_core::JobId(active),
                    });
                }
            }
            if moves {
                move_stage(conn, &task, to, now, &event)?;
            } else {
                insert_event(conn, id, now, &event, None, None)?;
            }
            let job = match &job {
                Some(job) => Some(super::jobs::insert_job(conn, job, now)?),
                None => None,
            };
            Ok((load_task(conn, id)?, job))
        }).await
    }

    async fn reopen(
        &self,
        id: TaskId,
        to: Stage,
        event: EventInput,
        job: Option<NewJob>,
    ) -> StoreResult<(Task, Option<Job>)> {
        let now = self.now();
        self.writer
            .tx(|conn| {
                let task = load_task(conn, id)?;
                common::may_reopen(&task, to)?;
                move_stage(conn, &task, to, now, &event)?;
                let job = match &job {
                    Some(job) => Some(super::jobs::insert_job(conn, job, now)?),
                    None => None,
                };
                Ok((load_task(conn, id)?, job))
            })
            .await
    }

    async fn append_event(&self, id: TaskId, event: EventInput) -> StoreResult<TaskEvent> {
        let now = self.now();
        self.writer
            .tx(|conn| {
                load_task(conn, id)?;
                insert_event(conn, id, now, &event, None, None)
            })
            .await
    }

    async fn events(&self, id: TaskId) -> StoreResult<Vec<TaskEvent>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::event_columns!(),
                " FROM task_events WHERE task_id = ? ORDER BY id"
            ),
            (&id.0,),
            rows::event,
        )
        .await
    }

    async fn recent_events(&self, limit: u32) -> StoreResult<Vec<TaskEvent>> {
        self.read_all(
            concat!(
                "SELECT ",
                crate::rows::event_columns!(),
                " FROM task_events ORDER BY id DESC LIMIT ?"
            ),
            (&i64::from(limit),),
            rows::event,
        )
        .await
    }

    async fn set_cancel_requested(&self, id: TaskId, event: EventInput) -> StoreResult<bool> {
        let now = self.now();
        self.writer
            .tx(|conn| {
                load_task(conn, id)?;
                let first = exec(
                    conn,
                    "UPDATE tasks SET cancel_requested_at = ?1, updated_at = ?1
                 WHERE id = ?2 AND cancel_requested_at IS NULL",
                    params![now.0, id.0],
                )? == 1;
                if first {
                    insert_event(conn, id, now, &event, None, None)?;
                }
                Ok(first)
            })
            .await
    }

    async fn mark_cancelled(&self, id: TaskId, event: EventInput) -> StoreResult<Task> {
        let now = self.now();
        self.writer
            .tx(|conn| {
                let task = load_task(conn, id)?;
                if !common::needs_cancel(&task)? {
                    return Ok(task);
                }
                exec(
                    conn,
                    "UPDATE tasks SET stage = 'cancelled', cancelled_at = ?1, updated_at = ?1,
                     tracker_id = ?2, work_item_id = ?3
                 WHERE id = ?4",
                    params![
                        now.0,
                        task.tracker_id.as_deref().map(|k| tombstone(k, id)),
                        tombstone(&task.work_item_id, id),
                        id.0
                    ],
                )?;
                // The state before the event's comment (their order on the item).
                insert_stage_write(conn, id, task.tracker_id.as_deref(), Stage::Cancelled, now)?;
                insert_event(
                    conn,
                    id,
                    now,
                    &event,
                    Some(task.stage),
                    Some(Stage::Cancelled),
                )?;
                load_task(conn, id)
            })
            .await
    }

    async fn add_dependency(&self, task: TaskId, on: TaskId) -> StoreResult<()> {
        self.writer
            .tx(|conn| {
                load_task(conn, task)?;
                insert_dependency(conn, task, on)
            })
            .await
    }

    async fn dependencies(&self, task: TaskId) -> StoreResult<Vec<TaskId>> {
        self.read_all(
            "SELECT depends_on FROM task_deps WHERE task_id = ? ORDER BY depends_on",
            (&task.0,),
            |r| Ok(TaskId(r.get(0)?)),
        )
        .await
    }

    async fn waiting_on_dependencies(&self) -> StoreResult<Vec<(TaskId, Vec<TaskId>)>> {
        let pairs: Vec<(i64, i64)> = self
            .read_all(
                "SELECT d.task_id, d.depends_on FROM task_deps d
                     JOIN tasks t ON t.id = d.task_id
                     JOIN tasks dt ON dt.id = d.depends_on
                     WHERE t.stage NOT IN ('done', 'cancelled', 'failed') AND dt.stage <> 'done'
                     ORDER BY d.task_id, d.depends_on",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .await?;
        Ok(group_dependencies(pairs))
    }

    async fn task_counts_by_stage(&self) -> StoreResult<BTreeMap<Stage, u64>> {
        let rows: Vec<(String, i64)> = self
            .read_all(
                "SELECT stage, COUNT(*) FROM tasks GROUP BY stage",
                (),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .await?;
        common::stage_counts(rows)
    }

    async fn cancelled_snapshot(&self, limit: u32) -> StoreResult<CancelledSnapshot> {
        self.readers
            .run(|c| {
                let count: i64 = c
                    .prepare_cached("SELECT COUNT(*) FROM tasks WHERE stage = 'cancelled'")?
                    .query_row([], |r| r.get(0))?;
                let recent = all(
                    c,
                    concat!("SELECT ", crate::rows::task_columns!(), " FROM tasks WHERE stage = 'cancelled' ORDER BY cancelled_at DESC, id DESC LIMIT ?"),
                    params![i64::from(limit)],
                    rows::task,
                )?;
                Ok(CancelledSnapshot {
                    count: count as u64,
                    recent,
                })
            })
            .await
    }
}
