//! The contract of Jira Cloud's REST API v3 as orch uses it, against
//! Atlassian's published OpenAPI description
//! (`fixtures/jira/api-v3-excerpt.json`, `SOURCES.md`): every request orch
//! sends, every answer the fake Jira gives, and orch's client on the
//! documented example answers.

#[path = "support/local_pipeline.rs"]
mod local_pipeline;

#[path = "support/jira_world.rs"]
mod jira_world;

use jira_world::*;
use orch_engine::ports::Tracker;
use orch_integrations::fakes::FakeJira;
use orch_integrations::jira::{JiraClient, JiraReconciler};
use serde_json::{Value, json};

// ---- the contract ----

/// Does a concrete path (`/rest/api/3/issue/ENG-1/transitions`) match a
/// template of the description (`/rest/api/3/issue/{issueIdOrKey}/transitions`)?
fn matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

fn operation<'a>(d: &'a Value, method: &str, path: &str) -> Result<&'a Value, String> {
    d["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["method"] == method && matches(o["path"].as_str().unwrap(), path))
        .ok_or_else(|| format!("{method} {path} is no operation of the description"))
}

/// Keys of `v` that are not properties of `schema` (one level).
fn undeclared(d: &Value, schema: &str, v: &Value) -> Vec<String> {
    let props = &d["schemas"][schema]["properties"];
    v.as_object()
        .map(|o| {
            o.keys()
                .filter(|k| props.get(k.as_str()).is_none())
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// One request against the description: the operation exists, its query
/// parameters are declared, its body's fields are properties of the body's
/// schema (a transition's of `IssueTransition` too).
fn check_request(d: &Value, seen: &orch_integrations::fakes::Seen) -> Result<(), String> {
    let op = operation(d, &seen.method, &seen.path)?;
    let at = format!("{} {}", seen.method, seen.path);
    for (k, _) in &seen.query {
        let declared = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["in"] == "query" && p["name"] == k.as_str());
        if !declared {
            return Err(format!("{at}: query parameter {k:?} is not declared"));
        }
    }
    match (op["body"].as_str(), &seen.body) {
        (Some(schema), Some(body)) => {
            let extra = undeclared(d, schema, body);
            if !extra.is_empty() {
                return Err(format!("{at}: body fields {extra:?} are not in {schema}"));
            }
            if schema == "IssueUpdateDetails" {
                let extra = undeclared(d, "IssueTransition", &body["transition"]);
                if !extra.is_empty() || body["transition"]["id"].as_str().is_none() {
                    return Err(format!(
                        "{at}: transition {} is not an IssueTransition with an id",
                        body["transition"]
                    ));
                }
            }
            Ok(())
        }
        (Some(schema), None) => Err(format!("{at}: a {schema} body is required")),
        (None, Some(_)) => Err(format!("{at}: the operation takes no body")),
        (None, None) => Ok(()),
    }
}

/// A session that makes every call orch makes (tracker, reconciler with
/// paging, doctor).
async fn session(f: &FakeJira) {
    let t = tracker(f);
    let (_dir, _store, p, _ingest) = pipeline(t.clone()).await;
    for n in 1..=120 {
        f.add_issue(&format!("OPS-{n}"), "x", "Done");
    }
    f.add_issue("ENG-1", "x", "To Do");
    f.person_comments("ENG-1", "hello");
    t.item("ENG-1").await.unwrap();
    t.set_state("ENG-1", "Analysis").await.unwrap();
    t.comment("ENG-1", "note", Some("k")).await.unwrap();
    t.person_comment_since("ENG-1", orch_core::Timestamp(0))
        .await
        .unwrap();
    let r = JiraReconciler::new(t.clone(), p);
    r.run_once().await;
    r.run_once().await;
    t.client().myself().await.unwrap();
    t.client().project_statuses("ENG").await.unwrap();
}

/// Every request orch sends, as sent in a session that exercises the
/// tracker, the reconciler and the doctor, is an operation of Jira's
/// published description with declared parameters and body fields, and
/// every operation of the excerpt was used.
#[tokio::test]
async fn every_request_orch_sends_is_an_operation_of_the_published_description() {
    let d = description();
    let f = fake().await;
    session(&f).await;
    let seen: Vec<_> = f.m().requests.iter().map(|r| r.seen.clone()).collect();
    let mut used = std::collections::BTreeSet::new();
    for s in &seen {
        check_request(&d, s).unwrap_or_else(|e| panic!("{e}"));
        used.insert(operation(&d, &s.method, &s.path).unwrap()["operationId"].to_string());
    }
    assert_eq!(
        used.len(),
        d["operations"].as_array().unwrap().len(),
        "every operation of the excerpt was called: {used:?}"
    );
    assert!(
        seen.iter().all(|s| !s.path.ends_with("/rest/api/3/search")),
        "never the deprecated search"
    );
}

/// The fake answers as the description says: each success status is one
/// the operation lists, and each answer's fields are properties of its
/// schema (the issues of a search, the transitions and their target
/// statuses, the comments of a page, one level down).
#[tokio::test]
async fn the_fake_answers_as_the_published_description_says() {
    let d = description();
    let f = fake().await;
    f.add_issue("ENG-1", "x", "To Do");
    f.person_comments("ENG-1", "hello");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let basic = format!(
        "Basic {}",
        orch_integrations::jira::client::base64(format!("{EMAIL}:{TOKEN}").as_bytes())
    );
    let to = (f.status_id("ENG", "Analysis").parse::<u64>().unwrap() + 100).to_string();
    let calls: Vec<(&str, &str, Option<Value>, &str)> = vec![
        ("GET", "/rest/api/3/myself", None, "User"),
        ("GET", "/rest/api/3/issue/ENG-1", None, "IssueBean"),
        (
            "GET",
            "/rest/api/3/issue/ENG-1/transitions",
            None,
            "Transitions",
        ),
        (
            "GET",
            "/rest/api/3/issue/ENG-1/comment",
            None,
            "PageOfComments",
        ),
        (
            "POST",
            "/rest/api/3/issue/ENG-1/comment",
            Some(json!({ "body": orch_integrations::jira::adf::from_text("hi") })),
            "Comment",
        ),
        (
            "POST",
            "/rest/api/3/search/jql",
            Some(
                json!({ "jql": "project = ENG ORDER BY updated ASC", "fields": ["status"], "maxResults": 10 }),
            ),
            "SearchAndReconcileResults",
        ),
        (
            "GET",
            "/rest/api/3/project/ENG/statuses",
            None,
            "IssueTypeWithStatus",
        ),
        (
            "POST",
            "/rest/api/3/issue/ENG-1/transitions",
            Some(json!({ "transition": { "id": to } })),
            "",
        ),
    ];
    for (method, path, body, schema) in calls {
        let mut req = client
            .request(method.parse().unwrap(), format!("{}{path}", f.uri()))
            .header("Authorization", &basic);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16().to_string();
        let op = operation(&d, method, path).unwrap();
        assert!(
            op["responses"].get(&status).is_some(),
            "{method} {path}: {status} is not an answer the description lists"
        );
        if schema.is_empty() {
            assert_eq!(status, "204");
            continue;
        }
        let v: Value = r.json().await.unwrap();
        let one = if v.is_array() {
            v[0].clone()
        } else {
            v.clone()
        };
        let extra = undeclared(&d, schema, &one);
        assert!(
            extra.is_empty(),
            "{method} {path}: {extra:?} not in {schema}"
        );
        let nested: Vec<(&Value, &str)> = match schema {
            "Transitions" => vec![
                (&v["transitions"][0], "IssueTransition"),
                (&v["transitions"][0]["to"], "StatusDetails"),
            ],
            "PageOfComments" => vec![(&v["comments"][0], "Comment")],
            "SearchAndReconcileResults" => vec![(&v["issues"][0], "IssueBean")],
            "IssueBean" => vec![(&v["fields"]["status"], "StatusDetails")],
            _ => vec![],
        };
        for (n, s) in nested {
            assert!(n.is_object(), "{method} {path}: no {s} to check");
            let extra = undeclared(&d, s, n);
            assert!(extra.is_empty(), "{method} {path}: {extra:?} not in {s}");
        }
    }
}

/// orch's client reads Jira's own documented example answers (served as
/// published): the transitions with their target statuses, the comments'
/// ADF, the search's issues and the account.
#[tokio::test]
async fn the_client_reads_the_documented_example_answers() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let d = description();
    let example = |m: &str, p: &str, st: &str| {
        operation(&d, m, p).unwrap()["responses"][st]["example"].clone()
    };
    let server = MockServer::start().await;
    for (m, p, st, route) in [
        ("GET", "/rest/api/3/myself", "200", "/rest/api/3/myself"),
        (
            "GET",
            "/rest/api/3/issue/{issueIdOrKey}/transitions",
            "200",
            "/rest/api/3/issue/EX-1/transitions",
        ),
        (
            "GET",
            "/rest/api/3/issue/{issueIdOrKey}/comment",
            "200",
            "/rest/api/3/issue/EX-1/comment",
        ),
        (
            "POST",
            "/rest/api/3/search/jql",
            "200",
            "/rest/api/3/search/jql",
        ),
        (
            "GET",
            "/rest/api/3/issue/{issueIdOrKey}",
            "200",
            "/rest/api/3/issue/EX-1",
        ),
        (
            "GET",
            "/rest/api/3/project/{projectIdOrKey}/statuses",
            "200",
            "/rest/api/3/project/EX/statuses",
        ),
    ] {
        let body = example(m, &p.replace("EX-1", "{issueIdOrKey}"), st);
        assert!(!body.is_null(), "{m} {p} has an example");
        Mock::given(method(m))
            .and(path(route))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(&server)
            .await;
    }
    let c = JiraClient::new(&server.uri(), EMAIL, TOKEN, fast()).unwrap();
    assert_eq!(c.myself().await.unwrap(), "Mia Krystof");
    let ts = c.transitions("EX-1").await.unwrap();
    assert!(
        !ts.is_empty() && ts.iter().all(|t| !t.id.is_empty() && !t.to.name.is_empty()),
        "{ts:?}"
    );
    let (comments, total) = c.comments_page("EX-1", 0).await.unwrap();
    assert!(total >= 1 && !comments.is_empty());
    assert!(
        orch_integrations::jira::adf::to_text(&comments[0].body).starts_with("Lorem ipsum"),
        "{:?}",
        comments[0].body
    );
    assert!(
        orch_integrations::jira::client::parse_time(comments[0].created.as_deref().unwrap())
            .is_some()
    );
    let page = c.search_page("project = EX", None).await.unwrap();
    assert!(
        !page.issues.is_empty() && page.next.is_none(),
        "isLast: true"
    );
    let issue = c.issue("EX-1").await.unwrap().unwrap();
    assert_eq!(issue.key, "ED-1");
    assert!(
        c.project_statuses("EX")
            .await
            .unwrap()
            .unwrap()
            .contains(&"Closed".to_string())
    );
}

#[test]
fn the_jira_contract_checker_can_fail() {
    use orch_integrations::fakes::Seen;
    let d = description();
    let seen = |m: &str, p: &str, q: &[(&str, &str)], b: Option<Value>| Seen {
        method: m.into(),
        path: p.into(),
        query: q
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: b,
    };
    let bad = [
        (
            seen("GET", "/rest/api/3/search", &[("jql", "x")], None),
            "no operation",
        ),
        (
            seen("PUT", "/rest/api/3/issue/ENG-1", &[], Some(json!({}))),
            "no operation",
        ),
        (
            seen("GET", "/rest/api/3/issue/ENG-1", &[("field", "x")], None),
            "query parameter \"field\"",
        ),
        (
            seen(
                "POST",
                "/rest/api/3/search/jql",
                &[],
                Some(json!({ "jql": "x", "startAt": 0 })),
            ),
            "[\"startAt\"]",
        ),
        (
            seen(
                "POST",
                "/rest/api/3/issue/ENG-1/transitions",
                &[],
                Some(json!({ "transition": { "name": "Done" } })),
            ),
            "not an IssueTransition with an id",
        ),
        (
            seen(
                "POST",
                "/rest/api/3/issue/ENG-1/transitions",
                &[],
                Some(json!({ "status": "Done" })),
            ),
            "[\"status\"]",
        ),
        (
            seen("POST", "/rest/api/3/issue/ENG-1/comment", &[], None),
            "body is required",
        ),
    ];
    for (s, want) in bad {
        let e = check_request(&d, &s).expect_err(&format!("{s:?}"));
        assert!(e.contains(want), "{s:?}: {e}");
    }
    assert!(
        check_request(
            &d,
            &seen(
                "POST",
                "/rest/api/3/issue/ENG-1/transitions",
                &[],
                Some(json!({ "transition": { "id": "5" } }))
            )
        )
        .is_ok()
    );
}
