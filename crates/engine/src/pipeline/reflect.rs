//! How the tracker and the webhooks hear of a task: its stage
//! state, and the comment its event carries (`EventInput::tracker_comment`),
//! are written to the tracker outbox by the store in the move's own
//! transaction; `reflect` adds the `[[notify]]` messages and delivers the
//! item's writes at once (the rest is retried in the background).

use super::Pipeline;
use orch_core::EventKind;
use orch_core::{Stage, Task};
use std::sync::Arc;

impl Pipeline {
    /// The outbox of this pipeline's tracker writes: run its
    /// [`run`](crate::tracker_outbox::TrackerOutbox::run) loop where the
    /// engine runs, so writes that failed are retried.
    pub fn tracker_outbox(&self) -> Arc<crate::tracker_outbox::TrackerOutbox> {
        self.tracker_outbox.clone()
    }

    /// Compare the tracker outbox's due times with `clock` (the store's; a
    /// test's manual clock). A step of building the pipeline: it must not
    /// be shared yet (a programming error, so it panics).
    pub fn with_store_clock(self: Arc<Self>, clock: Arc<dyn orch_store::Clock>) -> Arc<Pipeline> {
        let Ok(p) = Arc::try_unwrap(self) else {
            panic!("with_store_clock: call it before the pipeline is shared");
        };
        let tracker_outbox = Arc::new(
            crate::tracker_outbox::TrackerOutbox::new(
                p.store.clone(),
                p.tracker.clone(),
                p.cfg.tracker.states.clone(),
                p.cfg.features.auto_labels,
            )
            .with_clock(clock),
        );
        Arc::new_cyclic(|me| Pipeline {
            tracker_outbox,
            me: me.clone(),
            ..p
        })
    }

    /// Write to the tracker: through the outbox, then delivered at once as
    /// far as the tracker takes it (the rest is retried in the background).
    pub(crate) async fn write_tracker(
        &self,
        task: &Task,
        writes: Vec<crate::tracker_outbox::TrackerWrite>,
    ) {
        let Some(item) = task.original_tracker_id() else {
            return;
        };
        if !writes.is_empty() {
            self.tracker_outbox.enqueue(task.id, item, writes).await;
        }
        let d = self.tracker_outbox.deliver(Some(item)).await;
        if d.retried > 0 || d.waiting > 0 {
            let _ = self
                .store
                .append_event(
                    task.id,
                    self.event(
                        EventKind::TrackerError,
                        format!(
                            "the tracker did not take {} write(s) now; they are retried in order until it does",
                            d.retried + d.waiting
                        ),
                    ),
                )
                .await;
        }
    }

    /// The tracker state name of a stage.
    pub(crate) fn state_name(&self, stage: Stage) -> String {
        self.cfg.tracker.states.name_of(stage).to_owned()
    }

    /// Reflect a task's move on its tracker item (the writes its transaction
    /// queued) and to the webhooks (`note`); a tracker error is logged on the
    /// task and never undoes the move (R-44: it delays, loses nothing).
    pub(crate) async fn reflect(&self, task: &Task, note: &str) {
        let state = self.state_name(task.stage);
        // The outgoing webhooks hear of it too, through the outbox.
        let written = crate::notify::enqueue_for_stage(
            self.store.as_ref(),
            &self.cfg.notify,
            task,
            &state,
            note,
            None,
        )
        .await;
        if written > 0 {
            self.notification_queued.notify_one();
        }
        // The item's state and the move's comment were written to the
        // tracker's outbox by the store, in the move's own transaction (a
        // crash after it loses neither); this delivers them.
        self.write_tracker(task, Vec::new()).await;
    }
}
