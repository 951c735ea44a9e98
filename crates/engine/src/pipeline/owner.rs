//! One owner per task: every input that can change a task — a
//! person's gate, a STOP, a finished run, a tick, a forge's closed pull
//! request, disk care — reaches the pipeline as a typed [`Command`], and the
//! commands of one task are applied strictly one after another by that
//! task's owner.
//!
//! The owner is a tokio task that exists while the task has commands
//! queued: the first command spawns it, it drains the task's queue in
//! arrival order, and it retires when the queue is empty (checked under the
//! map's lock, where commands are queued, so none is stranded). A command
//! runs to its end even when its caller goes away: an HTTP client that
//! disconnects mid-STOP does not leave the reset half done.
//!
//! Across processes (the CLI without an engine, other nodes on PostgreSQL)
//! the store is the arbiter: every move names the stage it expects, and a
//! stale one is refused.

use super::cancel::CancelOrder;
use super::{CancelResult, CleanupPass, GateResult, Pipeline, PipelineError, PipelineResult};
use crate::supervisor::RunReport;
use orch_core::TaskId;
use orch_core::disk::WorktreeSize;
use orch_core::pipeline::Gate;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// An input for one task, applied by the task's owner.
#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// A person's decision at a gate (Start, Approve, Reject, Confirm
    /// Deploy, Retry), then whatever it made due.
    Gate { gate: Gate, comment: Option<String> },
    /// A task just created by intake: its first move (analysis queued).
    Begin,
    /// Do what is due now (level-triggered): timer, start-up, webhook.
    Tick,
    /// STOP or another cancel.
    Cancel(CancelOrder),
    /// A run of the task ended; `size` is its worktree measured against
    /// the limit (taken before the command, off the owner).
    RunEnded {
        report: Box<RunReport>,
        size: Option<WorktreeSize>,
    },
    /// The forge says the pull request was closed by someone else.
    PullRequestClosed { why: String },
    /// Remove the ignored build outputs of the idle task's worktree.
    CleanBuildOutputs {
        globs: Vec<orch_core::disk::OutputGlob>,
    },
    /// Remove the worktree a terminal task left behind.
    RetireFinishedWorktree,
}

impl Command {
    /// The command's name, for logs.
    fn name(&self) -> &'static str {
        match self {
            Command::Gate { .. } => "gate",
            Command::Begin => "begin",
            Command::Tick => "tick",
            Command::Cancel(_) => "cancel",
            Command::RunEnded { .. } => "run_ended",
            Command::PullRequestClosed { .. } => "pull_request_closed",
            Command::CleanBuildOutputs { .. } => "clean_build_outputs",
            Command::RetireFinishedWorktree => "retire_finished_worktree",
        }
    }
}

/// What a command did, for its caller.
#[derive(Debug)]
pub(crate) enum Outcome {
    Gate(GateResult),
    Cancel(CancelResult),
    /// A sentence saying what happened.
    Note(String),
    Done,
    /// Whether the command found anything to do.
    Acted(bool),
    Cleaned(CleanupPass),
}

struct Envelope {
    command: Command,
    reply: oneshot::Sender<PipelineResult<Outcome>>,
}

/// The queues of the tasks that have an owner right now.
#[derive(Default)]
pub(crate) struct TaskOwners {
    queues: Mutex<HashMap<TaskId, mpsc::UnboundedSender<Envelope>>>,
}

impl TaskOwners {
    fn queues(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<TaskId, mpsc::UnboundedSender<Envelope>>> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many tasks have an owner now (tests: owners retire when idle).
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.queues().len()
    }
}

impl Pipeline {
    /// Hand a command to the task's owner and wait for what it did.
    pub(crate) async fn command(&self, id: TaskId, command: Command) -> PipelineResult<Outcome> {
        let (reply, answer) = oneshot::channel();
        let name = command.name();
        self.enqueue(id, Envelope { command, reply })?;
        answer.await.map_err(|_| {
            PipelineError::Internal(format!(
                "task {id}: the owner applying {name} stopped before it finished (see the log)"
            ))
        })?
    }

    fn enqueue(&self, id: TaskId, envelope: Envelope) -> PipelineResult<()> {
        let mut queues = self.owners.queues();
        let envelope = match queues.get(&id) {
            Some(queue) => match queue.send(envelope) {
                Ok(()) => return Ok(()),
                // Its owner ended without retiring (a panic): a new one takes over.
                Err(mpsc::error::SendError(e)) => e,
            },
            None => envelope,
        };
        let me = self.me.upgrade().ok_or_else(|| {
            PipelineError::Internal("the pipeline is shutting down; try again".into())
        })?;
        let (queue, inbox) = mpsc::unbounded_channel();
        // Cannot fail: the receiver is alive in this scope.
        let _ = queue.send(envelope);
        queues.insert(id, queue);
        drop(queues);
        tokio::spawn(own(me, id, inbox));
        Ok(())
    }
}

impl Pipeline {
    /// Apply one command for its task: called only by the task's owner
    /// (`owner.rs`), so no other command of the task runs meanwhile.
    async fn apply_command(&self, id: TaskId, command: Command) -> PipelineResult<Outcome> {
        Ok(match command {
            Command::Gate { gate, comment } => {
                Outcome::Gate(self.apply_gate(id, gate, comment.as_deref()).await?)
            }
            Command::Begin => Outcome::Gate(self.begin(id).await?),
            Command::Tick => {
                self.apply_tick(id).await?;
                Outcome::Done
            }
            Command::Cancel(order) => Outcome::Cancel(self.apply_cancel(id, &order).await),
            Command::RunEnded { report, size } => {
                self.apply_run_ended(&report, size).await?;
                Outcome::Done
            }
            Command::PullRequestClosed { why } => {
                Outcome::Note(self.apply_pull_request_closed(id, &why).await?)
            }
            Command::CleanBuildOutputs { globs } => {
                Outcome::Cleaned(self.apply_clean_build_outputs(id, &globs).await?)
            }
            Command::RetireFinishedWorktree => {
                Outcome::Acted(self.apply_retire_finished_worktree(id).await?)
            }
        })
    }
}

/// The owner of one task: applies its commands in order, then retires.
async fn own(pipeline: Arc<Pipeline>, id: TaskId, mut inbox: mpsc::UnboundedReceiver<Envelope>) {
    loop {
        let envelope = match inbox.try_recv() {
            Ok(e) => e,
            Err(mpsc::error::TryRecvError::Disconnected) => return,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Commands are queued under this lock: an empty queue seen
                // while holding it stays empty once the entry is gone.
                let mut queues = pipeline.owners.queues();
                match inbox.try_recv() {
                    Ok(e) => e,
                    Err(_) => {
                        queues.remove(&id);
                        return;
                    }
                }
            }
        };
        let Envelope { command, reply } = envelope;
        let result = pipeline.apply_command(id, command).await;
        // The caller may have gone away; the command was applied all the same.
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_config::Config;
    use orch_core::{NewTask, Stage};
    use orch_store::Store;

    /// A pipeline on a fresh store, and one task in it.
    async fn pipeline_with_a_task() -> (tempfile::TempDir, Arc<Pipeline>, TaskId) {
        let dir = tempfile::tempdir().unwrap();
        let sqlite =
            orch_store::sqlite::SqliteStore::open(dir.path().join("orch.db"), Default::default())
                .await
                .unwrap();
        sqlite.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(sqlite);
        let mut cfg = Config::default();
        cfg.data_dir = dir.path().to_path_buf();
        let p = Pipeline::with_defaults(store, Arc::new(cfg), "test");
        let task = p
            .store
            .create_task(NewTask::new("app", "t"), "test")
            .await
            .unwrap();
        (dir, p, task.id)
    }

    #[tokio::test]
    async fn commands_of_one_task_apply_in_order_and_the_owner_retires() {
        let (_dir, p, id) = pipeline_with_a_task().await;
        // Many ticks and a STOP queued at once on one task: each is applied
        // whole, one after another; the STOP leaves the task cancelled.
        let mut calls = Vec::new();
        for _ in 0..20 {
            let p = p.clone();
            calls.push(tokio::spawn(
                async move { p.command(id, Command::Tick).await },
            ));
        }
        let stop = p.stop_task(id, "test").await;
        assert!(stop.ok, "{stop:?}");
        for c in calls {
            c.await.unwrap().unwrap();
        }
        assert_eq!(
            p.store.get_task(id).await.unwrap().unwrap().stage,
            Stage::Cancelled
        );
        assert_eq!(p.owners.live(), 0, "an idle task keeps no owner");
    }

    /// Seen in CI on PostgreSQL: the tick a new task's creation signals can
    /// queue its analyst before the start does; the start then failed with
    /// "already has an active job".
    #[tokio::test]
    async fn a_start_after_a_tick_queued_the_analyst_keeps_one_job() {
        let (_dir, p, id) = pipeline_with_a_task().await;
        p.tick(id).await.unwrap();
        let active = |p: Arc<Pipeline>| async move {
            p.store
                .jobs_for_task(id)
                .await
                .unwrap()
                .iter()
                .filter(|j| !j.status.is_terminal())
                .count()
        };
        assert_eq!(active(p.clone()).await, 1, "the tick queued the analyst");
        p.command(id, Command::Begin).await.unwrap();
        assert_eq!(active(p.clone()).await, 1);
    }

    #[tokio::test]
    async fn a_command_whose_caller_went_away_is_still_applied() {
        let (_dir, p, id) = pipeline_with_a_task().await;
        // The caller's future is dropped before the owner could run.
        let call = p.stop_task(id, "test");
        let dropped = tokio::time::timeout(std::time::Duration::ZERO, call).await;
        assert!(dropped.is_err(), "the STOP cannot have finished yet");
        // A later command of the same task runs after it: the STOP is done.
        p.command(id, Command::Tick).await.unwrap();
        assert_eq!(
            p.store.get_task(id).await.unwrap().unwrap().stage,
            Stage::Cancelled
        );
    }
}
