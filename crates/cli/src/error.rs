//! CLI errors and their exit codes: 2 for usage and configuration mistakes the
//! operator must fix, 1 for runtime failures.

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
