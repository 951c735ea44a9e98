//! Wall-clock and idle (stall) timeouts of a run.
//!
//! Output activity is read from the modification times of the run's log files,
//! which the monitor touches with every line the agent prints; nothing has to
//! be told about the output for the idle timeout to work, and it keeps working
//! for a run adopted after a restart. The decision itself is a pure function of
//! timestamps, [`decide`]; the caller stops the run when a timeout fires.

use super::launcher::RunHandle;
use super::liveness::{RunState, run_state};
use super::run_dir::{self, ExitRecord, OUTPUT_LOG, STDERR_LOG};
use orch_core::{RunOutcome, Timestamp};
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

/// The limits of one run; `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Since the agent started.
    pub wall: Option<Duration>,
    /// Since the last line of output (stdout or stderr), or the start.
    pub idle: Option<Duration>,
}

/// Which limit a run hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Wall,
    Idle,
}

impl TimeoutKind {
    /// The run outcome this timeout leads to.
    pub fn outcome(self) -> RunOutcome {
        match self {
            TimeoutKind::Wall => RunOutcome::TimedOut,
            TimeoutKind::Idle => RunOutcome::Stalled,
        }
    }
}

/// Decides from timestamps alone. The wall limit wins when both are hit.
pub fn decide(
    t: &Timeouts,
    started: Timestamp,
    last_output: Option<Timestamp>,
    now: Timestamp,
) -> Option<TimeoutKind> {
    if t.wall.is_some_and(|w| now.since(started) >= w) {
        return Some(TimeoutKind::Wall);
    }
    let last = last_output.map_or(started, |l| l.max(started));
    if t.idle.is_some_and(|i| now.since(last) >= i) {
        return Some(TimeoutKind::Idle);
    }
    None
}

/// When the agent last wrote to its logs (the later of both files' mtimes).
pub fn last_output_at(run_dir: &Path) -> Option<Timestamp> {
    [OUTPUT_LOG, STDERR_LOG]
        .iter()
        .filter_map(|name| std::fs::metadata(run_dir.join(name)).ok()?.modified().ok())
        .filter_map(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
        .max()
}

/// Checks a run's timeouts against its log files.
pub fn check_timeouts(
    run_dir: &Path,
    t: &Timeouts,
    started: Timestamp,
    now: Timestamp,
) -> Option<TimeoutKind> {
    decide(t, started, last_output_at(run_dir), now)
}

/// How [`watch`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchResult {
    Exited(ExitRecord),
    /// The monitor vanished without recording an exit.
    Lost,
    /// A limit was hit; the run is still going and the caller stops it.
    TimedOut(TimeoutKind),
}

/// Blocks until the run ends or hits a limit. The clock starts when the agent
/// started (from `monitor.json`), or now if that is not recorded yet.
pub fn watch(handle: &RunHandle, t: &Timeouts) -> WatchResult {
    let started =
        run_dir::read_monitor_info(&handle.run_dir).map_or_else(run_dir::now, |i| i.started_at);
    // Poll often enough to notice a limit within a tenth of it, but not more
    // often than every 10 ms nor less than every second.
    let shortest = [t.wall, t.idle]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(Duration::from_secs(10));
    let every = (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        let tick = Instant::now();
        match run_state(handle) {
            RunState::Exited(rec) => return WatchResult::Exited(rec),
            RunState::Lost => return WatchResult::Lost,
            RunState::Running => {}
        }
        if let Some(kind) = check_timeouts(&handle.run_dir, t, started, run_dir::now()) {
            return WatchResult::TimedOut(kind);
        }
        std::thread::sleep(every.saturating_sub(tick.elapsed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn t(wall: Option<u64>, idle: Option<u64>) -> Timeouts {
        Timeouts {
            wall: wall.map(|s| S * s as u32),
            idle: idle.map(|s| S * s as u32),
        }
    }

    #[test]
    fn no_limits_never_fire() {
        assert_eq!(
            decide(&t(None, None), Timestamp(0), None, Timestamp(1_000_000_000)),
            None
        );
    }

    #[test]
    fn wall_fires_at_the_limit_even_with_fresh_output() {
        let lim = t(Some(10), Some(5));
        assert_eq!(
            decide(&lim, Timestamp(0), Some(Timestamp(9_999)), Timestamp(9_999)),
            None
        );
        assert_eq!(
            decide(
                &lim,
                Timestamp(0),
                Some(Timestamp(9_999)),
                Timestamp(10_000)
            ),
            Some(TimeoutKind::Wall)
        );
    }

    #[test]
    fn idle_counts_from_last_output_or_start() {
        let lim = t(None, Some(5));
        assert_eq!(decide(&lim, Timestamp(1_000), None, Timestamp(5_999)), None);
        assert_eq!(
            decide(&lim, Timestamp(1_000), None, Timestamp(6_000)),
            Some(TimeoutKind::Idle)
        );
        assert_eq!(
            decide(
                &lim,
                Timestamp(1_000),
                Some(Timestamp(4_000)),
                Timestamp(8_999)
            ),
            None
        );
        // Logs older than the start (a reused folder) do not count against the run.
        assert_eq!(
            decide(&lim, Timestamp(1_000), Some(Timestamp(0)), Timestamp(5_999)),
            None
        );
    }

    #[test]
    fn outcome_mapping() {
        assert_eq!(TimeoutKind::Wall.outcome(), RunOutcome::TimedOut);
        assert_eq!(TimeoutKind::Idle.outcome(), RunOutcome::Stalled);
    }

    #[test]
    fn last_output_reads_the_newer_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(last_output_at(dir.path()), None);
        let old = std::fs::File::create(dir.path().join(OUTPUT_LOG)).expect("create");
        old.set_modified(UNIX_EPOCH + Duration::from_secs(100))
            .expect("mtime");
        let new = std::fs::File::create(dir.path().join(STDERR_LOG)).expect("create");
        new.set_modified(UNIX_EPOCH + Duration::from_secs(200))
            .expect("mtime");
        assert_eq!(last_output_at(dir.path()), Some(Timestamp(200_000)));
        let lim = t(None, Some(5));
        assert_eq!(
            check_timeouts(dir.path(), &lim, Timestamp(0), Timestamp(205_000)),
            Some(TimeoutKind::Idle)
        );
    }
}
