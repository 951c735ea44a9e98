//! Who may do what (R-51, issue 6), with the token compared in constant time.
//!
//! - A bearer header (`Authorization: Bearer <token>`) works for everything:
//!   that is the API's and the CLI's way in.
//! - The dashboard logs in once (`POST /login` with the token) and gets an
//!   `HttpOnly; SameSite=Strict` session cookie; the token itself never
//!   reaches the browser's storage. A change made with the cookie must also
//!   carry the header `X-Orch-Csrf` (and a matching `Origin` when the browser
//!   sends one): another site can neither read the cookie nor add that header
//!   without a CORS preflight we never grant, so it cannot forge a change.
//! - Reads need one of the two as well, unless `server.read_only_open` is set
//!   and the client connects from loopback.
//! - Always open: the dashboard's static shell and assets (they hold no data),
//!   `/healthz`, `/login`, `/logout`, `/api/session`.

use crate::AppState;
use crate::error::{ApiError, ApiResult, JsonBody};
use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

pub const SESSION_COOKIE: &str = "orch_session";
pub const CSRF_HEADER: &str = "x-orch-csrf";
/// A dashboard session lasts this long; then the person logs in again.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// A wrong token at `/login` waits this long, so guessing is slow.
const LOGIN_FAILURE_DELAY: Duration = Duration::from_millis(250);
/// Bounded, so a flood of logins cannot grow memory without limit.
const MAX_SESSIONS: usize = 1024;

/// The dashboard's sessions, in memory: a restart logs everyone out, which
/// is fine for a tool with a handful of users and avoids storing secrets.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<Vec<(String, Instant)>>,
}

impl Sessions {
    fn create(&self) -> String {
        // Two v4 UUIDs: 244 random bits from the OS generator.
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        live.retain(|(_, at)| now.duration_since(*at) < SESSION_TTL);
        if live.len() >= MAX_SESSIONS {
            live.remove(0);
        }
        live.push((id.clone(), now));
        id
    }

    /// Every live session is compared in constant time, so timing says
    /// nothing about how much of a guess was right.
    fn valid(&self, given: &str) -> bool {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        live.iter().fold(false, |found, (id, at)| {
            let same = bool::from(id.as_bytes().ct_eq(given.as_bytes()));
            found | (same & (now.duration_since(*at) < SESSION_TTL))
        })
    }

    fn remove(&self, given: &str) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|(id, _)| !bool::from(id.as_bytes().ct_eq(given.as_bytes())));
    }
}

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    Bearer,
    Session,
}

/// Paths anyone may call.
fn is_open(method: &Method, path: &str) -> bool {
    let read = matches!(*method, Method::GET | Method::HEAD);
    match path {
        "/login" | "/logout" => *method == Method::POST,
        "/" | "/healthz" | "/api/session" => read,
        // Webhooks (a later issue) authenticate by their provider's signature
        // and will be exempted here by path.
        p => read && p.starts_with("/assets/"),
    }
}

/// The gate in front of every route. Safe by default: a new route is
/// protected without asking.
pub async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    if is_open(&method, req.uri().path()) {
        return next.run(req).await;
    }
    let read = matches!(method, Method::GET | Method::HEAD);
    let verdict = match authenticate(&s, req.headers()) {
        Ok(Credential::Bearer) => Ok(()),
        Ok(Credential::Session) if read => Ok(()),
        Ok(Credential::Session) => csrf_check(req.headers()),
        Err(_) if read && s.pipeline().config().server.read_only_open && from_loopback(&req) => {
            Ok(())
        }
        Err(e) => Err(e),
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::warn!(method = %method, path = %req.uri().path(), status = e.status.as_u16(), "API request refused: {}", e.message);
            e.into_response()
        }
    }
}

fn env_name(s: &AppState) -> &str {
    &s.pipeline().config().server.api_token_env
}

/// Which credential the request carries, if a valid one. Never logs a token.
fn authenticate(s: &AppState, headers: &HeaderMap) -> ApiResult<Credential> {
    let env = env_name(s);
    if let Some(local) = s.api.local_token.as_deref().filter(|t| !t.is_empty())
        && check_bearer(local, headers, env).is_ok()
    {
        return Ok(Credential::Bearer);
    }
    let expected = configured(s.api.token.as_deref(), env)?;
    if headers.contains_key(header::AUTHORIZATION) {
        return check_bearer(expected, headers, env).map(|()| Credential::Bearer);
    }
    match cookie(headers, SESSION_COOKIE) {
        Some(id) if s.sessions.valid(id) => Ok(Credential::Session),
        Some(_) => Err(ApiError::unauthorized(
            "the dashboard session has expired or the server restarted; log in again",
        )),
        None => Err(ApiError::unauthorized(format!(
            "this request needs the API token: send the header `Authorization: Bearer <token>` with the value of {env}, or log in to the dashboard"
        ))),
    }
}

fn configured<'a>(expected: Option<&'a str>, env_name: &str) -> ApiResult<&'a str> {
    expected.filter(|t| !t.is_empty()).ok_or_else(|| {
        ApiError::unauthorized(format!(
            "the API has no token configured, so it refuses every change; set the environment variable {env_name} (named by server.api_token_env) and restart orch"
        ))
    })
}

fn check_bearer(expected: &str, headers: &HeaderMap, env_name: &str) -> ApiResult<()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(format!(
            "this request changes state and needs a token; send the header `Authorization: Bearer <token>` with the value of {env_name}"
        )));
    };
    let given = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .ok_or_else(|| {
            ApiError::unauthorized(
                "the Authorization header must be `Bearer <token>`; other schemes are not accepted",
            )
        })?;
    if token_matches(expected, given) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(format!(
            "the bearer token is wrong; send the value of {env_name}"
        )))
    }
}

fn token_matches(expected: &str, given: &str) -> bool {
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// A cookie-authenticated change must carry `X-Orch-Csrf`, and its `Origin`,
/// when present, must be this server.
fn csrf_check(headers: &HeaderMap) -> ApiResult<()> {
    let forbidden = |m: &str| ApiError::new(StatusCode::FORBIDDEN, m);
    if headers
        .get(CSRF_HEADER)
        .is_none_or(|v| v.as_bytes().is_empty())
    {
        return Err(forbidden(
            "a change made with the dashboard's session needs the header X-Orch-Csrf (the dashboard sends it); API clients use the bearer header instead",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin = origin.to_str().unwrap_or("");
        let same = host.is_some_and(|h| {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(h)
        });
        if !same {
            return Err(forbidden(
                "the request comes from another site (Origin does not match Host); refused",
            ));
        }
    }
    Ok(())
}

fn from_loopback(req: &Request) -> bool {
    // Without connection info (a router served by hand) nobody counts as loopback.
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| c.0.ip().is_loopback())
}

/// The value of one cookie of the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

// ---- POST /login, POST /logout, GET /api/session ---------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    token: String,
}

pub async fn login(State(s): State<AppState>, JsonBody(body): JsonBody<Login>) -> Response {
    let expected = match configured(s.api.token.as_deref(), env_name(&s)) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    if !token_matches(expected, body.token.trim()) {
        tracing::warn!("dashboard login refused: wrong token");
        tokio::time::sleep(LOGIN_FAILURE_DELAY).await;
        return ApiError::unauthorized(format!("wrong token; use the value of {}", env_name(&s)))
            .into_response();
    }
    let id = s.sessions.create();
    tracing::info!("dashboard login");
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    ([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response()
}

pub async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        s.sessions.remove(id);
    }
    let clear = format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, clear)], Json(json!({ "ok": true }))).into_response()
}

/// What the dashboard needs to know before it shows anything: is this
/// browser logged in, and may it read without logging in.
pub async fn session(State(s): State<AppState>, req: Request) -> Json<serde_json::Value> {
    let authenticated = authenticate(&s, req.headers()).is_ok();
    let read_open = s.pipeline().config().server.read_only_open && from_loopback(&req);
    Json(json!({ "authenticated": authenticated, "read_open": read_open }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_tokens() {
        let env = "ORCH_API_TOKEN";
        let ok = |v: &str| check_bearer("s3cret", &headers(&[("authorization", v)]), env).is_ok();
        assert!(ok("Bearer s3cret"));
        assert!(ok("bearer  s3cret "));
        assert!(!ok("Bearer s3cre"));
        assert!(!ok("Basic s3cret"));
        assert!(!ok("s3cret"));
        assert!(check_bearer("s3cret", &HeaderMap::new(), env).is_err());
        // No token, or an empty one: nothing gets through, and the message names the variable.
        for t in [None, Some("")] {
            let e = configured(t, env).unwrap_err();
            assert!(e.message.contains(env), "{}", e.message);
        }
    }

    #[test]
    fn sessions_are_random_and_removable() {
        let s = Sessions::default();
        let a = s.create();
        let b = s.create();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(s.valid(&a) && s.valid(&b));
        assert!(!s.valid(&a[..63]));
        assert!(!s.valid(""));
        s.remove(&a);
        assert!(!s.valid(&a) && s.valid(&b));
    }

    #[test]
    fn csrf_needs_the_header_and_a_matching_origin() {
        assert!(csrf_check(&headers(&[])).is_err());
        assert!(csrf_check(&headers(&[(CSRF_HEADER, "1")])).is_ok());
        let same = [
            (CSRF_HEADER, "1"),
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ];
        assert!(csrf_check(&headers(&same)).is_ok());
        let other = [
            (CSRF_HEADER, "1"),
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ];
        assert_eq!(
            csrf_check(&headers(&other)).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = headers(&[("cookie", "a=1; orch_session=xyz; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn open_paths() {
        assert!(is_open(&Method::GET, "/"));
        assert!(is_open(&Method::GET, "/assets/app.js"));
        assert!(is_open(&Method::POST, "/login"));
        assert!(!is_open(&Method::GET, "/api/tasks"));
        assert!(!is_open(&Method::POST, "/"));
        assert!(!is_open(&Method::GET, "/metrics"));
        assert!(!is_open(&Method::GET, "/queue"));
    }
}
