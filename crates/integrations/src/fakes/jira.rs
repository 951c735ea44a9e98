//! A fake Jira Cloud (REST API v3): projects whose workflow has a status
//! list and a global transition into each status (a team's simplified
//! workflow; a transition can be taken away to model a stricter one),
//! issues with a status, an ADF description and ADF comments, and the
//! answers to the calls orch makes, in the shapes of Jira's OpenAPI
//! description and webhook payloads (`tests/fixtures/jira/`, `SOURCES.md`).
//!
//! Faithful where orch could go wrong: Basic auth is checked (401
//! otherwise); a transition not offered from the issue's status is 400; a
//! comment body that is not an ADF document is 400; the JQL search
//! (`POST /search/jql`) understands only the queries orch sends and answers
//! anything else with Jira's "Error in the JQL Query"; its pages hand out
//! an opaque `nextPageToken` and leave it out on the last page; a 429
//! carries `Retry-After` and Jira's ISO `X-RateLimit-Reset`.

use super::{Seen, json, seen};
use crate::jira::adf;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Debug, Clone)]
pub struct JrFakeStatus {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct JrFakeProject {
    pub id: String,
    pub key: String,
    pub statuses: Vec<JrFakeStatus>,
    /// Status ids the workflow has no transition into.
    pub no_transition_to: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct JrFakeComment {
    pub id: u64,
    /// ADF, as posted or as a person's editor writes it.
    pub body: Value,
    /// Unix milliseconds.
    pub created: i64,
    pub by_orch: bool,
}

#[derive(Debug, Clone)]
pub struct JrFakeIssue {
    pub id: String,
    pub key: String,
    pub project: String,
    pub summary: String,
    pub description: Value,
    pub status_id: String,
    /// Unix milliseconds of the last change.
    pub updated: i64,
    pub comments: Vec<JrFakeComment>,
    /// The changelog id of the last status change (webhooks carry it).
    pub last_change: u64,
}

/// One request and its `Authorization` header.
#[derive(Debug, Clone)]
pub struct SeenJira {
    pub seen: Seen,
    pub authorization: Option<String>,
}

pub struct JiraModel {
    /// `Basic base64(email:token)`.
    pub credential: String,
    pub projects: Vec<JrFakeProject>,
    pub issues: BTreeMap<String, JrFakeIssue>,
    /// Records a search answers first that orch cannot read (a broken or
    /// hostile server's): `add_malformed_issue`.
    pub malformed: Vec<Value>,
    pub requests: Vec<SeenJira>,
    /// Statuses of the next answers (500: an outage; 429: rate limited,
    /// with `Retry-After: retry_after_secs`).
    pub fail_next: VecDeque<u16>,
    pub retry_after_secs: u64,
    /// Unix milliseconds: moves on with every change, never behind the
    /// wall clock.
    clock: i64,
    next_id: u64,
}

impl JiraModel {
    fn tick(&mut self) -> i64 {
        self.clock = (self.clock + 1).max(now_ms());
        self.clock
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        10_000 + self.next_id
    }

    pub(super) fn project(&self, key: &str) -> Option<&JrFakeProject> {
        self.projects.iter().find(|p| p.key == key)
    }

    fn status(&self, project: &str, id: &str) -> Option<&JrFakeStatus> {
        self.project(project)?.statuses.iter().find(|s| s.id == id)
    }

    fn issue_by(&self, id_or_key: &str) -> Option<&JrFakeIssue> {
        self.issues
            .get(id_or_key)
            .or_else(|| self.issues.values().find(|i| i.id == id_or_key))
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as Jira writes times (`2026-05-20T10:00:07.123+0000`).
pub fn jira_time(ms: i64) -> String {
    let secs = crate::timestamps::format_millis(ms);
    format!(
        "{}.{:03}+0000",
        secs.trim_end_matches('Z'),
        ms.rem_euclid(1000)
    )
}

const SITE: &str = "https://your-domain.atlassian.net";

pub struct FakeJira {
    pub server: MockServer,
    pub model: Arc<Mutex<JiraModel>>,
}

struct Responder(Arc<Mutex<JiraModel>>);

impl FakeJira {
    /// A site that takes `email` and `token` (Basic auth).
    pub async fn start(email: &str, token: &str) -> FakeJira {
        let server = MockServer::start().await;
        let credential = format!(
            "Basic {}",
            crate::jira::client::base64(format!("{email}:{token}").as_bytes())
        );
        let model = Arc::new(Mutex::new(JiraModel {
            credential,
            projects: Vec::new(),
            issues: BTreeMap::new(),
            malformed: Vec::new(),
            requests: Vec::new(),
            fail_next: VecDeque::new(),
            retry_after_secs: 1,
            clock: 0,
            next_id: 0,
        }));
        Mock::given(any())
            .respond_with(Responder(model.clone()))
            .mount(&server)
            .await;
        FakeJira { server, model }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn m(&self) -> std::sync::MutexGuard<'_, JiraModel> {
        self.model.lock().unwrap()
    }

    /// A project whose workflow has these statuses, each reachable from any
    /// other (global transitions).
    pub fn add_project(&self, key: &str, statuses: &[&str]) {
        let mut m = self.m();
        let id = m.id().to_string();
        let statuses = statuses
            .iter()
            .map(|n| JrFakeStatus {
                id: m.id().to_string(),
                name: n.to_string(),
            })
            .collect();
        m.projects.push(JrFakeProject {
            id,
            key: key.into(),
            statuses,
            no_transition_to: BTreeSet::new(),
        });
    }

    /// The project's workflow loses its transition into `status`.
    pub fn remove_transition_to(&self, project: &str, status: &str) {
        let id = self.status_id(project, status);
        let mut m = self.m();
        let p = m
            .projects
            .iter_mut()
            .find(|p| p.key == project)
            .expect("no such project");
        p.no_transition_to.insert(id);
    }

    /// Issue `<project>-<number>` in the status named `status`.
    pub fn add_issue(&self, key: &str, summary: &str, status: &str) {
        let project = key.rsplit_once('-').expect("KEY-N").0.to_owned();
        let status_id = self.status_id(&project, status);
        let mut m = self.m();
        let id = m.id().to_string();
        let updated = m.tick();
        m.issues.insert(
            key.into(),
            JrFakeIssue {
                id,
                key: key.into(),
                project,
                summary: summary.into(),
                description: adf::from_text(&format!("{summary}: as described by a person.")),
                status_id,
                updated,
                comments: vec![],
                last_change: 0,
            },
        );
    }

    /// The issue was last changed `ms` earlier than the fake says (an old
    /// issue, outside a recent search's window).
    pub fn backdate(&self, key: &str, ms: i64) {
        let mut m = self.m();
        let i = m.issues.get_mut(key).expect("no such issue");
        i.updated -= ms;
    }

    /// A record every search answers first that is no issue orch can read
    /// (`record`, e.g. fields that are a number).
    pub fn add_malformed_issue(&self, record: Value) {
        self.m().malformed.push(record);
    }

    /// The id of the project's status named `name`.
    pub fn status_id(&self, project: &str, name: &str) -> String {
        self.m()
            .project(project)
            .and_then(|p| p.statuses.iter().find(|s| s.name == name))
            .expect("no such project or status")
            .id
            .clone()
    }

    /// The name of the issue's status.
    pub fn status_of(&self, key: &str) -> String {
        let m = self.m();
        let i = &m.issues[key];
        m.status(&i.project, &i.status_id)
            .expect("status")
            .name
            .clone()
    }

    /// A person moves the issue in Jira's board.
    pub fn person_moves(&self, key: &str, status: &str) {
        let project = key.rsplit_once('-').expect("KEY-N").0.to_owned();
        let sid = self.status_id(&project, status);
        let mut m = self.m();
        let t = m.tick();
        let change = m.id();
        let i = m.issues.get_mut(key).expect("no such issue");
        i.status_id = sid;
        i.updated = t;
        i.last_change = change;
    }

    /// A person comments on the issue (now), in ADF as Jira's editor writes it.
    pub fn person_comments(&self, key: &str, text: &str) {
        let mut m = self.m();
        let t = m.tick();
        let id = m.id();
        let i = m.issues.get_mut(key).expect("no such issue");
        i.comments.push(JrFakeComment {
            id,
            body: adf::from_text(text),
            created: t,
            by_orch: false,
        });
    }

    /// The comments' text (ADF read back as text).
    pub fn comments_of(&self, key: &str) -> Vec<String> {
        self.m().issues[key]
            .comments
            .iter()
            .map(|c| adf::to_text(&c.body))
            .collect()
    }

    /// `METHOD path` of each request received, in order (paths under
    /// `/rest/api/3`, without it).
    pub fn calls(&self) -> Vec<String> {
        self.m()
            .requests
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.seen.method,
                    r.seen.path.trim_start_matches("/rest/api/3")
                )
            })
            .collect()
    }

    /// The webhook Jira sends for the issue's last status change
    /// (`jira:issue_updated` with a `status` changelog item from the status
    /// `previous`), or for its creation (`jira:issue_created`, no
    /// changelog) when `previous` is `None`.
    pub fn issue_webhook(&self, key: &str, previous: Option<&str>) -> Value {
        let m = self.m();
        let i = &m.issues[key];
        let p = m.project(&i.project).expect("project");
        let s = m.status(&i.project, &i.status_id).expect("status");
        let mut v = json!({
            "timestamp": i.updated,
            "webhookEvent": if previous.is_some() { "jira:issue_updated" } else { "jira:issue_created" },
            "issue_event_type_name": if previous.is_some() { "issue_generic" } else { "issue_created" },
            "user": {
                "self": format!("{SITE}/rest/api/2/user?accountId=5b10ac8d82e05b22cc7d4ef5"),
                "accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "A person", "active": true,
                "timeZone": "Europe/Berlin", "accountType": "atlassian"
            },
            "issue": {
                "id": i.id,
                "self": format!("{SITE}/rest/api/2/{}", i.id),
                "key": i.key,
                "fields": {
                    "summary": i.summary,
                    "status": status_json(s),
                    "project": { "self": format!("{SITE}/rest/api/2/project/{}", p.id), "id": p.id, "key": p.key, "name": p.key, "projectTypeKey": "software", "simplified": true },
                    "created": jira_time(i.updated),
                    "updated": jira_time(i.updated),
                    "issuetype": { "id": "10001", "name": "Task", "subtask": false }
                }
            }
        });
        if let Some(prev) = previous {
            let from = p
                .statuses
                .iter()
                .find(|x| x.name == prev)
                .expect("no such status");
            v["changelog"] = json!({
                "id": i.last_change.to_string(),
                "items": [{
                    "field": "status", "fieldtype": "jira", "fieldId": "status",
                    "from": from.id, "fromString": from.name,
                    "to": s.id, "toString": s.name
                }]
            });
        }
        v
    }
}

fn status_json(s: &JrFakeStatus) -> Value {
    json!({
        "self": format!("{SITE}/rest/api/3/status/{}", s.id),
        "description": "", "iconUrl": format!("{SITE}/images/icons/statuses/generic.png"),
        "name": s.name, "id": s.id,
        "statusCategory": { "self": format!("{SITE}/rest/api/3/statuscategory/4"), "id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress" }
    })
}

/// Jira's error body.
pub(super) fn error(status: u16, message: &str) -> ResponseTemplate {
    json(status, json!({ "errorMessages": [message], "errors": {} }))
}

/// An issue as `GET /issue` and the search return it, with the fields asked
/// for (`*all` or none asked: every field the fake has).
pub(super) fn issue_json(m: &JiraModel, i: &JrFakeIssue, fields: &[String]) -> Value {
    let p = m.project(&i.project).expect("project");
    let s = m.status(&i.project, &i.status_id).expect("status");
    let all = json!({
        "summary": i.summary,
        "description": i.description,
        "status": status_json(s),
        "updated": jira_time(i.updated),
        "created": jira_time(i.updated),
        "project": { "self": format!("{SITE}/rest/api/3/project/{}", p.id), "id": p.id, "key": p.key, "name": p.key },
    });
    let wanted = |k: &str| fields.is_empty() || fields.iter().any(|f| f == k || f == "*all");
    let fields: serde_json::Map<String, Value> = all
        .as_object()
        .expect("object")
        .iter()
        .filter(|(k, _)| wanted(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({
        "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
        "id": i.id,
        "self": format!("{SITE}/rest/api/3/issue/{}", i.id),
        "key": i.key,
        "fields": fields,
    })
}

fn comment_json(c: &JrFakeComment, issue: &JrFakeIssue) -> Value {
    let author = if c.by_orch {
        json!({ "accountId": "5b10a2844c20165700ede21g", "displayName": "orch bot", "active": true })
    } else {
        json!({ "accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "A person", "active": true })
    };
    json!({
        "self": format!("{SITE}/rest/api/3/issue/{}/comment/{}", issue.id, c.id),
        "id": c.id.to_string(),
        "author": author.clone(), "updateAuthor": author,
        "body": c.body,
        "created": jira_time(c.created), "updated": jira_time(c.created),
        "jsdPublic": true,
    })
}

/// A document Jira takes as a comment body: `type: doc`, `version: 1`,
/// `content` an array of nodes that each have a `type`.
fn is_adf_doc(v: &Value) -> bool {
    v["type"] == "doc"
        && v["version"] == 1
        && v["content"]
            .as_array()
            .is_some_and(|c| c.iter().all(|n| n["type"].is_string()))
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut m = self.0.lock().unwrap();
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        m.requests.push(SeenJira {
            seen: seen(req),
            authorization: auth.clone(),
        });
        if let Some(s) = m.fail_next.pop_front() {
            let r = error(s, "injected failure");
            return if s == 429 {
                let reset = jira_time(now_ms() + m.retry_after_secs as i64 * 1000);
                r.insert_header("Retry-After", m.retry_after_secs.to_string().as_str())
                    .insert_header("X-RateLimit-Remaining", "0")
                    .insert_header("X-RateLimit-Reset", reset.as_str())
                    .insert_header("RateLimit-Reason", "jira-burst-based")
            } else {
                r
            };
        }
        if auth.as_deref() != Some(m.credential.as_str()) {
            return ResponseTemplate::new(401)
                .set_body_string("Client must be authenticated to access this resource.");
        }
        let Some(path) = req.url.path().strip_prefix("/rest/api/3/") else {
            return ResponseTemplate::new(404);
        };
        let parts: Vec<&str> = path.split('/').collect();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let query: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("GET", ["myself"]) => json(
                200,
                json!({ "self": format!("{SITE}/rest/api/3/user?accountId=5b10a2844c20165700ede21g"),
                        "accountId": "5b10a2844c20165700ede21g", "accountType": "atlassian",
                        "displayName": "orch bot", "active": true, "timeZone": "UTC" }),
            ),
            ("GET", ["issue", key]) => {
                let fields: Vec<String> = query
                    .get("fields")
                    .map(|f| f.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                match m.issue_by(key) {
                    Some(i) => json(200, issue_json(&m, i, &fields)),
                    None => error(
                        404,
                        "Issue does not exist or you do not have permission to see it.",
                    ),
                }
            }
            ("GET", ["issue", key, "transitions"]) => {
                let Some(i) = m.issue_by(key) else {
                    return error(
                        404,
                        "Issue does not exist or you do not have permission to see it.",
                    );
                };
                json(
                    200,
                    json!({ "expand": "transitions", "transitions": transitions(&m, i) }),
                )
            }
            ("POST", ["issue", key, "transitions"]) => {
                let Some(i) = m.issue_by(key).cloned() else {
                    return error(
                        404,
                        "Issue does not exist or you do not have permission to see it.",
                    );
                };
                let id = body
                    .pointer("/transition/id")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let Some(to) = transitions(&m, &i)
                    .iter()
                    .find(|t| t["id"] == id)
                    .and_then(|t| t["to"]["id"].as_str().map(str::to_owned))
                else {
                    return error(
                        400,
                        &format!("Transition id '{id}' is not valid for this issue."),
                    );
                };
                let t = m.tick();
                let change = m.id();
                let i = m.issues.get_mut(&i.key).expect("found above");
                i.status_id = to;
                i.updated = t;
                i.last_change = change;
                ResponseTemplate::new(204)
            }
            ("GET", ["issue", key, "comment"]) => {
                let Some(i) = m.issue_by(key) else {
                    return error(
                        404,
                        "Issue does not exist or you do not have permission to see it.",
                    );
                };
                let start: usize = query
                    .get("startAt")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let max: usize = query
                    .get("maxResults")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(5000)
                    .min(5000);
                let mut all: Vec<&JrFakeComment> = i.comments.iter().collect();
                if query.get("orderBy").map(String::as_str) == Some("-created") {
                    all.reverse();
                }
                let page: Vec<Value> = all
                    .iter()
                    .skip(start)
                    .take(max)
                    .map(|c| comment_json(c, i))
                    .collect();
                json(
                    200,
                    json!({ "comments": page, "maxResults": max, "startAt": start, "total": all.len() }),
                )
            }
            ("POST", ["issue", key, "comment"]) => {
                let Some(i) = m.issue_by(key).map(|i| i.key.clone()) else {
                    return error(
                        404,
                        "Issue does not exist or you do not have permission to see it.",
                    );
                };
                if !is_adf_doc(&body["body"]) {
                    return json(
                        400,
                        json!({ "errorMessages": [], "errors": { "comment": "Comment body is not valid!" } }),
                    );
                }
                let t = m.tick();
                let id = m.id();
                let issue = m.issues.get_mut(&i).expect("found above");
                issue.comments.push(JrFakeComment {
                    id,
                    body: body["body"].clone(),
                    created: t,
                    by_orch: true,
                });
                let issue = m.issues[&i].clone();
                let c = issue.comments.last().expect("just pushed");
                json(201, comment_json(c, &issue))
            }
            ("GET", ["project", key, "statuses"]) => match m.project(key) {
                Some(p) => {
                    let statuses: Vec<Value> = p.statuses.iter().map(status_json).collect();
                    json(
                        200,
                        json!([{ "id": "10001", "name": "Task", "subtask": false,
                                 "self": format!("{SITE}/rest/api/3/issueType/10001"),
                                 "statuses": statuses }]),
                    )
                }
                None => error(404, &format!("No project could be found with key '{key}'.")),
            },
            ("POST", ["search", "jql"]) => super::jira_search::search(&m, &body),
            _ => error(404, "Not found"),
        }
    }
}

/// The global transitions into every status but the issue's own (and those
/// the workflow lacks).
fn transitions(m: &JiraModel, i: &JrFakeIssue) -> Vec<Value> {
    let p = m.project(&i.project).expect("project");
    p.statuses
        .iter()
        .filter(|s| s.id != i.status_id && !p.no_transition_to.contains(&s.id))
        .map(|s| {
            json!({
                "id": (s.id.parse::<u64>().unwrap_or(0) + 100).to_string(),
                "name": format!("Move to {}", s.name),
                "to": status_json(s),
                "hasScreen": false, "isGlobal": true, "isInitial": false,
                "isAvailable": true, "isConditional": false, "looped": false,
            })
        })
        .collect()
}
