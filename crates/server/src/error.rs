//! API errors (`{"error": "..."}` with a fitting status) and the extractors
//! that turn bad input into them instead of axum's plain-text rejections.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header, request::Parts};
use axum::response::{IntoResponse, Response};
use orch_engine::pipeline::PipelineError;
use orch_engine::ports::PortError;
use orch_store::StoreError;
use serde::de::DeserializeOwned;

/// An error answer: the status and a message that says what to do.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// A tracker's or forge's failure carries its kind (`refused`,
    /// `unavailable`, …) in the body, so a client (the CLI) can say what it
    /// means without reading the words, and a rate limit its wait.
    pub port: Option<(&'static str, Option<std::time::Duration>)>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            port: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "API request failed");
        }
        let mut body = serde_json::json!({ "error": self.message });
        let mut resp = match self.port {
            Some((kind, retry_after)) => {
                body["kind"] = kind.into();
                let mut resp = (self.status, Json(body)).into_response();
                if let Some(wait) = retry_after {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, wait.as_secs().max(1).into());
                }
                resp
            }
            None => (self.status, Json(body)).into_response(),
        };
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

fn store_status(e: &StoreError) -> StatusCode {
    match e {
        StoreError::TaskNotFound(_) | StoreError::JobNotFound(_) => StatusCode::NOT_FOUND,
        StoreError::Duplicate { .. }
        | StoreError::StageConflict { .. }
        | StoreError::ActiveJob { .. }
        | StoreError::IllegalTransition { .. }
        | StoreError::MarkerExists { .. } => StatusCode::CONFLICT,
        StoreError::BadDependency { .. } | StoreError::InvalidKey(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::new(store_status(&e), e.to_string())
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        let status = match &e {
            PipelineError::Store(s) => store_status(s),
            PipelineError::NotFound(_) => StatusCode::NOT_FOUND,
            PipelineError::Invalid(_) => StatusCode::BAD_REQUEST,
            PipelineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PipelineError::Port(p) => return ApiError::from(p.clone()),
        };
        ApiError::new(status, e.to_string())
    }
}

/// A tracker, forge or git step failed: the request was fine, something
/// orch depends on was not, so never a 4xx (a client must not take it for
/// its own mistake). A provider asking orch to wait is 503 (with
/// `Retry-After` when it said how long); every other failure is 502 with
/// the provider's words and the kind in the body.
impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        let status = match &e {
            PortError::RateLimited { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError {
            status,
            message: e.to_string(),
            port: Some((e.kind(), e.retry_after())),
        }
    }
}

/// A JSON request body; bad JSON is a 400 naming the problem, an oversized
/// body a 413. The content type is not checked: the body is JSON or an error.
pub struct JsonBody<T>(pub T);

/// Like [`JsonBody`], but an empty body means `T::default()`.
pub struct OptionalJsonBody<T>(pub T);

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> ApiResult<Bytes> {
    Bytes::from_request(req, state).await.map_err(|r| {
        let status = r.status();
        let text = r.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!(
                    "the request body is larger than {} bytes; send less",
                    crate::BODY_LIMIT
                ),
            )
        } else {
            ApiError::new(status, format!("reading the request body: {text}"))
        }
    })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "the request body is empty; send a JSON object",
            ));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse_json(&bytes).map(OptionalJsonBody)
    }
}

/// Query parameters; a bad one is a 400 naming it.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| QueryParams(v))
            .map_err(|r| ApiError::bad_request(format!("bad query string: {}", r.body_text())))
    }
}

/// Path parameters; a bad one is a 400 naming it.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| PathParams(v))
            .map_err(|r| ApiError::bad_request(format!("bad path: {}", r.body_text())))
    }
}

/// No route has this path.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {method} {}; the API serves /healthz, /queue, /metrics and /api/tasks",
        uri.path()
    ))
}

/// The path exists, not with this method.
pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}", uri.path()),
    )
}
