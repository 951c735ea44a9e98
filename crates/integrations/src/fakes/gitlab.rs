//! A fake GitLab (REST API v4) over a real bare repository: merge requests
//! (a merge moves the target branch, only at the `sha` given), branches and
//! their protection, commit statuses, and issues with labels as strings,
//! `add_labels`/`remove_labels`, notes (system notes for label changes, as
//! GitLab writes them) and the listing's `X-Next-Page` paging. Built from
//! GitLab's API description and payloads stored in
//! `tests/fixtures/gitlab/` (see `SOURCES.md` there).

use super::github::percent_decode;
use super::{Seen, branch_sha, git, json, seen};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Debug, Clone)]
pub struct GlFakeMr {
    pub iid: u64,
    /// A `Draft:` prefix makes it a draft, which GitLab will not merge.
    pub title: String,
    /// Who approved it (`…/approvals`), and reviewers' states
    /// (`…/reviewers`: `requested_changes`, `approved`, …).
    pub approved_by: Vec<String>,
    pub reviewers: Vec<(String, String)>,
    pub source: String,
    pub target: String,
    pub sha: String,
    /// `opened`, `closed` or `merged`.
    pub state: String,
    pub merge_commit_sha: Option<String>,
    pub squash: bool,
}

#[derive(Debug, Clone, Default)]
pub struct GlFakeNote {
    pub id: u64,
    pub body: String,
    /// GitLab's own notes ("added ~label"), never a person's words.
    pub system: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, Default)]
pub struct GlFakeIssue {
    pub title: String,
    pub labels: Vec<String>,
    pub notes: Vec<GlFakeNote>,
    /// A counter standing for the time of the last change (rendered as
    /// `updated_at`), so listings have an order and a watermark.
    pub updated: u64,
}

pub struct GitlabModel {
    /// The project's path (`acme/app`) and numeric id: `:id` is either.
    pub path: String,
    pub id: u64,
    pub token: String,
    pub bare: PathBuf,
    pub default_branch: String,
    pub protected: BTreeSet<String>,
    /// Branches into which merges are refused as GitLab does when the
    /// project requires something orch did not give (405).
    pub merge_blocked: BTreeSet<String>,
    pub mrs: Vec<GlFakeMr>,
    /// Open merge requests keep the head they have instead of following
    /// their branch: a read of orch's that raced a push.
    pub heads_frozen: bool,
    pub issues: BTreeMap<u64, GlFakeIssue>,
    /// `(sha, state, name)`.
    pub statuses: Vec<(String, String, String)>,
    pub fail_next: VecDeque<u16>,
    /// The `Retry-After` of an injected 429, in seconds.
    pub retry_after_secs: u64,
    pub requests: Vec<Seen>,
    /// `(issue, label)`: a person adds `label` to the issue right after the
    /// next read of it (`GET …/issues/:iid`), i.e. between orch's read and
    /// its write.
    pub person_adds_after_read: VecDeque<(u64, String)>,
    /// Raw records served first on the issue listing's first page, as they
    /// are: a malformed one (no `iid`) tests how a listing reads it.
    pub raw_listed_issues: Vec<Value>,
    /// GitLab's scoped labels (Premium and up): adding `orch::x` removes the
    /// issue's other `orch::` label, as GitLab does; off, they are plain
    /// labels (the Free tier).
    pub scoped_exclusive: bool,
    clock: u64,
    next_note: u64,
}

impl GitlabModel {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }
}

pub struct FakeGitlab {
    pub server: MockServer,
    pub model: Arc<Mutex<GitlabModel>>,
}

struct Responder(Arc<Mutex<GitlabModel>>);

/// The fake's counter as a time: 2026-05-20 10:00:00 UTC plus `n` seconds.
pub fn fake_time(n: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(1_779_271_200 + n as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let s = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    // GitLab writes milliseconds: `2026-05-20T10:00:07.000Z`.
    s.replace('Z', ".000Z")
}

impl FakeGitlab {
    pub async fn start(path: &str, token: &str, bare: &Path) -> FakeGitlab {
        let server = MockServer::start().await;
        let model = Arc::new(Mutex::new(GitlabModel {
            path: path.into(),
            id: 4242,
            token: token.into(),
            bare: bare.into(),
            default_branch: "main".into(),
            protected: BTreeSet::new(),
            merge_blocked: BTreeSet::new(),
            mrs: Vec::new(),
            heads_frozen: false,
            issues: BTreeMap::new(),
            statuses: Vec::new(),
            fail_next: VecDeque::new(),
            retry_after_secs: 1,
            requests: Vec::new(),
            person_adds_after_read: VecDeque::new(),
            raw_listed_issues: Vec::new(),
            scoped_exclusive: false,
            clock: 0,
            next_note: 1,
        }));
        Mock::given(any())
            .respond_with(Responder(model.clone()))
            .mount(&server)
            .await;
        FakeGitlab { server, model }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn m(&self) -> std::sync::MutexGuard<'_, GitlabModel> {
        self.model.lock().unwrap()
    }

    /// The next `n` requests are answered `status` (a 429 carries `Retry-After`).
    pub fn fail_next(&self, status: u16, n: usize) {
        self.m().fail_next.extend(std::iter::repeat_n(status, n));
    }

    pub fn add_issue(&self, iid: u64, title: &str, labels: &[&str]) {
        let mut m = self.m();
        let updated = m.tick();
        m.issues.insert(
            iid,
            GlFakeIssue {
                title: title.into(),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                notes: vec![],
                updated,
            },
        );
    }

    pub fn labels_of(&self, iid: u64) -> Vec<String> {
        self.m().issues[&iid].labels.clone()
    }

    /// A person changes the issue's labels in GitLab's web app.
    pub fn person_labels(&self, iid: u64, add: &[&str], remove: &[&str]) {
        let mut m = self.m();
        let t = m.tick();
        let i = m.issues.get_mut(&iid).expect("no such issue");
        i.labels.retain(|l| !remove.contains(&l.as_str()));
        for a in add {
            if !i.labels.iter().any(|l| l == a) {
                i.labels.push(a.to_string());
            }
        }
        i.updated = t;
    }

    /// A person comments on the issue (now).
    pub fn person_comments(&self, iid: u64, body: &str) {
        let mut m = self.m();
        let id = m.next_note;
        m.next_note += 1;
        m.issues
            .get_mut(&iid)
            .expect("no such issue")
            .notes
            .push(GlFakeNote {
                id,
                body: body.into(),
                system: false,
                created_at: super::now_rfc3339(true),
            });
    }

    /// The notes of an issue that are not GitLab's system notes.
    pub fn comments_of(&self, iid: u64) -> Vec<String> {
        self.m().issues[&iid]
            .notes
            .iter()
            .filter(|n| !n.system)
            .map(|n| n.body.clone())
            .collect()
    }
}

fn mr_json(m: &GitlabModel, mr: &GlFakeMr) -> Value {
    json!({
        "id": mr.iid + 1000, "iid": mr.iid, "project_id": m.id,
        "title": mr.title, "draft": mr.title.starts_with("Draft:"), "state": mr.state,
        "source_branch": mr.source, "target_branch": mr.target,
        "sha": mr.sha, "merge_commit_sha": mr.merge_commit_sha,
        "squash_commit_sha": Value::Null, "squash": mr.squash,
        "detailed_merge_status": if mr.state == "opened" { "mergeable" } else { "not_open" },
        "web_url": format!("http://gitlab.test/{}/-/merge_requests/{}", m.path, mr.iid),
    })
}

fn issue_json(m: &GitlabModel, iid: u64, i: &GlFakeIssue) -> Value {
    json!({
        "id": iid + 5000, "iid": iid, "project_id": m.id, "title": i.title,
        "description": "", "state": "opened", "labels": i.labels,
        "created_at": fake_time(0), "updated_at": fake_time(i.updated),
        "web_url": format!("http://gitlab.test/{}/-/issues/{iid}", m.path),
    })
}

fn note_json(n: &GlFakeNote) -> Value {
    json!({
        "id": n.id, "body": n.body, "system": n.system, "created_at": n.created_at,
        "updated_at": n.created_at, "noteable_type": "Issue",
        "author": {"id": 1, "username": if n.system { "orch-bot" } else { "someone" }},
    })
}

/// A form or JSON field as a string (GitLab takes both).
fn field<'a>(body: &'a Value, k: &str) -> Option<&'a str> {
    body.get(k).and_then(Value::as_str)
}

fn comma_list(s: Option<&str>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

fn not_found(what: &str) -> ResponseTemplate {
    json(404, json!({"message": format!("404 {what} Not Found")}))
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut m = self.0.lock().unwrap();
        m.requests.push(seen(req));
        if let Some(status) = m.fail_next.pop_front() {
            let r = json(status, json!({"message": "injected"}));
            return if status == 429 {
                r.insert_header("Retry-After", m.retry_after_secs.to_string().as_str())
            } else {
                r
            };
        }
        let token = req
            .headers
            .get("private-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if token != m.token {
            return json(401, json!({"message": "401 Unauthorized"}));
        }
        let path = req.url.path().to_owned();
        let Some(rest) = path.strip_prefix("/api/v4/projects/") else {
            return not_found("");
        };
        let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let id = percent_decode(id);
        if id != m.path && id != m.id.to_string() {
            return not_found("Project");
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let q: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let bare = m.bare.clone();
        let method = req.method.as_str().to_owned();
        let parts: Vec<String> = if rest.is_empty() {
            vec![]
        } else {
            rest.split('/').map(percent_decode).collect()
        };
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        // An open merge request's head follows its branch (a push updates it).
        let follow = !m.heads_frozen;
        for mr in m.mrs.iter_mut().filter(|r| follow && r.state == "opened") {
            if let Some(sha) = branch_sha(&bare, &mr.source) {
                mr.sha = sha;
            }
        }
        match (method.as_str(), parts.as_slice()) {
            ("PUT", ["merge_requests", iid]) => {
                let iid: u64 = iid.parse().unwrap_or(0);
                let Some(i) = m.mrs.iter().position(|r| r.iid == iid) else {
                    return not_found("");
                };
                if let Some(t) = field(&body, "title") {
                    m.mrs[i].title = t.to_owned();
                }
                let r = m.mrs[i].clone();
                json(200, mr_json(&m, &r))
            }
            ("GET", ["merge_requests", iid, "approvals"]) => {
                let iid: u64 = iid.parse().unwrap_or(0);
                let Some(r) = m.mrs.iter().find(|r| r.iid == iid) else {
                    return not_found("");
                };
                json(
                    200,
                    json!({"iid": iid, "approved": !r.approved_by.is_empty(),
                           "approved_by": r.approved_by.iter().map(|u| json!({"user": {"username": u}})).collect::<Vec<_>>()}),
                )
            }
            ("GET", ["merge_requests", iid, "reviewers"]) => {
                let iid: u64 = iid.parse().unwrap_or(0);
                let Some(r) = m.mrs.iter().find(|r| r.iid == iid) else {
                    return not_found("");
                };
                json(
                    200,
                    Value::Array(
                        r.reviewers
                            .iter()
                            .map(|(u, st)| json!({"user": {"username": u}, "state": st}))
                            .collect(),
                    ),
                )
            }
            ("GET", ["repository", "commits", sha, "statuses"]) => json(
                200,
                Value::Array(
                    m.statuses
                        .iter()
                        .rev()
                        .filter(|(s, _, _)| s == sha)
                        .map(|(_, st, n)| json!({"name": n, "status": st, "description": null, "target_url": null}))
                        .collect(),
                ),
            ),
            ("GET", []) => json(
                200,
                json!({"id": m.id, "path_with_namespace": m.path, "default_branch": m.default_branch}),
            ),
            ("GET", ["repository", "branches", b]) => match branch_sha(&bare, b) {
                Some(sha) => json(
                    200,
                    json!({"name": b, "protected": m.protected.contains(*b),
                           "default": *b == m.default_branch, "merged": false,
                           "commit": {"id": sha}}),
                ),
                None => not_found("Branch"),
            },
            // GitLab refuses to delete a protected branch (and the default one).
            ("DELETE", ["repository", "branches", b]) => {
                if m.protected.contains(*b) || *b == m.default_branch {
                    return json(403, json!({"message": "403 Forbidden"}));
                }
                match branch_sha(&bare, b) {
                    Some(sha) => {
                        git(
                            &bare,
                            &["update-ref", "-d", &format!("refs/heads/{b}"), &sha],
                        );
                        ResponseTemplate::new(204)
                    }
                    None => not_found("Branch"),
                }
            }
            ("POST", ["statuses", sha]) => {
                let state = field(&body, "state").unwrap_or("").to_owned();
                if ![
                    "pending", "running", "success", "failed", "canceled", "skipped",
                ]
                .contains(&state.as_str())
                {
                    return json(400, json!({"error": "state does not have a valid value"}));
                }
                let name = field(&body, "name").unwrap_or("default").to_owned();
                // GitLab cannot move a status to the state it is in.
                if m.statuses
                    .iter()
                    .rev()
                    .find(|(s, _, n)| s == sha && *n == name)
                    .is_some_and(|(_, st, _)| *st == state)
                {
                    return json(
                        400,
                        json!({"message": format!("Cannot transition status via :{state} from :{state}")}),
                    );
                }
                m.statuses
                    .push((sha.to_string(), state.clone(), name.clone()));
                json(201, json!({"sha": sha, "status": state, "name": name}))
            }
            ("POST", ["merge_requests"]) => {
                let source = field(&body, "source_branch").unwrap_or("").to_owned();
                let target = field(&body, "target_branch").unwrap_or("").to_owned();
                if let Some(open) = m
                    .mrs
                    .iter()
                    .find(|r| r.state == "opened" && r.source == source && r.target == target)
                {
                    return json(
                        409,
                        json!({"message": [format!("Another open merge request already exists for this source branch: !{}", open.iid)]}),
                    );
                }
                let Some(sha) = branch_sha(&bare, &source) else {
                    return json(422, json!({"message": ["Source branch does not exist"]}));
                };
                let mr = GlFakeMr {
                    iid: m.mrs.len() as u64 + 1,
                    title: field(&body, "title").unwrap_or("").to_owned(),
                    approved_by: Vec::new(),
                    reviewers: Vec::new(),
                    source,
                    target,
                    sha,
                    state: "opened".into(),
                    merge_commit_sha: None,
                    squash: false,
                };
                m.mrs.push(mr.clone());
                json(201, mr_json(&m, &mr))
            }
            ("GET", ["merge_requests"]) => {
                let state = q.get("state").map(String::as_str).unwrap_or("all");
                let mut list: Vec<Value> = m
                    .mrs
                    .iter()
                    .filter(|r| state == "all" || r.state == state)
                    .filter(|r| q.get("source_branch").is_none_or(|b| *b == r.source))
                    .filter(|r| q.get("target_branch").is_none_or(|b| *b == r.target))
                    .map(|r| mr_json(&m, r))
                    .collect();
                list.reverse();
                json(200, Value::Array(list))
            }
            ("PUT", ["merge_requests", iid, "merge"]) => {
                let iid: u64 = iid.parse().unwrap_or(0);
                let Some(i) = m.mrs.iter().position(|r| r.iid == iid) else {
                    return not_found("");
                };
                let mr = m.mrs[i].clone();
                if mr.state != "opened"
                    || m.merge_blocked.contains(&mr.target)
                    || mr.title.starts_with("Draft:")
                {
                    return json(405, json!({"message": "405 Method Not Allowed"}));
                }
                let cur = branch_sha(&bare, &mr.source).unwrap_or_default();
                if field(&body, "sha").is_some_and(|s| s != cur) {
                    return json(
                        409,
                        json!({"message": "SHA does not match HEAD of source branch: ".to_owned() + &cur}),
                    );
                }
                let old = branch_sha(&bare, &mr.target).unwrap_or_default();
                if git(&bare, &["merge-base", "--is-ancestor", &old, &cur]).is_none() {
                    return json(422, json!({"message": "Branch cannot be merged"}));
                }
                git(
                    &bare,
                    &[
                        "update-ref",
                        &format!("refs/heads/{}", mr.target),
                        &cur,
                        &old,
                    ],
                );
                let squash = body.get("squash").and_then(Value::as_bool).unwrap_or(false);
                let r = &mut m.mrs[i];
                r.state = "merged".into();
                r.sha = cur.clone();
                r.merge_commit_sha = Some(cur);
                r.squash = squash;
                let r = m.mrs[i].clone();
                json(200, mr_json(&m, &r))
            }
            // Newest change first (`order_by=updated_at`, `sort=desc`),
            // `updated_after`, and GitLab's paging headers.
            ("GET", ["issues"]) => {
                let after = q
                    .get("updated_after")
                    .and_then(|s| crate::timestamps::parse_millis(s));
                let mut list: Vec<(u64, Value)> = m
                    .issues
                    .iter()
                    .filter(|(_, i)| {
                        after.is_none_or(|a| {
                            crate::timestamps::parse_millis(&fake_time(i.updated))
                                .is_some_and(|u| u >= a)
                        })
                    })
                    .map(|(n, i)| (i.updated, issue_json(&m, *n, i)))
                    .collect();
                list.sort_by_key(|(u, _)| std::cmp::Reverse(*u));
                let per: usize = q
                    .get("per_page")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(20)
                    .clamp(1, 100);
                let page: usize = q
                    .get("page")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1)
                    .max(1);
                let total = list.len();
                let pages = total.div_ceil(per).max(1);
                let raw = if page == 1 {
                    m.raw_listed_issues.clone()
                } else {
                    Vec::new()
                };
                let chunk: Vec<Value> = raw
                    .into_iter()
                    .chain(
                        list.into_iter()
                            .skip((page - 1) * per)
                            .take(per)
                            .map(|(_, v)| v),
                    )
                    .collect();
                let next = if page < pages {
                    (page + 1).to_string()
                } else {
                    String::new()
                };
                json(200, Value::Array(chunk))
                    .insert_header("X-Page", page.to_string().as_str())
                    .insert_header("X-Per-Page", per.to_string().as_str())
                    .insert_header("X-Next-Page", next.as_str())
                    .insert_header("X-Total", total.to_string().as_str())
                    .insert_header("X-Total-Pages", pages.to_string().as_str())
            }
            ("GET", ["issues", iid]) => {
                let Some(n) = iid.parse::<u64>().ok().filter(|n| m.issues.contains_key(n)) else {
                    return not_found("");
                };
                let answer = json(200, issue_json(&m, n, &m.issues[&n]));
                // A person labels the issue just after this read.
                if m.person_adds_after_read
                    .front()
                    .is_some_and(|(k, _)| *k == n)
                {
                    let (_, label) = m.person_adds_after_read.pop_front().unwrap();
                    let i = m.issues.get_mut(&n).unwrap();
                    if !i.labels.contains(&label) {
                        i.labels.push(label);
                    }
                }
                answer
            }
            // `add_labels` / `remove_labels` (comma-separated) edit the
            // issue's labels; `labels` replaces them all. Each change leaves
            // a system note, as GitLab's label events do.
            ("PUT", ["issues", iid]) => {
                let Some(n) = iid.parse::<u64>().ok().filter(|n| m.issues.contains_key(n)) else {
                    return not_found("");
                };
                let add = comma_list(field(&body, "add_labels"));
                let remove = comma_list(field(&body, "remove_labels"));
                let replace = field(&body, "labels").map(|l| comma_list(Some(l)));
                let t = m.tick();
                let note_id = m.next_note;
                let scoped = m.scoped_exclusive;
                let i = m.issues.get_mut(&n).unwrap();
                let before = i.labels.clone();
                if let Some(all) = replace {
                    i.labels = all;
                }
                i.labels.retain(|l| !remove.iter().any(|r| r == l));
                for a in add {
                    // A scoped label's key is what comes before its last `::`.
                    let key_of = |l: &str| l.rsplit_once("::").map(|(k, _)| k.to_owned());
                    if scoped && let Some(key) = key_of(&a) {
                        i.labels
                            .retain(|l| key_of(l).as_deref() != Some(key.as_str()));
                    }
                    if !i.labels.contains(&a) {
                        i.labels.push(a);
                    }
                }
                if i.labels != before {
                    i.updated = t;
                    i.notes.push(GlFakeNote {
                        id: note_id,
                        body: "changed labels".into(),
                        system: true,
                        created_at: super::now_rfc3339(true),
                    });
                    m.next_note += 1;
                }
                let i = m.issues[&n].clone();
                json(200, issue_json(&m, n, &i))
            }
            // Newest first (`sort=desc`, the default), paged.
            ("GET", ["issues", iid, "notes"]) => {
                let Some(i) = iid.parse::<u64>().ok().and_then(|n| m.issues.get(&n)) else {
                    return not_found("");
                };
                let per: usize = q
                    .get("per_page")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(20)
                    .clamp(1, 100);
                let page: usize = q
                    .get("page")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1)
                    .max(1);
                let mut all: Vec<Value> = i.notes.iter().map(note_json).collect();
                if q.get("sort").map(String::as_str) != Some("asc") {
                    all.reverse();
                }
                let pages = all.len().div_ceil(per).max(1);
                let chunk: Vec<Value> = all.into_iter().skip((page - 1) * per).take(per).collect();
                let next = if page < pages {
                    (page + 1).to_string()
                } else {
                    String::new()
                };
                json(200, Value::Array(chunk)).insert_header("X-Next-Page", next.as_str())
            }
            ("POST", ["issues", iid, "notes"]) => {
                let Some(n) = iid.parse::<u64>().ok().filter(|n| m.issues.contains_key(n)) else {
                    return not_found("");
                };
                let Some(text) = field(&body, "body").map(str::to_owned) else {
                    return json(400, json!({"error": "body is missing"}));
                };
                let note = GlFakeNote {
                    id: m.next_note,
                    body: text,
                    system: false,
                    created_at: super::now_rfc3339(true),
                };
                m.next_note += 1;
                m.issues.get_mut(&n).unwrap().notes.push(note.clone());
                json(201, note_json(&note))
            }
            _ => not_found(""),
        }
    }
}
