//! What the forges' answers mean for the merge gate (bounded merges): every
//! failed or refused call becomes a [`ForgeError`] that says whether asking
//! again can help ([`Failure::Transient`]: an outage, a pause, a forge still
//! computing) or not ([`Failure::Permanent`]: protection, a conflict, bad
//! credentials, a repository that is not there). The engine retries the first
//! with backoff, at most `merge.max_attempts` times, and parks the task on the
//! second at once, with these words.
//!
//! The decision is made on the HTTP status wherever the status says it. Only
//! where one status covers both kinds (Gitea's 405 is also "try again later",
//! GitHub's 405 also "the base branch was modified") does the forge's message
//! decide.

use crate::http::ApiError;
use orch_engine::ports::{Failure, ForgeError, MergeOutcome};

/// A call that gave no usable answer, classified.
impl From<ApiError> for ForgeError {
    fn from(e: ApiError) -> ForgeError {
        ForgeError {
            failure: api_failure(&e),
            message: e.to_string(),
        }
    }
}

/// Outages, pauses and answers orch could not read may pass; a status the
/// forge meant (401, 403, 404, 422, …) will not.
pub fn api_failure(e: &ApiError) -> Failure {
    match e {
        ApiError::Unavailable { .. }
        | ApiError::RateLimited { .. }
        | ApiError::CircuitOpen { .. } => Failure::Transient,
        ApiError::Status { status, body, .. } => match status {
            408 | 425 | 429 => Failure::Transient,
            501 => Failure::Permanent,
            500..=599 => Failure::Transient,
            // GitHub's secondary rate limit is a 403 that says so.
            403 if body.to_ascii_lowercase().contains("rate limit") => Failure::Transient,
            _ => Failure::Permanent,
        },
        // A body that is not the forge's JSON (a proxy's error page, a
        // truncated answer): the next call may read fine.
        ApiError::Decode { .. } => Failure::Transient,
        ApiError::Config(_) => Failure::Permanent,
    }
}

/// Gitea's merge endpoint did not merge (`status` is not 200/204).
///
/// - 405: the pull request may not be merged: branch protection, required
///   status checks or approvals, work in progress — permanent; except while
///   Gitea is still checking mergeability ("Please try again later"), which
///   passes by itself.
/// - 409: a conflict, or the head or base moved: merging the base in and
///   verifying again can cure it (stale, counted as an attempt).
/// - 201: Gitea scheduled the merge instead of doing it: asked again later.
/// - 404, 423 and anything else: the pull request or repository is gone or
///   locked — permanent.
pub fn gitea_merge_refusal(
    number: u64,
    status: u16,
    reason: &str,
) -> Result<MergeOutcome, ForgeError> {
    let words = format!("Gitea did not merge pull request #{number} ({status}): {reason}");
    match status {
        409 => Ok(MergeOutcome::Stale(words)),
        201 => Err(ForgeError::transient(words)),
        405 if still_checking(reason) => Err(ForgeError::transient(words)),
        _ => Err(ForgeError::permanent(words)),
    }
}

/// GitHub's merge endpoint did not merge.
///
/// - 405 "Base branch was modified" and 409 "Head branch was modified": the
///   branches moved under the merge — stale;
/// - 405 otherwise (not mergeable: protection, required checks or reviews,
///   a conflict GitHub sees), 422 (the request is invalid for this pull
///   request), 404 and anything else — permanent.
pub fn github_merge_refusal(
    number: u64,
    status: u16,
    reason: &str,
) -> Result<MergeOutcome, ForgeError> {
    let words = format!("GitHub did not merge pull request #{number} ({status}): {reason}");
    let moved = reason.to_ascii_lowercase().contains("branch was modified");
    match status {
        409 => Ok(MergeOutcome::Stale(words)),
        405 if moved => Ok(MergeOutcome::Stale(words)),
        _ => Err(ForgeError::permanent(words)),
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

    #[test]
    fn api_errors_are_transient_only_when_asking_again_can_help() {
        let unavailable = ApiError::Unavailable {
            provider: "Gitea",
            what: "GET /x".into(),
            attempts: 4,
            last: "cannot connect".into(),
        };
        assert_eq!(api_failure(&unavailable), Failure::Transient);
        for s in [500, 502, 503, 504, 408, 429] {
            assert_eq!(api_failure(&status(s, "")), Failure::Transient, "{s}");
        }
        for s in [400, 401, 403, 404, 405, 409, 422, 501] {
            assert_eq!(api_failure(&status(s, "")), Failure::Permanent, "{s}");
        }
        assert_eq!(
            api_failure(&status(403, "You have exceeded a secondary rate limit")),
            Failure::Transient
        );
        assert_eq!(
            api_failure(&ApiError::Config("no token".into())),
            Failure::Permanent
        );
        let e = ForgeError::from(status(401, "token is required"));
        assert!(e.is_permanent());
        assert!(e.message.contains("401") && e.message.contains("token is required"));
    }

    #[test]
    fn gitea_refusals() {
        let protected = gitea_merge_refusal(3, 405, "protected branch main: not enough approvals");
        assert!(
            matches!(&protected, Err(e) if e.is_permanent() && e.message.contains("not enough approvals") && e.message.contains("#3")),
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
    fn github_refusals() {
        for reason in [
            "Pull Request is not mergeable",
            "Required status check \"ci\" is expected.",
            "At least 1 approving review is required by reviewers with write access.",
        ] {
            let r = github_merge_refusal(7, 405, reason);
            assert!(
                matches!(&r, Err(e) if e.is_permanent() && e.message.contains(reason)),
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
