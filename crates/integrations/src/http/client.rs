//! The one place that sends requests: budget → breaker → attempt → classify.

use super::breaker::Breaker;
use super::budget::RateBudget;
use super::policy::{self, CallPolicy, Verdict};
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Why a call gave no usable answer. Statuses the caller interprets (404,
/// 409, …) are not errors here: they come back as a [`Response`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error(
        "{provider} is unreachable or failing ({what}: {last}, {attempts} attempts); orch retries later and loses nothing"
    )]
    Unavailable {
        provider: &'static str,
        what: String,
        attempts: u32,
        last: String,
    },
    #[error("{provider} is rate limiting orch for {secs} s ({what}); orch retries later")]
    RateLimited {
        provider: &'static str,
        what: String,
        secs: u64,
    },
    #[error(
        "{provider} is not called for {secs} s after repeated failures (circuit open); orch retries later"
    )]
    CircuitOpen { provider: &'static str, secs: u64 },
    #[error("{provider}: {what} answered {status}: {body}")]
    Status {
        provider: &'static str,
        what: String,
        status: u16,
        body: String,
    },
    #[error("{provider}: unexpected answer to {what}: {msg}")]
    Decode {
        provider: &'static str,
        what: String,
        msg: String,
    },
    #[error("{0}")]
    Config(String),
}

impl ApiError {
    /// An outage or a pause: the work is due again later, never dropped.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Unavailable { .. }
                | ApiError::RateLimited { .. }
                | ApiError::CircuitOpen { .. }
        ) || matches!(self, ApiError::Status { status, .. } if *status >= 500)
    }
}

/// 429 answers one call waits through before it gives up.
const MAX_RATE_LIMITED: u32 = 12;

/// A final answer (any status the caller interprets).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The answer's headers, for paging (Gitea's `X-Total-Count`).
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub what: String,
    pub provider: &'static str,
}

/// One page of a listing, its malformed records left out
/// ([`Response::json_items`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    pub items: Vec<T>,
    /// Records on the page, the malformed ones included.
    pub on_page: usize,
}

impl<T> Listed<T> {
    /// The records left out as malformed.
    pub fn malformed(&self) -> usize {
        self.on_page - self.items.len()
    }
}

/// A listing's records read one by one: a malformed one (a required field
/// missing, a wrong type) is logged and left out, and the others are kept,
/// so one record never stops the listing of all the others.
pub fn records<T: serde::de::DeserializeOwned>(
    provider: &str,
    what: &str,
    raw: Vec<serde_json::Value>,
) -> Listed<T> {
    let on_page = raw.len();
    let mut items = Vec::with_capacity(on_page);
    for (index, record) in raw.into_iter().enumerate() {
        match serde_json::from_value::<T>(record) {
            Ok(item) => items.push(item),
            Err(e) => tracing::warn!(
                provider,
                call = what,
                index,
                error = %e,
                "left out a malformed record of a listing"
            ),
        }
    }
    Listed { items, on_page }
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Decode {
            provider: self.provider,
            what: self.what.clone(),
            msg: e.to_string(),
        })
    }

    /// A 2xx body that is a JSON array (a page of a listing), read record by
    /// record: a record that does not decode as `T` (one missing a required
    /// field) is left out and logged, so one malformed record never stops
    /// the listing of all the others, cycle after cycle. `on_page` counts
    /// every record, for the caller's paging.
    pub fn json_items<T: serde::de::DeserializeOwned>(&self) -> Result<Listed<T>, ApiError> {
        Ok(self.records(self.json()?))
    }

    /// The records of a listing read one by one (the array of an answer
    /// that wraps it: Plane's `results`, Jira's `issues`): see [`records`].
    pub fn records<T: serde::de::DeserializeOwned>(
        &self,
        raw: Vec<serde_json::Value>,
    ) -> Listed<T> {
        records(self.provider, &self.what, raw)
    }

    /// This answer as an error (for statuses the caller did not expect).
    pub fn error(&self) -> ApiError {
        let body = String::from_utf8_lossy(&self.body);
        ApiError::Status {
            provider: self.provider,
            what: self.what.clone(),
            status: self.status,
            body: body.chars().take(300).collect(),
        }
    }
}

/// A provider's API: base URL, credentials, policy, budget and breaker.
pub struct ApiClient {
    provider: &'static str,
    base: String,
    http: reqwest::Client,
    headers: HeaderMap,
    policy: CallPolicy,
    budget: Mutex<RateBudget>,
    breaker: Mutex<Breaker>,
    sent: AtomicU64,
    /// Tells a rate-limited answer that does not say so with 429 (Linear
    /// answers 400 with the GraphQL error code `RATELIMITED`).
    limited_answer: Option<fn(&Response) -> bool>,
}

impl ApiClient {
    /// `base` without a trailing slash (e.g. `https://plane.example/api/v1`);
    /// `auth` is the credential header (never logged).
    pub fn new(
        provider: &'static str,
        base: &str,
        auth: Option<(&str, &str)>,
        policy: CallPolicy,
    ) -> Result<ApiClient, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some((name, value)) = auth {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ApiError::Config(format!("header {name}: {e}")))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                ApiError::Config(format!(
                    "the {provider} credential contains characters a header cannot carry"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let mut builder = reqwest::Client::builder();
        if is_loopback(base) {
            // A proxy cannot reach this machine's loopback for us: a server
            // on 127.0.0.1 (a fake in tests, a forge on the same host) is
            // called directly even where proxy variables are set.
            builder = builder.no_proxy();
        }
        let http = builder
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("orch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Config(format!("building the HTTP client: {e}")))?;
        Ok(ApiClient {
            provider,
            base: base.trim_end_matches('/').to_owned(),
            http,
            headers,
            budget: Mutex::new(RateBudget::new(policy.per_minute)),
            breaker: Mutex::new(Breaker::new(
                policy.breaker_threshold,
                policy.breaker_cooldown,
            )),
            policy,
            sent: AtomicU64::new(0),
            limited_answer: None,
        })
    }

    /// Treat the answers `f` picks as rate limiting, like a 429: paused
    /// for (the rate headers' reset, else a backoff) and tried again.
    pub fn with_limited_answer(mut self, f: fn(&Response) -> bool) -> ApiClient {
        self.limited_answer = Some(f);
        self
    }

    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Requests actually sent (every attempt counts), for benchmarks and tests.
    pub fn requests_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// `GET path?query`, its 2xx body read as `T`; any other answer is the
    /// error it classifies as.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ApiError> {
        let r = self.call(Method::GET, path, query, None).await?;
        if !r.ok() {
            return Err(r.error());
        }
        r.json()
    }

    /// One logical call, with retries. `path` starts with `/`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ApiError> {
        let what = format!("{method} {path}");
        let mut last = String::new();
        let max = self.policy.max_attempts.max(1);
        // A 429 is the server pacing us, not failing: it gets its own,
        // larger allowance, so a rate-limit storm delays a call, no more.
        let mut rate_limited = 0u32;
        let mut attempt = 0u32;
        while attempt < max {
            self.check_breaker()?;
            self.take_budget().await;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .headers(self.headers.clone());
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            self.sent.fetch_add(1, Ordering::Relaxed);
            let result = req.send().await;
            let (status, headers) = match &result {
                Ok(r) => (Some(r.status().as_u16()), Some(r.headers().clone())),
                Err(_) => (None, None),
            };
            let header_wait = headers.as_ref().and_then(|h| self.note_rate_headers(h));
            let retry_after = headers.as_ref().and_then(|h| {
                policy::parse_retry_after(h.get("retry-after").and_then(|v| v.to_str().ok()))
            });
            match policy::classify(status) {
                Verdict::Final => {
                    let r = result.expect("a status means a response");
                    let status = r.status().as_u16();
                    let headers = r.headers().clone();
                    let body = match r.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) => {
                            last = format!("reading the body: {e}");
                            self.wait_before_retry(attempt, None).await;
                            attempt += 1;
                            continue;
                        }
                    };
                    let answer = Response {
                        status,
                        headers,
                        body,
                        what: what.clone(),
                        provider: self.provider,
                    };
                    if !self.limited_answer.is_some_and(|f| f(&answer)) {
                        self.lock_breaker().on_success();
                        return Ok(answer);
                    }
                    self.pause_rate_limited(
                        &what,
                        retry_after.or(header_wait),
                        attempt,
                        &mut rate_limited,
                    )?;
                    last = format!("{status}: rate limited");
                    continue;
                }
                Verdict::RateLimited => {
                    self.pause_rate_limited(
                        &what,
                        retry_after.or(header_wait),
                        attempt,
                        &mut rate_limited,
                    )?;
                    // The pause is in the budget; the next attempt waits for it.
                    last = "429 Too Many Requests".into();
                    continue;
                }
                Verdict::Transient => {
                    last = match (&result, status) {
                        (Err(e), _) => transport_error(e),
                        (_, Some(s)) => format!("status {s}"),
                        _ => "no answer".into(),
                    };
                    tracing::debug!(provider = self.provider, call = %what, attempt, error = %last, "transient failure");
                    if attempt + 1 < max {
                        self.wait_before_retry(attempt, retry_after).await;
                    }
                }
            }
            attempt += 1;
        }
        self.lock_breaker().on_failure(Instant::now());
        Err(ApiError::Unavailable {
            provider: self.provider,
            what,
            attempts: max,
            last,
        })
    }

    fn check_breaker(&self) -> Result<(), ApiError> {
        self.lock_breaker()
            .allow(Instant::now())
            .map_err(|wait| ApiError::CircuitOpen {
                provider: self.provider,
                secs: wait.as_secs().max(1),
            })
    }

    async fn take_budget(&self) {
        loop {
            let wait = match self.lock_budget().try_take(Instant::now()) {
                Ok(()) => return,
                Err(w) => w,
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn wait_before_retry(&self, attempt: u32, retry_after: Option<Duration>) {
        let jitter: f64 = rand::random();
        tokio::time::sleep(policy::backoff(&self.policy, attempt, retry_after, jitter)).await;
    }

    /// A rate-limited answer: the pause goes into the budget (every call of
    /// this client waits for it); too long a pause, or too many in one call,
    /// fails the call as `RateLimited` (its owner retries later).
    fn pause_rate_limited(
        &self,
        what: &str,
        told: Option<Duration>,
        attempt: u32,
        rate_limited: &mut u32,
    ) -> Result<(), ApiError> {
        let wait = told.unwrap_or_else(|| policy::backoff(&self.policy, attempt, None, 0.5));
        self.lock_budget().pause_for(Instant::now(), wait);
        tracing::warn!(provider = self.provider, call = %what, wait_ms = wait.as_millis() as u64, "rate limited; pausing");
        *rate_limited += 1;
        if wait > self.policy.max_retry_after || *rate_limited >= MAX_RATE_LIMITED {
            return Err(ApiError::RateLimited {
                provider: self.provider,
                what: what.to_owned(),
                secs: wait.as_secs().max(1),
            });
        }
        Ok(())
    }

    /// The window headers of the answer: when one budget is spent, every
    /// call pauses until it resets (returned, for a rate-limited answer
    /// that has no `Retry-After`).
    fn note_rate_headers(&self, h: &HeaderMap) -> Option<Duration> {
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let waits = [
            // Plane, GitHub, Gitea: one budget, reset in unix seconds.
            policy::rate_limit_wait(
                get("x-ratelimit-remaining"),
                get("x-ratelimit-reset"),
                now.as_secs(),
            ),
            // Linear: requests and complexity points, each with its reset in
            // unix milliseconds.
            policy::rate_limit_wait_ms(
                get("x-ratelimit-requests-remaining"),
                get("x-ratelimit-requests-reset"),
                now.as_millis() as u64,
            ),
            policy::rate_limit_wait_ms(
                get("x-ratelimit-complexity-remaining"),
                get("x-ratelimit-complexity-reset"),
                now.as_millis() as u64,
            ),
        ];
        let wait = waits.into_iter().flatten().max()?;
        self.lock_budget().pause_for(Instant::now(), wait);
        Some(wait)
    }

    fn lock_budget(&self) -> std::sync::MutexGuard<'_, RateBudget> {
        // A poisoned budget only means a panic elsewhere; its data is still sound.
        self.budget.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Is `base` (`scheme://host[:port]/…`) on this machine's loopback?
fn is_loopback(base: &str) -> bool {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        // Without the URL: it may carry a token in a query string.
        e.without_url_ref_string()
    }
}

trait WithoutUrl {
    fn without_url_ref_string(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref_string(&self) -> String {
        let mut s = self.to_string();
        if let Some(u) = self.url() {
            s = s.replace(u.as_str(), "<url>");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_bases_are_recognised() {
        for b in [
            "http://127.0.0.1:8080/api/v1",
            "http://localhost:3000",
            "http://[::1]:9/api",
            "http://127.0.0.2",
        ] {
            assert!(super::is_loopback(b), "{b}");
        }
        for b in [
            "https://gitea.example/api/v1",
            "http://10.0.0.1",
            "http://localhost.example",
        ] {
            assert!(!super::is_loopback(b), "{b}");
        }
    }
}
