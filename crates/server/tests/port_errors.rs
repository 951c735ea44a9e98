//! A request whose tracker or forge step fails is answered as the failure of
//! something orch depends on: a 5xx with the provider's words and the
//! failure's kind, never a 4xx that would blame the caller (issue 10, point 6).

mod common;

use async_trait::async_trait;
use common::Server;
use hyper::{Method, StatusCode};
use orch_core::Timestamp;
use orch_engine::ports::{PortError, PortResult, Tracker};
use orch_store::TrackerItem;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A tracker every read of which fails with `error`.
struct Failing {
    error: PortError,
}

#[async_trait]
impl Tracker for Failing {
    async fn item(&self, _: &str) -> PortResult<Option<TrackerItem>> {
        Err(self.error.clone())
    }
    async fn set_state(&self, _: &str, _: &str) -> PortResult<()> {
        Ok(())
    }
    async fn set_labels(&self, _: &str, _: &[String]) -> PortResult<()> {
        Ok(())
    }
    async fn comment(&self, _: &str, _: &str, _: Option<&str>) -> PortResult<()> {
        Ok(())
    }
    async fn person_comment_since(&self, _: &str, _: Timestamp) -> PortResult<Option<String>> {
        Ok(None)
    }
}

async fn server(error: PortError) -> Server {
    Server::start_with_tracker(Arc::new(Failing { error })).await
}

#[tokio::test]
async fn a_tracker_that_refuses_a_start_is_a_502_with_its_words() {
    let s = server(PortError::refused(
        "Plane: GET /issues/DEMO-1/ answered 401: the API key is invalid",
    ))
    .await;
    let (status, body) = s.post_json("/api/tasks/DEMO-1/start", None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("answered 401: the API key is invalid"),
        "{body}"
    );
    assert_eq!(body["kind"], "refused", "{body}");
    // Creating an item starts it: the item stands, the start is the 502.
    let (status, body) = s
        .post_json("/api/tasks", Some(json!({"repo": "demo", "title": "x"})))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("was created but not started") && error.contains("the API key is invalid"),
        "{body}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_tracker_is_a_502_and_a_rate_limit_a_503_with_its_wait() {
    let s = server(PortError::unavailable(
        "Plane is unreachable or failing (GET /issues/: connection refused, 4 attempts)",
    ))
    .await;
    let (status, body) = s.post_json("/api/tasks/DEMO-1/start", None).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["kind"], "unavailable", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{body}"
    );
    s.shutdown().await;

    let s = server(PortError::RateLimited {
        message: "GitHub is rate limiting orch for 30 s".into(),
        retry_after: Some(Duration::from_secs(30)),
    })
    .await;
    let (status, headers, text) = s
        .call(
            Method::POST,
            "/api/tasks/DEMO-1/start",
            Some(common::TOKEN),
            None,
        )
        .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["kind"], "rate_limited", "{body}");
    assert_eq!(headers["retry-after"], "30");
    s.shutdown().await;
}

#[tokio::test]
async fn a_tracker_that_cannot_find_what_it_needs_is_still_not_the_callers_404() {
    // The tracker's own lookup failed (a project gone, a bad setting): orch's
    // side is wrong, not the request, so not a 4xx either.
    for error in [
        PortError::not_found("Plane has no project 5f0c… (GET /projects/5f0c…/ answered 404)"),
        PortError::invalid("repo \"demo\" is not served by the GitHub tracker"),
    ] {
        let kind = error.kind();
        let s = server(error).await;
        let (status, body) = s.post_json("/api/tasks/DEMO-1/start", None).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{kind}: {body}");
        assert_eq!(body["kind"], kind, "{body}");
        s.shutdown().await;
    }
}
