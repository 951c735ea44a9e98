//! `GET /api/events`: task changes for the live board, as Server-Sent Events.
//!
//! One poller per server (not per client) watches the store: the newest
//! task event id and the set of running jobs, every 500 ms and only while
//! someone listens, and soon after each commit of this process (woken by
//! `Store::changes`, at most every 50 ms). Both reads hit an index, so 50
//! open boards cost the same as one. Every change is serialised once and
//! fanned out on a broadcast channel. The 500 ms poll stays: it sees the
//! changes other processes make (the CLI beside `orch serve`, other nodes),
//! which the signal does not.
//!
//! Events: `hello` (connected), `task` (a card, see `board::Card`), `totals`,
//! `inbox` (what waits for a person, see `inbox::Inbox`, when it changed),
//! `config` (the live configuration's state, `/queue`'s `config`, when it changed)
//! and `resync` (the client missed changes and should reload the board).
//! A running agent's new log line re-sends its card, so cards show what
//! agents do now; that costs one short read from each running log's end.

use crate::board::{self, Card};
use crate::{AppState, Shared};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use orch_core::{AgentKind, TaskId};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

const POLL: Duration = Duration::from_millis(500);
/// A commit wakes the poller this long after it at the soonest, so a burst
/// of commits costs one look.
const AFTER_COMMIT: Duration = Duration::from_millis(50);
/// Task events read per poll; more new ones than this means "reload".
const BATCH: u32 = 200;

/// An event ready to send: its name and JSON data.
type Message = Arc<(&'static str, String)>;

pub struct Hub {
    tx: broadcast::Sender<Message>,
    started: AtomicBool,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            tx: broadcast::channel(256).0,
            started: AtomicBool::new(false),
        }
    }
}

impl Hub {
    fn send(&self, name: &'static str, data: &impl serde::Serialize) {
        if let Ok(json) = serde_json::to_string(data) {
            self.send_raw(name, json);
        }
    }

    fn send_raw(&self, name: &'static str, json: String) {
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(Arc::new((name, json)));
    }
}

pub async fn events(
    State(s): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    if !s.hub.started.swap(true, Ordering::SeqCst) {
        tokio::spawn(poll_loop(Arc::downgrade(&s)));
    }
    let client = Client {
        rx: s.hub.tx.subscribe(),
        closing: s.closing.clone(),
        hello: true,
    };
    let stream = futures_util::stream::unfold(client, |mut c| async move {
        let ev = c.next().await?;
        Some((Ok(ev), c))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

struct Client {
    rx: broadcast::Receiver<Message>,
    closing: watch::Receiver<bool>,
    hello: bool,
}

impl Client {
    async fn next(&mut self) -> Option<Event> {
        if std::mem::take(&mut self.hello) {
            return Some(Event::default().event("hello").data("{}"));
        }
        loop {
            if *self.closing.borrow() {
                return None;
            }
            tokio::select! {
                m = self.rx.recv() => return match m {
                    Ok(m) => Some(Event::default().event(m.0).data(&m.1)),
                    // Too slow a reader: it missed changes, so it reloads.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        Some(Event::default().event("resync").data("{}"))
                    }
                    Err(broadcast::error::RecvError::Closed) => None,
                },
                // A dropped sender (no graceful shutdown wired) never closes.
                Ok(()) = self.closing.changed() => {}
            }
        }
    }
}

/// What the poller saw last time.
#[derive(Default)]
struct Seen {
    /// The newest task event id; `None` until the first poll (the baseline).
    last_event: Option<i64>,
    /// Each running task's agent and the last line of its log: a new line
    /// re-sends the card, so the board shows what the agent does now.
    running: BTreeMap<TaskId, (AgentKind, Option<String>)>,
    /// The inbox last sent (its JSON), so an unchanged one is not sent again.
    inbox: Option<String>,
    /// The live configuration's state last seen (its JSON).
    config: Option<String>,
}

/// Runs until the server is dropped or closing. Holds only a weak reference,
/// so it never keeps the server alive.
async fn poll_loop(weak: Weak<Shared>) {
    let mut seen = Seen::default();
    let mut changes = match weak.upgrade() {
        Some(s) => s.store().changes(),
        None => return,
    };
    loop {
        // What commits from here on wakes the wait below.
        changes.borrow_and_update();
        let closing = {
            let Some(s) = weak.upgrade() else { return };
            if s.is_closing() {
                return;
            }
            if s.hub.tx.receiver_count() == 0 {
                // Nobody listens: forget, and take a new baseline later.
                seen = Seen::default();
            } else if let Err(e) = poll_once(&s, &mut seen).await {
                tracing::warn!(error = %e.message, "watching the store for the board failed");
            }
            s.closing.clone()
        };
        let mut closing = closing;
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            Ok(()) = closing.changed() => {}
            Ok(()) = changes.changed() => tokio::time::sleep(AFTER_COMMIT).await,
        }
    }
}

async fn poll_once(s: &Shared, seen: &mut Seen) -> crate::error::ApiResult<()> {
    let store = s.store();
    let events = store.recent_events(BATCH).await?; // newest first
    let running = running_now(store).await?;
    let newest = events.first().map(|e| e.id).unwrap_or(0);
    // The configuration's state: a client reads it at `hello` (/queue),
    // then a change (an edit applied or refused) comes as `config`.
    let config = serde_json::to_string(&s.pipeline().config_status()).unwrap_or_default();
    if seen.config.as_ref().is_some_and(|c| *c != config) {
        s.hub.send_raw("config", config.clone());
    }
    seen.config = Some(config);
    let Some(last) = seen.last_event else {
        seen.last_event = Some(newest);
        seen.running = running;
        seen.inbox = None;
        return Ok(());
    };
    let fresh: Vec<_> = events.iter().filter(|e| e.id > last).collect();
    if fresh.len() as u32 == BATCH {
        s.hub.send("resync", &serde_json::json!({}));
    }
    let mut changed: BTreeSet<TaskId> = fresh.iter().map(|e| e.task_id).collect();
    for (task, now) in running.iter() {
        if seen.running.get(task) != Some(now) {
            changed.insert(*task);
        }
    }
    changed.extend(seen.running.keys().filter(|t| !running.contains_key(t)));
    let mut tasks = Vec::new();
    for id in &changed {
        if let Some(task) = store.get_task(*id).await? {
            tasks.push(task);
        }
    }
    if !tasks.is_empty() {
        let cfg = s.pipeline().config();
        let ctx = board::Context::load(store, cfg, &tasks).await?;
        for task in &tasks {
            s.hub.send("task", &Card::new(task, &ctx));
        }
        s.hub
            .send("totals", &board::totals(store, running.len()).await?);
    }
    // A task event can change what waits for a person; the inbox is sent
    // only when it differs from the one sent last.
    if !fresh.is_empty() || seen.inbox.is_none() {
        let inbox = crate::inbox::compute(s.pipeline()).await?;
        let json = serde_json::to_string(&inbox).unwrap_or_default();
        if seen.inbox.as_deref() != Some(json.as_str()) {
            s.hub.send_raw("inbox", json.clone());
            seen.inbox = Some(json);
        }
    }
    seen.last_event = Some(newest.max(last));
    seen.running = running;
    Ok(())
}

/// Each running task's agent and its log's last line.
async fn running_now(
    store: &dyn orch_store::Store,
) -> crate::error::ApiResult<BTreeMap<TaskId, (AgentKind, Option<String>)>> {
    let jobs = store
        .list_jobs(Some(orch_core::JobStatus::Running), 10_000)
        .await?;
    let mut out = BTreeMap::new();
    for j in jobs {
        let path = match &j.run_id {
            Some(run) => store.get_run(run).await?.and_then(|r| r.log_path),
            None => None,
        };
        let line = match path {
            Some(p) => board::last_line(std::path::Path::new(&p)).await,
            None => None,
        };
        out.insert(j.task_id, (j.agent, line));
    }
    Ok(out)
}
