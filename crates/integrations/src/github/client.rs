//! GitHub's REST API (`Authorization: Bearer …`): the calls the forge and the
//! issues tracker need.

use crate::http::{ApiClient, ApiError, CallPolicy, Listed};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// A branch as GitHub's branch endpoint shows it.
#[derive(Debug, Clone)]
pub struct GhBranch {
    pub sha: String,
    pub protected: bool,
    /// The status checks its protection requires (contexts and check names),
    /// unless their enforcement is off.
    pub required_checks: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GhRef {
    #[serde(default, rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub sha: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GhPull {
    pub number: u64,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub html_url: Option<String>,
    /// The global id GraphQL mutations take.
    #[serde(default)]
    pub node_id: Option<String>,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub merged_at: Option<String>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    pub head: GhRef,
    pub base: GhRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GhLabel {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GhIssue {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub labels: Vec<GhLabel>,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Present on pull requests, which the issues API lists too.
    #[serde(default)]
    pub pull_request: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GhComment {
    #[serde(default)]
    pub body: String,
    /// RFC 3339, e.g. `2011-04-14T16:00:49Z`.
    #[serde(default)]
    pub created_at: Option<String>,
}

/// What the merge endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GhMerge {
    Merged {
        sha: String,
    },
    /// 405 not mergeable, 409 head moved, 422 invalid: with GitHub's message.
    NotMerged {
        status: u16,
        reason: String,
    },
}

pub struct GithubClient {
    api: ApiClient,
    /// The GraphQL endpoint, relative to the REST base: `/graphql` beside
    /// `https://api.github.com`, `/../graphql` from an Enterprise Server's
    /// `https://host/api/v3` (the URL parser resolves the `..`).
    graphql: &'static str,
}

fn message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

impl GithubClient {
    pub fn new(base_url: &str, token: &str, policy: CallPolicy) -> Result<GithubClient, ApiError> {
        let auth = format!("Bearer {token}");
        let graphql = if base_url.trim_end_matches('/').ends_with("/api/v3") {
            "/../graphql"
        } else {
            "/graphql"
        };
        Ok(GithubClient {
            api: ApiClient::new("GitHub", base_url, Some(("Authorization", &auth)), policy)?,
            graphql,
        })
    }

    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// Open a pull request, or find the open one for this head and base
    /// (GitHub answers 422 "A pull request already exists").
    pub async fn create_or_find_pr(
        &self,
        full: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
        draft: bool,
    ) -> Result<GhPull, ApiError> {
        let r = self
            .api
            .call(
                Method::POST,
                &format!("/repos/{full}/pulls"),
                &[],
                Some(&json!({"title": title, "head": head, "base": base, "body": body, "draft": draft})),
            )
            .await?;
        match r.status {
            201 => r.json(),
            422 => self
                .find_open_pr(full, head, base)
                .await?
                .ok_or_else(|| r.error()),
            _ => Err(r.error()),
        }
    }

    /// The open pull request of `head` into `base`, if one is.
    pub async fn find_open_pr(
        &self,
        full: &str,
        head: &str,
        base: &str,
    ) -> Result<Option<GhPull>, ApiError> {
        let owner = full.split('/').next().unwrap_or("");
        let q = [
            ("head", format!("{owner}:{head}")),
            ("base", base.to_owned()),
            ("state", "open".to_owned()),
        ];
        let f = self
            .api
            .call(Method::GET, &format!("/repos/{full}/pulls"), &q, None)
            .await?;
        if !f.ok() {
            return Err(f.error());
        }
        let list: Vec<GhPull> = f.json()?;
        Ok(list.into_iter().next())
    }

    /// A draft made ready for review: GitHub's REST API cannot, its GraphQL
    /// API can (`markPullRequestReadyForReview`).
    pub async fn mark_ready(&self, node_id: &str) -> Result<(), ApiError> {
        let query = "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } } }";
        let r = self
            .api
            .call(
                Method::POST,
                self.graphql,
                &[],
                Some(&json!({"query": query, "variables": {"id": node_id}})),
            )
            .await?;
        if !r.ok() {
            return Err(r.error());
        }
        // GraphQL answers 200 with `errors` when the mutation failed.
        let v: Value = r.json()?;
        match v.get("errors").and_then(Value::as_array) {
            // Not an outage: GitHub understood and refused (422 classifies it so).
            Some(errs) if !errs.is_empty() => Err(ApiError::Status {
                provider: "GitHub",
                what: "POST graphql markPullRequestReadyForReview".into(),
                status: 422,
                body: errs
                    .iter()
                    .filter_map(|e| e.get("message").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
            _ => Ok(()),
        }
    }

    /// The reviews of pull request `number`, oldest first (GitHub's order).
    pub async fn reviews(&self, full: &str, number: u64) -> Result<Vec<GhReview>, ApiError> {
        self.api
            .get_json(
                &format!("/repos/{full}/pulls/{number}/reviews"),
                &[("per_page", "100".into())],
            )
            .await
    }

    /// The review comments of pull request `number` (inline, each naming
    /// its review).
    pub async fn review_comments(
        &self,
        full: &str,
        number: u64,
    ) -> Result<Vec<GhReviewComment>, ApiError> {
        self.api
            .get_json(
                &format!("/repos/{full}/pulls/{number}/comments"),
                &[("per_page", "100".into())],
            )
            .await
    }

    pub async fn closed_prs(&self, full: &str, base: &str) -> Result<Vec<GhPull>, ApiError> {
        let q = [
            ("state", "closed".to_owned()),
            ("base", base.to_owned()),
            ("sort", "updated".to_owned()),
            ("direction", "desc".to_owned()),
            ("per_page", "50".to_owned()),
        ];
        let r = self
            .api
            .call(Method::GET, &format!("/repos/{full}/pulls"), &q, None)
            .await?;
        if r.ok() { r.json() } else { Err(r.error()) }
    }

    /// `PUT …/merge` with the verified head as `sha` (409 if the head moved).
    pub async fn merge(
        &self,
        full: &str,
        number: u64,
        method: &str,
        sha: &str,
        title: &str,
    ) -> Result<GhMerge, ApiError> {
        let r = self
            .api
            .call(
                Method::PUT,
                &format!("/repos/{full}/pulls/{number}/merge"),
                &[],
                Some(&json!({"sha": sha, "merge_method": method, "commit_title": title})),
            )
            .await?;
        match r.status {
            200 => {
                let v: Value = r.json()?;
                Ok(GhMerge::Merged {
                    sha: v
                        .get("sha")
                        .and_then(Value::as_str)
                        .unwrap_or(sha)
                        .to_owned(),
                })
            }
            405 | 409 | 422 | 404 => Ok(GhMerge::NotMerged {
                status: r.status,
                reason: message(&r.body),
            }),
            _ => Err(r.error()),
        }
    }

    /// `(sha, protected)` of a branch; `None` if there is none.
    pub async fn branch(&self, full: &str, branch: &str) -> Result<Option<GhBranch>, ApiError> {
        let r = self
            .api
            .call(
                Method::GET,
                &format!("/repos/{full}/branches/{branch}"),
                &[],
                None,
            )
            .await?;
        match r.status {
            404 => Ok(None),
            _ if r.ok() => {
                let v: Value = r.json()?;
                let sha = v
                    .pointer("/commit/sha")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                // The branch's own `protection` summary, readable without
                // the admin rights the protection endpoints want.
                let checks = v.pointer("/protection/required_status_checks");
                let enforced = checks
                    .and_then(|c| c.get("enforcement_level"))
                    .and_then(Value::as_str)
                    .is_none_or(|level| level != "off");
                let mut required_checks: Vec<String> = Vec::new();
                if enforced && let Some(c) = checks {
                    let contexts = c.get("contexts").and_then(Value::as_array);
                    let named = c.get("checks").and_then(Value::as_array);
                    for name in contexts
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .chain(
                            named
                                .into_iter()
                                .flatten()
                                .filter_map(|k| k.get("context").and_then(Value::as_str)),
                        )
                    {
                        if !required_checks.iter().any(|n| n == name) {
                            required_checks.push(name.to_owned());
                        }
                    }
                }
                Ok(Some(GhBranch {
                    sha,
                    protected: v.get("protected").and_then(Value::as_bool).unwrap_or(false),
                    required_checks,
                }))
            }
            _ => Err(r.error()),
        }
    }

    pub async fn default_branch(&self, full: &str) -> Result<String, ApiError> {
        let r = self
            .api
            .call(Method::GET, &format!("/repos/{full}"), &[], None)
            .await?;
        if !r.ok() {
            return Err(r.error());
        }
        let v: Value = r.json()?;
        Ok(v.get("default_branch")
            .and_then(Value::as_str)
            .unwrap_or("main")
            .to_owned())
    }

    /// `DELETE …/git/refs/heads/{branch}`: `Ok(status)` 204 deleted, 422/404 gone, 403 refused.
    pub async fn delete_branch(&self, full: &str, branch: &str) -> Result<(u16, String), ApiError> {
        let r = self
            .api
            .call(
                Method::DELETE,
                &format!("/repos/{full}/git/refs/heads/{branch}"),
                &[],
                None,
            )
            .await?;
        match r.status {
            204 | 404 | 422 | 403 => Ok((r.status, message(&r.body))),
            _ => Err(r.error()),
        }
    }

    pub async fn create_status(
        &self,
        full: &str,
        sha: &str,
        state: &str,
        context: &str,
        description: &str,
    ) -> Result<(), ApiError> {
        let r = self
            .api
            .call(
                Method::POST,
                &format!("/repos/{full}/statuses/{sha}"),
                &[],
                Some(&json!({"state": state, "context": context, "description": description})),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// The check runs of `sha` (GitHub Actions and other apps), one page of
    /// 100, newest first by id.
    pub async fn check_runs(&self, full: &str, sha: &str) -> Result<Vec<GhCheckRun>, ApiError> {
        let r = self
            .api
            .call(
                Method::GET,
                &format!("/repos/{full}/commits/{sha}/check-runs"),
                &[("per_page", "100".into())],
                None,
            )
            .await?;
        if !r.ok() {
            return Err(r.error());
        }
        let mut list: GhCheckRuns = r.json()?;
        list.check_runs.sort_by_key(|r| std::cmp::Reverse(r.id));
        Ok(list.check_runs)
    }

    /// The commit statuses of `sha`, newest first (GitHub's own order).
    pub async fn statuses(&self, full: &str, sha: &str) -> Result<Vec<GhStatus>, ApiError> {
        self.api
            .get_json(
                &format!("/repos/{full}/commits/{sha}/statuses"),
                &[("per_page", "100".into())],
            )
            .await
    }

    pub async fn issue(&self, full: &str, number: u64) -> Result<Option<GhIssue>, ApiError> {
        let r = self
            .api
            .call(
                Method::GET,
                &format!("/repos/{full}/issues/{number}"),
                &[],
                None,
            )
            .await?;
        match r.status {
            404 | 410 => Ok(None),
            _ if r.ok() => r.json().map(Some),
            _ => Err(r.error()),
        }
    }

    /// Add labels to an issue, keeping every label it has
    /// (`POST …/issues/{n}/labels`; GitHub creates labels that do not exist
    /// yet). Never the replace-all `PUT`: a label a person adds between
    /// orch's read and write would be lost.
    pub async fn add_labels(
        &self,
        full: &str,
        number: u64,
        labels: &[String],
    ) -> Result<(), ApiError> {
        let r = self
            .api
            .call(
                Method::POST,
                &format!("/repos/{full}/issues/{number}/labels"),
                &[],
                Some(&json!({"labels": labels})),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// Remove one label from an issue (`DELETE …/issues/{n}/labels/{name}`,
    /// the name URL-encoded). GitHub's 404 means the label is not on the
    /// issue: already gone, which is what orch wanted.
    pub async fn remove_label(&self, full: &str, number: u64, label: &str) -> Result<(), ApiError> {
        let r = self
            .api
            .call(
                Method::DELETE,
                &format!(
                    "/repos/{full}/issues/{number}/labels/{}",
                    encode_path_segment(label)
                ),
                &[],
                None,
            )
            .await?;
        match r.status {
            404 => Ok(()),
            _ if r.ok() => Ok(()),
            _ => Err(r.error()),
        }
    }

    /// An issue's comments, oldest first, all pages (a bounded walk).
    pub async fn comments(&self, full: &str, number: u64) -> Result<Vec<GhComment>, ApiError> {
        self.comments_since(full, number, None).await
    }

    /// An issue's comments updated at or after `since` (RFC 3339, GitHub's
    /// own filter), oldest first, all pages (a bounded walk).
    pub async fn comments_since(
        &self,
        full: &str,
        number: u64,
        since: Option<&str>,
    ) -> Result<Vec<GhComment>, ApiError> {
        const PER_PAGE: usize = 100;
        let mut out = Vec::new();
        for page in 1..=30 {
            let mut q = vec![
                ("per_page", PER_PAGE.to_string()),
                ("page", page.to_string()),
            ];
            if let Some(s) = since {
                q.push(("since", s.to_owned()));
            }
            let r = self
                .api
                .call(
                    Method::GET,
                    &format!("/repos/{full}/issues/{number}/comments"),
                    &q,
                    None,
                )
                .await?;
            if !r.ok() {
                return Err(r.error());
            }
            let batch: Vec<GhComment> = r.json()?;
            let last = batch.len() < PER_PAGE;
            out.extend(batch);
            if last {
                break;
            }
        }
        Ok(out)
    }

    pub async fn comment(&self, full: &str, number: u64, body: &str) -> Result<(), ApiError> {
        let r = self
            .api
            .call(
                Method::POST,
                &format!("/repos/{full}/issues/{number}/comments"),
                &[],
                Some(&json!({"body": body})),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// One page of a repository's issues (and pull requests, which the caller
    /// skips), most recently updated first, changed at or after `since`.
    pub async fn issues_page(
        &self,
        full: &str,
        since: Option<&str>,
        page: u32,
        per_page: u32,
    ) -> Result<Listed<GhIssue>, ApiError> {
        let mut q = vec![
            ("state", "all".to_owned()),
            ("sort", "updated".to_owned()),
            ("direction", "desc".to_owned()),
            ("per_page", per_page.clamp(1, 100).to_string()),
            ("page", page.max(1).to_string()),
        ];
        if let Some(s) = since {
            q.push(("since", s.to_owned()));
        }
        let r = self
            .api
            .call(Method::GET, &format!("/repos/{full}/issues"), &q, None)
            .await?;
        if r.ok() {
            r.json_items()
        } else {
            Err(r.error())
        }
    }
}

/// Percent-encode one path segment: everything but RFC 3986's unreserved
/// characters, so a label such as `Awaiting Approval`, `orch:review` or
/// `a/b?c` names exactly that label.
pub fn encode_path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(
            super::encode_path_segment("Awaiting Approval"),
            "Awaiting%20Approval"
        );
        assert_eq!(super::encode_path_segment("orch:review"), "orch%3Areview");
        assert_eq!(super::encode_path_segment("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
        assert_eq!(super::encode_path_segment("été"), "%C3%A9t%C3%A9");
    }
}

/// `GET …/commits/{ref}/check-runs`.
#[derive(Debug, Clone, Deserialize)]
pub struct GhCheckRuns {
    #[serde(default)]
    pub check_runs: Vec<GhCheckRun>,
}

/// A check run as orch reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct GhCheckRun {
    #[serde(default)]
    pub id: u64,
    pub name: String,
    /// `queued`, `in_progress`, `completed`, …
    #[serde(default)]
    pub status: String,
    /// Set once completed: `success`, `failure`, `timed_out`, …
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub output: Option<GhCheckOutput>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GhCheckOutput {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// A commit status (the older API beside check runs).
#[derive(Debug, Clone, Deserialize)]
pub struct GhStatus {
    #[serde(default)]
    pub context: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
}

/// A pull request review: `APPROVED`, `CHANGES_REQUESTED`, `COMMENTED`,
/// `DISMISSED` or `PENDING`.
#[derive(Debug, Clone, Deserialize)]
pub struct GhReview {
    pub id: u64,
    #[serde(default)]
    pub user: Option<GhUser>,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub commit_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GhUser {
    #[serde(default)]
    pub login: String,
}

/// An inline review comment.
#[derive(Debug, Clone, Deserialize)]
pub struct GhReviewComment {
    #[serde(default)]
    pub pull_request_review_id: Option<u64>,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub line: Option<u64>,
    #[serde(default)]
    pub body: String,
}
