//! Gitea/Forgejo REST API v1 (`Authorization: token …`). Only the calls the
//! forge needs; every one is checked against Gitea's swagger by a contract test.

use crate::http::{ApiClient, ApiError, CallPolicy, Response};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Deserialize)]
pub struct PrBranch {
    #[serde(default)]
    pub label: String,
    #[serde(default, rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub sha: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    /// Gitea derives it from a work-in-progress title prefix (`WIP:`).
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub merged: bool,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    pub head: PrBranch,
    pub base: PrBranch,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Branch {
    pub name: String,
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub commit: Option<BranchCommit>,
    /// The protection requires the `status_check_contexts` to pass.
    #[serde(default)]
    pub enable_status_check: bool,
    /// Required status contexts, as glob patterns.
    #[serde(default)]
    pub status_check_contexts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BranchCommit {
    pub id: String,
}

/// What the merge endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeAnswer {
    /// 200: merged now.
    Merged,
    /// 405, 409, 404, 201 (scheduled): not merged now, with Gitea's reason.
    NotMerged { status: u16, reason: String },
}

pub struct GiteaClient {
    pub(super) api: ApiClient,
}

impl GiteaClient {
    pub fn new(base_url: &str, token: &str, policy: CallPolicy) -> Result<GiteaClient, ApiError> {
        let base = format!("{}/api/v1", base_url.trim_end_matches('/'));
        let auth = format!("token {token}");
        Ok(GiteaClient {
            api: ApiClient::new("Gitea", &base, Some(("Authorization", &auth)), policy)?,
        })
    }

    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// Open a pull request; 409 means one exists for this head and base, and
    /// it is looked up instead.
    pub async fn create_or_find_pr(
        &self,
        full: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ApiError> {
        let r = self
            .api
            .call(
                Method::POST,
                &format!("/repos/{full}/pulls"),
                &[],
                Some(&json!({"title": title, "head": head, "base": base, "body": body})),
            )
            .await?;
        match r.status {
            201 | 200 => r.json(),
            409 => self
                .find_pr(full, head, base)
                .await?
                .ok_or_else(|| r.error()),
            _ => Err(r.error()),
        }
    }

    /// The pull request from `head` into `base`, open or closed.
    pub async fn find_pr(
        &self,
        full: &str,
        head: &str,
        base: &str,
    ) -> Result<Option<PullRequest>, ApiError> {
        let r = self
            .api
            .call(
                Method::GET,
                &format!("/repos/{full}/pulls/{base}/{head}"),
                &[],
                None,
            )
            .await?;
        match r.status {
            404 => Ok(None),
            _ if r.ok() => r.json().map(Some),
            _ => Err(r.error()),
        }
    }

    pub async fn get_pr(&self, full: &str, number: u64) -> Result<PullRequest, ApiError> {
        let r = self
            .api
            .call(
                Method::GET,
                &format!("/repos/{full}/pulls/{number}"),
                &[],
                None,
            )
            .await?;
        if r.ok() { r.json() } else { Err(r.error()) }
    }

    /// Closed pull requests into `base`, most recently updated first.
    pub async fn closed_prs(&self, full: &str, base: &str) -> Result<Vec<PullRequest>, ApiError> {
        let q = [
            ("state", "closed".to_owned()),
            ("base_branch", base.to_owned()),
            ("sort", "recentupdate".to_owned()),
            ("limit", "50".to_owned()),
        ];
        let r = self
            .api
            .call(Method::GET, &format!("/repos/{full}/pulls"), &q, None)
            .await?;
        if r.ok() { r.json() } else { Err(r.error()) }
    }

    /// Merge exactly `head_commit_id` with `style` (`do`). The title and
    /// message keys are sent in both spellings: Gitea ≥ 1.26 reads
    /// `merge_title_field`, older Gitea and Forgejo read `MergeTitleField`,
    /// and each ignores the other. `do` is matched case-insensitively by
    /// Go's decoder, so one spelling serves all.
    pub async fn merge(
        &self,
        full: &str,
        number: u64,
        style: &str,
        head_commit_id: &str,
        title: &str,
        message: &str,
    ) -> Result<MergeAnswer, ApiError> {
        let body = json!({
            "do": style,
            "head_commit_id": head_commit_id,
            "merge_title_field": title,
            "MergeTitleField": title,
            "merge_message_field": message,
            "MergeMessageField": message,
            // orch deletes the branch itself, after checking it may.
            "delete_branch_after_merge": false,
        });
        let r = self
            .api
            .call(
                Method::POST,
                &format!("/repos/{full}/pulls/{number}/merge"),
                &[],
                Some(&body),
            )
            .await?;
        Ok(match r.status {
            200 | 204 => MergeAnswer::Merged,
            405 | 409 | 404 | 201 | 423 => MergeAnswer::NotMerged {
                status: r.status,
                reason: reason(&r),
            },
            _ => return Err(r.error()),
        })
    }

    pub async fn branch(&self, full: &str, branch: &str) -> Result<Option<Branch>, ApiError> {
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
            _ if r.ok() => r.json().map(Some),
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

    /// `Ok(status)`: 204 deleted, 404 gone, 403 refused by Gitea.
    pub async fn delete_branch(&self, full: &str, branch: &str) -> Result<(u16, String), ApiError> {
        // The route is `/branches/*`: slashes in branch names go as they are.
        let r = self
            .api
            .call(
                Method::DELETE,
                &format!("/repos/{full}/branches/{branch}"),
                &[],
                None,
            )
            .await?;
        match r.status {
            204 | 200 | 404 | 403 | 423 => Ok((r.status, reason(&r))),
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
                Some(&json!({"state": state, "context": context, "description": description, "target_url": ""})),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }
}

impl GiteaClient {
    /// Change a pull request's title (Gitea has no draft flag: a `WIP:`
    /// title prefix makes the draft, and removing it makes it ready).
    pub async fn set_pr_title(&self, full: &str, number: u64, title: &str) -> Result<(), ApiError> {
        let r = self
            .api
            .call(
                Method::PATCH,
                &format!("/repos/{full}/pulls/{number}"),
                &[],
                Some(&json!({"title": title})),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// The reviews of pull request `number` (swagger `PullReview`).
    pub async fn reviews(&self, full: &str, number: u64) -> Result<Vec<GiteaReview>, ApiError> {
        self.api
            .get_json(
                &format!("/repos/{full}/pulls/{number}/reviews"),
                &[("limit", "50".into())],
            )
            .await
    }

    /// The inline comments of one review (swagger `PullReviewComment`).
    pub async fn review_comments(
        &self,
        full: &str,
        number: u64,
        review: u64,
    ) -> Result<Vec<GiteaReviewComment>, ApiError> {
        self.api
            .get_json(
                &format!("/repos/{full}/pulls/{number}/reviews/{review}/comments"),
                &[],
            )
            .await
    }

    /// The commit statuses of `sha`, newest first (`sort=recentupdate`);
    /// one page of 50 covers every context a repository reports.
    pub async fn statuses(&self, full: &str, sha: &str) -> Result<Vec<CommitStatus>, ApiError> {
        self.api
            .get_json(
                &format!("/repos/{full}/commits/{sha}/statuses"),
                &[("sort", "recentupdate".into()), ("limit", "50".into())],
            )
            .await
    }
}

/// Gitea's `PullReview`, as orch reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct GiteaReview {
    pub id: u64,
    #[serde(default)]
    pub user: Option<GiteaUser>,
    /// `APPROVED`, `REQUEST_CHANGES`, `COMMENT`, `PENDING`, …
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub commit_id: String,
    #[serde(default)]
    pub dismissed: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GiteaUser {
    #[serde(default)]
    pub login: String,
}

/// Gitea's `PullReviewComment`: `position` is the line in the new file.
#[derive(Debug, Clone, Deserialize)]
pub struct GiteaReviewComment {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub position: Option<u64>,
    #[serde(default)]
    pub body: String,
}

/// Gitea's `CommitStatus` (the state is under `status` in answers; under
/// `state` in the webhook's payload).
#[derive(Debug, Clone, Deserialize)]
pub struct CommitStatus {
    #[serde(default)]
    pub context: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub target_url: String,
}

/// Gitea's `APIError {message}` (or the raw body).
fn reason(r: &Response) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&r.body).chars().take(200).collect())
}
