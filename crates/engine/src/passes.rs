//! The engine's loops tell each pass they finish (the ticker, the
//! notification outbox), beside their `/metrics` counters: a process-wide
//! counter a waiter can await (`GET /api/changes`), where a pass that
//! found nothing to do commits nothing to the store.

use std::sync::LazyLock;
use tokio::sync::watch;

static PASSES: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::Sender::new(0));

/// A loop of the engine finished a pass.
pub(crate) fn pass() {
    PASSES.send_modify(|n| *n = n.wrapping_add(1));
}

/// The count of passes, to await the next one (`changed()`).
pub fn subscribe() -> watch::Receiver<u64> {
    PASSES.subscribe()
}
