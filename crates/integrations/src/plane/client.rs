//! Plane's REST API v1: `X-API-Key`, trailing slashes on every route,
//! cursor pagination (`value:offset:is_prev`), 60 calls/minute per key.

use crate::http::{ApiClient, ApiError, CallPolicy};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// A project's state (triage states are hidden by the API).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlaneState {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub group: String,
}

/// A work item as the API returns it: `state` is a uuid string here (the
/// webhook has an object), so both are accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkItem {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description_stripped: Option<String>,
    #[serde(default, deserialize_with = "state_id")]
    pub state: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    /// The item's number in its project: with the project's `identifier`
    /// it makes the key people see, e.g. `ORCH-42`.
    #[serde(default)]
    pub sequence_id: Option<u64>,
}

fn state_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    })
}

/// One page of a listing.
#[derive(Debug, Clone, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub next_page_results: bool,
    /// Listed records that could not be read (each logged): a listing
    /// skips them rather than failing as a whole.
    #[serde(skip)]
    pub malformed: usize,
}

/// A work item's comment as the API lists it (`IssueCommentSerializer` of
/// API v1, which leaves out `comment_stripped`: the text is in
/// `comment_html`). orch's own carry `external_source = "orch"`.
#[derive(Debug, Clone, Deserialize)]
pub struct PlaneComment {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub deleted_at: Option<String>,
    #[serde(default)]
    pub comment_html: String,
    #[serde(default)]
    pub external_source: Option<String>,
}

/// Whether a comment was added or was already there (409 on its external id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentOutcome {
    Added,
    AlreadyThere,
}

pub struct PlaneClient {
    api: ApiClient,
    workspace: String,
}

/// The source name orch's comments carry, so Plane refuses a repeat (409).
pub const EXTERNAL_SOURCE: &str = "orch";

impl PlaneClient {
    /// Plane's default budget is 60 calls a minute per key; `policy.per_minute`
    /// defaults to that when unset.
    pub fn new(
        base_url: &str,
        workspace: &str,
        api_key: &str,
        mut policy: CallPolicy,
    ) -> Result<PlaneClient, ApiError> {
        policy.per_minute = policy.per_minute.or(Some(60));
        let base = format!("{}/api/v1", base_url.trim_end_matches('/'));
        Ok(PlaneClient {
            api: ApiClient::new("Plane", &base, Some(("X-API-Key", api_key)), policy)?,
            workspace: workspace.to_owned(),
        })
    }

    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    fn project_path(&self, project: &str) -> String {
        format!("/workspaces/{}/projects/{project}", self.workspace)
    }

    /// Every (non-triage) state of a project, all pages.
    pub async fn list_states(&self, project: &str) -> Result<Vec<PlaneState>, ApiError> {
        self.list_all(&format!("{}/states/", self.project_path(project)))
            .await
    }

    /// Every entry of a listing, page by page (a bounded walk: a server that
    /// never ends its pages cannot hold us). Old servers answer a bare list.
    async fn list_all<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Vec<T>, ApiError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            let mut q = vec![("per_page", "100".to_owned())];
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let r = self.api.call(Method::GET, path, &q, None).await?;
            if !r.ok() {
                return Err(r.error());
            }
            let v: Value = r.json()?;
            if v.is_array() {
                return serde_json::from_value(v).map_err(|e| decode(&r.what, e));
            }
            let page: Page<T> = serde_json::from_value(v).map_err(|e| decode(&r.what, e))?;
            out.extend(page.results);
            match page.next_cursor.filter(|_| page.next_page_results) {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(out)
    }

    /// One page of a project's work items, newest change first.
    pub async fn list_work_items(
        &self,
        project: &str,
        cursor: Option<&str>,
        per_page: u32,
    ) -> Result<Page<WorkItem>, ApiError> {
        let path = format!("{}/issues/", self.project_path(project));
        let mut q = vec![
            ("per_page", per_page.clamp(1, 1000).to_string()),
            ("order_by", "-updated_at".to_owned()),
        ];
        if let Some(c) = cursor {
            q.push(("cursor", c.to_owned()));
        }
        let r = self.api.call(Method::GET, &path, &q, None).await?;
        if !r.ok() {
            return Err(r.error());
        }
        // Record by record: one item orch cannot read must not hide the
        // others from the reconciler.
        let raw: Page<Value> = r.json()?;
        let listed = r.records::<WorkItem>(raw.results);
        Ok(Page {
            malformed: listed.malformed(),
            results: listed.items,
            next_cursor: raw.next_cursor,
            next_page_results: raw.next_page_results,
        })
    }

    /// A work item; `None` when the project has no such item (404).
    pub async fn get_work_item(
        &self,
        project: &str,
        id: &str,
    ) -> Result<Option<WorkItem>, ApiError> {
        let path = format!("{}/issues/{id}/", self.project_path(project));
        let r = self.api.call(Method::GET, &path, &[], None).await?;
        match r.status {
            404 => Ok(None),
            _ if r.ok() => r.json().map(Some),
            _ => Err(r.error()),
        }
    }

    /// Move a work item to a state. The field is `state`: `state_id` would be
    /// silently ignored by the API serializer.
    pub async fn set_state(&self, project: &str, id: &str, state_id: &str) -> Result<(), ApiError> {
        let path = format!("{}/issues/{id}/", self.project_path(project));
        let r = self
            .api
            .call(
                Method::PATCH,
                &path,
                &[],
                Some(&json!({ "state": state_id })),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// Comment once: a repeated `external_id` is refused by Plane with 409,
    /// which is what makes retries safe.
    pub async fn add_comment(
        &self,
        project: &str,
        id: &str,
        text: &str,
        external_id: &str,
    ) -> Result<CommentOutcome, ApiError> {
        let path = format!("{}/issues/{id}/comments/", self.project_path(project));
        let body = json!({
            "comment_html": format!("<p>{}</p>", escape_html(text)),
            "access": "INTERNAL",
            "external_source": EXTERNAL_SOURCE,
            "external_id": external_id,
        });
        let r = self.api.call(Method::POST, &path, &[], Some(&body)).await?;
        match r.status {
            409 => Ok(CommentOutcome::AlreadyThere),
            _ if r.ok() => Ok(CommentOutcome::Added),
            _ => Err(r.error()),
        }
    }

    /// Every comment of a work item, all pages.
    pub async fn list_comments(
        &self,
        project: &str,
        id: &str,
    ) -> Result<Vec<PlaneComment>, ApiError> {
        self.list_all(&format!(
            "{}/issues/{id}/comments/",
            self.project_path(project)
        ))
        .await
    }

    /// The project's `identifier`, e.g. `PROJ` (keys read `PROJ-42`).
    pub async fn project_identifier(&self, project: &str) -> Result<String, ApiError> {
        let r = self
            .api
            .call(
                Method::GET,
                &format!("{}/", self.project_path(project)),
                &[],
                None,
            )
            .await?;
        if !r.ok() {
            return Err(r.error());
        }
        let v: Value = r.json()?;
        Ok(v.get("identifier")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned())
    }
}

fn decode(what: &str, e: serde_json::Error) -> ApiError {
    ApiError::Decode {
        provider: "Plane",
        what: what.to_owned(),
        msg: e.to_string(),
    }
}

/// Comments are plain text in orch; Plane stores HTML.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// The text of a comment's HTML, as a person wrote it: tags dropped, a line
/// break for each `<br>` and block end, the entities Plane's editor writes
/// turned back into characters.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let Some(gt) = rest[lt..].find('>') else {
            // An unclosed `<` is text.
            out.push_str(&rest[lt..]);
            rest = "";
            break;
        };
        let tag = rest[lt + 1..lt + gt].trim().to_ascii_lowercase();
        let name = tag.trim_start_matches('/');
        let name = name
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or("");
        let breaks = name == "br"
            || (tag.starts_with('/')
                && matches!(
                    name,
                    "p" | "div"
                        | "li"
                        | "h1"
                        | "h2"
                        | "h3"
                        | "h4"
                        | "h5"
                        | "h6"
                        | "pre"
                        | "blockquote"
                ));
        if breaks {
            out.push('\n');
        }
        rest = &rest[lt + gt + 1..];
    }
    out.push_str(rest);
    unescape_entities(&out).trim().to_owned()
}

fn unescape_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let end = after.find(';').filter(|&e| e <= 10);
        let decoded = end.and_then(|e| {
            let ent = &after[1..e];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => ent
                    .strip_prefix("#x")
                    .or_else(|| ent.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
