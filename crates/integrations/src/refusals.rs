//! What the providers' answers mean for orch: every failed or refused call
//! becomes a [`PortError`] of its kind. The merge gate and the tracker's
//! outbox retry what may pass ([`PortError::Unavailable`],
//! [`PortError::RateLimited`]: an outage, a pause, a forge still computing)
//! and give up at once on the rest (protection, a conflict, bad credentials,
//! a repository that is not there), with these words.
//!
//! The decision is made on the HTTP status wherever the status says it. Only
//! where one status covers both kinds (Gitea's 405 is also "try again later",
//! GitLab's 405 also "still checking", GitHub's 405 also "the base branch was modified", GitHub's 403 also "rate
//! limit") does the provider's message decide.

use crate::http::ApiError;
use orch_engine::ports::{MergeOutcome, PortError};
use std::time::Duration;

/// A call that gave no usable answer, classified. Outages, pauses and
/// answers orch could not read may pass; a status the provider meant (401,
/// 403, 404, 422, …) will not.
impl From<ApiError> for PortError {
    fn from(e: ApiError) -> PortError {
        let words = e.to_string();
        match &e {
            ApiError::Unavailable { .. } | ApiError::CircuitOpen { .. } => {
                PortError::Unavailable(words)
            }
            ApiError::RateLimited { secs, .. } => PortError::RateLimited {
                message: words,
                retry_after: Some(Duration::from_secs(*secs)),
            },
            ApiError::Status { status, body, .. } => match status {
                429 => PortError::RateLimited {
                    message: words,
                    retry_after: None,
                },
                // GitHub's secondary rate limit is a 403 that says so.
                403 if body.to_ascii_lowercase().contains("rate limit") => PortError::RateLimited {
                    message: words,
                    retry_after: None,
                },
                408 | 425 => PortError::Unavailable(words),
                501 => PortError::refused(words),
                500..=599 => PortError::Unavailable(words),
                404 | 410 => PortError::NotFound(words),
                400 => PortError::Invalid(words),
                _ => PortError::refused(words),
            },
            // A body that is not the provider's JSON (a proxy's error page, a
            // truncated answer): the next call may read fine.
            ApiError::Decode { .. } => PortError::Unavailable(words),
            ApiError::Config(_) => PortError::Invalid(words),
        }
    }
}

/// Gitea's merge endpoint did not merge (`status` is not 200/204).
///
/// - 405: the pull request may not be merged: branch protection, required
///   status checks or approvals, work in progress — refused; except while
///   Gitea is still checking mergeability ("Please try again later"), which
///   passes by itself (unavailable).
/// - 409: a conflict, or the head or base moved: merging the base in and
///   verifying again can cure it (stale, counted as an attempt).
/// - 201: Gitea scheduled the merge instead of doing it: asked again later.
/// - 404: the pull request or repository is gone; 423 and anything else (a
///   locked repository, …) is refused.
pub fn gitea_merge_refusal(
    number: u64,
    status: u16,
    reason: &str,
) -> Result<MergeOutcome, PortError> {
    let words = format!("Gitea did not merge pull request #{number} ({status}): {reason}");
    match status {
        409 => Ok(MergeOutcome::Stale(words)),
        201 => Err(PortError::Unavailable(words)),
        405 if still_checking(reason) => Err(PortError::Unavailable(words)),
        404 => Err(PortError::NotFound(words)),
        _ => Err(PortError::refused(words)),
    }
}

/// GitHub's merge endpoint did not merge.
///
/// - 405 "Base branch was modified" and 409 "Head branch was modified": the
///   branches moved under the merge — stale;
/// - 405 otherwise (not mergeable: protection, required checks or reviews,
///   a conflict GitHub sees), 422 (the request is invalid for this pull
///   request) and anything else — refused; 404 — not found.
pub fn github_merge_refusal(
    number: u64,
    status: u16,
    reason: &str,
) -> Result<MergeOutcome, PortError> {
    let words = format!("GitHub did not merge pull request #{number} ({status}): {reason}");
    let moved = reason.to_ascii_lowercase().contains("branch was modified");
    match status {
        409 => Ok(MergeOutcome::Stale(words)),
        405 if moved => Ok(MergeOutcome::Stale(words)),
        404 => Err(PortError::NotFound(words)),
        _ => Err(PortError::refused(words)),
    }
}

/// GitLab's merge endpoint did not merge.
///
/// - 409 "SHA does not match HEAD of source branch": the branch moved under
///   the merge — stale;
/// - 406 "Branch cannot be merged" (older GitLab) and 422 (the merge failed:
///   a conflict with the target) — merging the target in and verifying again
///   can cure it — stale;
/// - 405 (not mergeable now: a draft, a closed request, approvals or a
///   pipeline the project requires, a protected target orch may not merge
///   into) — refused, except while GitLab is still checking mergeability;
/// - 404 — not found.
pub fn gitlab_merge_refusal(
    iid: u64,
    status: u16,
    reason: &str,
) -> Result<MergeOutcome, PortError> {
    let words = format!("GitLab did not merge merge request !{iid} ({status}): {reason}");
    match status {
        409 | 406 | 422 => Ok(MergeOutcome::Stale(words)),
        // GitLab checks mergeability before it merges through the API; a
        // refusal that says it is still checking passes by itself.
        405 if reason.to_ascii_lowercase().contains("checking") => {
            Err(PortError::Unavailable(words))
        }
        404 => Err(PortError::NotFound(words)),
        _ => Err(PortError::refused(words)),
    }
}

/// Gitea's answer while it computes whether a pull request can be merged.
fn still_checking(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("try again later") || r.contains("is checking")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, body: &str) -> ApiError {
        ApiError::Status {
            provider: "Gitea",
            what: "POST /x".into(),
            status,
            body: body.into(),
        }
    }

    fn kind(e: ApiError) -> &'static str {
        PortError::from(e).kind()
    }

    #[test]
    fn api_errors_are_classified_by_what_asking_again_can_change() {
        let unavailable = ApiError::Unavailable {
            provider: "Gitea",
            what: "GET /x".into(),
            attempts: 4,
            last: "cannot connect".into(),
        };
        assert_eq!(kind(unavailable), "unavailable");
        for s in [500, 502, 503, 504, 408] {
            assert_eq!(kind(status(s, "")), "unavailable", "{s}");
        }
        assert_eq!(kind(status(429, "")), "rate_limited");
        assert_eq!(
            kind(status(403, "You have exceeded a secondary rate limit")),
            "rate_limited"
        );
        let limited = PortError::from(ApiError::RateLimited {
            provider: "GitHub",
            what: "GET /x".into(),
            secs: 42,
        });
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(42)));
        for s in [401, 403, 405, 409, 422, 501] {
            assert_eq!(kind(status(s, "")), "refused", "{s}");
        }
        assert_eq!(kind(status(404, "")), "not_found");
        assert_eq!(kind(status(400, "")), "invalid");
        assert_eq!(kind(ApiError::Config("no token".into())), "invalid");
        // A malformed answer (a page that does not decode, a walk of pages
        // cut short) is the provider's to fix: asked again later, it may
        // come whole. Its words name the provider and the call.
        let decode = PortError::from(ApiError::Decode {
            provider: "GitHub",
            what: "GET /repos/acme/app/issues".into(),
            msg: "missing field `number` at line 1 column 40".into(),
        });
        assert!(!decode.is_permanent(), "{decode:?}");
        let words = decode.to_string();
        for part in [
            "GitHub",
            "GET /repos/acme/app/issues",
            "missing field `number`",
        ] {
            assert!(words.contains(part), "{part} in {words}");
        }
        let e = PortError::from(status(401, "token is required"));
        assert!(e.is_permanent());
        assert!(
            matches!(&e, PortError::Refused { reason } if reason.contains("401") && reason.contains("token is required")),
            "{e:?}"
        );
    }

    #[test]
    fn gitea_refusals() {
        let protected = gitea_merge_refusal(3, 405, "protected branch main: not enough approvals");
        assert!(
            matches!(&protected, Err(PortError::Refused { reason }) if reason.contains("not enough approvals") && reason.contains("#3")),
            "{protected:?}"
        );
        let checking = gitea_merge_refusal(3, 405, "Please try again later");
        assert!(
            matches!(&checking, Err(e) if !e.is_permanent()),
            "{checking:?}"
        );
        assert!(matches!(
            gitea_merge_refusal(3, 409, "merge conflict"),
            Ok(MergeOutcome::Stale(w)) if w.contains("merge conflict")
        ));
        assert!(matches!(gitea_merge_refusal(3, 201, ""), Err(e) if !e.is_permanent()));
        for s in [404, 423] {
            assert!(
                matches!(gitea_merge_refusal(3, s, ""), Err(e) if e.is_permanent()),
                "{s}"
            );
        }
    }

    #[test]
    fn gitlab_refusals() {
        assert!(matches!(
            gitlab_merge_refusal(4, 409, "SHA does not match HEAD of source branch: abc"),
            Ok(MergeOutcome::Stale(w)) if w.contains("!4") && w.contains("SHA does not match")
        ));
        for s in [406, 422] {
            assert!(
                matches!(
                    gitlab_merge_refusal(4, s, "Branch cannot be merged"),
                    Ok(MergeOutcome::Stale(_))
                ),
                "{s}"
            );
        }
        let protected = gitlab_merge_refusal(4, 405, "405 Method Not Allowed");
        assert!(
            matches!(&protected, Err(PortError::Refused { reason }) if reason.contains("405 Method Not Allowed")),
            "{protected:?}"
        );
        assert!(matches!(
            gitlab_merge_refusal(4, 405, "Merge request is still checking mergeability"),
            Err(e) if !e.is_permanent()
        ));
        assert!(matches!(
            gitlab_merge_refusal(4, 404, "404 Not found"),
            Err(PortError::NotFound(_))
        ));
    }

    #[test]
    fn github_refusals() {
        for reason in [
            "Pull Request is not mergeable",
            "Required status check \"ci\" is expected.",
            "At least 1 approving review is required by reviewers with write access.",
        ] {
            let r = github_merge_refusal(7, 405, reason);
            assert!(
                matches!(&r, Err(PortError::Refused { reason: why }) if why.contains(reason)),
                "{r:?}"
            );
        }
        assert!(matches!(
            github_merge_refusal(
                7,
                405,
                "Base branch was modified. Review and try the merge again."
            ),
            Ok(MergeOutcome::Stale(_))
        ));
        assert!(matches!(
            github_merge_refusal(
                7,
                409,
                "Head branch was modified. Review and try the merge again."
            ),
            Ok(MergeOutcome::Stale(_))
        ));
        for s in [404, 422] {
            assert!(
                matches!(github_merge_refusal(7, s, "x"), Err(e) if e.is_permanent()),
                "{s}"
            );
        }
    }
}
