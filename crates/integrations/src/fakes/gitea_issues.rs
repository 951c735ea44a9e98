//! The fake Gitea's issues, labels and comments, built from Gitea 1.26.3's
//! `swagger.v1.json` (`tests/fixtures/gitea/swagger-issues.json` holds the
//! excerpt): the same paths, field names and status codes, and Gitea's
//! paging (`page`, `limit` cut to `MAX_RESPONSE_ITEMS` = 50,
//! `X-Total-Count`). A contract test checks every route and field against
//! the swagger file.

use super::gitea::GiteaModel;
use super::{json, now_rfc3339};
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

/// Gitea's default `MAX_RESPONSE_ITEMS`.
const MAX_RESPONSE_ITEMS: usize = 50;

#[derive(Debug, Clone)]
pub struct FakeLabel {
    pub id: i64,
    pub name: String,
    pub color: String,
}

#[derive(Debug, Clone)]
pub struct FakeComment {
    pub id: i64,
    pub body: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone)]
pub struct FakeIssue {
    pub number: u64,
    pub title: String,
    pub body: String,
    /// Label ids, in the order they were added.
    pub labels: Vec<i64>,
    pub comments: Vec<FakeComment>,
    pub closed: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl GiteaModel {
    fn next_id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// The label named `name` (exactly), created if the repository lacks it.
    pub fn label(&mut self, name: &str) -> i64 {
        if let Some(l) = self.labels.iter().find(|l| l.name == name) {
            return l.id;
        }
        let id = self.next_id();
        self.labels.push(FakeLabel {
            id,
            name: name.into(),
            color: "ededed".into(),
        });
        id
    }

    /// Add issue `number` with these labels (created in the repository as needed).
    pub fn add_issue(&mut self, number: u64, title: &str, labels: &[&str]) {
        let labels = labels.iter().map(|n| self.label(n)).collect();
        let now = now_rfc3339(false);
        self.issues.insert(
            number,
            FakeIssue {
                number,
                title: title.into(),
                body: format!("{title}: the details."),
                labels,
                comments: Vec::new(),
                closed: false,
                created_at: now.clone(),
                updated_at: now,
            },
        );
    }

    /// The names of issue `number`'s labels, in order.
    pub fn label_names(&self, number: u64) -> Vec<String> {
        self.issues
            .get(&number)
            .map(|i| {
                i.labels
                    .iter()
                    .filter_map(|id| self.labels.iter().find(|l| l.id == *id))
                    .map(|l| l.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn label_json(&self, id: i64) -> Option<Value> {
        self.labels.iter().find(|l| l.id == id).map(|l| {
            json!({
                "id": l.id, "name": l.name, "color": l.color, "description": "",
                "exclusive": false, "is_archived": false,
                "url": format!("/api/v1/repos/{}/labels/{}", self.full_name, l.id),
            })
        })
    }

    /// Gitea's `Issue`: only the definition's fields.
    pub fn issue_json(&self, i: &FakeIssue) -> Value {
        let labels: Vec<Value> = i
            .labels
            .iter()
            .filter_map(|id| self.label_json(*id))
            .collect();
        json!({
            "id": 1000 + i.number, "number": i.number, "title": i.title, "body": i.body,
            "labels": labels, "state": if i.closed { "closed" } else { "open" },
            "comments": i.comments.len(), "created_at": i.created_at, "updated_at": i.updated_at,
            "closed_at": null, "due_date": null, "pull_request": null, "milestone": null,
            "assignee": null, "assignees": null, "is_locked": false, "ref": "",
            "html_url": format!("/{}/issues/{}", self.full_name, i.number),
            "url": format!("/api/v1/repos/{}/issues/{}", self.full_name, i.number),
            "user": {"id": 1, "login": "person"},
        })
    }

    fn comment_json(&self, number: u64, c: &FakeComment) -> Value {
        json!({
            "id": c.id, "body": c.body, "created_at": c.created_at, "updated_at": c.updated_at,
            "html_url": format!("/{}/issues/{number}#issuecomment-{}", self.full_name, c.id),
            "issue_url": format!("/{}/issues/{number}", self.full_name),
            "pull_request_url": "", "original_author": "", "original_author_id": 0,
            "assets": [], "user": {"id": 1, "login": "person"},
        })
    }

    /// A person comments on issue `number` now.
    pub fn person_comments(&mut self, number: u64, body: &str) {
        let id = self.next_id();
        let now = now_rfc3339(false);
        if let Some(i) = self.issues.get_mut(&number) {
            i.comments.push(FakeComment {
                id,
                body: body.into(),
                created_at: now.clone(),
                updated_at: now.clone(),
            });
            i.updated_at = now;
        }
    }

    /// A person adds `label` to issue `number` in Gitea's web UI, and the
    /// `issue_label` delivery Gitea then sends (`IssuePayload`, action
    /// `label_updated`, pretty-printed as Gitea's `json.MarshalIndent`).
    pub fn person_labels(&mut self, number: u64, label: &str) -> Vec<u8> {
        let id = self.label(label);
        let now = now_rfc3339(false);
        if let Some(i) = self.issues.get_mut(&number) {
            if !i.labels.contains(&id) {
                i.labels.push(id);
            }
            i.updated_at = now;
        }
        let issue = self.issues.get(&number).cloned();
        let payload = json!({
            "action": "label_updated",
            "number": number,
            "issue": issue.map(|i| self.issue_json(&i)),
            "repository": {"id": 1, "name": self.full_name.rsplit('/').next(), "full_name": self.full_name},
            "sender": {"id": 1, "login": "person"},
            "commit_id": "",
        });
        serde_json::to_vec_pretty(&payload).unwrap_or_default()
    }
}

fn query(req: &Request) -> Vec<(String, String)> {
    req.url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `page` and `limit` as Gitea reads them: 1-based, the limit cut to
/// `MAX_RESPONSE_ITEMS`; the page's items and the `X-Total-Count` header.
fn paged(req: &Request, all: Vec<Value>) -> ResponseTemplate {
    let q = query(req);
    let get = |k: &str| {
        q.iter()
            .find(|(a, _)| a == k)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let limit = get("limit").unwrap_or(30).clamp(1, MAX_RESPONSE_ITEMS);
    let page = get("page").unwrap_or(1).max(1);
    let total = all.len();
    let items: Vec<Value> = all
        .into_iter()
        .skip((page - 1) * limit)
        .take(limit)
        .collect();
    json(200, Value::Array(items)).insert_header("X-Total-Count", total.to_string().as_str())
}

fn not_found() -> ResponseTemplate {
    // Gitea's `notFound` response: an empty body… with its APIError.
    json(
        404,
        json!({"message": "The target couldn't be found.", "url": ""}),
    )
}

fn validation(msg: &str) -> ResponseTemplate {
    json(422, json!({"message": msg, "url": ""}))
}

fn millis(s: &str) -> Option<i64> {
    crate::timestamps::parse_millis(s)
}

/// Routes under `/repos/{owner}/{repo}` for issues and labels; `None` when
/// `rest` is not one of them.
pub(crate) fn respond(
    m: &mut GiteaModel,
    req: &Request,
    rest: &str,
    body: &Value,
) -> Option<ResponseTemplate> {
    let method = req.method.as_str();
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    Some(match (method, parts.as_slice()) {
        ("GET", ["labels"]) => {
            let all = m.labels.iter().filter_map(|l| m.label_json(l.id)).collect();
            paged(req, all)
        }
        ("POST", ["labels"]) => {
            let (Some(name), Some(color)) = (body["name"].as_str(), body["color"].as_str()) else {
                return Some(validation("name and color are required"));
            };
            let id = m.next_id();
            m.labels.push(FakeLabel {
                id,
                name: name.into(),
                color: color.trim_start_matches('#').into(),
            });
            json(201, m.label_json(id).unwrap_or_default())
        }
        ("GET", ["issues"]) => {
            let q = query(req);
            let since = q
                .iter()
                .find(|(k, _)| k == "since")
                .and_then(|(_, v)| millis(v));
            let want_pulls = q.iter().any(|(k, v)| k == "type" && v == "pulls");
            let state = q
                .iter()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.as_str())
                .unwrap_or("open");
            // The fake's issues are never pull requests.
            let mut list: Vec<&FakeIssue> = m
                .issues
                .values()
                .filter(|_| !want_pulls)
                .filter(|i| match state {
                    "closed" => i.closed,
                    "all" => true,
                    _ => !i.closed,
                })
                .filter(|i| since.is_none_or(|s| millis(&i.updated_at).is_some_and(|u| u >= s)))
                .collect();
            list.sort_by_key(|i| std::cmp::Reverse(i.number));
            let all = list.into_iter().map(|i| m.issue_json(i)).collect();
            paged(req, all)
        }
        (_, ["issues", n, tail @ ..]) => {
            let Ok(n) = n.parse::<u64>() else {
                return Some(not_found());
            };
            if !m.issues.contains_key(&n) {
                return Some(not_found());
            }
            issue_route(m, req, n, tail, body)?
        }
        _ => return None,
    })
}

fn issue_route(
    m: &mut GiteaModel,
    req: &Request,
    n: u64,
    tail: &[&str],
    body: &Value,
) -> Option<ResponseTemplate> {
    let now = now_rfc3339(false);
    let issue_labels = |m: &GiteaModel| {
        let ids = m.issues[&n].labels.clone();
        Value::Array(ids.iter().filter_map(|id| m.label_json(*id)).collect())
    };
    Some(match (req.method.as_str(), tail) {
        ("GET", []) => {
            let answer = json(200, m.issue_json(&m.issues[&n]));
            if m.person_adds_after_read
                .front()
                .is_some_and(|(i, _)| *i == n)
                && let Some((_, label)) = m.person_adds_after_read.pop_front()
            {
                let id = m.label(&label);
                m.issues.get_mut(&n)?.labels.push(id);
            }
            answer
        }
        ("GET", ["labels"]) => json(200, issue_labels(m)),
        ("POST" | "PUT", ["labels"]) => {
            // Ids or names; Gitea drops the ones the repository lacks.
            let wanted: Vec<i64> = body["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| match v {
                    Value::Number(id) => id
                        .as_i64()
                        .filter(|id| m.labels.iter().any(|l| l.id == *id)),
                    Value::String(name) => m.labels.iter().find(|l| l.name == *name).map(|l| l.id),
                    _ => None,
                })
                .collect();
            let issue = m.issues.get_mut(&n)?;
            if req.method.as_str() == "PUT" {
                issue.labels.clear();
            }
            for id in wanted {
                if !issue.labels.contains(&id) {
                    issue.labels.push(id);
                }
            }
            issue.updated_at = now;
            json(200, issue_labels(m))
        }
        ("DELETE", ["labels", id]) => {
            let Some(id) = id
                .parse::<i64>()
                .ok()
                .filter(|id| m.labels.iter().any(|l| l.id == *id))
            else {
                return Some(validation("label does not exist"));
            };
            let issue = m.issues.get_mut(&n)?;
            issue.labels.retain(|l| *l != id);
            issue.updated_at = now;
            ResponseTemplate::new(204)
        }
        ("GET", ["comments"]) => {
            let since = query(req)
                .into_iter()
                .find(|(k, _)| k == "since")
                .and_then(|(_, v)| millis(&v));
            let list: Vec<Value> = m.issues[&n]
                .comments
                .iter()
                .filter(|c| since.is_none_or(|s| millis(&c.updated_at).is_some_and(|u| u >= s)))
                .map(|c| m.comment_json(n, c))
                .collect();
            json(200, Value::Array(list))
        }
        ("POST", ["comments"]) => {
            let Some(text) = body["body"].as_str() else {
                return Some(validation("body is required"));
            };
            let id = m.next_id();
            let c = FakeComment {
                id,
                body: text.into(),
                created_at: now.clone(),
                updated_at: now.clone(),
            };
            let out = m.comment_json(n, &c);
            let issue = m.issues.get_mut(&n)?;
            issue.comments.push(c);
            issue.updated_at = now;
            json(201, out)
        }
        _ => json(405, json!({"message": "method not allowed", "url": ""})),
    })
}
