//! A fake Plane: projects with states, work items, comments with external
//! ids, cursor pagination, `X-API-Key`, trailing slashes, and a rate limit
//! that answers 429 with `Retry-After` when told to.

use super::{Seen, json, seen};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const UPDATED_TEMPLATE: &[u8] =
    include_bytes!("../../tests/fixtures/plane/plane-issue-updated.json");

#[derive(Debug, Clone)]
pub struct FakeItem {
    pub id: String,
    pub project: String,
    pub name: String,
    pub state: String,
    /// A counter turned into `updated_at`; moves on every change.
    pub version: u64,
    /// The item's number in its project (1, 2, … per project, as Plane
    /// numbers them); with the project's identifier, its key (`PROJ-1`).
    pub sequence_id: u64,
}

#[derive(Debug, Clone)]
pub struct FakeComment {
    pub id: String,
    pub item: String,
    pub html: String,
    pub external_source: Option<String>,
    pub external_id: Option<String>,
    /// RFC 3339 with microseconds, as Django writes it.
    pub created_at: String,
}

#[derive(Default)]
pub struct PlaneModel {
    pub workspace: String,
    pub api_key: String,
    /// project → (state id, name, group)
    pub states: BTreeMap<String, Vec<(String, String, String)>>,
    /// project → its `identifier` (`PROJ` unless set).
    pub identifiers: BTreeMap<String, String>,
    pub items: BTreeMap<String, FakeItem>,
    /// project → records listed first that orch cannot read (a hostile or
    /// broken server's): `add_malformed_item`.
    pub malformed: BTreeMap<String, Vec<Value>>,
    pub comments: Vec<FakeComment>,
    /// Statuses forced on the next requests (a 429 or 500 storm).
    pub fail_next: VecDeque<u16>,
    /// Statuses forced on the next requests for a project's states only
    /// (the states route down while the listings answer).
    pub fail_states_next: VecDeque<u16>,
    pub retry_after_secs: u64,
    pub requests: Vec<Seen>,
    clock: u64,
    next_id: u64,
}

impl PlaneModel {
    fn uuid(&mut self, kind: u8) -> String {
        self.next_id += 1;
        format!("{kind:02x}000000-0000-4000-8000-{:012x}", self.next_id)
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn identifier(&self, project: &str) -> String {
        self.identifiers
            .get(project)
            .cloned()
            .unwrap_or_else(|| "PROJ".into())
    }

    fn state_json(&self, project: &str, id: &str) -> Value {
        let (id, name, group) = self.states[project]
            .iter()
            .find(|s| s.0 == id)
            .cloned()
            .unwrap_or_default();
        json!({"id": id, "name": name, "color": "#000000", "group": group})
    }

    fn item_json(&self, it: &FakeItem) -> Value {
        json!({
            "id": it.id, "name": it.name, "state": it.state, "project": it.project,
            "workspace": "ws-uuid", "description_stripped": format!("{} (from Plane)", it.name),
            "updated_at": updated_at(it.version), "sequence_id": it.sequence_id, "labels": [], "assignees": [],
        })
    }
}

/// A comment as API v1's `IssueCommentSerializer` writes it: every model
/// field but `comment_stripped` and `comment_json`
/// (tests/fixtures/plane/README.md says where this comes from).
fn comment_json(c: &FakeComment, project: &str) -> Value {
    json!({
        "id": c.id, "created_at": c.created_at, "updated_at": c.created_at,
        "deleted_at": null, "comment_html": c.html, "attachments": [],
        "access": "INTERNAL", "external_source": c.external_source,
        "external_id": c.external_id, "edited_at": null,
        "created_by": "u5e20000-0000-4000-8000-000000000001", "updated_by": null,
        "project": project, "workspace": "ws-uuid", "issue": c.item,
        "actor": "u5e20000-0000-4000-8000-000000000001", "parent": null, "is_member": true,
    })
}

/// Distinct, ordered RFC 3339 instants.
fn updated_at(v: u64) -> String {
    format!(
        "2026-05-20T{:02}:{:02}:{:02}.{:06}Z",
        (v / 3600) % 24,
        (v / 60) % 60,
        v % 60,
        v
    )
}

pub struct FakePlane {
    pub server: MockServer,
    pub model: Arc<Mutex<PlaneModel>>,
}

struct Responder(Arc<Mutex<PlaneModel>>);

impl FakePlane {
    pub async fn start(workspace: &str, api_key: &str) -> FakePlane {
        let server = MockServer::start().await;
        let model = Arc::new(Mutex::new(PlaneModel {
            workspace: workspace.into(),
            api_key: api_key.into(),
            retry_after_secs: 1,
            ..PlaneModel::default()
        }));
        Mock::given(any())
            .respond_with(Responder(model.clone()))
            .mount(&server)
            .await;
        FakePlane { server, model }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    fn m(&self) -> std::sync::MutexGuard<'_, PlaneModel> {
        self.model.lock().unwrap()
    }

    /// A project with these states (Plane's groups do not matter to orch).
    pub fn add_project(&self, project: &str, states: &[&str]) {
        let mut m = self.m();
        let list = states
            .iter()
            .map(|n| (m.uuid(0x57), n.to_string(), "unstarted".to_string()))
            .collect();
        m.states.insert(project.into(), list);
    }

    /// The project's identifier (Plane: set when the project is created).
    pub fn set_identifier(&self, project: &str, identifier: &str) {
        self.m()
            .identifiers
            .insert(project.into(), identifier.into());
    }

    /// The key Plane shows for an item: `<PROJECT IDENTIFIER>-<sequence_id>`.
    pub fn key(&self, item: &str) -> String {
        let m = self.m();
        let it = &m.items[item];
        format!("{}-{}", m.identifier(&it.project), it.sequence_id)
    }

    pub fn state_id(&self, project: &str, name: &str) -> String {
        self.m().states[project]
            .iter()
            .find(|s| s.1 == name)
            .map(|s| s.0.clone())
            .unwrap_or_else(|| panic!("no state {name}"))
    }

    pub fn add_item(&self, project: &str, name: &str, state: &str) -> String {
        let sid = self.state_id(project, state);
        let mut m = self.m();
        let id = m.uuid(0x1e);
        let version = m.tick();
        let sequence_id = m.items.values().filter(|i| i.project == project).count() as u64 + 1;
        m.items.insert(
            id.clone(),
            FakeItem {
                id: id.clone(),
                project: project.into(),
                name: name.into(),
                state: sid,
                version,
                sequence_id,
            },
        );
        id
    }

    /// A record in the project's listing that is no work item orch can
    /// read (`record`, e.g. an id that is a number), listed first.
    pub fn add_malformed_item(&self, project: &str, record: Value) {
        self.m()
            .malformed
            .entry(project.to_owned())
            .or_default()
            .push(record);
    }

    /// A person moves the item in Plane's web app; returns the webhook body
    /// Plane would send (v1, `activity.field = "state_id"`).
    pub fn move_item(&self, item: &str, state: &str) -> Vec<u8> {
        let project = self.m().items[item].project.clone();
        let sid = self.state_id(&project, state);
        let mut m = self.m();
        let version = m.tick();
        let old = {
            let it = m.items.get_mut(item).unwrap();
            let old = std::mem::replace(&mut it.state, sid.clone());
            it.version = version;
            old
        };
        let it = m.items[item].clone();
        let mut v: Value = serde_json::from_slice(UPDATED_TEMPLATE).unwrap();
        v["data"]["id"] = it.id.clone().into();
        v["data"]["name"] = it.name.clone().into();
        v["data"]["project"] = it.project.clone().into();
        v["data"]["state"] = m.state_json(&project, &sid);
        v["data"]["updated_at"] = updated_at(version).into();
        v["data"]["sequence_id"] = it.sequence_id.into();
        v["activity"]["field"] = "state_id".into();
        v["activity"]["old_value"] = old.into();
        v["activity"]["new_value"] = sid.into();
        serde_json::to_vec(&v).unwrap()
    }

    pub fn item_state(&self, item: &str) -> String {
        let m = self.m();
        let it = &m.items[item];
        m.states[&it.project]
            .iter()
            .find(|s| s.0 == it.state)
            .map(|s| s.1.clone())
            .unwrap_or_default()
    }

    pub fn comments(&self, item: &str) -> Vec<String> {
        self.m()
            .comments
            .iter()
            .filter(|c| c.item == item)
            .map(|c| c.html.clone())
            .collect()
    }

    /// A person comments on the item in Plane's web app (now): HTML, no
    /// external source.
    pub fn person_comments(&self, item: &str, html: &str) {
        let mut m = self.m();
        let id = m.uuid(0xc0);
        m.comments.push(FakeComment {
            id,
            item: item.into(),
            html: html.into(),
            external_source: None,
            external_id: None,
            created_at: super::now_rfc3339(true),
        });
    }

    /// The next `n` requests get `status` (429 carries `Retry-After`).
    pub fn fail_next(&self, status: u16, n: usize) {
        let mut m = self.m();
        for _ in 0..n {
            m.fail_next.push_back(status);
        }
    }

    /// The next `n` requests for a project's states get `status`.
    pub fn fail_states_next(&self, status: u16, n: usize) {
        let mut m = self.m();
        for _ in 0..n {
            m.fail_states_next.push_back(status);
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.m().requests.clone()
    }
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut m = self.0.lock().unwrap();
        m.requests.push(seen(req));
        if let Some(status) = m.fail_next.pop_front() {
            let mut r = json(status, json!({"error": "injected"}));
            if status == 429 {
                r = r.insert_header("Retry-After", m.retry_after_secs.to_string().as_str());
            }
            return r;
        }
        if req.url.path().ends_with("/states/")
            && let Some(status) = m.fail_states_next.pop_front()
        {
            return json(status, json!({"error": "injected"}));
        }
        let key = req
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if key != m.api_key {
            return json(401, json!({"detail": "Invalid API key"}));
        }
        let path = req.url.path().to_owned();
        // Django: every route ends with a slash; without it, no route.
        if !path.ends_with('/') {
            return json(404, json!({"detail": "Not found (no trailing slash)"}));
        }
        let prefix = format!("/api/v1/workspaces/{}/projects/", m.workspace);
        let Some(rest) = path.strip_prefix(&prefix) else {
            return json(404, json!({"detail": "Not found"}));
        };
        let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
        let method = req.method.as_str();
        let query: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let project = parts[0].to_owned();
        if !m.states.contains_key(&project) {
            return json(404, json!({"detail": "Project not found"}));
        }
        match (method, &parts[1..]) {
            ("GET", []) => json(
                200,
                json!({"id": project, "identifier": m.identifier(&project), "name": "Project"}),
            ),
            ("GET", ["states"]) => {
                let results: Vec<Value> = m.states[&project]
                    .iter()
                    .map(|(id, name, group)| json!({"id": id, "name": name, "group": group, "color": "#000", "is_triage": false}))
                    .collect();
                json(200, page(results, &query))
            }
            ("GET", ["issues"]) | ("GET", ["work-items"]) => {
                let mut items: Vec<FakeItem> = m
                    .items
                    .values()
                    .filter(|i| i.project == project)
                    .cloned()
                    .collect();
                items.sort_by_key(|i| std::cmp::Reverse(i.version));
                let mut results: Vec<Value> =
                    m.malformed.get(&project).cloned().unwrap_or_default();
                results.extend(items.iter().map(|i| m.item_json(i)));
                json(200, page(results, &query))
            }
            ("GET", ["issues" | "work-items", id]) => match m.items.get(*id) {
                Some(it) if it.project == project => json(200, m.item_json(it)),
                _ => json(404, json!({"detail": "Issue not found"})),
            },
            ("PATCH", ["issues" | "work-items", id]) => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let Some(state) = body.get("state").and_then(Value::as_str).map(str::to_owned)
                else {
                    // `state_id` is not a field of the API serializer: ignored.
                    return match m.items.get(*id) {
                        Some(it) => json(200, m.item_json(it)),
                        None => json(404, json!({"detail": "Issue not found"})),
                    };
                };
                if !m.states[&project].iter().any(|s| s.0 == state) {
                    return json(
                        400,
                        json!({"error": "State is not valid please pass a valid state_id"}),
                    );
                }
                let version = m.tick();
                match m.items.get_mut(*id) {
                    Some(it) => {
                        it.state = state;
                        it.version = version;
                        let it = it.clone();
                        json(200, m.item_json(&it))
                    }
                    None => json(404, json!({"detail": "Issue not found"})),
                }
            }
            ("POST", ["issues" | "work-items", id, "comments"]) => {
                if !m.items.contains_key(*id) {
                    return json(404, json!({"detail": "Issue not found"}));
                }
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let ext = body
                    .get("external_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(e) = &ext
                    && m.comments
                        .iter()
                        .any(|c| c.item == *id && c.external_id.as_deref() == Some(e))
                {
                    return json(
                        409,
                        json!({"error": "Comment with the same external id and external source already exists", "id": "c"}),
                    );
                }
                let comment = FakeComment {
                    id: m.uuid(0xc0),
                    item: id.to_string(),
                    html: body
                        .get("comment_html")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    external_source: body
                        .get("external_source")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    external_id: ext,
                    created_at: super::now_rfc3339(true),
                };
                let v = comment_json(&comment, &project);
                m.comments.push(comment);
                json(201, v)
            }
            // API v1 lists a work item's comments newest first
            // (`-created_at`), paginated like every listing.
            ("GET", ["issues" | "work-items", id, "comments"]) => {
                if !m.items.contains_key(*id) {
                    return json(404, json!({"detail": "Issue not found"}));
                }
                let mut list: Vec<&FakeComment> =
                    m.comments.iter().filter(|c| c.item == *id).collect();
                list.reverse();
                let results = list.iter().map(|c| comment_json(c, &project)).collect();
                json(200, page(results, &query))
            }
            _ => json(404, json!({"detail": "Not found"})),
        }
    }
}

/// Plane's cursor pagination: `per_page:page:is_prev`.
fn page(all: Vec<Value>, q: &BTreeMap<String, String>) -> Value {
    let per: usize = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100)
        .clamp(1, 1000);
    let page: usize = q
        .get("cursor")
        .and_then(|c| c.split(':').nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let total = all.len();
    let results: Vec<Value> = all.into_iter().skip(page * per).take(per).collect();
    let more = (page + 1) * per < total;
    json!({
        "grouped_by": null, "sub_grouped_by": null, "total_count": total,
        "next_cursor": format!("{per}:{}:0", page + 1), "prev_cursor": format!("{per}:{}:1", page.saturating_sub(1)),
        "next_page_results": more, "prev_page_results": page > 0, "count": results.len(),
        "total_pages": total.div_ceil(per), "total_results": total, "extra_stats": null,
        "results": results,
    })
}
