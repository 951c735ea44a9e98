//! orch's configuration: one `orch.toml` with `ORCH_…` environment overrides
//! (R-53), checked with messages that name the key, and turned into the policy
//! types of `orch-core` (limits, gates, retry policy, STOP scope).
//!
//! ```no_run
//! # fn main() -> Result<(), orch_config::ConfigError> {
//! let (config, warnings) = orch_config::Config::load_validated(None)?;
//! for w in &warnings {
//!     eprintln!("warning: {w}");
//! }
//! let _url = config.store_url();
//! # Ok(())
//! # }
//! ```
//!
//! - `model`: the serde types of the file, with the embedded defaults.
//! - `load`: file + environment (figment) and error messages.
//! - `validate`: range and consistency checks.
//! - `resolve`: absolute paths, store location, secrets, core conversions.
//! - `policy`: `[budget]`, `[review]`, `[merge]`, `[logging]`, `[[notify]]`.
//! - `disk`: `[limits]` and `[cleanup]`, the worktrees' disk care.
//! - `sandbox`: `[sandbox]`, how agents are contained.
//! - `workflow`: a Symphony-style `WORKFLOW.md` as a layer beneath orch.toml.
//! - `states`: the one rule for tracker state names (trimmed, case-insensitive).

mod disk;
mod error;
mod load;
mod model;
mod policy;
mod resolve;
mod sandbox;
mod states;
mod validate;
mod workflow;

pub use disk::{CleanupConfig, DiskLimitsConfig};
pub use error::{ConfigError, Problem, Warning};
pub use load::{DEFAULT_FILE, ENV_PREFIX, ENV_SEPARATOR, env_provider};
pub use model::*;
pub use resolve::StoreLocation;
pub use sandbox::{SandboxConfig, SandboxMode};
pub use states::{StateCollision, StateRole, same_state, state_key};
pub use workflow::{Mapped, WorkflowError, WorkflowFile, WorkflowPrompt, map_front_matter};

/// A commented `orch.toml` documenting every section with the embedded
/// defaults, one example repo and scripted example agents (`orch init` writes it).
pub fn example_toml() -> &'static str {
    include_str!("example.toml")
}
