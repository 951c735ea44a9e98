//! The front door of every webhook, as a pure function: verify the signature
//! over the raw bytes, then parse, then name the keys a replay would repeat.
//! The HTTP handler only turns the result into a status and records the keys.

use super::{ParseError, WebhookEvent, gitea, github, gitlab, jira, linear, plane};
use crate::signature::{self, SignatureError};
use sha2::{Digest, Sha256};

/// A webhook sender orch knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Plane,
    /// Gitea and Forgejo.
    Gitea,
    Github,
    Gitlab,
    Linear,
    Jira,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Plane => "plane",
            Provider::Gitea => "gitea",
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Linear => "linear",
            Provider::Jira => "jira",
        }
    }

    /// The headers that carry the signature, the event and the delivery id,
    /// in the order they are tried.
    fn signature_headers(self) -> &'static [(&'static str, Option<&'static str>)] {
        match self {
            Provider::Plane => &[("x-plane-signature", None)],
            Provider::Gitea => &[
                ("x-gitea-signature", None),
                ("x-forgejo-signature", None),
                ("x-hub-signature-256", Some("sha256=")),
            ],
            Provider::Github => &[("x-hub-signature-256", Some("sha256="))],
            // GitLab sends the secret itself, checked by `check_signature`.
            Provider::Gitlab => &[],
            // `Linear-Signature` and the signed timestamp: `check_signature`.
            Provider::Linear => &[],
            // Jira's admin webhooks with a secret: WebSub's form, the hex
            // HMAC-SHA256 of the body after `sha256=`.
            Provider::Jira => &[("x-hub-signature", Some("sha256="))],
        }
    }

    fn event_headers(self) -> &'static [&'static str] {
        match self {
            Provider::Plane => &["x-plane-event"],
            // The fine-grained type first (1.23.0–1.23.7 sent an empty X-Gitea-Event for status).
            Provider::Gitea => &[
                "x-gitea-event-type",
                "x-forgejo-event-type",
                "x-gitea-event",
                "x-forgejo-event",
            ],
            Provider::Github => &["x-github-event"],
            Provider::Gitlab => &["x-gitlab-event"],
            Provider::Linear => &["linear-event"],
            // The event is in the body (`webhookEvent`).
            Provider::Jira => &[],
        }
    }

    fn delivery_headers(self) -> &'static [&'static str] {
        match self {
            // Plane mints a new X-Plane-Delivery for every retry: useless for de-duplication.
            Provider::Plane => &[],
            Provider::Gitea => &["x-gitea-delivery", "x-forgejo-delivery"],
            Provider::Github => &["x-github-delivery"],
            // `Idempotency-Key` stays the same across retries of one event
            // (newer GitLab); `X-Gitlab-Event-UUID` names the event.
            Provider::Gitlab => &["idempotency-key", "x-gitlab-event-uuid"],
            // One id per delivery, the same on Linear's retries of it.
            Provider::Linear => &["linear-delivery"],
            // Unique per delivery, unchanged across Jira's retries of it.
            Provider::Jira => &["x-atlassian-webhook-identifier"],
        }
    }
}

/// Why a request was refused; `status` is the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

/// A verified, parsed delivery and the keys that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub event: WebhookEvent,
    /// Record these; if any was seen before, the delivery is a replay.
    pub dedupe_keys: Vec<String>,
}

/// How to check signatures: with a secret (the default), or knowingly without.
#[derive(Debug, Clone, Copy)]
pub enum Verify<'a> {
    Secret(&'a [u8]),
    /// `insecure = true` in the config: no signature is checked.
    Insecure,
}

/// Verify, parse, and key one delivery. `header` looks a header up by its
/// lowercase name.
pub fn receive<'h>(
    provider: Provider,
    verify: Verify<'_>,
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
) -> Result<Accepted, Rejection> {
    if let Verify::Secret(secret) = verify {
        check_signature(provider, secret, &header, body, now_ms()).map_err(|e| Rejection {
            status: 401,
            message: format!("{}: {e}", provider.as_str()),
        })?;
    }
    let event_type = provider
        .event_headers()
        .iter()
        .find_map(|h| header(h).filter(|v| !v.is_empty()));
    let event = match provider {
        Provider::Plane => plane::parse(body, event_type),
        Provider::Gitea => gitea::parse(body, event_type),
        Provider::Github => github::parse(body, event_type),
        Provider::Gitlab => gitlab::parse(body, event_type),
        Provider::Linear => linear::parse(body, event_type),
        Provider::Jira => jira::parse(body, event_type),
    }
    .map_err(|ParseError(m)| Rejection {
        status: 400,
        message: m,
    })?;
    let mut dedupe_keys = Vec::new();
    if let Some(d) = provider
        .delivery_headers()
        .iter()
        .find_map(|h| header(h).filter(|v| !v.is_empty()))
    {
        dedupe_keys.push(format!("delivery:{d}"));
    }
    match &event {
        WebhookEvent::ItemState(s) => {
            dedupe_keys.push(format!("change:{}", hash(s.change_key.as_bytes())))
        }
        WebhookEvent::PullRequestClosed(p) => dedupe_keys.push(format!(
            "pr:{}",
            hash(format!("{}#{}|{}|{}", p.repo, p.number, p.merged, p.head_sha).as_bytes())
        )),
        WebhookEvent::CheckReported(c) => dedupe_keys.push(format!(
            "check:{}",
            hash(format!("{}|{}|{}|{}", c.repo, c.sha, c.name, c.state).as_bytes())
        )),
        WebhookEvent::ReviewReported(r) => {
            dedupe_keys.push(format!("review:{}", hash(r.review_key.as_bytes())))
        }
        WebhookEvent::Ignored { .. } => {}
    }
    if dedupe_keys.is_empty() {
        dedupe_keys.push(format!("body:{}", hash(body)));
    }
    Ok(Accepted { event, dedupe_keys })
}

fn check_signature<'h>(
    provider: Provider,
    secret: &[u8],
    header: &impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    now_ms: i64,
) -> Result<(), SignatureError> {
    if provider == Provider::Gitlab {
        return signature::verify_token(secret, header("x-gitlab-token"), "x-gitlab-token");
    }
    if provider == Provider::Linear {
        // The timestamp is inside the signed body: checked once the body
        // is known to be Linear's.
        signature::verify(
            secret,
            body,
            header("linear-signature"),
            "linear-signature",
            None,
        )?;
        return signature::check_linear_timestamp(body, now_ms);
    }
    let mut first_err = None;
    for (name, prefix) in provider.signature_headers() {
        match header(name).filter(|v| !v.trim().is_empty()) {
            // The first header present decides; later ones are not a second chance.
            Some(v) => return signature::verify(secret, body, Some(v), name, *prefix),
            None => first_err = first_err.or(Some(SignatureError::Missing(name))),
        }
    }
    Err(first_err.unwrap_or(SignatureError::Missing("signature")))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| *v)
        }
    }

    const PLANE: &[u8] = br#"{"event":"issue","action":"updated","data":{"id":"i1","project":"p1","state":{"id":"s1","name":"Approved"},"updated_at":"t1"},"activity":{"field":"state_id"}}"#;

    #[test]
    fn statuses_for_each_kind_of_refusal() {
        let sig = signature::sign(b"sec", PLANE);
        let ok = receive(
            Provider::Plane,
            Verify::Secret(b"sec"),
            hdrs(&[("X-Plane-Signature", &sig)]),
            PLANE,
        )
        .unwrap();
        assert!(matches!(ok.event, WebhookEvent::ItemState(_)));
        assert_eq!(ok.dedupe_keys.len(), 1, "Plane: the change key only");
        let st = |r: Result<Accepted, Rejection>| r.map(|_| 0).unwrap_or_else(|e| e.status);
        assert_eq!(
            st(receive(
                Provider::Plane,
                Verify::Secret(b"sec"),
                hdrs(&[]),
                PLANE
            )),
            401
        );
        assert_eq!(
            st(receive(
                Provider::Plane,
                Verify::Secret(b"bad"),
                hdrs(&[("x-plane-signature", &sig)]),
                PLANE
            )),
            401
        );
        let mut changed = PLANE.to_vec();
        changed[10] ^= 1;
        assert_eq!(
            st(receive(
                Provider::Plane,
                Verify::Secret(b"sec"),
                hdrs(&[("x-plane-signature", &sig)]),
                &changed
            )),
            401
        );
        let bad = b"{oops";
        let bsig = signature::sign(b"sec", bad);
        assert_eq!(
            st(receive(
                Provider::Plane,
                Verify::Secret(b"sec"),
                hdrs(&[("x-plane-signature", &bsig)]),
                bad
            )),
            400
        );
        // Insecure mode skips the signature, never the parse.
        assert_eq!(
            st(receive(Provider::Plane, Verify::Insecure, hdrs(&[]), PLANE)),
            0
        );
        assert_eq!(
            st(receive(Provider::Plane, Verify::Insecure, hdrs(&[]), bad)),
            400
        );
    }

    #[test]
    fn gitea_accepts_forgejo_and_hub_headers_and_keys_by_delivery() {
        let body = br#"{"action":"opened","number":1,"pull_request":{}}"#;
        let sig = signature::sign(b"g", body);
        let hub = format!("sha256={sig}");
        for h in [
            ("x-gitea-signature", sig.as_str()),
            ("x-forgejo-signature", sig.as_str()),
            ("x-hub-signature-256", hub.as_str()),
        ] {
            let pairs = [
                h,
                ("x-gitea-event", "pull_request"),
                ("x-gitea-delivery", "d-1"),
            ];
            let a = receive(Provider::Gitea, Verify::Secret(b"g"), hdrs(&pairs), body).unwrap();
            assert!(matches!(a.event, WebhookEvent::Ignored { .. }));
            assert_eq!(a.dedupe_keys, vec!["delivery:d-1".to_string()]);
        }
        // A wrong first header is not rescued by a right second one.
        let pairs = [
            ("x-gitea-signature", "00"),
            ("x-forgejo-signature", sig.as_str()),
        ];
        assert!(receive(Provider::Gitea, Verify::Secret(b"g"), hdrs(&pairs), body).is_err());
    }
}
