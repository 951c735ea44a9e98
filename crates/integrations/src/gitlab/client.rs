//! GitLab's REST API v4 (`PRIVATE-TOKEN`): the calls the merge-request forge
//! needs, each as GitLab's API description has it (the excerpt orch checks
//! against is `tests/fixtures/gitlab/api-v4-excerpt.json`).
//!
//! A project is named by its numeric id or its full path, which goes into
//! the URL as one segment (`team%2Fdemo`): GitLab reads `:id` either way.

use crate::github::client::encode_path_segment;
use crate::http::{ApiClient, ApiError, CallPolicy};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// `MergeRequest` (the fields orch reads).
#[derive(Debug, Clone, Deserialize)]
pub struct GlMergeRequest {
    pub iid: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub draft: bool,
    #[serde(default)]
    pub web_url: Option<String>,
    /// `opened`, `closed`, `locked` or `merged`.
    #[serde(default)]
    pub state: String,
    /// The source branch's head commit (`null` once the branch is gone).
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    /// Set instead of `merge_commit_sha` when the merge squashed without a
    /// merge commit (fast-forward projects).
    #[serde(default)]
    pub squash_commit_sha: Option<String>,
    #[serde(default)]
    pub source_branch: String,
    #[serde(default)]
    pub target_branch: String,
}

impl GlMergeRequest {
    pub fn merged(&self) -> bool {
        self.state == "merged"
    }

    /// The commit the target branch got: the merge commit, else the squash
    /// commit, else (a fast-forward) the head itself.
    pub fn landed_sha(&self) -> Option<String> {
        self.merge_commit_sha
            .clone()
            .or_else(|| self.squash_commit_sha.clone())
            .or_else(|| self.sha.clone())
    }
}

/// `GET …/repository/branches/:branch` (the fields orch reads).
#[derive(Debug, Clone, Deserialize)]
pub struct GlBranch {
    #[serde(default)]
    pub protected: bool,
    #[serde(default)]
    pub default: bool,
    pub commit: GlCommitRef,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GlCommitRef {
    pub id: String,
}

/// What the merge endpoint said when it did not merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlMerge {
    Merged {
        sha: String,
    },
    /// 405, 406, 409, 422, 404: with GitLab's message.
    NotMerged {
        status: u16,
        reason: String,
    },
}

pub struct GitlabClient {
    api: ApiClient,
}

/// GitLab's error text: `message` (a string, a list or an object of
/// field → errors) or `error`.
pub(crate) fn message(body: &[u8]) -> String {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let text = v.as_ref().and_then(|v| match v.get("message") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other @ (Value::Array(_) | Value::Object(_))) => Some(other.to_string()),
        _ => v.get("error").and_then(Value::as_str).map(str::to_owned),
    });
    text.unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// `:id` of a project in a URL: the numeric id as is, a path as one
/// percent-encoded segment.
pub fn project_segment(project: &str) -> String {
    encode_path_segment(project)
}

impl GitlabClient {
    /// `base_url` is the instance's address; orch adds `/api/v4`.
    pub fn new(base_url: &str, token: &str, policy: CallPolicy) -> Result<GitlabClient, ApiError> {
        let base = format!("{}/api/v4", base_url.trim_end_matches('/'));
        Ok(GitlabClient {
            api: ApiClient::new("GitLab", &base, Some(("PRIVATE-TOKEN", token)), policy)?,
        })
    }

    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    fn path(project: &str, rest: &str) -> String {
        format!("/projects/{}{rest}", project_segment(project))
    }

    /// `GET /projects/:id`: the project's default branch.
    pub async fn default_branch(&self, project: &str) -> Result<String, ApiError> {
        let r = self
            .api
            .call(Method::GET, &Self::path(project, ""), &[], None)
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

    /// `GET /projects/:id/repository/branches/:branch`; 404 is `None`.
    pub async fn branch(&self, project: &str, branch: &str) -> Result<Option<GlBranch>, ApiError> {
        let r = self
            .api
            .call(
                Method::GET,
                &Self::path(
                    project,
                    &format!("/repository/branches/{}", encode_path_segment(branch)),
                ),
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

    /// Open a merge request of `source` into `target`; GitLab's 409
    /// ("Another open merge request already exists for this source
    /// branch") means there is one, and it is looked up instead.
    pub async fn create_or_find_mr(
        &self,
        project: &str,
        source: &str,
        target: &str,
        title: &str,
        description: &str,
    ) -> Result<GlMergeRequest, ApiError> {
        let r = self
            .api
            .call(
                Method::POST,
                &Self::path(project, "/merge_requests"),
                &[],
                Some(&json!({
                    "source_branch": source,
                    "target_branch": target,
                    "title": title,
                    "description": description,
                })),
            )
            .await?;
        match r.status {
            201 => r.json(),
            409 => self
                .find_open_mr(project, source, target)
                .await?
                .ok_or_else(|| r.error()),
            _ => Err(r.error()),
        }
    }

    /// The open merge request of `source` into `target`, if one is.
    pub async fn find_open_mr(
        &self,
        project: &str,
        source: &str,
        target: &str,
    ) -> Result<Option<GlMergeRequest>, ApiError> {
        let q = [
            ("state", "opened".to_owned()),
            ("source_branch", source.to_owned()),
            ("target_branch", target.to_owned()),
        ];
        let f = self
            .api
            .call(
                Method::GET,
                &Self::path(project, "/merge_requests"),
                &q,
                None,
            )
            .await?;
        if !f.ok() {
            return Err(f.error());
        }
        let list: Vec<GlMergeRequest> = f.json()?;
        Ok(list.into_iter().next())
    }

    /// `PUT /projects/:id/merge_requests/:iid` with a new title (a `Draft:`
    /// prefix makes a draft; without it the merge request is ready).
    pub async fn set_mr_title(&self, project: &str, iid: u64, title: &str) -> Result<(), ApiError> {
        let r = self
            .api
            .call(
                Method::PUT,
                &Self::path(project, &format!("/merge_requests/{iid}")),
                &[],
                Some(&json!({"title": title})),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// `GET …/merge_requests/:iid/approvals`: who approved.
    pub async fn approved_by(&self, project: &str, iid: u64) -> Result<Vec<String>, ApiError> {
        let v: Value = self
            .api
            .get_json(
                &Self::path(project, &format!("/merge_requests/{iid}/approvals")),
                &[],
            )
            .await?;
        Ok(v.get("approved_by")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.pointer("/user/username").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `GET …/merge_requests/:iid/reviewers`: each reviewer's state
    /// (`requested_changes`, `approved`, `reviewed`, `unreviewed`).
    pub async fn reviewers(
        &self,
        project: &str,
        iid: u64,
    ) -> Result<Vec<(String, String)>, ApiError> {
        let v: Value = self
            .api
            .get_json(
                &Self::path(project, &format!("/merge_requests/{iid}/reviewers")),
                &[],
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| {
                        Some((
                            x.pointer("/user/username")?.as_str()?.to_owned(),
                            x.get("state")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `GET …/repository/commits/:sha/statuses`: (name, status,
    /// description, target_url), newest first.
    pub async fn statuses(
        &self,
        project: &str,
        sha: &str,
    ) -> Result<Vec<(String, String, String, Option<String>)>, ApiError> {
        let v: Value = self
            .api
            .get_json(
                &Self::path(project, &format!("/repository/commits/{sha}/statuses")),
                &[("per_page", "100".into())],
            )
            .await?;
        let text = |x: &Value, k: &str| x.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            text(x, "name"),
                            text(x, "status"),
                            text(x, "description"),
                            x.get("target_url")
                                .and_then(Value::as_str)
                                .map(str::to_owned),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `PUT /projects/:id/merge_requests/:iid/merge` with the verified head
    /// as `sha`: GitLab refuses with 409 when the source branch moved.
    pub async fn merge(
        &self,
        project: &str,
        iid: u64,
        sha: &str,
        squash: bool,
        commit_message: &str,
    ) -> Result<GlMerge, ApiError> {
        let r = self
            .api
            .call(
                Method::PUT,
                &Self::path(project, &format!("/merge_requests/{iid}/merge")),
                &[],
                Some(&json!({
                    "sha": sha,
                    "squash": squash,
                    "merge_commit_message": commit_message,
                })),
            )
            .await?;
        match r.status {
            200 => {
                let mr: GlMergeRequest = r.json()?;
                Ok(GlMerge::Merged {
                    sha: mr.landed_sha().unwrap_or_else(|| sha.to_owned()),
                })
            }
            404 | 405 | 406 | 409 | 422 => Ok(GlMerge::NotMerged {
                status: r.status,
                reason: message(&r.body),
            }),
            _ => Err(r.error()),
        }
    }

    /// The newest merged merge requests into `target`.
    pub async fn merged_mrs(
        &self,
        project: &str,
        target: &str,
    ) -> Result<Vec<GlMergeRequest>, ApiError> {
        let q = [
            ("state", "merged".to_owned()),
            ("target_branch", target.to_owned()),
            ("order_by", "updated_at".to_owned()),
            ("sort", "desc".to_owned()),
            ("per_page", "50".to_owned()),
        ];
        let r = self
            .api
            .call(
                Method::GET,
                &Self::path(project, "/merge_requests"),
                &q,
                None,
            )
            .await?;
        if r.ok() { r.json() } else { Err(r.error()) }
    }

    /// `DELETE /projects/:id/repository/branches/:branch`: `(status,
    /// message)` for 204 deleted, 404 gone, 403 refused (protected).
    pub async fn delete_branch(
        &self,
        project: &str,
        branch: &str,
    ) -> Result<(u16, String), ApiError> {
        let r = self
            .api
            .call(
                Method::DELETE,
                &Self::path(
                    project,
                    &format!("/repository/branches/{}", encode_path_segment(branch)),
                ),
                &[],
                None,
            )
            .await?;
        match r.status {
            204 | 403 | 404 => Ok((r.status, message(&r.body))),
            _ => Err(r.error()),
        }
    }

    /// `POST /projects/:id/statuses/:sha`: a commit status (GitLab's states
    /// are `pending`, `running`, `success`, `failed`, `canceled`, `skipped`).
    /// GitLab answers 400 "Cannot transition status via …" when the commit
    /// already has this status under this name: the status is there, which
    /// is what orch asked for (a retry after a lost answer).
    pub async fn create_status(
        &self,
        project: &str,
        sha: &str,
        state: &str,
        name: &str,
        description: &str,
    ) -> Result<(), ApiError> {
        let r = self
            .api
            .call(
                Method::POST,
                &Self::path(project, &format!("/statuses/{sha}")),
                &[],
                Some(&json!({"state": state, "name": name, "description": description})),
            )
            .await?;
        if r.ok() || (r.status == 400 && message(&r.body).contains("Cannot transition status")) {
            Ok(())
        } else {
            Err(r.error())
        }
    }
}
