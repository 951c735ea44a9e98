//! Pure decisions of outgoing calls: which answers are worth a retry,
//! how long to wait before the next attempt, and how to read rate-limit
//! headers. No IO here, so every rule is unit-tested without a server.

use std::time::Duration;

/// Knobs of one provider's client.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// Per-attempt timeout (connect + response).
    pub timeout: Duration,
    /// Attempts of one logical call, the first included.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Calls per minute this client allows itself (Plane: 60 per API key).
    pub per_minute: Option<u32>,
    /// Consecutive failed calls that open the circuit.
    pub breaker_threshold: u32,
    /// How long an open circuit refuses calls before one trial.
    pub breaker_cooldown: Duration,
    /// The longest `Retry-After` honoured inside one call; a longer one fails
    /// the call (the work is retried later by its owner, nothing is lost).
    pub max_retry_after: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            timeout: Duration::from_secs(15),
            max_attempts: 4,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(20),
            per_minute: None,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// What an attempt's outcome means for the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An answer the caller interprets (2xx, and 4xx such as 404/409/405).
    Final,
    /// Worth another attempt: a transport error, a timeout, 408, 5xx but 501.
    Transient,
    /// 429: wait as told, then try again.
    RateLimited,
}

/// `None` is a transport error or timeout (no status at all).
pub fn classify(status: Option<u16>) -> Verdict {
    match status {
        None => Verdict::Transient,
        Some(429) => Verdict::RateLimited,
        Some(408) => Verdict::Transient,
        // 501 Not Implemented will not change by asking again.
        Some(s) if (500..600).contains(&s) && s != 501 => Verdict::Transient,
        Some(_) => Verdict::Final,
    }
}

/// The wait before attempt `attempt + 1` (0-based `attempt` just failed):
/// exponential from `base`, capped, with up to 25% jitter taken from
/// `jitter01` (passed in so the function stays pure). A server's
/// `Retry-After` is a floor.
pub fn backoff(
    policy: &CallPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    jitter01: f64,
) -> Duration {
    let exp = policy
        .backoff_base
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
    let capped = exp.min(policy.backoff_cap);
    let jitter = capped.mul_f64(0.25 * jitter01.clamp(0.0, 1.0));
    let wait = capped + jitter;
    match retry_after {
        Some(ra) => wait.max(ra),
        None => wait,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare on these APIs and
/// is treated as absent; the backoff still applies).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// Plane's `X-RateLimit-Remaining` / `X-RateLimit-Reset` (unix seconds):
/// when nothing remains, how long until the window resets.
pub fn rate_limit_wait(
    remaining: Option<&str>,
    reset: Option<&str>,
    now_unix: u64,
) -> Option<Duration> {
    let remaining: i64 = remaining?.trim().parse().ok()?;
    if remaining > 0 {
        return None;
    }
    let reset: u64 = reset?.trim().parse().ok()?;
    // A reset in the past (clock skew) still earns a second's pause.
    Some(Duration::from_secs(
        reset.saturating_sub(now_unix).clamp(1, 3600),
    ))
}

/// Linear's `X-RateLimit-{Requests,Complexity}-Remaining` / `-Reset`
/// (unix milliseconds): when nothing remains, how long until the reset.
pub fn rate_limit_wait_ms(
    remaining: Option<&str>,
    reset_ms: Option<&str>,
    now_ms: u64,
) -> Option<Duration> {
    let remaining: f64 = remaining?.trim().parse().ok()?;
    if remaining > 0.0 {
        return None;
    }
    let reset: u64 = reset_ms?.trim().parse().ok()?;
    // A reset in the past (clock skew) still earns a short pause.
    Some(Duration::from_millis(
        reset.saturating_sub(now_ms).clamp(100, 3_600_000),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(None), Verdict::Transient);
        assert_eq!(classify(Some(200)), Verdict::Final);
        assert_eq!(classify(Some(404)), Verdict::Final);
        assert_eq!(classify(Some(409)), Verdict::Final);
        assert_eq!(classify(Some(429)), Verdict::RateLimited);
        assert_eq!(classify(Some(500)), Verdict::Transient);
        assert_eq!(classify(Some(503)), Verdict::Transient);
        assert_eq!(classify(Some(501)), Verdict::Final);
        assert_eq!(classify(Some(408)), Verdict::Transient);
    }

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        let p = CallPolicy {
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(1000),
            ..CallPolicy::default()
        };
        assert_eq!(backoff(&p, 0, None, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(&p, 2, None, 0.0), Duration::from_millis(400));
        assert_eq!(backoff(&p, 10, None, 0.0), Duration::from_millis(1000));
        assert_eq!(backoff(&p, 60, None, 0.0), Duration::from_millis(1000));
        assert_eq!(backoff(&p, 0, None, 1.0), Duration::from_millis(125));
        assert_eq!(
            backoff(&p, 0, Some(Duration::from_secs(3)), 0.5),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn header_parsing() {
        assert_eq!(parse_retry_after(Some("7")), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(Some(" 1.5 ")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after(Some("-1")), None);
        assert_eq!(
            parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            None
        );
        assert_eq!(parse_retry_after(None), None);
        assert_eq!(rate_limit_wait(Some("3"), Some("100"), 50), None);
        assert_eq!(
            rate_limit_wait(Some("0"), Some("100"), 50),
            Some(Duration::from_secs(50))
        );
        assert_eq!(
            rate_limit_wait(Some("0"), Some("10"), 50),
            Some(Duration::from_secs(1))
        );
        assert_eq!(rate_limit_wait(Some("0"), None, 50), None);
        assert_eq!(rate_limit_wait_ms(Some("12"), Some("9000"), 5000), None);
        assert_eq!(
            rate_limit_wait_ms(Some("0"), Some("9000"), 5000),
            Some(Duration::from_secs(4))
        );
        assert_eq!(
            rate_limit_wait_ms(Some("0"), Some("10"), 5000),
            Some(Duration::from_millis(100))
        );
    }
}
