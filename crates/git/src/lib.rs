//! Git for orch: the git CLI driven with argv only (never a shell string).
//!
//! - [`Git`] (`runner.rs`) runs one git command in a hermetic frame and maps a
//!   failure to a [`GitError`] carrying the command, exit status and stderr tail.
//! - [`RepoStore`] (`mirror.rs`) keeps one bare mirror per repo under `repos_dir`
//!   and, per task, a worktree sharing the mirror's objects (`worktree.rs`, R-20).
//! - Removing a worktree first archives its branch tip and uncommitted work to
//!   `refs/orch/archive/<work_item_id>/<n>` (`archive.rs`, R-21).
//! - Branch operations (`branch.rs`): orch's commits, push, merging the base in,
//!   the reviewer's diff, guarded remote-branch deletion and the local
//!   forge's lease-checked fast-forward of the base.
//! - Disk care (issue 12): a worktree's size by a capped walk (`size.rs`),
//!   and its ignored build outputs removed (`cleanup.rs`), git deciding what
//!   is ignored.
//! - Everything that reaches git as a ref is validated first (`refs.rs`).
//! - No git call of orch's reads a config an agent can write: each runs through
//!   the repo's control dir (`control.rs`), with a minimal environment
//!   (`runner.rs`). `docs/security.md` explains why that is enough.

mod agent_view;
mod archive;
mod branch;
mod catch_up;
mod cleanup;
mod control;
mod error;
mod locks;
mod mirror;
pub mod refs;
mod repair;
mod runner;
pub mod size;
#[cfg(test)]
mod test_world;
mod worktree;

pub use agent_view::AgentGitView;
pub use archive::{ARCHIVE_FILES_SHOWN, Archive, ArchiveListing, restore_branch_name};
pub use branch::{DeleteOutcome, FastForward, MergeResult, ProtectedBranches};
pub use catch_up::CatchUp;
pub use cleanup::{OutputCleanup, RemovedOutput};
pub use error::{GitError, RefError, Result};
pub use mirror::RepoStore;
pub use repair::WorktreeRepair;
pub use runner::{ALLOWED_PROTOCOLS, Git, GitOutput, Identity, PASSED_VARS};
pub use worktree::{PruneReport, Removal, Worktree};
