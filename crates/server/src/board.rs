//! `GET /api/board`: what the dashboard's board draws — every task as a card
//! (stage, running agent) and the totals (tasks by stage, runs today, tokens
//! and cost per repo).

use crate::AppState;
use crate::error::ApiResult;
use axum::Json;
use axum::extract::State;
use orch_core::{AgentKind, JobStatus, Stage, Task, TaskId, Timestamp};
use orch_store::{RepoUsage, Store, TaskFilter};
use serde::Serialize;
use std::collections::BTreeMap;

/// The board shows at most this many tasks (newest first).
pub const BOARD_LIMIT: u32 = 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// One task as the board shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub id: TaskId,
    /// The work item key (as created, also after a cancel tombstoned it).
    pub key: String,
    pub repo: String,
    pub stage: Stage,
    pub title: String,
    pub updated_at: Timestamp,
    /// The agent of the task's running job, if one runs.
    pub running: Option<AgentKind>,
    pub cancel_requested: bool,
}

impl Card {
    pub fn new(t: &Task, running: Option<AgentKind>) -> Card {
        Card {
            id: t.id,
            key: t.original_work_item_id().to_owned(),
            repo: t.repo.clone(),
            stage: t.stage,
            title: t.title.clone(),
            updated_at: t.updated_at,
            running,
            cancel_requested: t.cancel_requested_at.is_some(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Every stage, zero included.
    pub by_stage: BTreeMap<Stage, u64>,
    /// Runs started since midnight UTC.
    pub runs_today: u64,
    pub running: u64,
    pub repos: Vec<RepoUsage>,
}

#[derive(Debug, Serialize)]
pub struct Board {
    pub tasks: Vec<Card>,
    pub totals: Totals,
    /// The configured repos, for the filter.
    pub repos: Vec<String>,
    pub stages: Vec<Stage>,
}

pub async fn board(State(s): State<AppState>) -> ApiResult<Json<Board>> {
    let store = s.store();
    let filter = TaskFilter {
        limit: Some(BOARD_LIMIT),
        ..TaskFilter::default()
    };
    let tasks = store.list_tasks(&filter).await?;
    let running = running_agents(store).await?;
    let cards = tasks
        .iter()
        .map(|t| Card::new(t, running.get(&t.id).copied()))
        .collect();
    Ok(Json(Board {
        tasks: cards,
        totals: totals(store, running.len()).await?,
        repos: s
            .pipeline()
            .config()
            .repos
            .iter()
            .map(|r| r.name.clone())
            .collect(),
        stages: Stage::ALL.to_vec(),
    }))
}

/// Task → agent of its running job (a task has at most one active job).
pub async fn running_agents(store: &dyn Store) -> ApiResult<BTreeMap<TaskId, AgentKind>> {
    let jobs = store.list_jobs(Some(JobStatus::Running), 10_000).await?;
    Ok(jobs.into_iter().map(|j| (j.task_id, j.agent)).collect())
}

pub async fn totals(store: &dyn Store, running: usize) -> ApiResult<Totals> {
    let counts = store.task_counts_by_stage().await?;
    let repos = store.usage_by_repo(midnight_utc(now())).await?;
    Ok(Totals {
        by_stage: Stage::ALL
            .iter()
            .map(|s| (*s, counts.get(s).copied().unwrap_or(0)))
            .collect(),
        runs_today: repos.iter().map(|r| r.runs_since).sum(),
        running: running as u64,
        repos,
    })
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}

fn midnight_utc(t: Timestamp) -> Timestamp {
    Timestamp(t.0 - t.0.rem_euclid(DAY_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight() {
        assert_eq!(
            midnight_utc(Timestamp(DAY_MS * 3 + 5)),
            Timestamp(DAY_MS * 3)
        );
        assert_eq!(midnight_utc(Timestamp(DAY_MS * 3)), Timestamp(DAY_MS * 3));
    }
}
