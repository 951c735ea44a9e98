//! The notification outbox against a real SQLite store and a scripted poster:
//! what is sent, what is retried when, and what is given up (and said so on
//! the task). Time is the store's manual clock, so backoffs pass at once.

use async_trait::async_trait;
use orch_config::NotifyConfig;
use orch_core::EventKind;
use orch_core::{NewTask, Stage, Timestamp};
use orch_engine::notify::{MAX_ATTEMPTS, Outbox, Round, enqueue_for_stage, retry_delay};
use orch_engine::ports::{NotifyPoster, PortError, PortResult};
use orch_store::{ManualClock, SqliteOptions, SqliteStore, Store};
use std::sync::{Arc, Mutex};

/// Answers from a script (then ok), and records what it was sent.
#[derive(Default)]
struct Poster {
    failures: Mutex<u32>,
    /// Answered first, one per post, before `failures`.
    script: Mutex<std::collections::VecDeque<PortError>>,
    sent: Mutex<Vec<(String, serde_json::Value)>>,
}

#[async_trait]
impl NotifyPoster for Poster {
    async fn post(&self, url: &str, body: &serde_json::Value) -> PortResult<()> {
        if let Some(e) = self.script.lock().unwrap().pop_front() {
            return Err(e);
        }
        let mut failures = self.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err(PortError::unavailable("the webhook answered 503"));
        }
        self.sent
            .lock()
            .unwrap()
            .push((url.to_owned(), body.clone()));
        Ok(())
    }
}

fn sink(name: &str, env: &str) -> NotifyConfig {
    NotifyConfig {
        name: name.into(),
        url_env: env.into(),
        chat_id: None,
        stages: NotifyConfig::default_stages(),
    }
}

struct World {
    store: Arc<dyn Store>,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
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
    World {
        store: Arc::new(store),
        clock,
        _dir: dir,
    }
}

fn urls(name: &str) -> Option<String> {
    (name == "CHAT_URL").then(|| "http://127.0.0.1:9/hook".to_owned())
}

#[tokio::test]
async fn sent_once_retried_with_backoff_and_given_up_on_the_task() {
    let w = world().await;
    let mut t = NewTask::new("demo", "Add hello");
    t.stage = Stage::AwaitingApproval;
    let task = w.store.create_task(t, "test").await.unwrap();
    let sinks = [sink("chat", "CHAT_URL")];

    // Only stages the sink lists are written.
    let mut dev = task.clone();
    dev.stage = Stage::Development;
    assert_eq!(
        enqueue_for_stage(w.store.as_ref(), &sinks, &dev, "Development", "x", None).await,
        0
    );
    assert_eq!(
        enqueue_for_stage(
            w.store.as_ref(),
            &sinks,
            &task,
            "Awaiting Approval",
            "ready",
            None
        )
        .await,
        1
    );

    let poster = Arc::new(Poster::default());
    *poster.failures.lock().unwrap() = 2;
    let outbox = Outbox::new(
        w.store.clone(),
        &sinks,
        &urls,
        poster.clone(),
        Default::default(),
    );
    let retried = Round {
        sent: 0,
        retried: 1,
        given_up: 0,
    };
    assert_eq!(outbox.run_once().await, retried);
    assert_eq!(outbox.run_once().await, Round::default(), "not due yet");
    w.clock.advance(retry_delay(1));
    assert_eq!(outbox.run_once().await, retried, "the second failure");
    w.clock.advance(retry_delay(1));
    assert_eq!(
        outbox.run_once().await,
        Round::default(),
        "the backoff grew"
    );
    w.clock.advance(retry_delay(2));
    let sent = outbox.run_once().await;
    assert_eq!(sent.sent, 1);
    let got = poster.sent.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "http://127.0.0.1:9/hook");
    assert_eq!(got[0].1["orch"]["message"], "ready");
    w.clock.advance(retry_delay(20));
    assert_eq!(outbox.run_once().await, Round::default(), "sent once");

    // A webhook that never answers: given up after MAX_ATTEMPTS, and the
    // task's log says so.
    *poster.failures.lock().unwrap() = u32::MAX;
    enqueue_for_stage(
        w.store.as_ref(),
        &sinks,
        &task,
        "Awaiting Approval",
        "again",
        None,
    )
    .await;
    let mut given_up = 0;
    for _ in 0..MAX_ATTEMPTS {
        given_up += outbox.run_once().await.given_up;
        w.clock.advance(retry_delay(20));
    }
    assert_eq!(given_up, 1);
    assert_eq!(outbox.run_once().await, Round::default(), "never again");
    let events = w.store.events(task.id).await.unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::NotifyFailed)
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert!(
        failed[0].message.contains("given up after 10 attempt(s)"),
        "{}",
        failed[0].message
    );
    assert!(!failed[0].message.contains("127.0.0.1:9"), "never the URL");
}

#[tokio::test]
async fn an_unset_url_waits_and_a_removed_webhook_is_given_up() {
    let w = world().await;
    let mut t = NewTask::new("demo", "Add hello");
    t.stage = Stage::Done;
    let task = w.store.create_task(t, "test").await.unwrap();
    let sinks = [sink("chat", "CHAT_URL"), sink("mail", "MAIL_URL_NOT_SET")];
    enqueue_for_stage(w.store.as_ref(), &sinks, &task, "Done", "merged", None).await;
    // Configured later without "chat": its message cannot go anywhere.
    let poster = Arc::new(Poster::default());
    let outbox = Outbox::new(
        w.store.clone(),
        &sinks[1..],
        &urls,
        poster.clone(),
        Default::default(),
    );
    let round = outbox.run_once().await;
    assert_eq!(
        round,
        Round {
            sent: 0,
            retried: 1,
            given_up: 1
        },
        "mail waits for its variable; chat is gone"
    );
    assert!(poster.sent.lock().unwrap().is_empty());
    // A dedupe key writes a notice once.
    let key = Some("asked-1");
    let n1 = enqueue_for_stage(w.store.as_ref(), &sinks, &task, "Done", "x", key).await;
    let n2 = enqueue_for_stage(w.store.as_ref(), &sinks, &task, "Done", "x", key).await;
    assert_eq!((n1, n2), (2, 0));
}

/// Found by issue 10 (typed errors on the outboxes): the notification outbox
/// turned every failure into words and retried all of them ten times, so a
/// revoked webhook (404) was posted to for hours, and a webhook's
/// `Retry-After` was ignored. The kind now decides.
#[tokio::test]
async fn a_refusal_is_given_up_at_once_and_a_rate_limit_is_waited_for() {
    let w = world().await;
    let mut t = NewTask::new("demo", "Add hello");
    t.stage = Stage::Done;
    let task = w.store.create_task(t, "test").await.unwrap();
    let sinks = [sink("chat", "CHAT_URL")];
    let poster = Arc::new(Poster::default());
    let outbox = Outbox::new(
        w.store.clone(),
        &sinks,
        &urls,
        poster.clone(),
        Default::default(),
    );
    let given_up = Round {
        given_up: 1,
        ..Round::default()
    };
    poster
        .script
        .lock()
        .unwrap()
        .push_back(PortError::not_found("the webhook answered 404"));
    enqueue_for_stage(w.store.as_ref(), &sinks, &task, "Done", "one", None).await;
    assert_eq!(
        outbox.run_once().await,
        given_up,
        "a 404 is not asked again"
    );
    let events = w.store.events(task.id).await.unwrap();
    let failed = events
        .iter()
        .find(|e| e.kind == EventKind::NotifyFailed)
        .expect("the task says so");
    assert!(
        failed.message.contains("after 1 attempt(s)") && failed.message.contains("not_found"),
        "{}",
        failed.message
    );

    // A webhook that asks for ten minutes gets them, not the first backoff.
    let ten_minutes = std::time::Duration::from_secs(600);
    poster
        .script
        .lock()
        .unwrap()
        .push_back(PortError::RateLimited {
            message: "the webhook answered 429".into(),
            retry_after: Some(ten_minutes),
        });
    enqueue_for_stage(w.store.as_ref(), &sinks, &task, "Done", "two", None).await;
    let retried = Round {
        retried: 1,
        ..Round::default()
    };
    assert_eq!(outbox.run_once().await, retried);
    w.clock.advance(retry_delay(1));
    assert_eq!(
        outbox.run_once().await,
        Round::default(),
        "asked for longer"
    );
    w.clock.advance(ten_minutes);
    assert_eq!(outbox.run_once().await.sent, 1);
    assert_eq!(poster.sent.lock().unwrap().len(), 1);
}
