//! Webhook signatures: lowercase hex HMAC-SHA256 of the raw request
//! body, compared in constant time, before anything parses the body.
//!
//! Plane (`X-Plane-Signature`), Gitea (`X-Gitea-Signature`) and Forgejo
//! (`X-Forgejo-Signature`) send the bare hex digest; GitHub (and Gitea, as a
//! courtesy) send `X-Hub-Signature-256: sha256=<hex>`. GitLab signs
//! nothing: it sends the shared secret itself as `X-Gitlab-Token`, which is
//! compared in constant time too (`verify_token`). Linear sends the bare
//! hex digest as `Linear-Signature`, and signs a `webhookTimestamp` in the
//! body that must be within a minute of now (`check_linear_timestamp`).
//! Jira Cloud's admin webhooks with a secret send `X-Hub-Signature:
//! sha256=<hex>` (WebSub's form, without GitHub's `-256`).

use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Why a signature did not verify. The messages go back to the sender and
/// into our logs, so they never contain the secret or the expected digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request carries no signature header ({0})")]
    Missing(&'static str),
    #[error("the signature header is not lowercase hex of 32 bytes{0}")]
    Malformed(&'static str),
    #[error("the signature does not match the body (wrong secret, or the body was changed)")]
    Mismatch,
    #[error("the token does not match the configured secret")]
    WrongToken,
    /// Linear: the signed `webhookTimestamp` is too far from now (a
    /// replayed capture, or a delivery held back).
    #[error("the delivery's timestamp is {0} s away from now (at most 60 s is accepted)")]
    Stale(i64),
    #[error("the delivery has no webhookTimestamp")]
    NoTimestamp,
}

/// How far Linear's `webhookTimestamp` may be from now: Linear's own
/// verifier (its SDK's `LinearWebhookClient.verify`) refuses more than a
/// minute either way.
pub const LINEAR_TOLERANCE_MS: i64 = 60_000;

/// Linear's replay check, after the signature: `webhookTimestamp` (unix
/// milliseconds, inside the signed body) within a minute of `now_ms`.
pub fn check_linear_timestamp(body: &[u8], now_ms: i64) -> Result<(), SignatureError> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let at = v
        .get("webhookTimestamp")
        .and_then(serde_json::Value::as_f64)
        .ok_or(SignatureError::NoTimestamp)? as i64;
    let off = now_ms - at;
    if off.abs() > LINEAR_TOLERANCE_MS {
        return Err(SignatureError::Stale(off / 1000));
    }
    Ok(())
}

/// The hex HMAC-SHA256 of `body` under `secret` (what a sender puts in the header).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Verify a bare hex signature (`header`) over `body`. `prefix` is stripped
/// first when given (`"sha256="` for `X-Hub-Signature-256`).
pub fn verify(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
    header_name: &'static str,
    prefix: Option<&str>,
) -> Result<(), SignatureError> {
    let value = header
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::Missing(header_name))?;
    let hex_part = match prefix {
        Some(p) => value.strip_prefix(p).ok_or(SignatureError::Malformed(
            " (expected the `sha256=` prefix)",
        ))?,
        None => value,
    };
    // Case-insensitive hex is accepted: senders agree on lowercase, but the
    // digest's meaning does not depend on case.
    let given = hex::decode(hex_part).map_err(|_| SignatureError::Malformed(""))?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed(""));
    }
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// A shared secret sent as is (GitLab's `X-Gitlab-Token`: no HMAC of the
/// body), compared in constant time. Both the token given and the secret
/// are MACed under the secret and the digests compared with `verify_slice`,
/// so neither a common prefix nor the token's length shows in the time taken.
pub fn verify_token(
    secret: &[u8],
    header: Option<&str>,
    header_name: &'static str,
) -> Result<(), SignatureError> {
    let given = header
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::Missing(header_name))?;
    let mac_of = |bytes: &[u8]| {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
        mac.update(bytes);
        mac
    };
    let want = mac_of(secret).finalize().into_bytes();
    mac_of(given.as_bytes())
        .verify_slice(&want)
        .map_err(|_| SignatureError::WrongToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_compared_whole() {
        assert!(verify_token(b"s3cret", Some("s3cret"), "X").is_ok());
        for wrong in ["s3cre", "s3cret ", "S3CRET", "x"] {
            assert_eq!(
                verify_token(b"s3cret", Some(wrong), "X"),
                Err(SignatureError::WrongToken),
                "{wrong:?}"
            );
        }
        assert_eq!(
            verify_token(b"s3cret", None, "X"),
            Err(SignatureError::Missing("X"))
        );
        assert_eq!(
            verify_token(b"s3cret", Some(""), "X"),
            Err(SignatureError::Missing("X"))
        );
    }

    #[test]
    fn sign_then_verify() {
        let sig = sign(b"k", b"body");
        assert!(verify(b"k", b"body", Some(&sig), "X", None).is_ok());
        assert_eq!(
            verify(b"k", b"body!", Some(&sig), "X", None),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"k2", b"body", Some(&sig), "X", None),
            Err(SignatureError::Mismatch)
        );
        let hub = format!("sha256={sig}");
        assert!(verify(b"k", b"body", Some(&hub), "X", Some("sha256=")).is_ok());
        assert!(matches!(
            verify(b"k", b"body", Some(&sig), "X", Some("sha256=")),
            Err(SignatureError::Malformed(_))
        ));
        assert_eq!(
            verify(b"k", b"body", None, "X", None),
            Err(SignatureError::Missing("X"))
        );
        assert_eq!(
            verify(b"k", b"body", Some(""), "X", None),
            Err(SignatureError::Missing("X"))
        );
        assert!(matches!(
            verify(b"k", b"body", Some("zz"), "X", None),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(b"k", b"body", Some(&sig[..62]), "X", None),
            Err(SignatureError::Malformed(_))
        ));
    }
}
