//! orch's writes to the tracker through the outbox (issue 10, point 5),
//! against a real SQLite store, the real pipeline, and a tracker that
//! answers 503 for ten minutes of the store's manual clock: every state
//! change and comment made meanwhile arrives afterwards, in order, exactly
//! once; a write the tracker never takes is given up and said so, at once
//! when the tracker refuses it for good.

use async_trait::async_trait;
use orch_core::EventKind;
use orch_core::{NewTask, Stage, Task, Timestamp};
use orch_engine::pipeline::Pipeline;
use orch_engine::ports::{LocalForge, PortError, PortResult, Tracker};
use orch_engine::tracker_outbox::MAX_ATTEMPTS;
use orch_store::{ManualClock, SqliteOptions, SqliteStore, Store, TrackerItem};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A tracker that is down while `down` is set, or answers `answer` while
/// that is set; records what it took.
#[derive(Default)]
struct Flaky {
    down: AtomicBool,
    answer: Mutex<Option<PortError>>,
    took: Mutex<Vec<String>>,
    /// Comment dedupe keys seen: a repeat is "already there".
    keys: Mutex<Vec<String>>,
}

impl Flaky {
    fn refuse(&self) -> PortResult<()> {
        if let Some(e) = self.answer.lock().unwrap().clone() {
            return Err(e);
        }
        if self.down.load(Ordering::SeqCst) {
            Err(PortError::unavailable(
                "Plane answered 503 Service Unavailable",
            ))
        } else {
            Ok(())
        }
    }

    fn took(&self) -> Vec<String> {
        self.took.lock().unwrap().clone()
    }
}

#[async_trait]
impl Tracker for Flaky {
    async fn item(&self, _id: &str) -> PortResult<Option<TrackerItem>> {
        Ok(None)
    }
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        self.refuse()?;
        self.took
            .lock()
            .unwrap()
            .push(format!("{id} state {state}"));
        Ok(())
    }
    async fn set_labels(&self, id: &str, labels: &[String]) -> PortResult<()> {
        self.refuse()?;
        self.took
            .lock()
            .unwrap()
            .push(format!("{id} labels {}", labels.join(",")));
        Ok(())
    }
    async fn comment(&self, id: &str, body: &str, key: Option<&str>) -> PortResult<()> {
        self.refuse()?;
        let key = key.expect("every comment through the outbox has a dedupe key");
        let mut keys = self.keys.lock().unwrap();
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
            self.took
                .lock()
                .unwrap()
                .push(format!("{id} comment {body}"));
        }
        Ok(())
    }
    async fn person_comment_since(&self, _: &str, _: Timestamp) -> PortResult<Option<String>> {
        Ok(None)
    }
}

struct World {
    store: Arc<dyn Store>,
    clock: ManualClock,
    tracker: Arc<Flaky>,
    pipeline: Arc<Pipeline>,
    _dir: tempfile::TempDir,
}

async fn world(toml: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    let opts = SqliteOptions {
        clock: Arc::new(clock.clone()),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("orch.db"), opts)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    std::fs::write(dir.path().join("orch.toml"), toml).unwrap();
    let cfg = orch_config::Config::load(Some(&dir.path().join("orch.toml"))).unwrap();
    let repos = orch_git::RepoStore::new(dir.path().join("repos"));
    let tracker = Arc::new(Flaky::default());
    let pipeline = Pipeline::new(
        store.clone(),
        Arc::new(cfg),
        repos.clone(),
        tracker.clone(),
        Arc::new(LocalForge::new(repos)),
        "test",
    )
    .with_store_clock(Arc::new(clock.clone()));
    World {
        store,
        clock,
        tracker,
        pipeline,
        _dir: dir,
    }
}

async fn task(w: &World, item: &str, stage: Stage) -> Task {
    let mut t = NewTask::new("demo", "Add a greeting");
    t.tracker_id = Some(item.into());
    t.work_item_id = Some(item.into());
    t.stage = stage;
    w.store.create_task(t, "test").await.unwrap()
}

#[tokio::test]
async fn a_tracker_down_for_ten_minutes_gets_every_write_afterwards_in_order_once() {
    let w = world("data_dir = \"data\"\n[features]\nauto_labels = false\n").await;
    let t = task(&w, "PROJ-1", Stage::AwaitingApproval).await;
    w.tracker.down.store(true, Ordering::SeqCst);

    // A person approves, then STOPs: moves and comments while the tracker
    // refuses everything.
    let r = w
        .pipeline
        .gate(t.id, orch_core::pipeline::Gate::Approve, Some("go ahead"))
        .await
        .unwrap();
    assert!(r.applied, "{r:?}");
    let c = w.pipeline.stop_task(t.id, "test").await;
    assert!(c.ok, "{c:?}");
    assert!(w.tracker.took().is_empty(), "the tracker took nothing yet");
    let events = w.store.events(t.id).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == EventKind::TrackerError),
        "the delay is on the task's log"
    );

    // Ten minutes of 503s: the background sender tries as the backoff
    // allows; nothing is lost or given up.
    let outbox = w.pipeline.tracker_outbox();
    for _ in 0..60 {
        w.clock.advance(Duration::from_secs(10));
        let d = outbox.deliver(None).await;
        assert_eq!((d.sent, d.given_up), (0, 0), "{d:?}");
    }
    assert!(w.tracker.took().is_empty());

    // The tracker is back: once the backoff (now at most 15 minutes) passes,
    // everything arrives in the order it was written.
    w.tracker.down.store(false, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(15 * 60));
    let d = outbox.deliver(None).await;
    assert_eq!(d.given_up, 0, "{d:?}");
    let took = w.tracker.took();
    assert_eq!(
        took,
        [
            // Written with the task's creation, in its transaction.
            "PROJ-1 state Awaiting Approval",
            "PROJ-1 state Development",
            "PROJ-1 comment go ahead",
            "PROJ-1 state Cancelled",
            "PROJ-1 comment STOP (test): cancelled; 0 agent run(s) stopped",
        ],
        "every write, in order"
    );
    // Exactly once: nothing is left to send, and a further pass sends nothing.
    w.clock.advance(Duration::from_secs(3600));
    assert_eq!(outbox.deliver(None).await.sent, 0);
    assert_eq!(w.tracker.took(), took);
}

#[tokio::test]
async fn an_item_whose_writes_wait_does_not_hold_back_another_item() {
    let w = world("data_dir = \"data\"\n[features]\nauto_labels = false\n").await;
    let a = task(&w, "PROJ-1", Stage::AwaitingApproval).await;
    let b = task(&w, "PROJ-2", Stage::AwaitingApproval).await;
    w.tracker.down.store(true, Ordering::SeqCst);
    w.pipeline
        .gate(a.id, orch_core::pipeline::Gate::Approve, Some("a"))
        .await
        .unwrap();
    w.tracker.down.store(false, Ordering::SeqCst);
    // PROJ-2's move goes through at once; PROJ-1's waits for its retry.
    w.pipeline
        .gate(b.id, orch_core::pipeline::Gate::Approve, Some("b"))
        .await
        .unwrap();
    assert_eq!(
        w.tracker.took(),
        [
            "PROJ-2 state Awaiting Approval",
            "PROJ-2 state Development",
            "PROJ-2 comment b"
        ]
    );
    w.clock.advance(Duration::from_secs(60));
    w.pipeline.tracker_outbox().deliver(None).await;
    assert_eq!(
        w.tracker.took()[3..],
        [
            "PROJ-1 state Awaiting Approval",
            "PROJ-1 state Development",
            "PROJ-1 comment a"
        ]
    );
}

#[tokio::test]
async fn a_write_the_tracker_never_takes_is_given_up_and_logged() {
    let w = world("data_dir = \"data\"\n[features]\nauto_labels = false\n").await;
    let t = task(&w, "PROJ-1", Stage::AwaitingApproval).await;
    w.tracker.down.store(true, Ordering::SeqCst);
    w.pipeline
        .gate(t.id, orch_core::pipeline::Gate::Approve, None)
        .await
        .unwrap();
    // The three writes (the creation's state, the approval's state and its
    // comment) are tried one after the other, in order, each up to
    // MAX_ATTEMPTS times.
    let outbox = w.pipeline.tracker_outbox();
    let mut given_up = 0;
    let mut passes = 0;
    while given_up < 3 {
        passes += 1;
        assert!(passes <= MAX_ATTEMPTS * 3, "never given up");
        w.clock.advance(Duration::from_secs(3600));
        let d = outbox.deliver(None).await;
        assert_eq!(d.sent, 0);
        given_up += d.given_up;
    }
    // The first write's first try was in-line; each later write's first
    // try came in the pass that gave up the one before it.
    assert_eq!(passes, MAX_ATTEMPTS * 3 - 3);
    let events = w.store.events(t.id).await.unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::TrackerWriteFailed)
        .collect();
    assert_eq!(failed.len(), 3, "{events:?}");
    assert!(failed[1].message.contains("503"), "{failed:?}");
    assert!(
        failed[1].message.contains("setting state \"Development\""),
        "{failed:?}"
    );
    assert!(failed[2].message.contains("commenting"), "{failed:?}");
    assert_eq!(
        outbox.deliver(None).await,
        Default::default(),
        "nothing left"
    );
}

/// A process that moved a task and died before it told the tracker (here:
/// the move is made on the store alone, as a crashed engine leaves it): the
/// next engine's outbox tells the tracker, once.
#[tokio::test]
async fn a_move_whose_process_died_before_telling_the_tracker_is_told_after_a_restart() {
    let w = world("data_dir = \"data\"\n").await;
    let t = task(&w, "PROJ-1", Stage::AwaitingApproval).await;
    w.store
        .set_stage(
            t.id,
            Stage::Development,
            Some(Stage::AwaitingApproval),
            orch_core::EventInput::new("worker:dead", EventKind::Approved, "go"),
        )
        .await
        .unwrap();
    assert!(w.tracker.took().is_empty(), "the dead process told nobody");
    // The restarted engine: a new outbox over the same store.
    let states = orch_config::TrackerStates::default();
    let outbox = orch_engine::tracker_outbox::TrackerOutbox::new(
        w.store.clone(),
        w.tracker.clone(),
        states,
        true,
    )
    .with_clock(Arc::new(w.clock.clone()));
    let d = outbox.deliver(None).await;
    assert_eq!(d.sent, 2, "{d:?}");
    assert_eq!(
        w.tracker.took(),
        [
            "PROJ-1 state Awaiting Approval",
            "PROJ-1 labels orch:awaiting_approval",
            "PROJ-1 state Development",
            "PROJ-1 labels orch:development",
        ]
    );
    assert_eq!(outbox.deliver(None).await.sent, 0, "once");
}

#[tokio::test]
async fn a_write_the_tracker_refuses_for_good_is_given_up_at_once_with_its_reason() {
    let w = world("data_dir = \"data\"\n[features]\nauto_labels = false\n").await;
    let t = task(&w, "PROJ-1", Stage::AwaitingApproval).await;
    *w.tracker.answer.lock().unwrap() = Some(PortError::refused(
        "Plane: PATCH /issues/PROJ-1/ answered 403: you may not edit this project",
    ));
    w.pipeline
        .gate(t.id, orch_core::pipeline::Gate::Approve, Some("go"))
        .await
        .unwrap();
    // The in-line delivery of the move gave every write up: asking again
    // would get the same 403, 20 times over four hours.
    let events = w.store.events(t.id).await.unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::TrackerWriteFailed)
        .collect();
    assert_eq!(failed.len(), 3, "{events:?}");
    for f in &failed {
        assert!(
            f.message.contains("1 attempt(s)")
                && f.message.contains("refused")
                && f.message.contains("you may not edit this project"),
            "{f:?}"
        );
    }
    assert_eq!(
        w.pipeline.tracker_outbox().deliver(None).await,
        Default::default(),
        "nothing is left to retry"
    );
    assert!(w.tracker.took().is_empty());
}

#[tokio::test]
async fn an_unavailable_tracker_is_retried_and_a_rate_limited_one_not_before_its_wait() {
    let w = world("data_dir = \"data\"\n[features]\nauto_labels = false\n").await;
    let t = task(&w, "PROJ-1", Stage::AwaitingApproval).await;
    let outbox = w.pipeline.tracker_outbox();
    *w.tracker.answer.lock().unwrap() = Some(PortError::RateLimited {
        message: "Plane is rate limiting orch for 1200 s".into(),
        retry_after: Some(Duration::from_secs(1200)),
    });
    w.pipeline
        .gate(t.id, orch_core::pipeline::Gate::Approve, Some("go"))
        .await
        .unwrap();
    // The limit is lifted early, but orch keeps to the wait Plane asked for
    // (its own backoff would have asked again after 5 s).
    *w.tracker.answer.lock().unwrap() = None;
    w.tracker.down.store(true, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(600));
    let d = outbox.deliver(None).await;
    assert_eq!((d.sent, d.retried, d.given_up), (0, 0, 0), "{d:?}");
    // After the wait: unavailable (a 503) is retried, not given up.
    w.clock.advance(Duration::from_secs(601));
    let d = outbox.deliver(None).await;
    assert_eq!((d.sent, d.retried, d.given_up), (0, 1, 0), "{d:?}");
    w.tracker.down.store(false, Ordering::SeqCst);
    w.clock.advance(Duration::from_secs(60));
    let d = outbox.deliver(None).await;
    assert_eq!((d.sent, d.given_up), (3, 0), "{d:?}");
    let events = w.store.events(t.id).await.unwrap();
    assert!(
        !events
            .iter()
            .any(|e| e.kind == EventKind::TrackerWriteFailed)
    );
}
