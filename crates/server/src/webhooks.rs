//! `POST /webhooks/{plane,gitea,github,gitlab,linear,jira}`.
//!
//! The handler is short on purpose: check the size (the body limit layer),
//! verify the signature over the raw bytes, parse, record the delivery's keys
//! (a replay is a no-op), hand the event to a background task and answer.
//! A refused request (401, 400, 413) touches nothing: the store is written
//! only after verification and parsing have passed.
//!
//! These routes authenticate by signature, so they sit outside the bearer
//! token layer of the API.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use orch_integrations::ingest::WebhookSink;
use orch_integrations::webhook::{Provider, Verify, WebhookEvent, receive};
use orch_store::Store;
use serde_json::json;
use std::sync::Arc;

/// Webhook bodies larger than this are refused with 413. Plane and Gitea
/// send a few KiB; GitHub's pull request events stay well below it.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// How one provider's deliveries are checked.
#[derive(Clone)]
pub struct Receiver {
    /// The shared secret. `None` refuses every delivery unless `insecure`.
    pub secret: Option<Vec<u8>>,
    /// Explicitly accept unsigned deliveries (`webhook_insecure = true`).
    pub insecure: bool,
    /// The variable that should hold the secret, for the error message.
    pub secret_env: String,
}

/// Everything the webhook routes need.
#[derive(Clone)]
pub struct Webhooks {
    pub store: Arc<dyn Store>,
    pub sink: Arc<dyn WebhookSink>,
    pub plane: Option<Receiver>,
    pub gitea: Option<Receiver>,
    pub github: Option<Receiver>,
    pub gitlab: Option<Receiver>,
    pub linear: Option<Receiver>,
    pub jira: Option<Receiver>,
}

impl Webhooks {
    fn receiver(&self, p: Provider) -> Option<&Receiver> {
        match p {
            Provider::Plane => self.plane.as_ref(),
            Provider::Gitea => self.gitea.as_ref(),
            Provider::Github => self.github.as_ref(),
            Provider::Gitlab => self.gitlab.as_ref(),
            Provider::Linear => self.linear.as_ref(),
            Provider::Jira => self.jira.as_ref(),
        }
    }

    /// Say at start-up what each receiver accepts; unsigned ones loudly.
    pub fn log_startup(&self) {
        for p in [
            Provider::Plane,
            Provider::Gitea,
            Provider::Github,
            Provider::Gitlab,
            Provider::Linear,
            Provider::Jira,
        ] {
            match self.receiver(p) {
                Some(r) if r.secret.is_none() && r.insecure => tracing::warn!(
                    provider = p.as_str(),
                    "webhooks are accepted WITHOUT a signature check (webhook_insecure = true); anyone who can reach this server can move tasks"
                ),
                Some(r) if r.secret.is_none() => tracing::warn!(
                    provider = p.as_str(),
                    "no webhook secret: every delivery is refused until {} is set",
                    r.secret_env
                ),
                Some(_) => tracing::info!(provider = p.as_str(), "webhooks verified by signature"),
                None => {}
            }
        }
    }
}

/// The webhook routes, with their own body limit and no bearer token.
pub fn router(hooks: Webhooks) -> Router {
    Router::new()
        .route("/webhooks/plane", post(plane))
        .route("/webhooks/gitea", post(gitea))
        .route("/webhooks/github", post(github))
        .route("/webhooks/gitlab", post(gitlab))
        .route("/webhooks/linear", post(linear))
        .route("/webhooks/jira", post(jira))
        .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT))
        .with_state(Arc::new(hooks))
}

async fn plane(State(h): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    counted(
        Provider::Plane,
        handle(&h, Provider::Plane, &headers, &body).await,
    )
}

async fn gitea(State(h): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    counted(
        Provider::Gitea,
        handle(&h, Provider::Gitea, &headers, &body).await,
    )
}

async fn github(State(h): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    counted(
        Provider::Github,
        handle(&h, Provider::Github, &headers, &body).await,
    )
}

async fn gitlab(State(h): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    counted(
        Provider::Gitlab,
        handle(&h, Provider::Gitlab, &headers, &body).await,
    )
}

async fn linear(State(h): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    counted(
        Provider::Linear,
        handle(&h, Provider::Linear, &headers, &body).await,
    )
}

async fn jira(State(h): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    counted(
        Provider::Jira,
        handle(&h, Provider::Jira, &headers, &body).await,
    )
}

/// `orch_webhook_deliveries_total{provider, result}` (see metrics.rs): 202
/// accepted (ignored events included), 200 a duplicate, anything else rejected.
fn counted(provider: Provider, res: Response) -> Response {
    let result = match res.status() {
        StatusCode::ACCEPTED => "accepted",
        StatusCode::OK => "duplicate",
        _ => "rejected",
    };
    metrics::counter!("orch_webhook_deliveries_total", "provider" => provider.as_str(), "result" => result)
        .increment(1);
    res
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn handle(h: &Webhooks, provider: Provider, headers: &HeaderMap, body: &[u8]) -> Response {
    let Some(r) = h.receiver(provider) else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": format!("{} webhooks are not configured on this orch", provider.as_str())}),
        );
    };
    let verify = match (&r.secret, r.insecure) {
        (Some(s), _) => Verify::Secret(s),
        (None, true) => Verify::Insecure,
        (None, false) => {
            tracing::warn!(
                provider = provider.as_str(),
                "webhook refused: no secret configured"
            );
            return answer(
                StatusCode::UNAUTHORIZED,
                json!({"error": format!("no webhook secret is configured; set {} (or webhook_insecure = true, not recommended)", r.secret_env)}),
            );
        }
    };
    let lookup = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let accepted = match receive(provider, verify, lookup, body) {
        Ok(a) => a,
        Err(rej) => {
            tracing::warn!(
                provider = provider.as_str(),
                status = rej.status,
                "webhook refused: {}",
                rej.message
            );
            let status = StatusCode::from_u16(rej.status).unwrap_or(StatusCode::BAD_REQUEST);
            return answer(status, json!({"error": rej.message}));
        }
    };
    if let WebhookEvent::Ignored { reason } = &accepted.event {
        return answer(
            StatusCode::ACCEPTED,
            json!({"status": "ignored", "reason": reason}),
        );
    }
    for key in &accepted.dedupe_keys {
        match h.store.record_delivery(provider.as_str(), key).await {
            Ok(true) => {}
            Ok(false) => {
                return answer(StatusCode::OK, json!({"status": "duplicate"}));
            }
            Err(e) => {
                // Not recorded, not handled: the sender's retry (or the
                // reconciler) brings it back.
                tracing::warn!(provider = provider.as_str(), error = %e, "webhook: recording the delivery failed");
                return answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "orch cannot record the delivery right now; retry later"}),
                );
            }
        }
    }
    let sink = h.sink.clone();
    let event = accepted.event;
    tokio::spawn(async move { sink.handle(provider, event).await });
    answer(StatusCode::ACCEPTED, json!({"status": "accepted"}))
}

impl Webhooks {
    /// The receivers orch.toml configures, with secrets from the environment
    /// and the real ingest behind them, on the providers the pipeline was
    /// built on (the same clients: one budget per credential).
    pub fn new(
        pipeline: &Arc<orch_engine::pipeline::Pipeline>,
        providers: &orch_integrations::providers::Providers,
    ) -> Webhooks {
        use orch_integrations::providers::receivers;
        let cfg = pipeline.config();
        let [plane, gitea, github, gitlab, linear, jira] = receivers(cfg, &|n| cfg.secret(n));
        let conv = |r: orch_integrations::providers::ReceiverSettings| Receiver {
            secret: r.secret,
            insecure: r.insecure,
            secret_env: r.secret_env,
        };
        let hooks = Webhooks {
            store: pipeline.store().clone(),
            sink: Arc::new(providers.ingest(pipeline.clone())),
            plane: plane.map(conv),
            gitea: gitea.map(conv),
            github: github.map(conv),
            gitlab: gitlab.map(conv),
            linear: linear.map(conv),
            jira: jira.map(conv),
        };
        hooks.log_startup();
        hooks
    }
}
