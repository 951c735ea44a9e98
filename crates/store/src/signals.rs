//! "The queue changed" signals, for waking idle dispatchers without polling.
//!
//! A store that can tell other processes of its writes (PostgreSQL, through
//! `LISTEN/NOTIFY`) hands out a [`QueueSignals`] receiver; one that cannot
//! (SQLite, where every writer is the one process or the CLI) gives none and
//! its engine relies on its own in-process wake-ups and on polling. Signals
//! are hints: a consumer acts on them (claims, ticks a task) as it would on a
//! poll, so a missed, repeated or spurious signal costs at most a poll.

use orch_core::{JobId, TaskId};
use tokio::sync::mpsc;

/// What changed in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSignal {
    /// A job became queued (enqueued, retried, requeued): claim.
    JobQueued { task: TaskId, job: JobId },
    /// A queued or running job was cancelled.
    JobCancelled { task: TaskId, job: JobId },
    /// A running job ended otherwise: a limit's slot may be free.
    JobEnded { task: TaskId, job: JobId },
    /// A task was created, moved stage or released a merge lease: its
    /// pipeline may have a step to take, or a gate (dependencies, the serial
    /// gate) may have opened.
    GateMoved { task: TaskId },
    /// Signals may have been missed (the listener's connection was lost and
    /// is back): re-poll once.
    Resync,
}

/// A subscription to a store's queue signals. Dropping it ends the
/// subscription (and its connection).
pub struct QueueSignals {
    rx: mpsc::UnboundedReceiver<QueueSignal>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl QueueSignals {
    /// Signals fed by `rx`; `task` (if any) feeds them and is aborted on drop.
    pub fn new(
        rx: mpsc::UnboundedReceiver<QueueSignal>,
        task: Option<tokio::task::JoinHandle<()>>,
    ) -> QueueSignals {
        QueueSignals { rx, task }
    }

    /// The next signal; `None` when the source has ended for good.
    pub async fn recv(&mut self) -> Option<QueueSignal> {
        self.rx.recv().await
    }
}

impl Drop for QueueSignals {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A store's "something committed" counter, for waiting on the store
/// instead of polling it (the API's `GET /api/changes`, the tests).
///
/// It counts the committed writes of this process's handle on the store
/// (and of its clones): it rises after a write's commit, never before, so
/// whoever is woken by it and reads sees the write. Writes of other
/// processes (the CLI when no engine runs, another node on PostgreSQL) do
/// not move it. It may rise for a write that changed nothing (a
/// transaction that only checked), never stay put after one that changed
/// something: a waiter re-checks what it waits for on each rise.
#[derive(Debug, Clone)]
pub struct Changes(std::sync::Arc<tokio::sync::watch::Sender<u64>>);

impl Default for Changes {
    fn default() -> Self {
        Changes(std::sync::Arc::new(tokio::sync::watch::Sender::new(0)))
    }
}

impl Changes {
    /// A write committed.
    pub fn bump(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The counter, to await its next rise (`changed()`).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.subscribe()
    }
}
