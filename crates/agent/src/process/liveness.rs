//! Is a run still going, and how did it end: answers from `/proc` (the monitor's
//! pid and start ticks) and from the run folder, so they hold for a run adopted
//! after an orchestrator restart exactly as for one launched by this process.
//!
//! Waiting is polling: `run_state` is cheap (one stat of `exit.json`, one read
//! of `/proc/<pid>/stat`), so an async supervisor can call it from a timer, and
//! the blocking [`wait_exit`] suits tests and `spawn_blocking`.

use super::launcher::RunHandle;
use super::procfs::Identity;
use super::run_dir::{self, ExitRecord, MonitorInfo};
use std::time::{Duration, Instant};

/// True while the run's monitor is running: its pid exists, its start ticks
/// match the recorded ones, and it is not a zombie.
pub fn is_alive(handle: &RunHandle) -> bool {
    handle.monitor().identity() == Identity::Alive
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// The monitor is alive and has not recorded an exit.
    Running,
    /// The monitor recorded how the agent ended.
    Exited(ExitRecord),
    /// The monitor is gone without a record (killed, crashed, or the machine
    /// rebooted): the outcome is unknown.
    Lost,
}

/// The run's state now.
pub fn run_state(handle: &RunHandle) -> RunState {
    if let Some(rec) = run_dir::read_exit(&handle.run_dir) {
        return RunState::Exited(rec);
    }
    if is_alive(handle) {
        return RunState::Running;
    }
    // The monitor writes exit.json just before it exits: look again, in case
    // that happened between the two checks above.
    match run_dir::read_exit(&handle.run_dir) {
        Some(rec) => RunState::Exited(rec),
        None => RunState::Lost,
    }
}

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Waits up to `timeout` for the run to end; returns [`RunState::Running`] if it
/// is still going then.
pub fn wait_exit(handle: &RunHandle, timeout: Duration) -> RunState {
    poll(timeout, || match run_state(handle) {
        RunState::Running => None,
        done => Some(done),
    })
    .unwrap_or(RunState::Running)
}

/// Waits up to `timeout` for the monitor to record the started agent. `None`
/// when it did not in time, or ended without starting it (see `exit.json`).
pub fn wait_started(handle: &RunHandle, timeout: Duration) -> Option<MonitorInfo> {
    poll(timeout, || {
        if let Some(info) = run_dir::read_monitor_info(&handle.run_dir) {
            return Some(Some(info));
        }
        match run_state(handle) {
            RunState::Running => None,
            // One more look: monitor.json comes before exit.json.
            _ => Some(run_dir::read_monitor_info(&handle.run_dir)),
        }
    })
    .flatten()
}
