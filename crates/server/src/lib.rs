//! orch's HTTP API (R-51), on axum.
//!
//! ```text
//! GET  /healthz                          store liveness
//! GET  /queue                            the status snapshot (R-36)
//! GET  /metrics                          Prometheus text
//! GET  /api/tasks?repo=&stage=&limit=    list tasks
//! POST /api/tasks                        create a work item (builtin tracker) and start it
//! GET  /api/tasks/{id}                   task detail: jobs, runs, usage, events
//! POST /api/tasks/{id}/{action}          start | approve | reject | confirm-deploy | stop | retry | answer
//! GET  /api/tasks/{id}/logs?run=         the current (or that) run's log, live (SSE);
//!                                        another node's run streamed from that node
//! GET  /api/tasks/{id}/diff              the branch against its base
//! GET  /api/tasks/{id}/artefacts         docs/work-items/<key>/*.md as HTML
//! GET  /api/board                        cards and totals for the dashboard
//! GET  /api/inbox                        what waits for a person, oldest first
//! POST /api/outbox/{id}/resend           send a given-up tracker write again
//! GET  /api/events                       task changes, live (SSE)
//! GET  /api/changes?after=&timeout_ms=   the engine's change counter, long-polled
//! GET  /api/agent/tasks/{id}            an agent's tools (`orch mcp`, agent.rs):
//! POST /api/agent/tasks/{id}/notes        the run's own token, its own task only
//! POST /api/agent/tasks/{id}/question
//! GET  /                                 the dashboard (assets embedded)
//! POST /login, /logout; GET /api/session the dashboard's session cookie
//! ```
//!
//! Handlers are thin: they parse, call one function of the engine or store,
//! and render. Errors are `{"error": "..."}` with a status that fits
//! (`error.rs`); who may call what is `auth.rs`.

mod agent;
mod auth;
mod board;
mod changes;
mod dashboard;
mod error;
mod events;
mod health;
mod inbox;
mod logs;
mod logs_remote;
mod metrics;
mod queue;
mod signal;
mod tasks;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use orch_engine::pipeline::Pipeline;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::watch;

/// Install the process-wide metrics recorder that `/metrics` renders. The
/// router does it too; a program that counts before it serves (the engine
/// claims jobs before the listener is up) calls this first.
pub fn install_metrics_recorder() {
    metrics::handle();
}

/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What the API serves from.
#[derive(Clone)]
pub struct ApiState {
    pub pipeline: Arc<Pipeline>,
    /// The providers `pipeline` was built on: the webhooks' ingest uses the
    /// same clients (`Providers` is made once per process).
    pub providers: Arc<orch_integrations::providers::Providers>,
    /// The bearer token mutating requests need. `None` (or empty): every
    /// mutating request is refused, saying which variable to set.
    pub token: Option<String>,
    /// The token of the CLI beside this engine (`orch serve` writes it to
    /// `<data_dir>/serve.control`, readable by its user only): a bearer
    /// credential like `token`, so `orch task stop` and the other changes
    /// made on this machine reach the running engine instead of acting
    /// beside it. `None`: only `token` is accepted.
    pub local_token: Option<String>,
    /// This node's name among the engines sharing the store: the log of a
    /// run another node ran is streamed from that node (`logs_remote.rs`).
    /// `None`: every run's log is read from this machine.
    pub node: Option<String>,
}

/// The state the handlers see: the API state and the server's closing signal,
/// which ends long-lived responses (log streams) so a graceful shutdown is quick.
pub(crate) struct Shared {
    pub api: ApiState,
    pub closing: watch::Receiver<bool>,
    pub sessions: auth::Sessions,
    pub hub: events::Hub,
    /// The client for other nodes' APIs, made at the first use.
    peer: std::sync::OnceLock<reqwest::Client>,
}

impl Shared {
    /// The client that reads other nodes' APIs: no proxy (the nodes talk
    /// on their own network) and a short connect timeout.
    pub fn peer_client(&self) -> Result<&reqwest::Client, reqwest::Error> {
        if let Some(c) = self.peer.get() {
            return Ok(c);
        }
        let c = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(logs_remote::CONNECT_TIMEOUT)
            .build()?;
        Ok(self.peer.get_or_init(|| c))
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.api.pipeline
    }

    pub fn store(&self) -> &dyn orch_store::Store {
        self.api.pipeline.store().as_ref()
    }

    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }
}

pub(crate) type AppState = Arc<Shared>;

/// The API's routes. Long-lived responses end only on their own; use
/// [`serve`] for a server that also ends them on shutdown.
pub fn router(state: ApiState) -> Router {
    // The sender is dropped: the receiver keeps reading `false`, never closing.
    let (_, closing) = watch::channel(false);
    build(state, closing)
}

fn build(state: ApiState, closing: watch::Receiver<bool>) -> Router {
    // Installed before any request, so the engine's counters are recorded from the start.
    metrics::handle();
    // Webhooks authenticate by signature, so they join after the token layer.
    let hooks = webhooks::router(webhooks::Webhooks::new(&state.pipeline, &state.providers));
    let shared: AppState = Arc::new(Shared {
        api: state,
        closing,
        sessions: auth::Sessions::default(),
        hub: events::Hub::default(),
        peer: std::sync::OnceLock::new(),
    });
    // An agent's tools authenticate by their run's token (agent.rs), so
    // they join after the API token layer too.
    let agent_tools = Router::new()
        .route("/api/agent/tasks/{id}", get(agent::work_item))
        .route("/api/agent/tasks/{id}/notes", post(agent::note))
        .route("/api/agent/tasks/{id}/question", post(agent::question))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(health::log_request))
        .with_state(shared.clone());
    Router::new()
        .route("/", get(dashboard::index))
        .route("/assets/app.js", get(dashboard::app_js))
        .route("/assets/app.css", get(dashboard::app_css))
        .route("/assets/favicon.svg", get(dashboard::favicon))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/api/session", get(auth::session))
        .route("/api/board", get(board::board))
        .route("/api/events", get(events::events))
        .route("/api/changes", get(signal::changes))
        .route("/api/inbox", get(inbox::inbox))
        .route("/api/outbox/{id}/resend", post(inbox::resend))
        .route("/api/tasks/{id}/diff", get(changes::diff))
        .route("/api/tasks/{id}/artefacts", get(changes::artefacts))
        .route("/healthz", get(health::healthz))
        .route("/queue", get(queue::queue))
        .route("/metrics", get(metrics::metrics))
        .route("/api/tasks", get(tasks::list).post(tasks::create))
        .route("/api/tasks/{id}", get(tasks::show))
        .route("/api/tasks/{id}/logs", get(logs::logs))
        .route("/api/tasks/{id}/{action}", post(tasks::action))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        // Layers run bottom-up: log, then authenticate (auth.rs), then limit the body.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            auth::require_token,
        ))
        .layer(axum::middleware::from_fn(health::log_request))
        .with_state(shared)
        .merge(hooks)
        .merge(agent_tools)
        .layer(axum::middleware::from_fn(health::identify))
}

/// Serve until `shutdown` resolves (graceful: requests in flight finish, log
/// streams end within one poll).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (tx, closing) = watch::channel(false);
    let app = build(state, closing);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "HTTP API listening");
    }
    // The peer address lets `auth` tell loopback clients (server.read_only_open).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("HTTP API shutting down");
            let _ = tx.send(true);
        })
        .await
}
