//! Store errors: what went wrong, in terms a caller can act on.

use orch_core::keys::KeyError;
use orch_core::{JobId, Stage, TaskId};

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task {0} does not exist")]
    TaskNotFound(TaskId),
    #[error("job {0} does not exist")]
    JobNotFound(JobId),
    #[error(
        "a live task already uses {key} {value:?}; stop or finish it first, or use another key"
    )]
    Duplicate { key: &'static str, value: String },
    #[error("task {task}: a move from {from} to {to} is not allowed")]
    IllegalTransition {
        task: TaskId,
        from: Stage,
        to: Stage,
    },
    #[error(
        "task {task} is in stage {found}, not {expected}; it changed meanwhile, reload and retry"
    )]
    StageConflict {
        task: TaskId,
        expected: Stage,
        found: Stage,
    },
    #[error("task {task} cannot depend on task {on}: {why}")]
    BadDependency {
        task: TaskId,
        on: TaskId,
        why: &'static str,
    },
    #[error(
        "an INITIATED {step} marker already exists for task {task} (marker {marker}); finish or prove it first"
    )]
    MarkerExists {
        task: TaskId,
        step: &'static str,
        marker: i64,
    },
    #[error("task {task} already has an active job ({job}); a task runs one job at a time")]
    ActiveJob { task: TaskId, job: JobId },
    #[error(transparent)]
    InvalidKey(#[from] KeyError),
    #[error("{0}")]
    Unsupported(String),
    #[error("could not open the database at {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("the database holds a value orch cannot read: {0}")]
    Corrupt(String),
}

impl From<orch_core::ParseError> for StoreError {
    fn from(e: orch_core::ParseError) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
