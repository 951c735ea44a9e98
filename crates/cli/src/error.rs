//! CLI errors and their exit codes: 2 for usage and configuration mistakes the
//! operator must fix, 1 for runtime failures. A tracker, forge or git step
//! that fails is a runtime failure (exit 1) with the cause, whatever its
//! kind: the command was right, something it depends on was not.

use orch_config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] orch_store::StoreError),
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Config(_) => 2,
            CliError::Store(orch_store::StoreError::InvalidKey(_))
            | CliError::Store(orch_store::StoreError::Duplicate { .. })
            | CliError::Store(orch_store::StoreError::BadDependency { .. }) => 2,
            CliError::Store(_) | CliError::Runtime(_) => 1,
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// A tracker's, forge's or git's failure (exit 1): its words, and what its
/// kind (`PortError::kind`, also the API's `kind`) means for the operator.
pub fn port_failure(kind: &str, cause: &str) -> CliError {
    let hint = match kind {
        "unavailable" => "unavailable: try again later",
        "rate_limited" => "rate limited: try again later",
        "refused" => "refused: asking again will not help; fix what it says first",
        "not_found" => "not found there: check the id and the repo settings",
        "invalid" => "invalid: fix orch's settings or the input first",
        "no_mirror" => "no mirror yet: `orch serve` creates it at start-up",
        _ => "failed",
    };
    CliError::Runtime(anyhow::anyhow!("{cause} [{hint}]"))
}
