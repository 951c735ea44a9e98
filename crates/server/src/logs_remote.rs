//! A run log that lives on another node (issue 11): streamed from that
//! node's API, as it sends it.
//!
//! Why proxied rather than kept in the store: a run's log is written by its
//! agent's monitor on the machine that runs it, at the agent's pace and
//! volume (an output flood is cut there, `docs/security.md`); copying every
//! line into the shared database would make the database carry the agents'
//! output and every node pay for it, to serve a page that is seldom open.
//! So the log stays on its node's disk, each node records where its API is
//! reached (`nodes.api_url`, `server.node_url`), and a node asked for a log
//! of another node's run streams that node's answer through, bytes as they
//! come, with the viewer's `Last-Event-ID`. The request it sends names the
//! run (`?run=`) and says it was forwarded, so the other node serves that
//! run from its own disk and never forwards again.
//!
//! The cost: the log of a node that is down cannot be read until it is
//! back (its runs are retried elsewhere meanwhile, with logs of their own).
//! The stream then says which node holds the log and why it did not answer.

use crate::AppState;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use orch_core::Run;
use std::convert::Infallible;
use std::time::Duration;

/// Set on a request one node forwards to another: the receiver serves it
/// from its own disk, whatever its store says, so a forward never loops.
pub const FORWARDED_HEADER: &str = "x-orch-forwarded-by";
/// Set on a log streamed from another node: which node's disk it came from.
pub const LOG_NODE_HEADER: &str = "x-orch-log-node";
/// How long a node that does not answer is waited for.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The node that holds `run`'s log, when that is not this node and it said
/// where its API is: `(name, url)`. `None`: read it here.
pub async fn holder(s: &AppState, run: &Run, headers: &HeaderMap) -> Option<(String, String)> {
    let me = s.api.node.as_deref()?;
    if run.worker_id.0 == me || headers.contains_key(FORWARDED_HEADER) {
        return None;
    }
    let nodes = match s.store().nodes().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "listing the nodes failed; reading the log here");
            return None;
        }
    };
    let node = nodes.into_iter().find(|n| n.name == run.worker_id.0)?;
    Some((node.name, node.api_url?))
}

/// Why the log could not be streamed from its node.
pub struct Unreachable(pub String);

/// Stream `run`'s log from node `name` at `url`.
pub async fn stream_from(
    s: &AppState,
    (name, url): (&str, &str),
    run: &Run,
    task_key: &str,
    last_event_id: Option<&str>,
) -> Result<Response, Unreachable> {
    let client = s.peer_client().map_err(|e| Unreachable(e.to_string()))?;
    let mut target = reqwest::Url::parse(url)
        .map_err(|e| Unreachable(format!("{name}'s API address {url:?} is not a URL: {e}")))?;
    target
        .path_segments_mut()
        .map_err(|()| Unreachable(format!("{name}'s API address {url:?} cannot have a path")))?
        .pop_if_empty()
        .extend(["api", "tasks", task_key, "logs"]);
    target.query_pairs_mut().append_pair("run", &run.run_id.0);
    let mut req = client
        .get(target)
        .header(FORWARDED_HEADER, s.api.node.as_deref().unwrap_or_default())
        .header(header::ACCEPT, "text/event-stream");
    if let Some(token) = s.api.token.as_deref().filter(|t| !t.is_empty()) {
        req = req.bearer_auth(token);
    }
    if let Some(last) = last_event_id {
        req = req.header("last-event-id", last);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| Unreachable(format!("{name} at {url} does not answer: {e}")))?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let why = if status == StatusCode::UNAUTHORIZED {
            "; every node needs the same API token (server.api_token_env)"
        } else {
            ""
        };
        return Err(Unreachable(format!(
            "{name} at {url} answered {status}{why}"
        )));
    }
    let closing = s.closing.clone();
    let body =
        futures_util::stream::unfold((resp, closing), |(mut resp, mut closing)| async move {
            if *closing.borrow() {
                return None;
            }
            let chunk = tokio::select! {
                c = resp.chunk() => c,
                // This server shuts down: the viewer reconnects elsewhere.
                _ = closing.changed() => return None,
            };
            match chunk {
                Ok(Some(bytes)) => Some((Ok::<Bytes, Infallible>(bytes), (resp, closing))),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "the log stream of another node broke off");
                    None
                }
            }
        });
    let mut out = Response::new(Body::from_stream(body));
    let h = out.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(name) {
        h.insert(LOG_NODE_HEADER, v);
    }
    Ok(out)
}

/// The answer when the log's node cannot be reached and this machine does
/// not have the file either: an error event that says where the log is,
/// then the end.
pub fn unreachable_answer(run: &Run, why: &Unreachable) -> Response {
    let msg = format!(
        "the log of run {} is on node {}: {}",
        run.run_id, run.worker_id.0, why.0
    );
    tracing::warn!(error = %msg, "a run log of another node cannot be read");
    let events = [
        Event::default().event("error").data(msg),
        Event::default().event("end").data("end of log"),
    ];
    Sse::new(futures_util::stream::iter(
        events.map(Ok::<Event, Infallible>),
    ))
    .into_response()
}
