//! Waiting on the engine's own signals instead of sleeping.
//!
//! An engine answers `GET /api/changes`, a long poll on its change
//! counter: every committed write of the engine and every pass of its
//! ticker and notification outbox (`crates/server/src/signal.rs`). A wait
//! reads the counter, then looks at what it waits for, and if that is not
//! there yet waits for the counter to move past what it read: a change
//! made between the read and the look ends that wait at once, so none is
//! missed, and nothing sleeps.
//!
//! An in-process engine's store gives the same counter directly
//! (`Store::changes`; `supervisor.rs` awaits it).
//!
//! Where no engine answers (not started yet, between a crash and its
//! restart) there is nothing to wait on: the look is repeated after 50 ms.

use super::http::Api;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// The longest one long poll waits (the server caps it at 30 s).
const POLL: Duration = Duration::from_secs(10);

/// Looked at again this soon when no engine answers to wait on.
const NO_ENGINE: Duration = Duration::from_millis(50);

/// Wait until `check` gives a value, each look after the engine serving
/// `dir` (found again at each look: it may have restarted) signalled a
/// change; fail after `limit` with `fail()`.
pub fn until<T>(
    dir: &Path,
    limit: Duration,
    check: impl FnMut() -> Option<T>,
    fail: impl FnOnce() -> String,
) -> T {
    until_with(|| Api::find(dir), limit, check, fail)
}

/// `until`, on the signal of this one engine (`api`).
pub fn until_at<T>(
    api: &Api,
    limit: Duration,
    check: impl FnMut() -> Option<T>,
    fail: impl FnOnce() -> String,
) -> T {
    until_with(|| Some(api.clone()), limit, check, fail)
}

fn until_with<T>(
    engine: impl Fn() -> Option<Api>,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
    fail: impl FnOnce() -> String,
) -> T {
    let end = Instant::now() + limit;
    loop {
        // Read before the look: a change after the read ends the wait below.
        let api = engine();
        let seen = api.as_ref().and_then(|a| a.changes(0, Duration::ZERO));
        if let Some(v) = check() {
            return v;
        }
        let now = Instant::now();
        assert!(now < end, "{}", fail());
        park(api.as_ref(), seen, end - now);
    }
}

/// Wait for the counter to pass `seen` (at most `left`); with no engine
/// answering, a short pause.
fn park(api: Option<&Api>, seen: Option<u64>, left: Duration) {
    if let (Some(api), Some(seen)) = (api, seen)
        && api.changes(seen, left.min(POLL)).is_some()
    {
        return;
    }
    // No engine answers: nothing to wait on but time.
    std::thread::sleep(NO_ENGINE.min(left));
}

/// `until` for an async test whose fakes run on its own runtime: the long
/// poll runs on a blocking thread, so the runtime keeps serving them.
pub async fn until_async<T>(
    dir: &Path,
    limit: Duration,
    mut check: impl FnMut() -> Option<T>,
    fail: impl FnOnce() -> String,
) -> T {
    let end = Instant::now() + limit;
    loop {
        let d = dir.to_path_buf();
        let (api, seen) = tokio::task::spawn_blocking(move || {
            let api = Api::find(&d);
            let seen = api.as_ref().and_then(|a| a.changes(0, Duration::ZERO));
            (api, seen)
        })
        .await
        .unwrap();
        if let Some(v) = check() {
            return v;
        }
        let now = Instant::now();
        assert!(now < end, "{}", fail());
        tokio::task::spawn_blocking(move || park(api.as_ref(), seen, end - now))
            .await
            .unwrap();
    }
}

/// Task `key`'s `orch task show --json` once `done` holds of it; at the
/// deadline, fail with `what` and the task.
pub fn task(
    dir: &Path,
    key: &str,
    limit: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    until(
        dir,
        limit,
        || super::show(dir, key).filter(|v| done(v)),
        || {
            format!(
                "{key}: {what} never happened: {:#}",
                super::show(dir, key).unwrap_or_default()
            )
        },
    )
}

/// Task `key` once it is in `stage`.
pub fn stage(dir: &Path, key: &str, stage: &str, limit: Duration) -> Value {
    task(dir, key, limit, &format!("stage {stage}"), |v| {
        v["task"]["stage"] == stage
    })
}

/// The engine signal for a loop of its own: `mark` before each look,
/// `next` after a look that did not find it waits for a change after the
/// mark (or 50 ms when no engine answers).
pub struct Signal {
    /// The folder whose engine is found again at each mark, or none: `api`
    /// is the one engine to ask.
    dir: Option<std::path::PathBuf>,
    api: Option<Api>,
    seen: Option<u64>,
}

impl Signal {
    /// The signal of the engine serving `dir` (found again at each mark:
    /// it may restart).
    pub fn new(dir: &Path) -> Signal {
        Signal {
            dir: Some(dir.to_path_buf()),
            api: None,
            seen: None,
        }
    }

    /// The signal of this one engine.
    pub fn at(api: &Api) -> Signal {
        Signal {
            dir: None,
            api: Some(api.clone()),
            seen: None,
        }
    }

    /// Before a look: read the counter.
    pub fn mark(&mut self) {
        if let Some(dir) = &self.dir {
            self.api = Api::find(dir);
        }
        self.seen = self.api.as_ref().and_then(|a| a.changes(0, Duration::ZERO));
    }

    /// After a look: wait (at most `left`) for a change after the mark.
    pub fn next(&mut self, left: Duration) {
        park(self.api.as_ref(), self.seen, left);
    }
}

impl Signal {
    /// `mark` for an async test: the request runs on a blocking thread, so
    /// the test's runtime keeps serving its fakes.
    pub async fn mark_async(&mut self) {
        let (dir, api) = (self.dir.clone(), self.api.clone());
        let (api, seen) = tokio::task::spawn_blocking(move || {
            let api = match dir {
                Some(d) => Api::find(&d),
                None => api,
            };
            let seen = api.as_ref().and_then(|a| a.changes(0, Duration::ZERO));
            (api, seen)
        })
        .await
        .unwrap();
        self.api = api;
        self.seen = seen;
    }

    /// `next` for an async test (see `mark_async`).
    pub async fn next_async(&mut self, left: Duration) {
        let (api, seen) = (self.api.clone(), self.seen);
        tokio::task::spawn_blocking(move || park(api.as_ref(), seen, left))
            .await
            .unwrap();
    }
}
