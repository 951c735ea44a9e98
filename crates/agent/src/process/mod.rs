//! Monitor, launcher and stop of agent process trees (R-15, R-16, R-17, R-20).
//!
//! A run is one agent process tree, owned by a monitor process:
//!
//! ```text
//! orchestrator ──launch──▶ monitor (new session, child subreaper)
//!                            └─ agent (own process group, optional cgroup,
//!                                      stdin /dev/null, only the given env)
//!                                 └─ tools … (may setsid away; still found)
//! ```
//!
//! - [`launch`] starts the monitor and returns a [`RunHandle`] (pid + start
//!   ticks + run folder) that the store keeps; a later orchestrator rebuilds
//!   it from there and adopts the run.
//! - [`run_monitor`] is the monitor itself (`orch monitor`, or the
//!   `orch-monitor` test binary).
//! - [`stop`] ends every process of the run: SIGINT → grace → SIGTERM → grace →
//!   SIGKILL, refusing when the recorded pid was reused.
//! - [`is_alive`], [`run_state`], [`wait_exit`], [`read_exit`] tell how a run
//!   stands; [`check_timeouts`] and [`watch`] enforce wall and idle limits.

pub mod cgroup;
mod clone_spawn;
mod copier;
mod launcher;
pub mod limits;
mod liveness;
mod monitor;
mod monitor_args;
pub mod procfs;
pub mod run_dir;
pub mod sandbox;
mod signal;
mod stop;
mod timeouts;
mod tree;

pub use launcher::{CgroupMode, LaunchSpec, MonitorCommand, RunHandle, launch};
pub use liveness::{RunState, is_alive, run_state, wait_exit, wait_started};
pub use monitor::run_monitor;
pub use monitor_args::{ArgsError, MonitorArgs};
pub use procfs::{Identity, ProcId};
pub use run_dir::{ExitRecord, MonitorInfo, StopRecord, read_exit, read_monitor_info};
pub use stop::{Refusal, SignalSent, SignalTarget, StopPolicy, StopReport, StopSignal, stop};
pub use timeouts::{
    TimeoutKind, Timeouts, WatchResult, check_timeouts, decide as decide_timeout, last_output_at,
    watch,
};

use std::path::PathBuf;

/// Why a process-control operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    #[error("bad JSON in {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "run folder {0} already holds a run (monitor.json or exit.json exists); use a fresh folder per run"
    )]
    RunDirInUse(PathBuf),
    #[error("{0}")]
    Other(String),
}

impl ProcessError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> ProcessError {
        ProcessError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn sys(context: &'static str, source: nix::errno::Errno) -> ProcessError {
        ProcessError::Sys { context, source }
    }
}
