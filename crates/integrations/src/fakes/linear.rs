//! A fake Linear GraphQL API: teams with workflow states, issues named by
//! identifier (`ENG-42`) with a state and comments, and the answers of the
//! operations orch sends (`linear::queries`, dispatched by operation name,
//! variables read as Linear reads them). Shapes follow Linear's published
//! schema and webhook payloads (`tests/fixtures/linear/`, `SOURCES.md`).
//! A missing issue is the `Entity not found` error Linear gives for its
//! non-null `issue(id:)`; a spent budget is HTTP 400 with the
//! `RATELIMITED` error code and the `X-RateLimit-Requests-*` headers.

use super::json;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Debug, Clone)]
pub struct LnFakeState {
    pub id: String,
    pub name: String,
    /// Linear's category (`unstarted`, `started`, `completed`, …).
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct LnFakeTeam {
    pub id: String,
    pub key: String,
    pub states: Vec<LnFakeState>,
}

#[derive(Debug, Clone)]
pub struct LnFakeComment {
    pub body: String,
    /// Unix milliseconds.
    pub created: i64,
}

#[derive(Debug, Clone)]
pub struct LnFakeIssue {
    pub id: String,
    pub identifier: String,
    pub team: String,
    pub title: String,
    pub state_id: String,
    /// Unix milliseconds of the last change.
    pub updated: i64,
    pub comments: Vec<LnFakeComment>,
}

/// One GraphQL request the fake received.
#[derive(Debug, Clone)]
pub struct SeenGql {
    pub operation: String,
    pub query: String,
    pub variables: Value,
    pub authorization: Option<String>,
}

pub struct LinearModel {
    pub api_key: String,
    pub teams: Vec<LnFakeTeam>,
    pub issues: BTreeMap<String, LnFakeIssue>,
    /// Records a team's issue listing answers first that orch cannot read
    /// (a broken or hostile server's): `add_malformed_issue`.
    pub malformed: Vec<Value>,
    pub requests: Vec<SeenGql>,
    /// Statuses of the next answers (500: an outage).
    pub fail_next: VecDeque<u16>,
    /// The next answers are Linear's rate-limit error (HTTP 400,
    /// `RATELIMITED`), with the requests budget reset this far ahead.
    pub rate_limited_next: u32,
    pub reset_after_ms: i64,
    /// The next successful answer says the complexity budget is spent
    /// (`X-RateLimit-Complexity-Remaining: 0`) until `reset_after_ms`.
    pub complexity_spent_next: bool,
    /// Unix milliseconds: the fake's clock moves on with every change, and
    /// never behind the wall clock.
    clock: i64,
    next_id: u64,
}

impl LinearModel {
    fn tick(&mut self) -> i64 {
        self.clock = (self.clock + 1).max(now_ms());
        self.clock
    }

    fn uuid(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!(
            "{:08x}-{kind:0>4}-4000-8000-{:012x}",
            self.next_id, self.next_id
        )
    }

    fn team(&self, key: &str) -> Option<&LnFakeTeam> {
        self.teams.iter().find(|t| t.key == key)
    }

    fn issue_by(&self, id: &str) -> Option<&LnFakeIssue> {
        self.issues
            .get(id)
            .or_else(|| self.issues.values().find(|i| i.id == id))
    }

    fn state(&self, id: &str) -> Option<&LnFakeState> {
        self.teams
            .iter()
            .flat_map(|t| &t.states)
            .find(|s| s.id == id)
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as Linear writes times (`2026-05-20T10:00:07.123Z`).
pub fn iso(ms: i64) -> String {
    let secs = crate::timestamps::format_millis(ms);
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms.rem_euclid(1000))
}

pub struct FakeLinear {
    pub server: MockServer,
    pub model: Arc<Mutex<LinearModel>>,
}

struct Responder(Arc<Mutex<LinearModel>>);

impl FakeLinear {
    pub async fn start(api_key: &str) -> FakeLinear {
        let server = MockServer::start().await;
        let model = Arc::new(Mutex::new(LinearModel {
            api_key: api_key.into(),
            teams: Vec::new(),
            issues: BTreeMap::new(),
            malformed: Vec::new(),
            requests: Vec::new(),
            fail_next: VecDeque::new(),
            rate_limited_next: 0,
            reset_after_ms: 1000,
            complexity_spent_next: false,
            clock: 0,
            next_id: 0,
        }));
        Mock::given(any())
            .respond_with(Responder(model.clone()))
            .mount(&server)
            .await;
        FakeLinear { server, model }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn m(&self) -> std::sync::MutexGuard<'_, LinearModel> {
        self.model.lock().unwrap()
    }

    /// A team with workflow states of these names.
    pub fn add_team(&self, key: &str, states: &[&str]) {
        let mut m = self.m();
        let id = m.uuid("7ea0");
        let states = states
            .iter()
            .map(|n| LnFakeState {
                id: m.uuid("57a7"),
                name: n.to_string(),
                kind: "started".into(),
            })
            .collect();
        m.teams.push(LnFakeTeam {
            id,
            key: key.into(),
            states,
        });
    }

    /// A record every team's issue listing answers first that is no issue
    /// orch can read (`record`, e.g. a state that is a number).
    pub fn add_malformed_issue(&self, record: Value) {
        self.m().malformed.push(record);
    }

    /// Issue `<team>-<number>` in the state named `state`.
    pub fn add_issue(&self, identifier: &str, title: &str, state: &str) {
        let mut m = self.m();
        let team = identifier.rsplit_once('-').expect("TEAM-N").0.to_owned();
        let state_id = m
            .team(&team)
            .and_then(|t| t.states.iter().find(|s| s.name == state))
            .expect("no such team or state")
            .id
            .clone();
        let id = m.uuid("1550");
        let updated = m.tick();
        m.issues.insert(
            identifier.into(),
            LnFakeIssue {
                id,
                identifier: identifier.into(),
                team,
                title: title.into(),
                state_id,
                updated,
                comments: vec![],
            },
        );
    }

    /// The name of the issue's state.
    pub fn state_of(&self, identifier: &str) -> String {
        let m = self.m();
        let i = &m.issues[identifier];
        m.state(&i.state_id).expect("state").name.clone()
    }

    /// The id of team `team`'s state named `name`.
    pub fn state_id(&self, team: &str, name: &str) -> String {
        let m = self.m();
        m.team(team)
            .and_then(|t| t.states.iter().find(|s| s.name == name))
            .expect("no such state")
            .id
            .clone()
    }

    /// A person moves the issue in Linear's app.
    pub fn person_moves(&self, identifier: &str, state: &str) {
        let team = identifier.rsplit_once('-').expect("TEAM-N").0.to_owned();
        let sid = self.state_id(&team, state);
        let mut m = self.m();
        let t = m.tick();
        let i = m.issues.get_mut(identifier).expect("no such issue");
        i.state_id = sid;
        i.updated = t;
    }

    /// A person comments on the issue (now).
    pub fn person_comments(&self, identifier: &str, body: &str) {
        let mut m = self.m();
        let t = m.tick();
        let i = m.issues.get_mut(identifier).expect("no such issue");
        i.comments.push(LnFakeComment {
            body: body.into(),
            created: t,
        });
    }

    pub fn comments_of(&self, identifier: &str) -> Vec<String> {
        self.m().issues[identifier]
            .comments
            .iter()
            .map(|c| c.body.clone())
            .collect()
    }

    /// The operations received, in order.
    pub fn operations(&self) -> Vec<String> {
        self.m()
            .requests
            .iter()
            .map(|r| r.operation.clone())
            .collect()
    }

    /// The `Issue` webhook Linear sends for the issue's last state change
    /// (`action: update` with `updatedFrom.stateId`; `create` without a
    /// previous state): the shape of `EntityWebhookPayload` and
    /// `IssueWebhookPayload`, timestamped now.
    pub fn issue_webhook(&self, identifier: &str, previous_state: Option<&str>) -> Value {
        let m = self.m();
        let i = &m.issues[identifier];
        let team = m.team(&i.team).expect("team");
        let s = m.state(&i.state_id).expect("state");
        let mut v = json!({
            "action": if previous_state.is_some() { "update" } else { "create" },
            "type": "Issue",
            "actor": { "id": "0a1b2c3d-0000-4000-8000-000000000001", "type": "user", "name": "A person" },
            "createdAt": iso(i.updated),
            "organizationId": "0a1b2c3d-0000-4000-8000-0000000000aa",
            "url": format!("https://linear.app/acme/issue/{}", i.identifier),
            "webhookId": "0a1b2c3d-0000-4000-8000-0000000000bb",
            "webhookTimestamp": now_ms(),
            "data": {
                "id": i.id, "identifier": i.identifier, "number": i.identifier.rsplit_once('-').map_or(0, |(_, n)| n.parse::<u64>().unwrap_or(0)),
                "title": i.title, "description": null, "priority": 0, "priorityLabel": "No priority",
                "createdAt": iso(i.updated), "updatedAt": iso(i.updated),
                "stateId": s.id, "state": { "id": s.id, "name": s.name, "type": s.kind, "color": "#f2c94c" },
                "teamId": team.id, "team": { "id": team.id, "key": team.key, "name": team.key },
                "labelIds": [], "labels": [], "subscriberIds": [], "previousIdentifiers": [],
                "sortOrder": 0.0, "prioritySortOrder": 0.0, "reactionData": {},
                "url": format!("https://linear.app/acme/issue/{}", i.identifier),
            },
        });
        if let Some(p) = previous_state {
            let prev = team
                .states
                .iter()
                .find(|x| x.name == p)
                .expect("no such state");
            v["updatedFrom"] = json!({ "stateId": prev.id, "updatedAt": iso(i.updated - 1) });
        }
        v
    }
}

fn gql_error(status: u16, message: &str, code: &str) -> ResponseTemplate {
    json(
        status,
        json!({ "errors": [{ "message": message, "extensions": { "code": code } }], "data": null }),
    )
}

fn issue_json(m: &LinearModel, i: &LnFakeIssue) -> Value {
    let s = m.state(&i.state_id).expect("state");
    let team = m.team(&i.team).expect("team");
    json!({
        "id": i.id, "identifier": i.identifier, "title": i.title, "description": "",
        "updatedAt": iso(i.updated),
        "state": { "id": s.id, "name": s.name }, "team": { "id": team.id, "key": team.key },
    })
}

/// `first: N` of the connection `field` in the document (Linear's
/// default page is 50).
fn first_of(query: &str, field: &str) -> usize {
    query
        .find(&format!("{field}("))
        .and_then(|at| {
            let rest = &query[at..];
            let f = rest.find("first:")?;
            rest[f + 6..]
                .trim_start()
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(50)
}

/// One page of `items` after cursor `after` (cursors are positions).
fn page(items: Vec<Value>, first: usize, after: Option<&str>) -> Value {
    let start = after.and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
    let end = (start + first).min(items.len());
    let more = end < items.len();
    json!({
        "nodes": items.get(start..end).unwrap_or(&[]),
        "pageInfo": { "hasNextPage": more, "endCursor": if more { Some(end.to_string()) } else { None } },
    })
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut m = self.0.lock().unwrap();
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let operation = body["operationName"].as_str().unwrap_or("").to_owned();
        let query = body["query"].as_str().unwrap_or("").to_owned();
        let vars = body["variables"].clone();
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        m.requests.push(SeenGql {
            operation: operation.clone(),
            query: query.clone(),
            variables: vars.clone(),
            authorization: auth.clone(),
        });
        if req.method.as_str() != "POST" || req.url.path() != "/graphql" {
            return ResponseTemplate::new(404);
        }
        if let Some(s) = m.fail_next.pop_front() {
            return gql_error(s, "Internal server error", "INTERNAL_SERVER_ERROR");
        }
        let reset = (now_ms() + m.reset_after_ms).to_string();
        if m.rate_limited_next > 0 {
            m.rate_limited_next -= 1;
            return gql_error(400, "Rate limit exceeded", "RATELIMITED")
                .insert_header("X-RateLimit-Requests-Remaining", "0")
                .insert_header("X-RateLimit-Requests-Reset", reset.as_str());
        }
        // A personal key is the bare header value; `Bearer <key>` is how
        // OAuth tokens are sent, and a personal key sent so is refused.
        if auth.as_deref() != Some(m.api_key.as_str()) {
            return gql_error(
                400,
                "Authentication required, not authenticated",
                "AUTHENTICATION_ERROR",
            );
        }
        let data = match answer(&mut m, &operation, &query, &vars) {
            Ok(d) => d,
            Err(GqlError(status, message, code)) => return gql_error(status, &message, code),
        };
        let mut r = json(200, json!({ "data": data }))
            .insert_header("X-RateLimit-Requests-Remaining", "4999");
        if std::mem::take(&mut m.complexity_spent_next) {
            r = r
                .insert_header("X-RateLimit-Complexity-Remaining", "0")
                .insert_header("X-RateLimit-Complexity-Reset", reset.as_str());
        }
        r
    }
}

/// A GraphQL error answer: HTTP status, message, `extensions.code`.
struct GqlError(u16, String, &'static str);

fn not_found(what: &str) -> GqlError {
    GqlError(200, format!("Entity not found: {what}"), "INPUT_ERROR")
}

fn answer(
    m: &mut LinearModel,
    operation: &str,
    query: &str,
    vars: &Value,
) -> Result<Value, GqlError> {
    let var = |k: &str| vars.get(k).and_then(Value::as_str).map(str::to_owned);
    match operation {
        "OrchViewer" => Ok(
            json!({ "viewer": { "id": "0a1b2c3d-0000-4000-8000-0000000000cc", "name": "orch bot" } }),
        ),
        "OrchTeamStates" => {
            let key = var("key").unwrap_or_default();
            let nodes: Vec<Value> = m
                .teams
                .iter()
                .filter(|t| t.key == key)
                .map(|t| {
                    let states: Vec<Value> = t
                        .states
                        .iter()
                        .map(|s| json!({ "id": s.id, "name": s.name, "type": s.kind }))
                        .collect();
                    json!({ "id": t.id, "key": t.key, "name": t.key,
                            "states": page(states, first_of(query, "states"), None) })
                })
                .collect();
            Ok(json!({ "teams": { "nodes": nodes } }))
        }
        "OrchIssue" => {
            let id = var("id").unwrap_or_default();
            let i = m.issue_by(&id).ok_or_else(|| not_found("Issue"))?;
            Ok(json!({ "issue": issue_json(m, i) }))
        }
        "OrchIssueComments" => {
            let id = var("id").unwrap_or_default();
            let i = m.issue_by(&id).ok_or_else(|| not_found("Issue"))?;
            let all: Vec<Value> = i
                .comments
                .iter()
                .enumerate()
                .map(|(n, c)| json!({ "id": format!("c{n}"), "body": c.body, "createdAt": iso(c.created) }))
                .collect();
            let after = var("after");
            Ok(
                json!({ "issue": { "comments": page(all, first_of(query, "comments"), after.as_deref()) } }),
            )
        }
        "OrchTeamIssues" => {
            let f = &vars["filter"];
            let key = f
                .pointer("/team/key/eq")
                .and_then(Value::as_str)
                .unwrap_or("");
            let since = |op: &str| {
                f.pointer(&format!("/updatedAt/{op}"))
                    .and_then(Value::as_str)
                    .and_then(crate::timestamps::parse_millis)
            };
            let (gte, gt) = (since("gte"), since("gt"));
            let mut list: Vec<&LnFakeIssue> = m
                .issues
                .values()
                .filter(|i| i.team == key)
                .filter(|i| gte.is_none_or(|t| i.updated >= t) && gt.is_none_or(|t| i.updated > t))
                .collect();
            // orderBy: updatedAt, most recent first.
            list.sort_by_key(|i| std::cmp::Reverse(i.updated));
            let mut all: Vec<Value> = m.malformed.clone();
            all.extend(list.iter().map(|i| issue_json(m, i)));
            let after = var("after");
            Ok(json!({ "issues": page(all, first_of(query, "issues"), after.as_deref()) }))
        }
        "OrchIssueUpdate" => {
            let id = var("id").unwrap_or_default();
            let sid = var("stateId").unwrap_or_default();
            let ident = m
                .issue_by(&id)
                .map(|i| i.identifier.clone())
                .ok_or_else(|| not_found("Issue"))?;
            let team = m.issues[&ident].team.clone();
            if !m
                .team(&team)
                .is_some_and(|t| t.states.iter().any(|s| s.id == sid))
            {
                return Err(GqlError(
                    200,
                    "Argument Validation Error: stateId is not a state of the issue's team".into(),
                    "INVALID_INPUT",
                ));
            }
            let t = m.tick();
            let i = m.issues.get_mut(&ident).expect("found above");
            i.state_id = sid;
            i.updated = t;
            let i = m.issues[&ident].clone();
            Ok(json!({ "issueUpdate": { "success": true, "issue": issue_json(m, &i) } }))
        }
        "OrchCommentCreate" => {
            let issue = var("issueId").unwrap_or_default();
            let body = var("body").unwrap_or_default();
            // `issueId` is the issue's id.
            let ident = m
                .issues
                .values()
                .find(|i| i.id == issue)
                .map(|i| i.identifier.clone())
                .ok_or_else(|| not_found("Issue"))?;
            let t = m.tick();
            m.issues
                .get_mut(&ident)
                .expect("found above")
                .comments
                .push(LnFakeComment { body, created: t });
            Ok(
                json!({ "commentCreate": { "success": true, "comment": { "id": format!("c-{t}") } } }),
            )
        }
        other => Err(GqlError(
            400,
            format!("Unknown operation {other:?}"),
            "GRAPHQL_VALIDATION_FAILED",
        )),
    }
}
