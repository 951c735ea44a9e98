//! The run folder: the names of its files, the records the monitor leaves there
//! (`monitor.json` at start, `exit.json` at the end) and atomic writes.
//!
//! The run folder is the only channel between a monitor and whichever
//! orchestrator process watches it, so a restarted orchestrator learns
//! everything from here and from `/proc`.

use super::ProcessError;
use orch_core::{RunId, Timestamp};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The agent's stdout, byte for byte, appended in whole lines.
pub const OUTPUT_LOG: &str = "output.log";
/// The agent's stderr.
pub const STDERR_LOG: &str = "stderr.log";
/// The monitor's own diagnostics (its stderr).
pub const MONITOR_LOG: &str = "monitor.log";
/// Written once the agent has started: [`MonitorInfo`].
pub const MONITOR_JSON: &str = "monitor.json";
/// Written once the agent has ended and its strays are gone: [`ExitRecord`].
pub const EXIT_JSON: &str = "exit.json";
/// The agent's environment as a JSON object; read and deleted by the monitor.
pub const AGENT_ENV: &str = "agent.env";
/// Written by `stop` before its first signal: why the run was stopped.
pub const STOP_JSON: &str = "stop.json";

/// What the monitor records when the agent has started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorInfo {
    pub run_id: RunId,
    pub monitor_pid: i32,
    pub monitor_start_ticks: u64,
    pub agent_pid: i32,
    /// The agent leads its own process group, so its pgid is its pid.
    pub agent_start_ticks: u64,
    pub started_at: Timestamp,
    /// The run's cgroup v2 directory, when the machine allowed one.
    pub cgroup: Option<PathBuf>,
}

/// How the agent ended, written by the monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    pub run_id: RunId,
    /// Set when the agent exited normally.
    pub exit_code: Option<i32>,
    /// Set when a signal killed the agent.
    pub signal: Option<i32>,
    #[serde(default)]
    pub core_dumped: bool,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// `None` when the agent could not be started (see `spawn_error`).
    pub agent_pid: Option<i32>,
    /// Why the agent could not be started (program missing, bad cwd, …).
    #[serde(default)]
    pub spawn_error: Option<String>,
    /// Signals the monitor received and passed on to the agent's group.
    #[serde(default)]
    pub forwarded_signals: Vec<i32>,
    /// Processes left behind by the agent that the monitor had to end.
    #[serde(default)]
    pub strays_killed: u32,
    /// Resource limits the run ran into ([`super::limits`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits_hit: Vec<super::limits::LimitHit>,
}

impl ExitRecord {
    /// True when the agent ran and exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// What `stop` leaves in the run folder, so that the reason survives a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopRecord {
    pub reason: String,
    pub requested_at: Timestamp,
}

/// The wall clock as a [`Timestamp`].
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp(ms)
}

/// Writes `value` as JSON to `dir/name` so that readers see either nothing or
/// the whole file: write a temporary file, fsync it, rename it over, fsync the
/// folder.
pub fn write_json_atomic<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
) -> Result<(), ProcessError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |source| ProcessError::Io {
        context: format!("writing {}", path.display()),
        source,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ProcessError::Json {
        path: path.clone(),
        source: e,
    })?;
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io)?;
    // The rename is durable only once the folder itself is synced. Some
    // filesystems refuse fsync on a directory; the rename has happened anyway.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ProcessError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ProcessError::Json {
                path: path.to_owned(),
                source: e,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ProcessError::Io {
            context: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

/// The exit record, once the monitor has written it.
pub fn read_exit(run_dir: &Path) -> Option<ExitRecord> {
    // exit.json is renamed into place whole, so a parse error means damage, not a
    // half-written file; either way there is no usable record.
    read_json(&run_dir.join(EXIT_JSON)).ok().flatten()
}

/// The monitor's record of the started agent, once written.
pub fn read_monitor_info(run_dir: &Path) -> Option<MonitorInfo> {
    read_json(&run_dir.join(MONITOR_JSON)).ok().flatten()
}

/// The stop request, if `stop` was ever called for this run.
pub fn read_stop_record(run_dir: &Path) -> Option<StopRecord> {
    read_json(&run_dir.join(STOP_JSON)).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_record_round_trips_and_tolerates_missing_optional_fields() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rec = ExitRecord {
            run_id: RunId::from("r1"),
            exit_code: Some(3),
            signal: None,
            core_dumped: false,
            started_at: Timestamp(1),
            finished_at: Timestamp(2),
            agent_pid: Some(42),
            spawn_error: None,
            forwarded_signals: vec![15],
            strays_killed: 1,
            limits_hit: Vec::new(),
        };
        write_json_atomic(dir.path(), EXIT_JSON, &rec).expect("write");
        assert_eq!(read_exit(dir.path()), Some(rec));
        assert!(!dir.path().join(".exit.json.tmp").exists());

        std::fs::write(
            dir.path().join(EXIT_JSON),
            r#"{"run_id":"r2","exit_code":null,"signal":9,"started_at":1,"finished_at":2,"agent_pid":7}"#,
        )
        .expect("write");
        let old = read_exit(dir.path()).expect("parses");
        assert_eq!(old.signal, Some(9));
        assert!(old.forwarded_signals.is_empty());
    }

    #[test]
    fn missing_or_damaged_records_read_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_exit(dir.path()), None);
        std::fs::write(dir.path().join(EXIT_JSON), "{").expect("write");
        assert_eq!(read_exit(dir.path()), None);
        assert_eq!(read_monitor_info(dir.path()), None);
    }
}
