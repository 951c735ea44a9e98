//! A fake Gitea over a real bare repository: branches are the repository's
//! refs (orch pushes to it with git), and a merge moves the base branch
//! there, so the pipeline sees the merge exactly as with a real forge.
//! Issues, labels and comments (the issues tracker) are in `gitea_issues`.

use super::gitea_issues::{self, FakeIssue, FakeLabel};
use super::{Seen, branch_sha, git, json, seen};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Debug, Clone)]
pub struct FakePr {
    pub number: u64,
    /// A `WIP:` prefix makes it a draft, which Gitea will not merge.
    pub title: String,
    pub head: String,
    pub base: String,
    pub head_sha: String,
    pub open: bool,
    pub merged: bool,
    pub merge_commit_sha: Option<String>,
    pub merge_style: Option<String>,
}

pub struct GiteaModel {
    pub full_name: String,
    pub token: String,
    pub bare: PathBuf,
    pub default_branch: String,
    pub protected: BTreeSet<String>,
    /// Protected branches whose protection requires status checks: the
    /// contexts (glob patterns), shown on the branch as Gitea does
    /// (`enable_status_check`, `status_check_contexts`).
    pub status_checks: BTreeMap<String, Vec<String>>,
    /// Branches whose DELETE Gitea refuses (403) though GET shows them
    /// unprotected (e.g. the target of another open pull request).
    pub refuse_delete: BTreeSet<String>,
    pub prs: Vec<FakePr>,
    /// Commit statuses, oldest first: orch's `orch/verify` and those a
    /// test posts as the repository's CI ([`FakeGitea::ci_status`]).
    pub statuses: Vec<FakeStatus>,
    /// Gitea Actions' jobs ([`FakeGitea::actions_job_fails`]).
    pub action_jobs: Vec<FakeActionJob>,
    /// The next requests' answers (a 429 carries `Retry-After`).
    pub fail_next: VecDeque<u16>,
    /// Failures for requests whose path contains a fragment: (fragment,
    /// status, how many more), checked after `fail_next`.
    pub fail_on: Vec<(String, u16, usize)>,
    /// The `Retry-After` of an injected 429, in seconds.
    pub retry_after_secs: u64,
    pub issues: BTreeMap<u64, FakeIssue>,
    /// The repository's labels.
    pub labels: Vec<FakeLabel>,
    /// The last id given to a label or comment.
    pub next_id: i64,
    /// `(issue, label)`: a person adds `label` to the issue right after the
    /// next read of it (`GET …/issues/{n}`), between orch's read and write.
    pub person_adds_after_read: VecDeque<(u64, String)>,
    /// Answers forced on the next merge calls: (status, message).
    pub merge_answers: VecDeque<(u16, String)>,
    /// People's reviews of pull requests (swagger `PullReview`).
    pub reviews: Vec<FakeReview>,
    pub requests: Vec<Seen>,
}

/// A review of a pull request with its inline comments (path, line, text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeReview {
    pub id: u64,
    pub pr: u64,
    pub user: String,
    /// `APPROVED`, `REQUEST_CHANGES` or `COMMENT`.
    pub state: String,
    pub body: String,
    pub commit_id: String,
    pub comments: Vec<(String, u64, String)>,
}

/// One job of a Gitea Actions run (each run of the fake has one job).
#[derive(Debug, Clone)]
pub struct FakeActionJob {
    /// The run's id (the API's) and number (its page's).
    pub run_id: u64,
    pub run_number: u64,
    pub job_id: u64,
    pub name: String,
    pub head_sha: String,
    pub log: String,
}

/// A commit status as Gitea keeps it (swagger `CommitStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeStatus {
    pub sha: String,
    pub state: String,
    pub context: String,
    pub description: String,
    pub target_url: String,
}

pub struct FakeGitea {
    pub server: MockServer,
    pub model: Arc<Mutex<GiteaModel>>,
}

struct Responder(Arc<Mutex<GiteaModel>>);

impl FakeGitea {
    /// `full_name` is `owner/name`; `bare` the repository orch pushes to.
    pub async fn start(full_name: &str, token: &str, bare: &Path) -> FakeGitea {
        let server = MockServer::start().await;
        let model = Arc::new(Mutex::new(GiteaModel {
            full_name: full_name.into(),
            token: token.into(),
            bare: bare.into(),
            default_branch: "main".into(),
            protected: BTreeSet::new(),
            status_checks: BTreeMap::new(),
            refuse_delete: BTreeSet::new(),
            prs: Vec::new(),
            statuses: Vec::new(),
            action_jobs: Vec::new(),
            fail_next: VecDeque::new(),
            fail_on: Vec::new(),
            retry_after_secs: 1,
            issues: BTreeMap::new(),
            labels: Vec::new(),
            next_id: 0,
            person_adds_after_read: VecDeque::new(),
            merge_answers: VecDeque::new(),
            reviews: Vec::new(),
            requests: Vec::new(),
        }));
        Mock::given(any())
            .respond_with(Responder(model.clone()))
            .mount(&server)
            .await;
        FakeGitea { server, model }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn m(&self) -> std::sync::MutexGuard<'_, GiteaModel> {
        self.model.lock().unwrap()
    }

    /// The repository's CI reports a check on `sha` (as Gitea Actions or an
    /// external CI does through the statuses API).
    pub fn ci_status(&self, sha: &str, context: &str, state: &str, description: &str) {
        self.m().statuses.push(FakeStatus {
            sha: sha.into(),
            state: state.into(),
            context: context.into(),
            description: description.into(),
            target_url: format!("{}/ci/{context}", self.uri()),
        });
    }

    /// A person reviews pull request `pr` at its current head (`state`:
    /// `APPROVED`, `REQUEST_CHANGES` or `COMMENT`) with inline comments
    /// (path, line, text); returns the reviewed commit.
    pub fn person_reviews(
        &self,
        pr: u64,
        user: &str,
        state: &str,
        body: &str,
        comments: &[(&str, u64, &str)],
    ) -> String {
        let mut m = self.m();
        refresh_heads(&mut m);
        let commit_id = m
            .prs
            .iter()
            .find(|p| p.number == pr)
            .map(|p| p.head_sha.clone())
            .expect("no such pull request");
        let id = m.reviews.len() as u64 + 1;
        m.reviews.push(FakeReview {
            id,
            pr,
            user: user.into(),
            state: state.into(),
            body: body.into(),
            commit_id: commit_id.clone(),
            comments: comments
                .iter()
                .map(|(p, l, b)| (p.to_string(), *l, b.to_string()))
                .collect(),
        });
        commit_id
    }

    /// Protect `branch` with a rule that requires these status contexts
    /// (glob patterns) to pass before a merge into it.
    pub fn require_checks(&self, branch: &str, contexts: &[&str]) {
        let mut m = self.m();
        m.protected.insert(branch.to_owned());
        m.status_checks.insert(
            branch.to_owned(),
            contexts.iter().map(|c| c.to_string()).collect(),
        );
    }

    /// The repository's Gitea Actions runs a workflow on `sha` whose one
    /// job fails with `log`: a new run (its number the next), the job's
    /// failure status (context `{workflow} / {job} (pull_request)`, linked
    /// to the job's page as Gitea links it), and the log behind the API.
    /// Returns the status's context.
    pub fn actions_job_fails(&self, sha: &str, workflow: &str, job: &str, log: &str) -> String {
        let uri = self.uri();
        let mut m = self.m();
        let run_number = m
            .action_jobs
            .iter()
            .map(|j| j.run_number)
            .max()
            .unwrap_or(0)
            + 1;
        let job_id = m.action_jobs.len() as u64 + 100;
        m.action_jobs.push(FakeActionJob {
            run_id: 1000 + run_number,
            run_number,
            job_id,
            name: job.into(),
            head_sha: sha.into(),
            log: log.into(),
        });
        let context = format!("{workflow} / {job} (pull_request)");
        let full = m.full_name.clone();
        m.statuses.push(FakeStatus {
            sha: sha.into(),
            state: "failure".into(),
            context: context.clone(),
            description: "Failing after 4s".into(),
            target_url: format!("{uri}/{full}/actions/runs/{run_number}/jobs/0"),
        });
        context
    }

    /// The next `n` requests whose path contains `fragment` answer `status`.
    pub fn fail_on(&self, fragment: &str, status: u16, n: usize) {
        self.m().fail_on.push((fragment.into(), status, n));
    }

    pub fn fail_next(&self, status: u16, n: usize) {
        let mut m = self.m();
        for _ in 0..n {
            m.fail_next.push_back(status);
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.m().requests.clone()
    }

    pub fn prs(&self) -> Vec<FakePr> {
        self.m().prs.clone()
    }

    /// Add issue `number` with these labels (created in the repository as needed).
    pub fn add_issue(&self, number: u64, title: &str, labels: &[&str]) {
        self.m().add_issue(number, title, labels);
    }

    /// The names of issue `number`'s labels, in order.
    pub fn labels_of(&self, number: u64) -> Vec<String> {
        self.m().label_names(number)
    }

    /// The bodies of issue `number`'s comments, oldest first.
    pub fn comments_of(&self, number: u64) -> Vec<String> {
        self.m()
            .issues
            .get(&number)
            .map(|i| i.comments.iter().map(|c| c.body.clone()).collect())
            .unwrap_or_default()
    }

    /// A person adds `label` to issue `number`; the `issue_label` body Gitea sends.
    pub fn person_labels(&self, number: u64, label: &str) -> Vec<u8> {
        self.m().person_labels(number, label)
    }

    pub fn person_comments(&self, number: u64, body: &str) {
        self.m().person_comments(number, body);
    }
}

/// Gitea's `CommitStatus` answer: the state is under `status`.
fn status_json(id: usize, s: &FakeStatus) -> Value {
    json!({
        "id": id, "status": s.state, "context": s.context,
        "description": s.description, "target_url": s.target_url,
        "created_at": "2026-05-20T10:03:10Z", "updated_at": "2026-05-20T10:03:10Z",
    })
}

fn pr_json(p: &FakePr) -> Value {
    json!({
        "id": p.number + 100, "number": p.number, "title": p.title,
        "draft": is_wip(&p.title),
        "html_url": format!("http://gitea.invalid/pulls/{}", p.number),
        "state": if p.open { "open" } else { "closed" },
        "merged": p.merged, "merge_commit_sha": p.merge_commit_sha, "mergeable": true,
        "head": {"label": p.head, "ref": if p.open || !p.merged { p.head.clone() } else { format!("refs/pull/{}/head", p.number) }, "sha": p.head_sha},
        "base": {"label": p.base, "ref": p.base, "sha": ""},
    })
}

impl Respond for Responder {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut m = self.0.lock().unwrap();
        m.requests.push(seen(req));
        if let Some(status) = m.fail_next.pop_front() {
            let r = json(status, json!({"message": "injected", "url": ""}));
            return if status == 429 {
                r.insert_header("Retry-After", m.retry_after_secs.to_string().as_str())
            } else {
                r
            };
        }
        let path = req.url.path().to_owned();
        if let Some(f) = m
            .fail_on
            .iter_mut()
            .find(|(frag, _, n)| *n > 0 && path.contains(frag.as_str()))
        {
            f.2 -= 1;
            return json(f.1, json!({"message": "injected", "url": ""}));
        }
        let auth = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if auth != format!("token {}", m.token) {
            return json(401, json!({"message": "token is required", "url": ""}));
        }
        let prefix = format!("/api/v1/repos/{}", m.full_name);
        let path = req.url.path().to_owned();
        let Some(rest) = path.strip_prefix(&prefix) else {
            return json(404, json!({"message": "repo not found"}));
        };
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let bare = m.bare.clone();
        let method = req.method.as_str();
        if method == "GET" && rest.is_empty() {
            return json(
                200,
                json!({"full_name": m.full_name, "default_branch": m.default_branch}),
            );
        }
        if let Some(branch) = rest.strip_prefix("/branches/") {
            let protected = m.protected.contains(branch);
            let contexts = m.status_checks.get(branch).cloned();
            return match (method, branch_sha(&bare, branch)) {
                (_, None) => json(404, json!({"message": "branch does not exist"})),
                ("GET", Some(sha)) => json(
                    200,
                    json!({
                        "name": branch,
                        "protected": protected,
                        "commit": {"id": sha},
                        "enable_status_check": contexts.is_some(),
                        "status_check_contexts": contexts.unwrap_or_default(),
                    }),
                ),
                ("DELETE", Some(_))
                    if protected
                        || branch == m.default_branch
                        || m.refuse_delete.contains(branch) =>
                {
                    json(
                        403,
                        json!({"message": "can not delete default or pull request target branch"}),
                    )
                }
                ("DELETE", Some(sha)) => {
                    git(
                        &bare,
                        &["update-ref", "-d", &format!("refs/heads/{branch}"), &sha],
                    );
                    ResponseTemplate::new(204)
                }
                _ => json(405, json!({"message": "method not allowed"})),
            };
        }
        if let Some(r) = gitea_issues::respond(&mut m, req, rest, &body) {
            return r;
        }
        if method == "GET"
            && let Some(r) = actions(&m, req, rest)
        {
            return r;
        }
        if let Some(sha) = rest.strip_prefix("/statuses/") {
            let text = |k: &str| body[k].as_str().unwrap_or("").to_owned();
            let status = FakeStatus {
                sha: sha.to_owned(),
                state: text("state"),
                context: text("context"),
                description: text("description"),
                target_url: text("target_url"),
            };
            m.statuses.push(status.clone());
            return json(201, status_json(m.statuses.len(), &status));
        }
        // `GET /repos/{owner}/{repo}/commits/{ref}/statuses`: newest first
        // (orch asks with `sort=recentupdate`).
        if let Some(sha) = rest
            .strip_prefix("/commits/")
            .and_then(|r| r.strip_suffix("/statuses"))
            && method == "GET"
        {
            let list: Vec<Value> = m
                .statuses
                .iter()
                .enumerate()
                .filter(|(_, s)| s.sha == sha)
                .rev()
                .map(|(i, s)| status_json(i + 1, s))
                .collect();
            return json(200, Value::Array(list));
        }
        let Some(pulls) = rest.strip_prefix("/pulls") else {
            return json(404, json!({"message": "not found"}));
        };
        let all: Vec<&str> = pulls.trim_start_matches('/').split('/').collect();
        if method == "GET"
            && let Some(r) = reviews_answer(&m, &all)
        {
            return r;
        }
        if let ("PATCH", [n]) = (method, all.as_slice())
            && let Ok(n) = n.parse::<u64>()
        {
            return match m.prs.iter_mut().find(|p| p.number == n) {
                Some(p) => {
                    if let Some(t) = body["title"].as_str() {
                        p.title = t.to_owned();
                    }
                    let p = p.clone();
                    json(201, pr_json(&p))
                }
                None => json(404, json!({"message": "not found"})),
            };
        }
        let parts: Vec<&str> = pulls.trim_start_matches('/').splitn(2, '/').collect();
        match (method, parts.as_slice()) {
            ("POST", [""]) => {
                let head = body["head"].as_str().unwrap_or("").to_owned();
                let base = body["base"].as_str().unwrap_or("").to_owned();
                if m.prs
                    .iter()
                    .any(|p| p.open && p.head == head && p.base == base)
                {
                    return json(
                        409,
                        json!({"message": "pull request already exists for these targets"}),
                    );
                }
                let Some(head_sha) = branch_sha(&bare, &head) else {
                    return json(422, json!({"message": "head branch does not exist"}));
                };
                let pr = FakePr {
                    number: m.prs.len() as u64 + 1,
                    title: body["title"].as_str().unwrap_or("").to_owned(),
                    head,
                    base,
                    head_sha,
                    open: true,
                    merged: false,
                    merge_commit_sha: None,
                    merge_style: None,
                };
                m.prs.push(pr.clone());
                json(201, pr_json(&pr))
            }
            ("GET", [""]) => {
                let q: Vec<(String, String)> = req
                    .url
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
                let want_closed = get("state").as_deref() == Some("closed");
                let base = get("base_branch");
                let list: Vec<Value> = m
                    .prs
                    .iter()
                    .rev()
                    .filter(|p| p.open != want_closed && base.as_ref().is_none_or(|b| *b == p.base))
                    .map(pr_json)
                    .collect();
                json(200, Value::Array(list))
            }
            ("GET", [n]) if n.parse::<u64>().is_ok() => {
                let n: u64 = n.parse().unwrap();
                refresh_heads(&mut m);
                match m.prs.iter().find(|p| p.number == n) {
                    Some(p) => json(200, pr_json(p)),
                    None => json(404, json!({"message": "not found"})),
                }
            }
            ("GET", [base, head]) => {
                refresh_heads(&mut m);
                match m
                    .prs
                    .iter()
                    .rev()
                    .find(|p| p.base == *base && p.head == *head)
                {
                    Some(p) => json(200, pr_json(p)),
                    None => json(404, json!({"message": "not found"})),
                }
            }
            ("POST", [n, "merge"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                if let Some((status, msg)) = m.merge_answers.pop_front() {
                    return json(status, json!({"message": msg}));
                }
                refresh_heads(&mut m);
                let Some(idx) = m.prs.iter().position(|p| p.number == n && p.open) else {
                    return json(404, json!({"message": "pull request is closed"}));
                };
                let pr = m.prs[idx].clone();
                if is_wip(&pr.title) {
                    return json(
                        405,
                        json!({"message": "work in progress PRs cannot be merged"}),
                    );
                }
                if body["head_commit_id"]
                    .as_str()
                    .is_some_and(|h| !h.is_empty() && h != pr.head_sha)
                {
                    return json(409, json!({"message": "head out of date"}));
                }
                // The base's protection: every required context must have
                // passed on the head (not ready to merge: 405).
                if let Some(required) = m.status_checks.get(&pr.base)
                    && !required_checks_passed(&m.statuses, required, &pr.head_sha)
                {
                    return json(
                        405,
                        json!({"message": "Not all required status checks successful"}),
                    );
                }
                let old = branch_sha(&bare, &pr.base).unwrap_or_default();
                // Fast-forward when the head contains the base (orch merges
                // the base in before verify); anything else is a conflict here.
                if git(&bare, &["merge-base", "--is-ancestor", &old, &pr.head_sha]).is_none() {
                    return json(409, json!({"message": "merge conflict"}));
                }
                git(
                    &bare,
                    &[
                        "update-ref",
                        &format!("refs/heads/{}", pr.base),
                        &pr.head_sha,
                        &old,
                    ],
                );
                let p = &mut m.prs[idx];
                p.open = false;
                p.merged = true;
                p.merge_commit_sha = Some(pr.head_sha.clone());
                p.merge_style = body["do"]
                    .as_str()
                    .or(body["Do"].as_str())
                    .map(str::to_owned);
                ResponseTemplate::new(200)
            }
            _ => json(404, json!({"message": "not found"})),
        }
    }
}

/// Gitea Actions' read calls (swagger `getWorkflowRuns`,
/// `listWorkflowRunJobs`, `downloadActionsRunJobLogs`).
fn actions(m: &GiteaModel, req: &Request, rest: &str) -> Option<ResponseTemplate> {
    let rest = rest.strip_prefix("/actions/")?;
    if rest == "runs" {
        let sha = req
            .url
            .query_pairs()
            .find(|(k, _)| k == "head_sha")
            .map(|(_, v)| v.into_owned());
        let runs: Vec<Value> = m
            .action_jobs
            .iter()
            .filter(|j| sha.as_ref().is_none_or(|s| *s == j.head_sha))
            .map(|j| {
                json!({"id": j.run_id, "run_number": j.run_number, "head_sha": j.head_sha,
                       "status": "completed", "conclusion": "failure", "event": "pull_request"})
            })
            .collect();
        return Some(json(
            200,
            json!({"total_count": runs.len(), "workflow_runs": runs}),
        ));
    }
    if let Some(run) = rest
        .strip_prefix("runs/")
        .and_then(|r| r.strip_suffix("/jobs"))
    {
        let run: u64 = run.parse().unwrap_or(0);
        let jobs: Vec<Value> = m
            .action_jobs
            .iter()
            .filter(|j| j.run_id == run)
            .map(|j| {
                json!({"id": j.job_id, "run_id": j.run_id, "name": j.name, "head_sha": j.head_sha,
                       "status": "completed", "conclusion": "failure"})
            })
            .collect();
        return Some(if jobs.is_empty() {
            json(404, json!({"message": "run not found"}))
        } else {
            json(200, json!({"total_count": jobs.len(), "jobs": jobs}))
        });
    }
    let job = rest
        .strip_prefix("jobs/")
        .and_then(|r| r.strip_suffix("/logs"))?;
    let job: u64 = job.parse().unwrap_or(0);
    Some(match m.action_jobs.iter().find(|j| j.job_id == job) {
        Some(j) => ResponseTemplate::new(200)
            .insert_header("Content-Type", "application/octet-stream")
            .set_body_string(j.log.clone()),
        None => json(404, json!({"message": "job not found"})),
    })
}

/// Gitea's rule for required status contexts (glob patterns): each matches
/// at least one status of `sha`, and the newest status of every context it
/// matches is a pass (`success`, `warning` or `skipped`).
fn required_checks_passed(statuses: &[FakeStatus], required: &[String], sha: &str) -> bool {
    let mut newest: Vec<&FakeStatus> = Vec::new();
    for s in statuses.iter().rev().filter(|s| s.sha == sha) {
        if !newest.iter().any(|n| n.context == s.context) {
            newest.push(s);
        }
    }
    required.iter().all(|pattern| {
        let matched: Vec<_> = newest
            .iter()
            .filter(|s| orch_core::wildcard::matches(pattern, &s.context))
            .collect();
        !matched.is_empty()
            && matched
                .iter()
                .all(|s| matches!(s.state.as_str(), "success" | "warning" | "skipped"))
    })
}

/// Gitea's default `WORK_IN_PROGRESS_PREFIXES`.
fn is_wip(title: &str) -> bool {
    title.starts_with("WIP:") || title.starts_with("[WIP]")
}

/// `GET …/pulls/{n}/reviews[/{id}/comments]`.
fn reviews_answer(m: &GiteaModel, parts: &[&str]) -> Option<ResponseTemplate> {
    let n: u64 = parts.first()?.parse().ok()?;
    match parts.get(1..)? {
        ["reviews"] => Some(json(
            200,
            Value::Array(
                m.reviews
                    .iter()
                    .filter(|r| r.pr == n)
                    .map(|r| {
                        json!({
                            "id": r.id, "user": {"login": r.user}, "state": r.state,
                            "body": r.body, "commit_id": r.commit_id, "dismissed": false,
                            "stale": false, "official": true, "comments_count": r.comments.len(),
                        })
                    })
                    .collect(),
            ),
        )),
        ["reviews", id, "comments"] => {
            let id: u64 = id.parse().ok()?;
            let r = m.reviews.iter().find(|r| r.pr == n && r.id == id)?;
            Some(json(
                200,
                Value::Array(
                    r.comments
                        .iter()
                        .map(|(path, line, body)| {
                            json!({"path": path, "position": line, "body": body, "commit_id": r.commit_id, "pull_request_review_id": r.id})
                        })
                        .collect(),
                ),
            ))
        }
        _ => None,
    }
}

/// An open PR's head follows its branch (a push updates the PR).
fn refresh_heads(m: &mut GiteaModel) {
    let bare = m.bare.clone();
    for p in m.prs.iter_mut().filter(|p| p.open) {
        if let Some(sha) = branch_sha(&bare, &p.head) {
            p.head_sha = sha;
        }
    }
}
