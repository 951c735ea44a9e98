//! orch's writes to the tracker: an item's state, orch's labels
//! and comments go through the store's outbox (sink
//! [`orch_store::TRACKER_SINK`]) instead of straight to the tracker, so a
//! tracker that is down, slow or refusing delays them and loses none.
//!
//! - A move writes its tracker writes to the outbox and delivers that item's
//!   due writes at once (the usual case: they arrive as the move happens).
//! - What fails stays and is retried with backoff (5 s doubling to 15 min)
//!   by [`TrackerOutbox::run`], also after a restart.
//! - An item's writes arrive in the order they were written: while one is
//!   waiting for its retry, the later ones of the same item wait behind it
//!   (a state must not be overtaken by an older one).
//! - A comment carries a dedupe key of its own, so a retry after a lost
//!   answer adds nothing (Plane's external id, GitHub's marker); states and
//!   labels are idempotent.
//! - Only an outage or a rate limit ([`crate::ports::Failure::Transient`])
//!   is retried; a tracker that waits is not asked before its `Retry-After`.
//!   A refusal, a missing item or a bad setting is given up at once: asking
//!   20 times would get the same answer four hours later.
//! - A write given up (at once, or after [`MAX_ATTEMPTS`]) is logged on its
//!   task (`tracker_write_failed`) with the tracker's words, and the item's
//!   later writes go on.

use crate::ports::{PortResult, Tracker};
use orch_config::TrackerStates;
use orch_core::EventKind;
use orch_core::{EventInput, Stage, TaskId};
use orch_store::{Clock, NewNotification, Notification, Store, SystemClock, TRACKER_SINK};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Attempts before a write is given up: with the backoff, about four hours
/// of a tracker refusing or unreachable.
pub const MAX_ATTEMPTS: u32 = 20;

/// Writes looked at per pass.
const BATCH: u32 = 500;

/// One write to a tracker item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TrackerWrite {
    /// The task entered `stage`: the item moves to that stage's state name
    /// (`[tracker.states]`) and, with `auto_labels`, gets its `orch:<stage>`
    /// label. Written by the store in the stage move's own transaction.
    Stage { stage: Stage },
    /// A comment; `key` makes a repeat of it a no-op on the tracker.
    Comment { body: String, key: String },
}

impl TrackerWrite {
    /// A comment with a fresh dedupe key.
    pub fn comment(body: impl Into<String>) -> TrackerWrite {
        TrackerWrite::Comment {
            body: body.into(),
            key: format!("orch-{}", uuid::Uuid::now_v7().simple()),
        }
    }

    fn what(&self) -> String {
        match self {
            TrackerWrite::Stage { stage } => format!("showing stage {stage}"),
            TrackerWrite::Comment { .. } => "commenting".into(),
        }
    }
}

/// A write as the outbox keeps it: the item and the write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Envelope {
    item: String,
    #[serde(flatten)]
    write: TrackerWrite,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    pub sent: usize,
    /// Failed and due again later.
    pub retried: usize,
    pub given_up: usize,
    /// Not due yet, or behind an earlier write of their item that is.
    pub waiting: usize,
}

pub struct TrackerOutbox {
    store: Arc<dyn Store>,
    tracker: Arc<dyn Tracker>,
    /// The state names stages map to, and whether orch labels items.
    states: TrackerStates,
    auto_labels: bool,
    clock: Arc<dyn Clock>,
    /// One pass at a time in this process: the in-line delivery of a move
    /// and the background loop never send the same write twice at once.
    sending: tokio::sync::Mutex<()>,
    wake: Arc<Notify>,
}

/// How long to wait after the `attempts`-th failure.
fn retry_delay(attempts: u32) -> Duration {
    crate::notify::retry_delay(attempts)
}

impl TrackerOutbox {
    pub fn new(
        store: Arc<dyn Store>,
        tracker: Arc<dyn Tracker>,
        states: TrackerStates,
        auto_labels: bool,
    ) -> TrackerOutbox {
        TrackerOutbox {
            store,
            tracker,
            states,
            auto_labels,
            clock: Arc::new(SystemClock),
            sending: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// The clock the due times are compared with: the store's.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> TrackerOutbox {
        self.clock = clock;
        self
    }

    /// Write `writes` for `item` (of `task`) to the outbox, in this order.
    /// A store error is logged on the task as a `tracker_error` (the move
    /// itself stands; the reconciler repairs a state).
    pub async fn enqueue(&self, task: TaskId, item: &str, writes: Vec<TrackerWrite>) {
        for write in writes {
            let what = write.what();
            let n = NewNotification {
                sink: TRACKER_SINK.to_owned(),
                task_id: Some(task),
                payload: serde_json::to_value(Envelope {
                    item: item.to_owned(),
                    write,
                })
                .unwrap_or(serde_json::Value::Null),
                dedupe_key: None,
            };
            if let Err(e) = self.store.enqueue_notification(&n).await {
                tracing::warn!(task = %task, error = %e, "writing a tracker write to the outbox failed");
                let _ = self
                    .store
                    .append_event(
                        task,
                        EventInput::new(
                            "tracker",
                            EventKind::TrackerError,
                            format!("{what}: could not be queued: {e}"),
                        ),
                    )
                    .await;
            }
        }
        self.wake.notify_one();
    }

    /// Deliver what is due: every item's writes in order, or only `item`'s.
    pub async fn deliver(&self, only: Option<&str>) -> Delivery {
        let _one_at_a_time = self.sending.lock().await;
        let mut done = Delivery::default();
        let pending = match self.store.pending_notifications(TRACKER_SINK, BATCH).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "reading the tracker's outbox failed");
                return done;
            }
        };
        let now = self.clock.now();
        // Items with an earlier write still waiting: their later ones wait too.
        let mut held: BTreeSet<String> = BTreeSet::new();
        for n in pending {
            let Ok(env) = serde_json::from_value::<Envelope>(n.payload.clone()) else {
                // Not a write this version understands: never retried.
                self.give_up(&n, "unreadable tracker write", n.attempts + 1)
                    .await;
                done.given_up += 1;
                continue;
            };
            if only.is_some_and(|i| i != env.item) {
                continue;
            }
            if held.contains(&env.item) || n.next_at > now {
                held.insert(env.item);
                done.waiting += 1;
                continue;
            }
            match self.send(&env).await {
                Ok(()) => {
                    if let Err(e) = self.store.notification_sent(n.id).await {
                        tracing::warn!(item = %env.item, error = %e, "recording a delivered tracker write failed");
                    }
                    done.sent += 1;
                }
                Err(e) => {
                    let attempts = n.attempts + 1;
                    // A refusal, a missing item or a bad setting answers the
                    // same next time: given up at once with the tracker's
                    // words (a person can send it again once it is fixed).
                    if e.is_permanent() || attempts >= MAX_ATTEMPTS {
                        let why = format!("{} ({}): {e}", env.write.what(), e.kind());
                        self.give_up(&n, &why, attempts).await;
                        done.given_up += 1;
                    } else {
                        held.insert(env.item.clone());
                        // A tracker that said how long to wait is not asked sooner.
                        let wait = retry_delay(attempts).max(e.retry_after().unwrap_or_default());
                        let why = e.to_string();
                        if let Err(e) = self.store.notification_failed(n.id, &why, Some(wait)).await
                        {
                            tracing::warn!(item = %env.item, error = %e, "recording a failed tracker write failed");
                        }
                        tracing::info!(item = %env.item, attempts, error = %why, "tracker write failed; retried later");
                        done.retried += 1;
                    }
                }
            }
        }
        done
    }

    async fn send(&self, env: &Envelope) -> PortResult<()> {
        let item = env.item.as_str();
        match &env.write {
            TrackerWrite::Stage { stage } => {
                let state = self.states.name_of(*stage);
                self.tracker
                    .set_state(item, state)
                    .await
                    .map_err(|e| e.context(format_args!("setting state {state:?}")))?;
                if self.auto_labels {
                    let labels = [format!("orch:{stage}")];
                    self.tracker
                        .set_labels(item, &labels)
                        .await
                        .map_err(|e| e.context("setting labels"))?;
                }
                Ok(())
            }
            TrackerWrite::Comment { body, key } => {
                self.tracker.comment(item, body, Some(key)).await
            }
        }
    }

    /// The write is given up for good; its task's log says what was lost.
    async fn give_up(&self, n: &Notification, why: &str, attempts: u32) {
        tracing::warn!(id = n.id, attempts, error = %why, "tracker write given up");
        if let Err(e) = self.store.notification_failed(n.id, why, None).await {
            tracing::warn!(error = %e, "recording a given-up tracker write failed");
        }
        if let Some(task) = n.task_id {
            let msg = format!("the tracker never took this write ({attempts} attempt(s)): {why}");
            let _ = self
                .store
                .append_event(
                    task,
                    EventInput::new("tracker", EventKind::TrackerWriteFailed, msg),
                )
                .await;
        }
    }

    /// Deliver on wake-up or every `every` until the task is aborted.
    pub async fn run(self: Arc<Self>, every: Duration) {
        loop {
            self.deliver(None).await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_reads_back_as_written() {
        let env = Envelope {
            item: "PROJ-1".into(),
            write: TrackerWrite::comment("hello"),
        };
        let v = serde_json::to_value(&env).unwrap();
        assert_eq!(v["op"], "comment");
        assert_eq!(v["item"], "PROJ-1");
        assert!(v["key"].as_str().unwrap().starts_with("orch-"));
        assert_eq!(serde_json::from_value::<Envelope>(v).unwrap(), env);
    }

    #[test]
    fn no_notify_may_take_the_tracker_sink_name() {
        let dir = std::env::temp_dir().join(format!("orch-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("orch.toml");
        std::fs::write(
            &path,
            format!("[[notify]]\nname = \"{TRACKER_SINK}\"\nurl_env = \"X_URL\"\n"),
        )
        .unwrap();
        let cfg = orch_config::Config::load(Some(&path)).unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("reserved"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
