//! Outgoing notifications: when a task enters a stage a `[[notify]]`
//! webhook listens for, the pipeline writes a message to the store's outbox;
//! the [`Outbox`] posts what is due and retries failures with backoff.
//!
//! Writing first and posting later keeps a slow or absent chat server off the
//! pipeline's path, and a crash loses nothing: an unsent message is still in
//! the outbox after the restart. A message may be posted twice if the process
//! dies between the endpoint's answer and the store's record of it (at least
//! once, never silently dropped).

use crate::ports::NotifyPoster;
use orch_config::NotifyConfig;
use orch_core::EventKind;
use orch_core::{EventInput, Task};
use orch_store::{NewNotification, Notification, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Attempts before a message is given up (logged on its task).
pub const MAX_ATTEMPTS: u32 = 10;

/// Messages taken from the outbox per round.
const BATCH: u32 = 50;

/// Why a message was not delivered, by kind: the outbox decides from the
/// kind (retry when, or give up), never from the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undelivered {
    /// Its `[[notify]]` is no longer configured: nobody to send it to.
    SinkRemoved,
    /// The webhook's URL variable is not set in orch's environment; it may
    /// be at the next start, so the message waits (bounded).
    UrlUnset,
    /// The webhook answered with a failure.
    Post(crate::ports::PortError),
}

/// What the outbox does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryIn(Duration),
    GiveUp,
}

impl Undelivered {
    /// After attempt number `attempts` failed this way: a removed sink or a
    /// permanent refusal (a 4xx: a revoked or wrong URL, a payload it will
    /// not take) is given up at once, since asking again cannot help; an
    /// outage or an unset URL is retried with backoff, a rate limit no
    /// sooner than the webhook asked, until [`MAX_ATTEMPTS`].
    pub fn next(&self, attempts: u32) -> Next {
        let permanent = match self {
            Undelivered::SinkRemoved => true,
            Undelivered::UrlUnset => false,
            Undelivered::Post(e) => e.is_permanent(),
        };
        if permanent || attempts >= MAX_ATTEMPTS {
            return Next::GiveUp;
        }
        let asked = match self {
            Undelivered::Post(e) => e.retry_after().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        Next::RetryIn(retry_delay(attempts).max(asked))
    }

    /// In words, for the outbox row, the log and the task's event.
    pub fn describe(&self, sink: &str) -> String {
        match self {
            Undelivered::SinkRemoved => {
                format!("no [[notify]] named {sink:?} is configured any more")
            }
            Undelivered::UrlUnset => {
                format!("the URL variable of [[notify]] {sink:?} is not set")
            }
            Undelivered::Post(e) => format!("{} ({})", e, e.kind()),
        }
    }
}

/// The message for `text` about `task`: one JSON object that Slack (`text`),
/// Matrix (`body`, `msgtype`) and Telegram (`text`, `chat_id`) each accept,
/// with the facts under `orch` for anything else.
pub fn payload(task: &Task, state: &str, text: &str, chat_id: Option<&str>) -> serde_json::Value {
    let line = format!(
        "{} “{}” ({}) is {}: {}",
        task.original_work_item_id(),
        task.title,
        task.repo,
        state,
        text
    );
    let mut msg = serde_json::json!({
        "text": line,
        "body": line,
        "msgtype": "m.text",
        "orch": {
            "task": task.id.0,
            "work_item": task.original_work_item_id(),
            "title": task.title,
            "repo": task.repo,
            "stage": task.stage,
            "state": state,
            "message": text,
        },
    });
    if let Some(chat) = chat_id {
        msg["chat_id"] = serde_json::Value::String(chat.to_owned());
    }
    msg
}

/// How long to wait after the `attempts`-th failure: 5 s, 10 s, 20 s, … up to
/// 15 minutes.
pub fn retry_delay(attempts: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << attempts.min(20).saturating_sub(1));
    Duration::from_secs(secs.min(15 * 60))
}

/// Write the messages for `task`'s entry into its stage to the outbox of each
/// webhook that listens for that stage. `dedupe` makes a repeated notice a
/// no-op. Store errors are logged: a notification never fails a pipeline step.
pub async fn enqueue_for_stage(
    store: &dyn Store,
    sinks: &[NotifyConfig],
    task: &Task,
    state: &str,
    text: &str,
    dedupe: Option<&str>,
) -> usize {
    let mut written = 0;
    for sink in sinks.iter().filter(|s| s.stages.contains(&task.stage)) {
        let n = NewNotification {
            sink: sink.name.clone(),
            task_id: Some(task.id),
            payload: payload(task, state, text, sink.chat_id.as_deref()),
            dedupe_key: dedupe.map(str::to_owned),
        };
        match store.enqueue_notification(&n).await {
            Ok(true) => written += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(task = %task.id, sink = %sink.name, error = %e, "writing a notification failed")
            }
        }
    }
    written
}

/// Posts what is due in the outbox.
pub struct Outbox {
    store: Arc<dyn Store>,
    /// Webhook name → its URL (`None`: the variable is not set).
    urls: HashMap<String, Option<String>>,
    poster: Arc<dyn NotifyPoster>,
    wake: Arc<Notify>,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent: usize,
    pub retried: usize,
    pub given_up: usize,
}

impl Outbox {
    /// `secret` reads a variable (the process environment in production).
    /// `wake` is notified when a message was written (see
    /// `Pipeline::notification_queued`), to post at once.
    pub fn new(
        store: Arc<dyn Store>,
        sinks: &[NotifyConfig],
        secret: &dyn Fn(&str) -> Option<String>,
        poster: Arc<dyn NotifyPoster>,
        wake: Arc<Notify>,
    ) -> Outbox {
        let urls = sinks
            .iter()
            .map(|s| (s.name.clone(), secret(&s.url_env)))
            .collect();
        Outbox {
            store,
            urls,
            poster,
            wake,
        }
    }

    /// Post every due message once.
    pub async fn run_once(&self) -> Round {
        let mut round = Round::default();
        let due = match self.store.due_notifications(BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "reading the notification outbox failed");
                return round;
            }
        };
        for n in due {
            let result = match self.urls.get(&n.sink) {
                None => Err(Undelivered::SinkRemoved),
                Some(None) => Err(Undelivered::UrlUnset),
                Some(Some(url)) => self
                    .poster
                    .post(url, &n.payload)
                    .await
                    .map_err(Undelivered::Post),
            };
            match result {
                Ok(()) => {
                    if let Err(e) = self.store.notification_sent(n.id).await {
                        tracing::warn!(sink = %n.sink, error = %e, "recording a sent notification failed");
                    }
                    round.sent += 1;
                }
                Err(why) => {
                    if self.failed(&n, &why).await {
                        round.given_up += 1;
                    } else {
                        round.retried += 1;
                    }
                }
            }
        }
        round
    }

    /// Count the failure; `true` when the message is given up.
    async fn failed(&self, n: &Notification, why: &Undelivered) -> bool {
        let attempts = n.attempts + 1;
        let next = why.next(attempts);
        let give_up = next == Next::GiveUp;
        let retry_in = match next {
            Next::RetryIn(d) => Some(d),
            Next::GiveUp => None,
        };
        let why = why.describe(&n.sink);
        if let Err(e) = self.store.notification_failed(n.id, &why, retry_in).await {
            tracing::warn!(sink = %n.sink, error = %e, "recording a failed notification failed");
        }
        if give_up {
            tracing::warn!(sink = %n.sink, attempts, error = %why, "notification given up");
            if let Some(task) = n.task_id {
                let msg = format!(
                    "notification to {} given up after {attempts} attempt(s): {why}",
                    n.sink
                );
                let _ = self
                    .store
                    .append_event(
                        task,
                        EventInput::new("notify", EventKind::NotifyFailed, msg),
                    )
                    .await;
            }
        } else {
            tracing::info!(sink = %n.sink, attempts, error = %why, "notification failed; retried later");
        }
        give_up
    }

    /// Post on wake-up or every `every`, until the task is aborted.
    pub async fn run(&self, every: Duration) {
        loop {
            self.run_once().await;
            metrics::counter!("orch_notify_rounds_total").increment(1);
            crate::passes::pass();
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
    use orch_core::Timestamp;

    fn task() -> Task {
        Task {
            id: orch_core::TaskId(7),
            tracker_id: Some("DEMO-1".into()),
            work_item_id: "DEMO-1".into(),
            repo: "demo".into(),
            branch: "feature/DEMO-1-add-hello".into(),
            stage: orch_core::Stage::AwaitingApproval,
            title: "Add hello".into(),
            body: String::new(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            cancel_requested_at: None,
            cancelled_at: None,
        }
    }

    #[test]
    fn one_payload_speaks_slack_matrix_and_telegram() {
        let p = payload(&task(), "Awaiting Approval", "analysis ready", Some("-100"));
        let line = "DEMO-1 “Add hello” (demo) is Awaiting Approval: analysis ready";
        assert_eq!(p["text"], line, "Slack and Telegram read text");
        assert_eq!(
            (p["body"].as_str(), p["msgtype"].as_str()),
            (Some(line), Some("m.text"))
        );
        assert_eq!(p["chat_id"], "-100");
        assert_eq!(p["orch"]["stage"], "awaiting_approval");
        assert_eq!(p["orch"]["task"], 7);
        let without = payload(&task(), "Awaiting Approval", "x", None);
        assert!(
            without.get("chat_id").is_none(),
            "no chat_id unless configured"
        );
    }

    #[test]
    fn retry_delays_grow_and_stop_at_fifteen_minutes() {
        let d: Vec<u64> = (1..=10).map(|a| retry_delay(a).as_secs()).collect();
        assert_eq!(d[..5], [5, 10, 20, 40, 80]);
        assert!(d.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(retry_delay(40).as_secs(), 900);
    }
}
