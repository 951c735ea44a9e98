//! Starting a run: the monitor is spawned as the leader of a new session, with
//! no pipe to the orchestrator, and the run is identified by the monitor's pid
//! and start ticks (not by a `Child` handle) so that an orchestrator started
//! later can adopt it from the store.
//!
//! Zombies: the orchestrator is the monitor's parent and reaps it from a small
//! background thread blocked in `waitpid` on that one pid (64 KiB stack, one per
//! live run). A double fork was considered: it would hide the monitor from the
//! orchestrator entirely, but costs an intermediate process and a pid hand-over
//! for no gain, since identity never depends on parenthood. If the orchestrator
//! exits first, the monitor is re-parented to init (or the nearest subreaper),
//! which reaps it.

use super::ProcessError;
use super::monitor_args::MonitorArgs;
use super::procfs;
use super::run_dir;
use super::sandbox::{SANDBOX_JSON, SandboxSpec};
use orch_core::RunId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// How to start the monitor: production uses the orch binary itself
/// (`current_exe`, `["monitor"]`); tests use the `orch-monitor` binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorCommand {
    pub program: PathBuf,
    pub args_prefix: Vec<String>,
}

impl MonitorCommand {
    /// `orch monitor …`, run from the current executable.
    pub fn current_exe() -> Result<MonitorCommand, ProcessError> {
        Ok(MonitorCommand {
            program: std::env::current_exe()
                .map_err(|e| ProcessError::io("locating the orch binary", e))?,
            args_prefix: vec!["monitor".to_owned()],
        })
    }
}

/// Whether to give the run a cgroup v2 of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CgroupMode {
    /// Use one where the machine allows it, fall back to `/proc` silently.
    #[default]
    Auto,
    /// Never; process control relies on the `/proc` walk alone.
    Off,
}

/// Everything needed to start one agent run.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub run_id: RunId,
    /// The run folder (logs, `monitor.json`, `exit.json`); created if missing and
    /// must not hold a previous run.
    pub run_dir: PathBuf,
    /// The agent's working directory (the task's worktree).
    pub cwd: PathBuf,
    /// Program and arguments, run without a shell.
    pub argv: Vec<OsString>,
    /// The agent's complete environment: nothing else passes through.
    pub env: BTreeMap<String, String>,
    pub monitor: MonitorCommand,
    pub cgroup: CgroupMode,
    /// Run the agent in a sandbox ([`super::sandbox`]); `None`: as orch's user.
    pub sandbox: Option<SandboxSpec>,
    /// Memory, CPU and process limits of the run ([`super::limits`]).
    pub limits: super::limits::ResourceLimits,
}

/// A started run, as the store keeps it: enough to find, check and stop the
/// monitor from any later orchestrator process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHandle {
    pub run_id: RunId,
    /// The monitor's pid.
    pub pid: i32,
    /// The monitor's process group (it leads its session, so equal to `pid`).
    pub pgid: i32,
    /// The monitor's start time (field 22 of `/proc/<pid>/stat`).
    pub proc_start_ticks: u64,
    pub run_dir: PathBuf,
}

impl RunHandle {
    pub fn monitor(&self) -> procfs::ProcId {
        procfs::ProcId {
            pid: self.pid,
            start_ticks: self.proc_start_ticks,
        }
    }
}

/// Starts the monitor for `spec` and returns as soon as it runs. The agent is
/// started by the monitor a moment later; [`super::wait_started`] waits for it,
/// and a failure to start it ends up in `exit.json` (`spawn_error`).
pub fn launch(spec: LaunchSpec) -> Result<RunHandle, ProcessError> {
    if spec.argv.is_empty() {
        return Err(ProcessError::Other("empty agent command".into()));
    }
    std::fs::create_dir_all(&spec.run_dir)
        .map_err(|e| ProcessError::io(format!("creating {}", spec.run_dir.display()), e))?;
    let run_dir = spec
        .run_dir
        .canonicalize()
        .map_err(|e| ProcessError::io(format!("resolving {}", spec.run_dir.display()), e))?;
    for used in [run_dir::MONITOR_JSON, run_dir::EXIT_JSON] {
        if run_dir.join(used).exists() {
            return Err(ProcessError::RunDirInUse(run_dir.clone()));
        }
    }

    // The environment goes through a private file rather than the command line,
    // which every user can read in /proc.
    let env_file = run_dir.join(run_dir::AGENT_ENV);
    let env_json = serde_json::to_vec(&spec.env).map_err(|e| ProcessError::Json {
        path: env_file.clone(),
        source: e,
    })?;
    let io_env = |e| ProcessError::io(format!("writing {}", env_file.display()), e);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&env_file)
        .map_err(io_env)?;
    f.write_all(&env_json).map_err(io_env)?;
    drop(f);

    // The monitor runs in the run folder, so a relative cwd must be resolved
    // against ours now.
    let cwd = std::path::absolute(&spec.cwd)
        .map_err(|e| ProcessError::io(format!("resolving {}", spec.cwd.display()), e))?;
    let mut args = MonitorArgs::new(run_dir.clone(), spec.argv);
    args.run_id = Some(spec.run_id.to_string());
    args.cwd = Some(cwd);
    args.env_file = Some(env_file.clone());
    args.cgroup = spec.cgroup == CgroupMode::Auto;
    args.limits = spec.limits;
    if let Some(sandbox) = &spec.sandbox {
        let path = run_dir.join(SANDBOX_JSON);
        let json = serde_json::to_vec_pretty(sandbox).map_err(|e| ProcessError::Json {
            path: path.clone(),
            source: e,
        })?;
        std::fs::write(&path, json)
            .map_err(|e| ProcessError::io(format!("writing {}", path.display()), e))?;
        args.sandbox = Some(path);
    }

    let monitor_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(run_dir.join(run_dir::MONITOR_LOG))
        .map_err(|e| ProcessError::io("opening monitor.log", e))?;
    let mut cmd = Command::new(&spec.monitor.program);
    cmd.args(&spec.monitor.args_prefix)
        .args(args.to_args())
        // The monitor needs no variables, and the orchestrator's secrets should
        // not sit in its /proc/<pid>/environ either.
        .env_clear()
        .current_dir(&run_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(monitor_log);
    // The monitor makes itself a session leader as its first act
    // (`run_monitor`). Doing it here in `pre_exec` would force a full fork of
    // this (large, multi-threaded) process; without a closure std spawns with
    // posix_spawn, a few milliseconds less per agent start.
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&env_file);
            return Err(ProcessError::io(
                format!("starting the monitor {}", spec.monitor.program.display()),
                e,
            ));
        }
    };
    let pid = child.id() as i32;
    // The child is not reaped until the thread below runs, so its stat exists
    // even if it already exited (its start time does not change with setsid).
    let ticks = procfs::start_ticks(pid);
    std::thread::Builder::new()
        .name(format!("reap-monitor-{pid}"))
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = child.wait();
        })
        .map_err(|e| ProcessError::io("starting the monitor's reaper thread", e))?;
    let proc_start_ticks = ticks
        .map_err(|e| ProcessError::io(format!("reading /proc/{pid}/stat"), e))?
        .ok_or_else(|| {
            ProcessError::Other(format!("monitor {pid} vanished before it was recorded"))
        })?;
    Ok(RunHandle {
        run_id: spec.run_id,
        pid,
        pgid: pid,
        proc_start_ticks,
        run_dir,
    })
}
