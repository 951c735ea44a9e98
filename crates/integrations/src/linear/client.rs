//! Linear's GraphQL API (`POST <base>/graphql`), with a personal API key
//! sent as `Authorization: <key>` (Linear wants no `Bearer` before a
//! personal key). Every document orch sends is in [`super::queries`].
//!
//! Rate limits: Linear counts requests and complexity points per key. The
//! shared client reads `X-RateLimit-{Requests,Complexity}-Remaining` and
//! `-Reset` on every answer (a spent budget pauses every call until its
//! reset), and a `RATELIMITED` GraphQL error (HTTP 400) is paused for and
//! retried like a 429 (`ApiClient::with_limited_answer`).

use super::queries;
use crate::http::{ApiClient, ApiError, CallPolicy, Response};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// `Issue` (the fields orch reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LnIssue {
    pub id: String,
    /// `ENG-42`: the team's key and the issue's number.
    pub identifier: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub state: Option<LnStateRef>,
    #[serde(default)]
    pub team: Option<LnTeamRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LnStateRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LnTeamRef {
    pub id: String,
    pub key: String,
}

/// `WorkflowState` (`type` is Linear's category: `backlog`, `unstarted`,
/// `started`, `completed`, `canceled`, `triage`).
#[derive(Debug, Clone, Deserialize)]
pub struct LnState {
    pub id: String,
    pub name: String,
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A team and its workflow states.
#[derive(Debug, Clone, Deserialize)]
pub struct LnTeam {
    pub id: String,
    pub key: String,
    pub states: Vec<LnState>,
}

/// `Comment` (the fields orch reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LnComment {
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// One page of a connection and the cursor of the next (`None`: last).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
    /// Listed records that could not be read (each logged), left out.
    pub malformed: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection<T> {
    nodes: Vec<T>,
    page_info: Option<PageInfo>,
}

impl<T> From<Connection<T>> for Page<T> {
    fn from(c: Connection<T>) -> Page<T> {
        let next = c
            .page_info
            .filter(|p| p.has_next_page)
            .and_then(|p| p.end_cursor);
        Page {
            items: c.nodes,
            next,
            malformed: 0,
        }
    }
}

/// The `code` of each GraphQL error of an answer (`extensions.code`).
fn error_codes(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v.get("errors")
        .and_then(Value::as_array)
        .map(|es| {
            es.iter()
                .filter_map(|e| e.pointer("/extensions/code").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Linear's answer when a budget is spent: HTTP 400 whose GraphQL error
/// has `extensions.code = "RATELIMITED"` (not 429).
pub fn is_rate_limited(r: &Response) -> bool {
    r.status != 200 && error_codes(&r.body).iter().any(|c| c == "RATELIMITED")
}

/// What a GraphQL call gave back.
enum Answer<T> {
    Data(T),
    /// The entity asked for does not exist (Linear: an `Entity not found`
    /// error, since `issue(id:)` is non-null).
    NotFound,
}

pub struct LinearClient {
    api: ApiClient,
}

impl LinearClient {
    /// `base_url` is the API's address; orch adds `/graphql`.
    pub fn new(
        base_url: &str,
        api_key: &str,
        policy: CallPolicy,
    ) -> Result<LinearClient, ApiError> {
        Ok(LinearClient {
            api: ApiClient::new(
                "Linear",
                base_url.trim_end_matches('/'),
                Some(("Authorization", api_key)),
                policy,
            )?
            .with_limited_answer(is_rate_limited),
        })
    }

    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// Send `doc` with `variables`; `data` read as `T`.
    async fn run<T: DeserializeOwned>(
        &self,
        doc: &str,
        variables: Value,
    ) -> Result<Answer<T>, ApiError> {
        let op = queries::operation_name(doc);
        let body = json!({ "query": doc, "operationName": op, "variables": variables });
        let r = self
            .api
            .call(Method::POST, "/graphql", &[], Some(&body))
            .await?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| ApiError::Decode {
            provider: "Linear",
            what: op.to_owned(),
            msg: e.to_string(),
        })?;
        let errors = v.get("errors").and_then(Value::as_array);
        if let Some(es) = errors.filter(|es| !es.is_empty()) {
            let messages: Vec<&str> = es
                .iter()
                .filter_map(|e| e.get("message").and_then(Value::as_str))
                .collect();
            if messages
                .iter()
                .any(|m| m.to_ascii_lowercase().contains("not found"))
            {
                return Ok(Answer::NotFound);
            }
            return Err(ApiError::Status {
                provider: "Linear",
                what: op.to_owned(),
                status: r.status,
                body: messages.join("; ").chars().take(300).collect(),
            });
        }
        if !r.ok() {
            return Err(r.error());
        }
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        serde_json::from_value(data)
            .map(Answer::Data)
            .map_err(|e| ApiError::Decode {
                provider: "Linear",
                what: op.to_owned(),
                msg: e.to_string(),
            })
    }

    /// As `run`, where "not found" is an error too.
    async fn data<T: DeserializeOwned>(&self, doc: &str, variables: Value) -> Result<T, ApiError> {
        match self.run(doc, variables).await? {
            Answer::Data(d) => Ok(d),
            Answer::NotFound => Err(ApiError::Status {
                provider: "Linear",
                what: queries::operation_name(doc).to_owned(),
                status: 404,
                body: "not found".into(),
            }),
        }
    }

    /// The key's user's name (doctor).
    pub async fn viewer(&self) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        struct D {
            viewer: V,
        }
        #[derive(Deserialize)]
        struct V {
            name: String,
        }
        let d: D = self.data(queries::VIEWER, json!({})).await?;
        Ok(d.viewer.name)
    }

    /// The team whose key is `key`, with its workflow states; `None` if
    /// the key sees no such team.
    pub async fn team(&self, key: &str) -> Result<Option<LnTeam>, ApiError> {
        #[derive(Deserialize)]
        struct D {
            teams: Connection<T>,
        }
        #[derive(Deserialize)]
        struct T {
            id: String,
            key: String,
            states: Connection<LnState>,
        }
        let d: D = self
            .data(queries::TEAM_STATES, json!({ "key": key }))
            .await?;
        Ok(d.teams.nodes.into_iter().next().map(|t| LnTeam {
            id: t.id,
            key: t.key,
            states: t.states.nodes,
        }))
    }

    /// An issue by identifier (`ENG-42`) or id; `None` if Linear has none.
    pub async fn issue(&self, id: &str) -> Result<Option<LnIssue>, ApiError> {
        #[derive(Deserialize)]
        struct D {
            issue: Option<LnIssue>,
        }
        match self.run::<D>(queries::ISSUE, json!({ "id": id })).await? {
            Answer::Data(d) => Ok(d.issue),
            Answer::NotFound => Ok(None),
        }
    }

    /// One page of an issue's comments.
    pub async fn comments_page(
        &self,
        id: &str,
        after: Option<&str>,
    ) -> Result<Page<LnComment>, ApiError> {
        #[derive(Deserialize)]
        struct D {
            issue: I,
        }
        #[derive(Deserialize)]
        struct I {
            comments: Connection<LnComment>,
        }
        let d: D = self
            .data(queries::ISSUE_COMMENTS, json!({ "id": id, "after": after }))
            .await?;
        Ok(d.issue.comments.into())
    }

    /// One page of team `key`'s issues, most recently updated first,
    /// updated at or after `since` (RFC 3339) when given.
    pub async fn team_issues_page(
        &self,
        key: &str,
        since: Option<&str>,
        after: Option<&str>,
    ) -> Result<Page<LnIssue>, ApiError> {
        #[derive(Deserialize)]
        struct D {
            issues: Connection<Value>,
        }
        let mut filter = json!({ "team": { "key": { "eq": key } } });
        if let Some(s) = since {
            // Inclusive: an issue changed in the same millisecond as the
            // watermark is read again, and a replay of a state is a no-op.
            filter["updatedAt"] = json!({ "gte": s });
        }
        let d: D = self
            .data(
                queries::TEAM_ISSUES,
                json!({ "filter": filter, "after": after }),
            )
            .await?;
        // Record by record: one issue orch cannot read must not hide the
        // others from the reconciler.
        let page: Page<Value> = d.issues.into();
        let listed = crate::http::records::<LnIssue>("Linear", "TeamIssues", page.items);
        Ok(Page {
            malformed: listed.malformed(),
            items: listed.items,
            next: page.next,
        })
    }

    /// Move issue `id` to the workflow state `state_id`.
    pub async fn set_state(&self, id: &str, state_id: &str) -> Result<(), ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct D {
            issue_update: P,
        }
        #[derive(Deserialize)]
        struct P {
            success: bool,
        }
        let d: D = self
            .data(
                queries::ISSUE_UPDATE,
                json!({ "id": id, "stateId": state_id }),
            )
            .await?;
        success(d.issue_update.success, "OrchIssueUpdate")
    }

    /// Comment on issue `issue_id` (its id).
    pub async fn add_comment(&self, issue_id: &str, body: &str) -> Result<(), ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct D {
            comment_create: P,
        }
        #[derive(Deserialize)]
        struct P {
            success: bool,
        }
        let d: D = self
            .data(
                queries::COMMENT_CREATE,
                json!({ "issueId": issue_id, "body": body }),
            )
            .await?;
        success(d.comment_create.success, "OrchCommentCreate")
    }
}

fn success(ok: bool, what: &str) -> Result<(), ApiError> {
    if ok {
        Ok(())
    } else {
        Err(ApiError::Status {
            provider: "Linear",
            what: what.to_owned(),
            status: 200,
            body: "success: false".into(),
        })
    }
}
