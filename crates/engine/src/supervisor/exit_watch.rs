//! Wakes a run's watcher the moment the monitor writes `exit.json` (inotify on
//! the run folder), so a finished run moves its task on at once while the
//! watcher's periodic tick can stay slow: with a hundred agents, polling every
//! run several times a second was most of orch's idle CPU.
//!
//! Only file creations and renames are watched (the monitor writes
//! `exit.json` through a rename); log writes do not wake anyone. Without
//! inotify (or if it fails) `changed` never resolves and the tick alone
//! notices the end, as before.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;
use tokio::io::unix::AsyncFd;

/// `AsyncFd` wants `AsRawFd`; nix's `Inotify` offers `AsFd`.
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub(super) struct ExitWatch(Option<AsyncFd<Fd>>);

impl ExitWatch {
    pub(super) fn new(run_dir: &Path) -> ExitWatch {
        let watch = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .and_then(|i| {
                i.add_watch(
                    run_dir,
                    AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE,
                )
                .ok()?;
                // SAFETY: the fd is owned by `Inotify`, which the AsyncFd owns
                // and drops (closing the fd) only after deregistering it.
                unsafe {
                    AsyncFd::register_with_interest(Fd(i), tokio::io::Interest::READABLE).ok()
                }
            });
        if watch.is_none() {
            tracing::debug!(dir = %run_dir.display(), "no inotify for the run folder; the tick notices its end");
        }
        ExitWatch(watch)
    }

    /// Resolves when a file appeared in the run folder (the caller looks at
    /// what changed); never, without inotify.
    pub(super) async fn changed(&mut self) {
        let Some(fd) = &self.0 else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut guard) = fd.readable().await else {
                return std::future::pending().await;
            };
            match guard.get_inner().0.read_events() {
                Ok(events) if !events.is_empty() => return,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(_) => return std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_on_a_renamed_file_and_not_on_appends() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("output.log");
        std::fs::write(&log, "start\n").unwrap();
        let mut w = ExitWatch::new(dir.path());
        assert!(w.0.is_some(), "inotify is available here");
        // Appending to an existing log is no event.
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            writeln!(f, "more").unwrap();
        }
        let quiet = tokio::time::timeout(Duration::from_millis(100), w.changed()).await;
        assert!(quiet.is_err(), "a log append must not wake the watcher");
        std::fs::write(dir.path().join("exit.json.tmp"), "{}").unwrap();
        std::fs::rename(
            dir.path().join("exit.json.tmp"),
            dir.path().join("exit.json"),
        )
        .unwrap();
        tokio::time::timeout(Duration::from_secs(2), w.changed())
            .await
            .expect("exit.json wakes the watcher");
    }
}
