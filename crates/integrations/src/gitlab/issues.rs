//! GitLab issues and their notes (REST API v4): the calls the issues
//! tracker needs, each as the API description has it
//! (`tests/fixtures/gitlab/api-v4-excerpt.json`).
//!
//! Labels are plain names on GitLab. `PUT …/issues/:iid` with `add_labels`
//! and `remove_labels` edits them in one call without replacing the list (a
//! label a person adds meanwhile stays), and creates a label the project
//! does not have yet.

use super::client::{GitlabClient, project_segment};
use crate::http::ApiError;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

/// `Issue` (the fields orch reads).
#[derive(Debug, Clone, Deserialize)]
pub struct GlIssue {
    pub iid: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Vec<String>,
    /// RFC 3339 with milliseconds (`2026-05-20T10:00:07.000Z`).
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// `Note` (the fields orch reads).
#[derive(Debug, Clone, Deserialize)]
pub struct GlNote {
    #[serde(default)]
    pub body: String,
    /// GitLab's own notes ("added ~label", "changed the description"):
    /// never a person's words.
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// One page of a listing and the next page's number (`X-Next-Page`, empty
/// on the last page).
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The page's records, malformed ones left out (and logged).
    pub items: Vec<T>,
    /// Records left out as malformed.
    pub malformed: usize,
    pub next: Option<u32>,
}

/// GitLab's largest `per_page`.
pub const PER_PAGE: u32 = 100;

fn next_page(r: &crate::http::Response) -> Option<u32> {
    r.headers
        .get("x-next-page")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

impl GitlabClient {
    fn issue_path(project: &str, iid: u64, rest: &str) -> String {
        format!("/projects/{}/issues/{iid}{rest}", project_segment(project))
    }

    /// `GET /projects/:id/issues/:iid`; 404 is `None`.
    pub async fn issue(&self, project: &str, iid: u64) -> Result<Option<GlIssue>, ApiError> {
        let r = self
            .api()
            .call(Method::GET, &Self::issue_path(project, iid, ""), &[], None)
            .await?;
        match r.status {
            404 => Ok(None),
            _ if r.ok() => r.json().map(Some),
            _ => Err(r.error()),
        }
    }

    /// `PUT /projects/:id/issues/:iid` with `add_labels` and `remove_labels`
    /// (comma-separated): one call, and labels nobody named stay.
    pub async fn edit_labels(
        &self,
        project: &str,
        iid: u64,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ApiError> {
        let mut body = Map::new();
        if !add.is_empty() {
            body.insert("add_labels".into(), Value::from(add.join(",")));
        }
        if !remove.is_empty() {
            body.insert("remove_labels".into(), Value::from(remove.join(",")));
        }
        if body.is_empty() {
            return Ok(());
        }
        let r = self
            .api()
            .call(
                Method::PUT,
                &Self::issue_path(project, iid, ""),
                &[],
                Some(&Value::Object(body)),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// One page of an issue's notes, newest first.
    pub async fn notes_page(
        &self,
        project: &str,
        iid: u64,
        page: u32,
    ) -> Result<Page<GlNote>, ApiError> {
        let q = [
            ("sort", "desc".to_owned()),
            ("order_by", "created_at".to_owned()),
            ("per_page", PER_PAGE.to_string()),
            ("page", page.max(1).to_string()),
        ];
        let r = self
            .api()
            .call(
                Method::GET,
                &Self::issue_path(project, iid, "/notes"),
                &q,
                None,
            )
            .await?;
        if !r.ok() {
            return Err(r.error());
        }
        let listed = r.json_items()?;
        Ok(Page {
            next: next_page(&r),
            malformed: listed.malformed(),
            items: listed.items,
        })
    }

    /// `POST /projects/:id/issues/:iid/notes` (201).
    pub async fn add_note(&self, project: &str, iid: u64, body: &str) -> Result<(), ApiError> {
        let r = self
            .api()
            .call(
                Method::POST,
                &Self::issue_path(project, iid, "/notes"),
                &[],
                Some(&serde_json::json!({ "body": body })),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// One page of a project's issues, most recently updated first, updated
    /// at or after `updated_after`.
    pub async fn issues_page(
        &self,
        project: &str,
        updated_after: Option<&str>,
        page: u32,
    ) -> Result<Page<GlIssue>, ApiError> {
        let mut q = vec![
            ("order_by", "updated_at".to_owned()),
            ("sort", "desc".to_owned()),
            ("per_page", PER_PAGE.to_string()),
            ("page", page.max(1).to_string()),
        ];
        if let Some(s) = updated_after {
            q.push(("updated_after", s.to_owned()));
        }
        let r = self
            .api()
            .call(
                Method::GET,
                &format!("/projects/{}/issues", project_segment(project)),
                &q,
                None,
            )
            .await?;
        if !r.ok() {
            return Err(r.error());
        }
        // Record by record: one malformed issue hides no other.
        let listed = r.json_items()?;
        Ok(Page {
            next: next_page(&r),
            malformed: listed.malformed(),
            items: listed.items,
        })
    }
}
