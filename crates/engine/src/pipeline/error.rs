//! Why a pipeline call failed, by kind: the API and the CLI choose their
//! answer (status, exit code) from the kind, never from the words.

use orch_store::StoreError;

/// Why a pipeline call failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A tracker or forge call (or git beneath it) failed: a failure of
    /// something outside orch, never of the caller's request. The API
    /// answers it with a 5xx, the CLI with exit 1, both with the cause.
    #[error("{0}")]
    Port(#[from] crate::ports::PortError),
    /// orch itself failed (a task's owner stopped mid-command): a 500 and
    /// exit 1, never the caller's mistake.
    #[error("{0}")]
    Internal(String),
}

impl PipelineError {
    /// The same failure, of the same kind, with what was being done in
    /// front of its words. A store error keeps its own words.
    pub fn context(self, what: impl std::fmt::Display) -> PipelineError {
        match self {
            PipelineError::Port(e) => PipelineError::Port(e.context(what)),
            PipelineError::NotFound(m) => PipelineError::NotFound(format!("{what}: {m}")),
            PipelineError::Invalid(m) => PipelineError::Invalid(format!("{what}: {m}")),
            PipelineError::Internal(m) => PipelineError::Internal(format!("{what}: {m}")),
            e @ PipelineError::Store(_) => e,
        }
    }

    /// Whether the same call may succeed later: an outage of the store or of
    /// a port. A refusal, a bad input or a missing item will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Store(_) | PipelineError::Internal(_) => true,
            PipelineError::Port(e) => !e.is_permanent(),
            PipelineError::NotFound(_) | PipelineError::Invalid(_) => false,
        }
    }
}

pub type PipelineResult<T> = Result<T, PipelineError>;
