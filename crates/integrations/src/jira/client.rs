//! Jira Cloud's REST API v3 (`<site>/rest/api/3/…`), with Basic auth (the
//! account's email and an API token). Only the calls orch needs: the
//! account (doctor), an issue, its transitions and the move through one,
//! its comments (ADF), one project's statuses (doctor), and the JQL search
//! (`POST /search/jql`, paged by `nextPageToken`; the old `/search` is
//! deprecated).
//!
//! Rate limits: Jira answers 429 with `Retry-After` (seconds); the shared
//! client pauses every call of this client for it and retries
//! (`ApiClient`). Jira's `X-RateLimit-Reset` is an ISO time, not the unix
//! seconds other providers send, so `Retry-After` is what orch goes by.

use crate::http::{ApiClient, ApiError, CallPolicy};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

/// Fields orch asks for when it reads an issue (the rest is never read).
pub const ISSUE_FIELDS: &[&str] = &["summary", "description", "status", "updated", "project"];
/// Fields the reconciler's search asks for: the status and the time of the
/// last change (a description can be a large document, and is not needed).
pub const SEARCH_FIELDS: &[&str] = &["status", "updated"];

/// A text field of an answer as text: a string as is, a number as its
/// digits (Jira's ids are strings, some examples and older answers send
/// numbers), anything else as absent. Answers are read, never refused, for
/// a field orch can do without.
fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn lenient_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    lenient(d).map(Option::unwrap_or_default)
}

/// A status as an issue or a transition names it.
#[derive(Debug, Clone, Deserialize)]
pub struct JiraStatus {
    #[serde(default, deserialize_with = "lenient_or_empty")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient_or_empty")]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct JiraFields {
    #[serde(default, deserialize_with = "lenient")]
    pub summary: Option<String>,
    /// ADF (v3), kept as JSON and read with `adf::to_text`.
    #[serde(default)]
    pub description: Option<Value>,
    #[serde(default)]
    pub status: Option<JiraStatus>,
    /// `2026-05-20T10:00:07.123+0000`.
    #[serde(default, deserialize_with = "lenient")]
    pub updated: Option<String>,
}

/// An issue (the fields orch reads).
#[derive(Debug, Clone, Deserialize)]
pub struct JiraIssue {
    #[serde(default, deserialize_with = "lenient_or_empty")]
    pub id: String,
    /// `ENG-42`: the project's key and the issue's number.
    pub key: String,
    #[serde(default)]
    pub fields: JiraFields,
}

/// A workflow transition the issue can take now, and the status it leads to.
#[derive(Debug, Clone, Deserialize)]
pub struct JiraTransition {
    #[serde(deserialize_with = "lenient_or_empty")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient_or_empty")]
    pub name: String,
    pub to: JiraStatus,
}

/// A comment: its body is ADF.
#[derive(Debug, Clone, Deserialize)]
pub struct JiraComment {
    #[serde(default)]
    pub body: Value,
    #[serde(default, deserialize_with = "lenient")]
    pub created: Option<String>,
}

/// One page of a search, and the token of the next (`None`: the last).
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub issues: Vec<JiraIssue>,
    pub next: Option<String>,
    /// Found records that could not be read (each logged), left out.
    pub malformed: usize,
}

/// Jira's times (`2026-05-20T10:00:07.123+0000`: an offset without a
/// colon) as unix milliseconds; RFC 3339 is taken too.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(ms) = crate::timestamps::parse_millis(s) {
        return Some(ms);
    }
    let n = s.len();
    let tail = s.get(n.checked_sub(5)?..)?;
    let sign = tail.as_bytes()[0];
    if (sign == b'+' || sign == b'-') && tail[1..].bytes().all(|b| b.is_ascii_digit()) {
        return crate::timestamps::parse_millis(&format!(
            "{}{}:{}",
            &s[..n - 5],
            &tail[..3],
            &tail[3..]
        ));
    }
    None
}

/// Standard base64 (RFC 4648, with padding), for the Basic credential.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A path segment (an issue or project key) as it may go into a URL: keys
/// are letters, digits, `_` and `-`; anything else is refused before a call.
fn segment(key: &str) -> Result<&str, ApiError> {
    if !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(key)
    } else {
        Err(ApiError::Config(format!(
            "{key:?} is not a Jira issue or project key"
        )))
    }
}

pub struct JiraClient {
    api: ApiClient,
}

impl JiraClient {
    /// `base_url` is the site (`https://<site>.atlassian.net`).
    pub fn new(
        base_url: &str,
        email: &str,
        token: &str,
        policy: CallPolicy,
    ) -> Result<JiraClient, ApiError> {
        let basic = format!("Basic {}", base64(format!("{email}:{token}").as_bytes()));
        Ok(JiraClient {
            api: ApiClient::new(
                "Jira",
                &format!("{}/rest/api/3", base_url.trim_end_matches('/')),
                Some(("Authorization", &basic)),
                policy,
            )?,
        })
    }

    pub fn api(&self) -> &ApiClient {
        &self.api
    }

    /// The account's display name (doctor).
    pub async fn myself(&self) -> Result<String, ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct U {
            #[serde(default)]
            display_name: String,
        }
        let u: U = self.api.get_json("/myself", &[]).await?;
        Ok(u.display_name)
    }

    /// An issue by key; `None` when Jira has none (or the account may not
    /// see it: Jira answers 404 for both).
    pub async fn issue(&self, key: &str) -> Result<Option<JiraIssue>, ApiError> {
        let r = self
            .api
            .call(
                Method::GET,
                &format!("/issue/{}", segment(key)?),
                &[("fields", ISSUE_FIELDS.join(","))],
                None,
            )
            .await?;
        match r.status {
            404 => Ok(None),
            _ if r.ok() => r.json().map(Some),
            _ => Err(r.error()),
        }
    }

    /// The transitions the issue can take now.
    pub async fn transitions(&self, key: &str) -> Result<Vec<JiraTransition>, ApiError> {
        #[derive(Deserialize)]
        struct T {
            #[serde(default)]
            transitions: Vec<JiraTransition>,
        }
        let t: T = self
            .api
            .get_json(&format!("/issue/{}/transitions", segment(key)?), &[])
            .await?;
        Ok(t.transitions)
    }

    /// Take transition `id` (Jira answers 204).
    pub async fn transition(&self, key: &str, id: &str) -> Result<(), ApiError> {
        let r = self
            .api
            .call(
                Method::POST,
                &format!("/issue/{}/transitions", segment(key)?),
                &[],
                Some(&json!({ "transition": { "id": id } })),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// One page of the issue's comments, oldest first, from `start_at`;
    /// the comments and the total.
    pub async fn comments_page(
        &self,
        key: &str,
        start_at: u64,
    ) -> Result<(Vec<JiraComment>, u64), ApiError> {
        #[derive(Deserialize)]
        struct P {
            #[serde(default)]
            comments: Vec<JiraComment>,
            #[serde(default)]
            total: u64,
        }
        let p: P = self
            .api
            .get_json(
                &format!("/issue/{}/comment", segment(key)?),
                &[
                    ("startAt", start_at.to_string()),
                    ("maxResults", "100".into()),
                    ("orderBy", "created".into()),
                ],
            )
            .await?;
        Ok((p.comments, p.total))
    }

    /// Comment on the issue with this ADF document (Jira answers 201).
    pub async fn add_comment(&self, key: &str, body: Value) -> Result<(), ApiError> {
        let r = self
            .api
            .call(
                Method::POST,
                &format!("/issue/{}/comment", segment(key)?),
                &[],
                Some(&json!({ "body": body })),
            )
            .await?;
        if r.ok() { Ok(()) } else { Err(r.error()) }
    }

    /// The names of every status of the project's workflows (doctor);
    /// `None` when the account sees no such project.
    pub async fn project_statuses(&self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        #[derive(Deserialize)]
        struct IssueType {
            #[serde(default)]
            statuses: Vec<JiraStatus>,
        }
        let r = self
            .api
            .call(
                Method::GET,
                &format!("/project/{}/statuses", segment(key)?),
                &[],
                None,
            )
            .await?;
        if r.status == 404 {
            return Ok(None);
        }
        if !r.ok() {
            return Err(r.error());
        }
        let types: Vec<IssueType> = r.json()?;
        let mut names: Vec<String> = types
            .into_iter()
            .flat_map(|t| t.statuses)
            .map(|s| s.name)
            .collect();
        names.sort();
        names.dedup();
        Ok(Some(names))
    }

    /// One page of the issues `jql` finds (`POST /search/jql`).
    pub async fn search_page(&self, jql: &str, next: Option<&str>) -> Result<SearchPage, ApiError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct R {
            #[serde(default)]
            issues: Vec<Value>,
            #[serde(default)]
            next_page_token: Option<String>,
            #[serde(default)]
            is_last: Option<bool>,
        }
        let mut body = json!({ "jql": jql, "fields": SEARCH_FIELDS, "maxResults": 100 });
        if let Some(t) = next {
            body["nextPageToken"] = json!(t);
        }
        let r = self
            .api
            .call(Method::POST, "/search/jql", &[], Some(&body))
            .await?;
        if !r.ok() {
            return Err(r.error());
        }
        let p: R = r.json()?;
        // The last page may leave the token out or send it with `isLast`.
        let next = p
            .next_page_token
            .filter(|t| !t.is_empty() && p.is_last != Some(true));
        // Record by record: one issue orch cannot read must not hide the
        // others from the reconciler.
        let listed = r.records::<JiraIssue>(p.issues);
        Ok(SearchPage {
            malformed: listed.malformed(),
            issues: listed.items,
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_and_jira_times() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"a@b.c:tok"), "YUBiLmM6dG9r");
        assert_eq!(
            parse_time("2024-05-09T10:01:11.000+0200"),
            Some(1_715_241_671_000)
        );
        assert_eq!(parse_time("2024-05-09T08:01:11Z"), Some(1_715_241_671_000));
        assert_eq!(parse_time("+0000"), None);
        assert_eq!(parse_time("é+0000"), None);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn keys_that_are_not_keys_never_reach_a_url() {
        assert!(segment("ENG-42").is_ok());
        for bad in ["", "../x", "ENG 1", "a/b", "x?y", "%2e"] {
            assert!(segment(bad).is_err(), "{bad:?}");
        }
    }
}
