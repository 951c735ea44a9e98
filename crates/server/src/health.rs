//! `GET /healthz`, and the request log.

use crate::AppState;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Instant;

/// 200 `{"ok": true, "store": "ok"}`, or 503 when the store does not answer.
pub async fn healthz(State(s): State<AppState>) -> Response {
    match s.store().ping().await {
        Ok(()) => Json(json!({ "ok": true, "store": "ok" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: the store does not answer");
            let body = json!({
                "ok": false,
                "store": "unavailable",
                "error": format!("the store does not answer: {e}; check the database (`orch db migrate`, disk space, store.url)"),
            });
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// One line per request: method, path (never the query or headers), status, time.
/// The `server` header of every response: `orch/<version>`. A client that
/// reaches something else on the address it was given (a proxy, another
/// program on a reused port) can tell, and say so.
pub const SERVER_HEADER: &str = concat!("orch/", env!("CARGO_PKG_VERSION"));

pub async fn identify(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        axum::http::header::SERVER,
        axum::http::HeaderValue::from_static(SERVER_HEADER),
    );
    res
}

pub async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let res = next.run(req).await;
    tracing::debug!(
        %method,
        %path,
        status = res.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "API request"
    );
    res
}
