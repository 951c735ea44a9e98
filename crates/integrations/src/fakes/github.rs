//! A fake GitHub over a real bare repository: pull requests (merge moves the
//! base branch), branches, statuses, and issues with labels and comments.

use super::{Seen, branch_sha, git, json, seen};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Debug, Clone)]
pub struct GhFakePr {
    pub number: u64,
    /// GitHub refuses to merge a draft; GraphQL's
    /// `markPullRequestReadyForReview` clears it.
    pub draft: bool,
    pub head: String,
    pub base: String,
    pub head_sha: String,
    pub open: bool,
    pub merged: bool,
    pub method: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct GhFakeIssue {
    pub title: String,
    pub labels: Vec<String>,
    pub comments: Vec<GhFakeComment>,
}

/// An issue comment: GitHub's `created_at` is RFC 3339 in whole seconds.
#[derive(Debug, Clone, Default)]
pub struct GhFakeComment {
    pub body: String,
    pub created_at: String,
}

pub struct GithubModel {
    pub full_name: String,
    pub token: String,
    pub bare: PathBuf,
    pub default_branch: String,
    pub protected: BTreeSet<String>,
    /// Protected branches whose protection requires status checks (their
    /// contexts), shown in the branch's `protection` summary as GitHub does.
    pub required_status_checks: BTreeMap<String, Vec<String>>,
    pub prs: Vec<GhFakePr>,
    pub issues: BTreeMap<u64, GhFakeIssue>,
    /// (sha, state, context), oldest first.
    pub statuses: Vec<(String, String, String)>,
    /// Reviews of pull requests as the REST API shows them (`id`, `pr`,
    /// `user.login`, `state`, `body`, `commit_id`), oldest first.
    pub reviews: Vec<Value>,
    /// Inline review comments (`pr`, `pull_request_review_id`, `path`,
    /// `line`, `body`).
    pub review_comments: Vec<Value>,
    /// Check runs as GitHub's REST API shows them (`id`, `head_sha`,
    /// `name`, `status`, `conclusion`, `output`), oldest first.
    pub check_runs: Vec<Value>,
    pub fail_next: VecDeque<u16>,
    pub requests: Vec<Seen>,
    /// `(issue, label)`: a person adds `label` to the issue right after the
    /// next read of it (`GET …/issues/{n}`), i.e. between orch's read and
    /// its write.
    pub person_adds_after_read: VecDeque<(u64, String)>,
    /// Raw records served first in the issue listing, as they are: a
    /// malformed one (no `number`) tests how a listing reads it.
    pub raw_listed_issues: Vec<Value>,
}

pub struct FakeGithub {
    pub server: MockServer,
    pub model: Arc<Mutex<GithubModel>>,
}

struct Responder(Arc<Mutex<GithubModel>>);

impl FakeGithub {
    pub async fn start(full_name: &str, token: &str, bare: &Path) -> FakeGithub {
        let server = MockServer::start().await;
        let model = Arc::new(Mutex::new(GithubModel {
            full_name: full_name.into(),
            token: token.into(),
            bare: bare.into(),
            default_branch: "main".into(),
            protected: BTreeSet::new(),
            required_status_checks: BTreeMap::new(),
            prs: Vec::new(),
            issues: BTreeMap::new(),
            statuses: Vec::new(),
            check_runs: Vec::new(),
            reviews: Vec::new(),
            review_comments: Vec::new(),
            fail_next: VecDeque::new(),
            requests: Vec::new(),
            person_adds_after_read: VecDeque::new(),
            raw_listed_issues: Vec::new(),
        }));
        Mock::given(any())
            .respond_with(Responder(model.clone()))
            .mount(&server)
            .await;
        FakeGithub { server, model }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn m(&self) -> std::sync::MutexGuard<'_, GithubModel> {
        self.model.lock().unwrap()
    }

    /// Protect `branch` with required status checks (these contexts).
    pub fn require_checks(&self, branch: &str, contexts: &[&str]) {
        let mut m = self.m();
        m.protected.insert(branch.to_owned());
        m.required_status_checks.insert(
            branch.to_owned(),
            contexts.iter().map(|c| c.to_string()).collect(),
        );
    }

    pub fn add_issue(&self, number: u64, title: &str, labels: &[&str]) {
        self.m().issues.insert(
            number,
            GhFakeIssue {
                title: title.into(),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                comments: vec![],
            },
        );
    }

    /// A person comments on the issue in GitHub's web app (now).
    pub fn person_comments(&self, number: u64, body: &str) {
        self.m()
            .issues
            .get_mut(&number)
            .expect("no such issue")
            .comments
            .push(GhFakeComment {
                body: body.into(),
                created_at: super::now_rfc3339(false),
            });
    }
}

fn labels_json(labels: &[String]) -> Value {
    Value::Array(labels.iter().map(|l| json!({"name": l})).collect())
}

/// `%XX` escapes of a URL path segment back to bytes (UTF-8).
pub(crate) fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// GitHub's GraphQL endpoint, for the one mutation orch sends.
fn graphql(m: &mut GithubModel, body: &Value) -> ResponseTemplate {
    let query = body["query"].as_str().unwrap_or("");
    if !query.contains("markPullRequestReadyForReview") {
        return json(
            200,
            json!({"errors": [{"message": "unsupported by the fake"}]}),
        );
    }
    let id = body["variables"]["id"].as_str().unwrap_or("");
    match m
        .prs
        .iter_mut()
        .find(|p| format!("PR_node{}", p.number) == id)
    {
        Some(p) => {
            p.draft = false;
            json(
                200,
                json!({"data": {"markPullRequestReadyForReview": {"pullRequest": {"isDraft": false}}}}),
            )
        }
        None => json(
            200,
            json!({"errors": [{"type": "NOT_FOUND", "message": format!("Could not resolve to a node with the global id of '{id}'")}]}),
        ),
    }
}

fn pr_json(p: &GhFakePr) -> Value {
    json!({
        "number": p.number, "state": if p.open { "open" } else { "closed" },
        "draft": p.draft, "node_id": format!("PR_node{}", p.number),
        "html_url": format!("http://github.invalid/pull/{}", p.number),
        "merged_at": if p.merged { Value::from("2026-05-20T10:05:00Z") } else { Value::Null },
        "merge_commit_sha": if p.merged { Value::from(p.head_sha.clone()) } else { Value::Null },
        "head": {"ref": p.head, "sha": p.head_sha}, "base": {"ref": p.base, "sha": ""},
    })
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut m = self.0.lock().unwrap();
        m.requests.push(seen(req));
        if let Some(s) = m.fail_next.pop_front() {
            return json(s, json!({"message": "injected"}));
        }
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("Bearer {}", m.token) {
            return json(401, json!({"message": "Bad credentials"}));
        }
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        if req.url.path() == "/graphql" && req.method.as_str() == "POST" {
            return graphql(&mut m, &body);
        }
        // An open pull request's head follows its branch (a push updates it).
        let bare = m.bare.clone();
        for p in m.prs.iter_mut().filter(|p| p.open) {
            if let Some(sha) = branch_sha(&bare, &p.head) {
                p.head_sha = sha;
            }
        }
        let prefix = format!("/repos/{}", m.full_name);
        let path = req.url.path().to_owned();
        let Some(rest) = path.strip_prefix(&prefix) else {
            return json(404, json!({"message": "Not Found"}));
        };
        let q: BTreeMap<String, String> = req
            .url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let bare = m.bare.clone();
        let method = req.method.as_str();
        if rest.is_empty() && method == "GET" {
            return json(
                200,
                json!({"full_name": m.full_name, "default_branch": m.default_branch}),
            );
        }
        if let Some(b) = rest.strip_prefix("/branches/") {
            // GitHub's "Get a branch": the protection summary lists the
            // required contexts, and the newer `checks` with their app.
            let protection = match m.required_status_checks.get(b) {
                Some(contexts) => json!({
                    "enabled": true,
                    "required_status_checks": {
                        "enforcement_level": "non_admins",
                        "contexts": contexts,
                        "checks": contexts
                            .iter()
                            .map(|c| json!({"context": c, "app_id": null}))
                            .collect::<Vec<_>>(),
                    },
                }),
                None => json!({
                    "enabled": m.protected.contains(b),
                    "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
                }),
            };
            return match branch_sha(&bare, b) {
                Some(sha) => json(
                    200,
                    json!({
                        "name": b,
                        "protected": m.protected.contains(b),
                        "commit": {"sha": sha},
                        "protection": protection,
                    }),
                ),
                None => json(404, json!({"message": "Branch not found"})),
            };
        }
        if let Some(b) = rest.strip_prefix("/git/refs/heads/") {
            if m.protected.contains(b) || b == m.default_branch {
                return json(403, json!({"message": "Cannot delete a protected branch"}));
            }
            return match branch_sha(&bare, b) {
                Some(sha) => {
                    git(
                        &bare,
                        &["update-ref", "-d", &format!("refs/heads/{b}"), &sha],
                    );
                    ResponseTemplate::new(204)
                }
                None => json(422, json!({"message": "Reference does not exist"})),
            };
        }
        if let Some(sha) = rest.strip_prefix("/statuses/") {
            m.statuses.push((
                sha.into(),
                body["state"].as_str().unwrap_or("").into(),
                body["context"].as_str().unwrap_or("").into(),
            ));
            return json(201, json!({"state": body["state"]}));
        }
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        if let ("GET", ["commits", sha, what]) = (method, parts.as_slice()) {
            let sha = sha.to_string();
            return match *what {
                "check-runs" => {
                    let runs: Vec<Value> = m
                        .check_runs
                        .iter()
                        .filter(|r| r["head_sha"] == sha.as_str())
                        .cloned()
                        .collect();
                    json(200, json!({"total_count": runs.len(), "check_runs": runs}))
                }
                // GitHub lists a commit's statuses newest first.
                "statuses" => json(
                    200,
                    Value::Array(
                        m.statuses
                            .iter()
                            .rev()
                            .filter(|(s, _, _)| *s == sha)
                            .map(|(_, state, ctx)| json!({"state": state, "context": ctx, "description": null, "target_url": null}))
                            .collect(),
                    ),
                ),
                _ => json(404, json!({"message": "Not Found"})),
            };
        }
        match (method, parts.as_slice()) {
            ("POST", ["pulls"]) => {
                let (head, base) = (
                    body["head"].as_str().unwrap_or("").to_owned(),
                    body["base"].as_str().unwrap_or("").to_owned(),
                );
                if m.prs
                    .iter()
                    .any(|p| p.open && p.head == head && p.base == base)
                {
                    return json(
                        422,
                        json!({"message": "Validation Failed", "errors": [{"message": "A pull request already exists"}]}),
                    );
                }
                let Some(head_sha) = branch_sha(&bare, &head) else {
                    return json(422, json!({"message": "head not found"}));
                };
                let pr = GhFakePr {
                    number: m.prs.len() as u64 + 100,
                    draft: body["draft"].as_bool().unwrap_or(false),
                    head,
                    base,
                    head_sha,
                    open: true,
                    merged: false,
                    method: None,
                };
                m.prs.push(pr.clone());
                json(201, pr_json(&pr))
            }
            ("GET", ["pulls"]) => {
                let closed = q.get("state").map(String::as_str) == Some("closed");
                let all = q.get("state").map(String::as_str) == Some("all");
                let head = q
                    .get("head")
                    .and_then(|h| h.split_once(':'))
                    .map(|(_, b)| b.to_owned());
                let list: Vec<Value> = m
                    .prs
                    .iter()
                    .filter(|p| all || p.open != closed)
                    .filter(|p| q.get("base").is_none_or(|b| *b == p.base))
                    .filter(|p| head.as_ref().is_none_or(|h| *h == p.head))
                    .map(pr_json)
                    .collect();
                json(200, Value::Array(list))
            }
            ("PUT", ["pulls", n, "merge"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                let Some(i) = m.prs.iter().position(|p| p.number == n && p.open) else {
                    return json(405, json!({"message": "Pull Request is not mergeable"}));
                };
                let pr = m.prs[i].clone();
                if pr.draft {
                    return json(405, json!({"message": "Pull Request is still a draft"}));
                }
                let cur = branch_sha(&bare, &pr.head).unwrap_or_default();
                if body["sha"].as_str().is_some_and(|s| s != cur) {
                    return json(
                        409,
                        json!({"message": "Head branch was modified. Review and try the merge again."}),
                    );
                }
                let old = branch_sha(&bare, &pr.base).unwrap_or_default();
                if git(&bare, &["merge-base", "--is-ancestor", &old, &cur]).is_none() {
                    return json(405, json!({"message": "Pull Request is not mergeable"}));
                }
                git(
                    &bare,
                    &["update-ref", &format!("refs/heads/{}", pr.base), &cur, &old],
                );
                let p = &mut m.prs[i];
                p.open = false;
                p.merged = true;
                p.head_sha = cur.clone();
                p.method = body["merge_method"].as_str().map(str::to_owned);
                json(
                    200,
                    json!({"sha": cur, "merged": true, "message": "Pull Request successfully merged"}),
                )
            }
            ("GET", ["pulls", n, "reviews"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                json(
                    200,
                    Value::Array(m.reviews.iter().filter(|r| r["pr"] == n).cloned().collect()),
                )
            }
            ("GET", ["pulls", n, "comments"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                json(
                    200,
                    Value::Array(
                        m.review_comments
                            .iter()
                            .filter(|r| r["pr"] == n)
                            .cloned()
                            .collect(),
                    ),
                )
            }
            ("GET", ["issues"]) => {
                // Every fake issue has the same updated_at; newest number first.
                let list: Vec<Value> = m
                    .raw_listed_issues
                    .iter()
                    .cloned()
                    .chain(m
                    .issues
                    .iter()
                    .rev()
                    .map(|(n, i)| json!({"number": n, "title": i.title, "labels": i.labels.iter().map(|l| json!({"name": l})).collect::<Vec<_>>(), "updated_at": "2026-05-20T10:00:00Z"})))
                    .collect();
                let per: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
                let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
                json(
                    200,
                    Value::Array(list.into_iter().skip((page - 1) * per).take(per).collect()),
                )
            }
            ("GET", ["issues", n]) => match n
                .parse::<u64>()
                .ok()
                .and_then(|n| m.issues.get(&n).cloned().map(|i| (n, i)))
            {
                Some((n, i)) => {
                    let answer = json(
                        200,
                        json!({"number": n, "title": i.title, "body": "", "labels": labels_json(&i.labels), "updated_at": "2026-05-20T10:00:00Z"}),
                    );
                    // A person labels the issue just after this read.
                    if m.person_adds_after_read
                        .front()
                        .is_some_and(|(k, _)| *k == n)
                    {
                        let (_, label) = m.person_adds_after_read.pop_front().unwrap();
                        let issue = m.issues.get_mut(&n).unwrap();
                        if !issue.labels.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
                            issue.labels.push(label);
                        }
                    }
                    answer
                }
                None => json(404, json!({"message": "Not Found"})),
            },
            // Add labels: the issue keeps its labels; a name it already has
            // (GitHub compares label names case-insensitively) is not
            // repeated. 200 with every label of the issue.
            ("POST", ["issues", n, "labels"]) => {
                let Some(new) = body["labels"].as_array().map(|a| {
                    a.iter()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect::<Vec<_>>()
                }) else {
                    return json(
                        422,
                        json!({"message": "Invalid request. \"labels\" wasn't supplied."}),
                    );
                };
                match n.parse::<u64>().ok().and_then(|n| m.issues.get_mut(&n)) {
                    Some(i) => {
                        for l in new {
                            if !i.labels.iter().any(|x| x.eq_ignore_ascii_case(&l)) {
                                i.labels.push(l);
                            }
                        }
                        json(200, labels_json(&i.labels))
                    }
                    None => json(404, json!({"message": "Not Found"})),
                }
            }
            // Remove one label (the name is the URL-encoded last segment):
            // 200 with the labels left, 404 when the issue does not have it.
            ("DELETE", ["issues", n, "labels", name]) => {
                let name = percent_decode(name);
                match n.parse::<u64>().ok().and_then(|n| m.issues.get_mut(&n)) {
                    Some(i) => match i.labels.iter().position(|l| l.eq_ignore_ascii_case(&name)) {
                        Some(p) => {
                            i.labels.remove(p);
                            json(200, labels_json(&i.labels))
                        }
                        None => json(
                            404,
                            json!({"message": "Label does not exist", "documentation_url": "https://docs.github.com/rest/issues/labels#remove-a-label-from-an-issue"}),
                        ),
                    },
                    None => json(404, json!({"message": "Not Found"})),
                }
            }
            ("PUT", ["issues", n, "labels"]) => {
                let labels: Vec<String> = body["labels"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| l.as_str().map(str::to_owned))
                    .collect();
                match n.parse::<u64>().ok().and_then(|n| m.issues.get_mut(&n)) {
                    Some(i) => {
                        i.labels = labels.clone();
                        json(
                            200,
                            Value::Array(labels.iter().map(|l| json!({"name": l})).collect()),
                        )
                    }
                    None => json(404, json!({"message": "Not Found"})),
                }
            }
            // Oldest first; `since` keeps those updated at or after it
            // (never edited here, so created = updated); `per_page`/`page`.
            ("GET", ["issues", n, "comments"]) => {
                let q: BTreeMap<String, String> = req
                    .url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let since = q
                    .get("since")
                    .and_then(|s| crate::timestamps::parse_millis(s));
                let per_page: usize = q
                    .get("per_page")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(30)
                    .clamp(1, 100);
                let page: usize = q
                    .get("page")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1)
                    .max(1);
                match n.parse::<u64>().ok().and_then(|n| m.issues.get(&n)) {
                    Some(i) => {
                        let all: Vec<Value> = i
                            .comments
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| {
                                since.is_none_or(|s| {
                                    crate::timestamps::parse_millis(&c.created_at)
                                        .is_some_and(|at| at >= s)
                                })
                            })
                            .map(|(k, c)| {
                                json!({"id": k + 1, "body": c.body, "created_at": c.created_at,
                                       "updated_at": c.created_at, "user": {"login": "someone", "type": "User"}})
                            })
                            .collect();
                        let chunk = all.chunks(per_page).nth(page - 1).unwrap_or(&[]);
                        json(200, Value::Array(chunk.to_vec()))
                    }
                    None => json(404, json!({"message": "Not Found"})),
                }
            }
            ("POST", ["issues", n, "comments"]) => {
                match n.parse::<u64>().ok().and_then(|n| m.issues.get_mut(&n)) {
                    Some(i) => {
                        i.comments.push(GhFakeComment {
                            body: body["body"].as_str().unwrap_or("").to_owned(),
                            created_at: super::now_rfc3339(false),
                        });
                        json(201, json!({"id": i.comments.len()}))
                    }
                    None => json(404, json!({"message": "Not Found"})),
                }
            }
            _ => json(404, json!({"message": "Not Found"})),
        }
    }
}
