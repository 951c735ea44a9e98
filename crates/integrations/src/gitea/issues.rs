//! Gitea/Forgejo issues, labels and comments (REST API v1): the calls the
//! issues tracker needs, each as `swagger.v1.json` describes it (the
//! excerpt is in `tests/fixtures/gitea/swagger-issues.json`).
//!
//! Labels are sent by id, never by name: Gitea drops names it does not know
//! without an error, and removing a label takes its id (`…/labels/{id}`).

use super::client::GiteaClient;
use crate::http::ApiError;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

/// `Label`: a repository's label.
#[derive(Debug, Clone, Deserialize)]
pub struct GtLabel {
    pub id: i64,
    pub name: String,
}

/// `PullRequestMeta`: set when the "issue" is a pull request.
#[derive(Debug, Clone, Deserialize)]
pub struct GtPullMeta {
    #[serde(default)]
    pub merged: bool,
}

/// `Issue`.
#[derive(Debug, Clone, Deserialize)]
pub struct GtIssue {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub labels: Vec<GtLabel>,
    /// `open` or `closed`.
    #[serde(default)]
    pub state: String,
    /// RFC 3339 (Gitea writes the server's offset, e.g. `+02:00`).
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub pull_request: Option<GtPullMeta>,
}

impl GtIssue {
    pub fn label_names(&self) -> Vec<String> {
        self.labels.iter().map(|l| l.name.clone()).collect()
    }
}

/// `Comment`.
#[derive(Debug, Clone, Deserialize)]
pub struct GtComment {
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct IssuePage {
    /// The page's issues, malformed records left out.
    pub issues: Vec<GtIssue>,
    /// Records on the page, the malformed ones included.
    pub on_page: usize,
    /// `X-Total-Count`: how many issues the whole listing has.
    pub total: Option<u64>,
}

/// The colour of the labels orch creates (`CreateLabelOption.color` is
/// required); people may recolour them, orch never looks at it.
pub const LABEL_COLOR: &str = "#c5def5";

/// Gitea's default `MAX_RESPONSE_ITEMS`: a larger `limit` is cut to it.
pub const PAGE_LIMIT: u32 = 50;

impl GiteaClient {
    /// `GET /repos/{owner}/{repo}/issues/{index}`; 404 is `None`.
    pub async fn issue(&self, full: &str, number: u64) -> Result<Option<GtIssue>, ApiError> {
        let r = self
            .api()
            .call(
                Method::GET,
                &format!("/repos/{full}/issues/{number}"),
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

    /// `GET /repos/{owner}/{repo}/labels`, every page.
    pub async fn repo_labels(&self, full: &str) -> Result<Vec<GtLabel>, ApiError> {
        let mut out = Vec::new();
        for page in 1..=20 {
            let q = [
                ("page", page.to_string()),
                ("limit", PAGE_LIMIT.to_string()),
            ];
            let r = self
                .api()
                .call(Method::GET, &format!("/repos/{full}/labels"), &q, None)
                .await?;
            if !r.ok() {
                return Err(r.error());
            }
            let batch: Vec<GtLabel> = r.json()?;
            if batch.is_empty() {
                break;
            }
            out.extend(batch);
        }
        Ok(out)
    }

    /// `POST /repos/{owner}/{repo}/labels` (201).
    pub async fn create_label(&self, full: &str, name: &str) -> Result<GtLabel, ApiError> {
        let r = self
            .api()
            .call(
                Method::POST,
                &format!("/repos/{full}/labels"),
                &[],
                Some(&json!({"name": name, "color": LABEL_COLOR})),
            )
            .await?;
        if r.ok() { r.json() } else { Err(r.error()) }
    }

    /// `POST /repos/{owner}/{repo}/issues/{index}/labels` with label ids:
    /// adds them and keeps every label the issue has. Never the replace-all
    /// `PUT`: a label a person adds between orch's read and write would be lost.
    pub async fn add_labels(&self, full: &str, number: u64, ids: &[i64]) -> Result<(), ApiError> {
        let r = self
            .api()
            .call(
                Method::POST,
                &format!("/repos/{full}/issues/{number}/labels"),
                &[],
                Some(&json!({"labels": ids})),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// `DELETE /repos/{owner}/{repo}/issues/{index}/labels/{id}` (204). A
    /// 404 means the label is no longer there: what orch wanted.
    pub async fn remove_label(&self, full: &str, number: u64, id: i64) -> Result<(), ApiError> {
        let r = self
            .api()
            .call(
                Method::DELETE,
                &format!("/repos/{full}/issues/{number}/labels/{id}"),
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

    /// `GET /repos/{owner}/{repo}/issues/{index}/comments`, updated at or
    /// after `since` (RFC 3339). Gitea answers with every comment at once
    /// (the route takes no `page`/`limit`).
    pub async fn comments_since(
        &self,
        full: &str,
        number: u64,
        since: Option<&str>,
    ) -> Result<Vec<GtComment>, ApiError> {
        let q: Vec<(&str, String)> = since.map(|s| ("since", s.to_owned())).into_iter().collect();
        let r = self
            .api()
            .call(
                Method::GET,
                &format!("/repos/{full}/issues/{number}/comments"),
                &q,
                None,
            )
            .await?;
        if r.ok() { r.json() } else { Err(r.error()) }
    }

    /// `POST /repos/{owner}/{repo}/issues/{index}/comments` (201).
    pub async fn comment(&self, full: &str, number: u64, body: &str) -> Result<(), ApiError> {
        let r = self
            .api()
            .call(
                Method::POST,
                &format!("/repos/{full}/issues/{number}/comments"),
                &[],
                Some(&json!({"body": body})),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// One page of a repository's issues (`type=issues`: no pull requests),
    /// open and closed, updated at or after `since`, with Gitea's
    /// `X-Total-Count` (the listing's size, so the caller stops without
    /// asking for an empty page). The route has no sort parameter, so the
    /// caller takes the newest `updated_at` of all pages.
    pub async fn issues_page(
        &self,
        full: &str,
        since: Option<&str>,
        page: u32,
    ) -> Result<IssuePage, ApiError> {
        let mut q = vec![
            ("state", "all".to_owned()),
            ("type", "issues".to_owned()),
            ("page", page.max(1).to_string()),
            ("limit", PAGE_LIMIT.to_string()),
        ];
        if let Some(s) = since {
            q.push(("since", s.to_owned()));
        }
        let r = self
            .api()
            .call(Method::GET, &format!("/repos/{full}/issues"), &q, None)
            .await?;
        if !r.ok() {
            return Err(r.error());
        }
        let total = r
            .headers
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let listed = r.json_items()?;
        Ok(IssuePage {
            issues: listed.items,
            on_page: listed.on_page,
            total,
        })
    }
}
