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
