//! Gitea/Forgejo issues as the tracker, against the fake Gitea on loopback
//! (issues, labels and comments built from Gitea's swagger): gate labels
//! move per stage, comments are posted once, signed `issue_label` webhooks
//! move the pipeline (a bad signature is refused, a replay keys the same),
//! the reconciler lists each repository once per cycle, a 429's
//! `Retry-After` is waited out; and the contract: every request orch sent
//! and every answer of the fake's issue routes match `swagger.v1.json`.

mod support;

#[path = "support/local_pipeline.rs"]
mod local_pipeline;

use orch_engine::ports::Tracker;
use orch_integrations::fakes::FakeGitea;
use orch_integrations::gitea::{GiteaClient, GiteaIssuesTracker, GiteaReconciler};
use orch_integrations::http::CallPolicy;
use orch_integrations::ingest::{Handled, Ingest};
use orch_integrations::signature::sign;
use orch_integrations::webhook::{Provider, Verify, WebhookEvent, receive};
use orch_store::Store;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::swagger::{check, swagger};

const TOKEN: &str = "gitea-token-1";
const SECRET: &str = "gitea-webhook-secret";

struct World {
    _dir: tempfile::TempDir,
    fake: FakeGitea,
    client: Arc<GiteaClient>,
}

fn fast() -> CallPolicy {
    CallPolicy {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..CallPolicy::default()
    }
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    // The issue routes never touch the repository.
    let fake = FakeGitea::start("acme/app", TOKEN, &dir.path().join("app.git")).await;
    let client = Arc::new(GiteaClient::new(&fake.uri(), TOKEN, fast()).unwrap());
    World {
        _dir: dir,
        fake,
        client,
    }
}

fn tracker(w: &World) -> Arc<GiteaIssuesTracker> {
    Arc::new(GiteaIssuesTracker::new(
        w.client.clone(),
        BTreeMap::from([("app".to_string(), "acme/app".to_string())]),
        orch_config::TrackerStates::default(),
    ))
}

/// A real pipeline (SQLite store, local forge) over the Gitea issues
/// tracker, and the webhook sink in front of it.
async fn pipeline(
    w: &World,
) -> (
    tempfile::TempDir,
    Arc<dyn Store>,
    Arc<orch_engine::pipeline::Pipeline>,
    Ingest,
) {
    let t = tracker(w);
    let (dir, store, p) = local_pipeline::local_pipeline(t.clone()).await;
    let ingest = Ingest::new(p.clone(), None, BTreeMap::new()).with_gitea_issues(Some(t));
    (dir, store, p, ingest)
}

/// Verify and parse a delivery as the server does (`receive`).
fn delivered(body: &[u8], sig: &str, delivery: &str) -> Result<(WebhookEvent, Vec<String>), u16> {
    let headers = [
        ("x-gitea-signature", sig),
        ("x-gitea-event", "issues"),
        ("x-gitea-event-type", "issue_label"),
        ("x-gitea-delivery", delivery),
    ];
    receive(
        Provider::Gitea,
        Verify::Secret(SECRET.as_bytes()),
        |n| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v),
        body,
    )
    .map(|a| (a.event, a.dedupe_keys))
    .map_err(|r| r.status)
}

#[tokio::test]
async fn gate_labels_move_per_stage_and_other_labels_stay() {
    let w = world().await;
    let t = tracker(&w);
    w.fake
        .add_issue(42, "Add a greeting", &["bug", "To Analyse"]);
    let item = t.item("app-42").await.unwrap().unwrap();
    assert_eq!(
        (
            item.project.as_str(),
            item.state.as_str(),
            item.title.as_str()
        ),
        ("app", "To Analyse", "Add a greeting")
    );
    assert!(t.item("app-99").await.unwrap().is_none());
    assert!(t.item("other-1").await.unwrap().is_none());

    // Analysis does not exist in the repository yet: orch creates it.
    t.set_state("app-42", "Analysis").await.unwrap();
    assert_eq!(w.fake.labels_of(42), ["bug", "Analysis"]);
    t.set_state("app-42", "Awaiting Approval").await.unwrap();
    assert_eq!(w.fake.labels_of(42), ["bug", "Awaiting Approval"]);
    // A person's gate wins over orch's stage label while both are there.
    w.fake.person_labels(42, "Approved");
    assert_eq!(t.item("app-42").await.unwrap().unwrap().state, "Approved");
    t.set_state("app-42", "Development").await.unwrap();
    assert_eq!(w.fake.labels_of(42), ["bug", "Development"]);

    t.set_labels("app-42", &["orch:development".to_string()])
        .await
        .unwrap();
    t.set_labels("app-42", &["orch:review".to_string()])
        .await
        .unwrap();
    assert_eq!(w.fake.labels_of(42), ["bug", "Development", "orch:review"]);

    // Labels go by id through the add and remove endpoints, never the
    // replace-all PUT; the repository's labels are listed once.
    let reqs = w.fake.requests();
    assert!(reqs.iter().all(|r| r.method != "PUT"), "{reqs:#?}");
    let adds: Vec<&Value> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/repos/acme/app/issues/42/labels")
        .filter_map(|r| r.body.as_ref())
        .collect();
    assert!(
        adds.iter()
            .all(|b| b["labels"].as_array().unwrap().iter().all(Value::is_i64)),
        "{adds:?}"
    );
    assert!(reqs.iter().any(|r| {
        r.method == "DELETE"
            && r.path
                .starts_with("/api/v1/repos/acme/app/issues/42/labels/")
    }));
    let created: Vec<&str> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/repos/acme/app/labels")
        .filter_map(|r| r.body.as_ref()?["name"].as_str())
        .collect();
    assert_eq!(
        created,
        [
            "Analysis",
            "Awaiting Approval",
            "Development",
            "orch:development",
            "orch:review"
        ]
    );
}

/// Labels are edited one by one by id, never replaced as a list, so a label
/// a person adds between orch's read of the issue and its write survives.
#[tokio::test]
async fn a_label_a_person_adds_while_orch_moves_the_issue_survives() {
    let w = world().await;
    let t = tracker(&w);
    w.fake
        .add_issue(42, "x", &["bug", "To Analyse", "orch:analysis"]);
    w.fake
        .m()
        .person_adds_after_read
        .push_back((42, "urgent".into()));
    t.set_state("app-42", "Analysis").await.unwrap();
    assert_eq!(
        w.fake.labels_of(42),
        ["bug", "orch:analysis", "urgent", "Analysis"]
    );
    w.fake
        .m()
        .person_adds_after_read
        .push_back((42, "needs docs".into()));
    t.set_labels("app-42", &["orch:review".to_string()])
        .await
        .unwrap();
    assert_eq!(
        w.fake.labels_of(42),
        ["bug", "urgent", "Analysis", "needs docs", "orch:review"]
    );
}

#[tokio::test]
async fn comments_are_posted_once_per_key_and_a_persons_reason_is_found() {
    let w = world().await;
    let t = tracker(&w);
    w.fake.add_issue(7, "Add a greeting", &["To Analyse"]);
    // orch asked a moment ago.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let asked = orch_core::Timestamp(now_ms - 1000);
    t.comment("app-7", "orch merged the change", Some("orch-merged"))
        .await
        .unwrap();
    t.comment("app-7", "orch merged the change", Some("orch-merged"))
        .await
        .unwrap();
    t.comment("app-7", "orch: free text", None).await.unwrap();
    let comments = w.fake.comments_of(7);
    assert_eq!(
        comments.len(),
        2,
        "the key's marker stops a repeat: {comments:?}"
    );
    assert!(comments[0].contains("<!-- orch:orch-merged -->"));
    assert!(comments[1].ends_with("<!-- orch -->"));
    // orch's own comments are no reason; a person's is.
    assert_eq!(t.person_comment_since("app-7", asked).await.unwrap(), None);
    w.fake
        .person_comments(7, "Rejected: the plan misses the migration.");
    assert_eq!(
        t.person_comment_since("app-7", asked)
            .await
            .unwrap()
            .as_deref(),
        Some("Rejected: the plan misses the migration.")
    );
}

#[tokio::test]
async fn a_signed_label_webhook_moves_the_pipeline_a_bad_one_is_refused() {
    let w = world().await;
    let (_dir, store, _p, ingest) = pipeline(&w).await;
    w.fake.add_issue(7, "Add a greeting", &["bug"]);
    let body = w.fake.person_labels(7, "To Analyse");
    let sig = sign(SECRET.as_bytes(), &body);

    // A wrong signature, a tampered body, no signature: 401, and nothing
    // reaches the pipeline (the parse never runs).
    assert_eq!(delivered(&body, &"0".repeat(64), "d-1").unwrap_err(), 401);
    let mut tampered = body.clone();
    tampered[20] ^= 1;
    assert_eq!(delivered(&tampered, &sig, "d-1").unwrap_err(), 401);
    assert_eq!(delivered(&body, "", "d-1").unwrap_err(), 401);
    assert!(
        store
            .find_live_task_by_tracker_id("app-7")
            .await
            .unwrap()
            .is_none()
    );

    let (ev, keys) = delivered(&body, &sig, "d-1").unwrap();
    let h = ingest.process(Provider::Gitea, ev).await;
    assert!(matches!(h, Handled::Routed(_)), "{h:?}");
    let task = store
        .find_live_task_by_tracker_id("app-7")
        .await
        .unwrap()
        .expect("started");
    assert_eq!(task.stage, orch_core::Stage::Analysis);
    // The stage is the issue's state label now, with orch's comment.
    assert_eq!(w.fake.labels_of(7), ["bug", "Analysis", "orch:analysis"]);
    assert!(!w.fake.comments_of(7).is_empty());

    // A replay (Gitea's retry: same delivery, same body) keys the same, so
    // the server's delivery record answers it as a duplicate; redelivered
    // under a new id it is still the same change.
    let (_, again) = delivered(&body, &sig, "d-1").unwrap();
    assert_eq!(again, keys);
    let (_, redelivered) = delivered(&body, &sig, "d-2").unwrap();
    assert_eq!(
        redelivered[1], keys[1],
        "the change key survives a new delivery id"
    );
    // Handled anyway, it is a no-op: the task stays where it is.
    let (ev, _) = delivered(&body, &sig, "d-1").unwrap();
    let h = ingest.process(Provider::Gitea, ev).await;
    assert!(!matches!(h, Handled::Failed(_)), "{h:?}");
    let same = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(same.stage, orch_core::Stage::Analysis);
    assert_eq!(store.jobs_for_task(task.id).await.unwrap().len(), 1);
}

#[test]
fn the_reference_payload_is_signed_as_documented() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gitea");
    let body = std::fs::read(dir.join("gitea-issue-label-updated.json")).unwrap();
    let sig = "84f3514e00481546b8ee30bc43df4e5ac837a62e7c07aa813b3002b3318ba8c0";
    let (ev, _) = delivered(&body, sig, "d-9").unwrap();
    let WebhookEvent::ItemState(s) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!((s.project.as_str(), s.item.as_str()), ("acme/demo", "7"));
    assert_eq!(
        s.state,
        orch_integrations::webhook::StateRef::Labels(
            ["bug", "Awaiting Approval", "Approved"]
                .map(String::from)
                .to_vec()
        )
    );
    let mut other = body.clone();
    other.push(b'\n');
    assert_eq!(delivered(&other, sig, "d-9").unwrap_err(), 401);
}

#[tokio::test]
async fn the_reconciler_lists_each_repo_once_per_cycle_and_repairs_lost_labels() {
    let w = world().await;
    let (_dir, store, p, _ingest) = pipeline(&w).await;
    for n in 1..=60 {
        w.fake.add_issue(n, &format!("old {n}"), &["Done"]);
    }
    // Long unchanged, so a listing from a watermark of now leaves them out.
    for i in w.fake.m().issues.values_mut() {
        i.updated_at = "2026-01-02T03:04:05Z".into();
    }
    w.fake
        .add_issue(61, "labelled while orch was down", &["To Analyse"]);
    let r = GiteaReconciler::new(tracker(&w), p);
    let st = r.run_once().await;
    // 61 issues: two pages of Gitea's 50, and no empty third (X-Total-Count).
    assert_eq!((st.repaired, st.errors, st.pages), (1, 0, 2), "{st:?}");
    assert!(
        store
            .find_live_task_by_tracker_id("app-61")
            .await
            .unwrap()
            .is_some()
    );

    let before = w.fake.requests().len();
    let st = r.run_once().await;
    assert_eq!(
        (st.repaired, st.api_calls),
        (0, 1),
        "one listing call per repo: {st:?}"
    );
    let listing = &w.fake.requests()[before];
    assert_eq!(listing.path, "/api/v1/repos/acme/app/issues");
    for (k, v) in [("type", "issues"), ("state", "all")] {
        assert!(
            listing.query.iter().any(|(a, b)| a == k && b == v),
            "{listing:?}"
        );
    }
    assert!(
        listing.query.iter().any(|(k, _)| k == "since"),
        "the listing starts at the watermark"
    );
    // An outage: nothing changes, the watermark stays, the next cycle retries.
    w.fake.m().fail_next.extend([500, 500, 500, 500]);
    let st = r.run_once().await;
    assert_eq!((st.errors, st.repaired), (1, 0), "{st:?}");
}

/// Gitea's listing has no sort order to rely on: the watermark is the
/// newest `updated_at` of the whole listing (compared as times), handed
/// back as listed, not that of the first issue listed.
#[tokio::test]
async fn the_watermark_is_the_newest_change_of_the_whole_listing() {
    let w = world().await;
    let (_dir, _store, p, _ingest) = pipeline(&w).await;
    for n in 1..=3 {
        w.fake.add_issue(n, &format!("issue {n}"), &["Done"]);
    }
    // Listed #3, #2, #1; #2 changed last (before #3 as text, after it as
    // a time).
    for (n, at) in [
        (1, "2026-03-01T00:00:00Z"),
        (2, "2026-03-01T01:00:00-01:00"),
        (3, "2026-03-01T01:30:00Z"),
    ] {
        w.fake.m().issues.get_mut(&n).unwrap().updated_at = at.into();
    }
    let r = GiteaReconciler::new(tracker(&w), p);
    let st = r.run_once().await;
    assert_eq!((st.items_seen, st.errors), (3, 0), "{st:?}");
    let before = w.fake.requests().len();
    r.run_once().await;
    let listing = &w.fake.requests()[before];
    let since = listing.query.iter().find(|(k, _)| k == "since");
    assert_eq!(
        since.map(|(_, v)| v.as_str()),
        Some("2026-03-01T01:00:00-01:00"),
        "{listing:?}"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out() {
    let w = world().await;
    let t = tracker(&w);
    w.fake.add_issue(3, "x", &["To Analyse"]);
    w.fake.fail_next(429, 2);
    let started = Instant::now();
    t.set_state("app-3", "Analysis").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "Retry-After: 1 honoured twice: {:?}",
        started.elapsed()
    );
    assert_eq!(w.fake.labels_of(3), ["Analysis"]);
    // A Retry-After beyond what one call waits fails the call as rate
    // limited (a transient port error), and nothing changed.
    w.fake.m().retry_after_secs = 600;
    w.fake.fail_next(429, 1);
    let e = t.set_state("app-3", "Review").await.unwrap_err();
    assert!(!e.is_permanent(), "{e}");
    assert_eq!(w.fake.labels_of(3), ["Analysis"]);
}

/// `orch doctor` checks the Gitea tracker: the token, each repository, and
/// the gate labels a person needs to apply.
#[tokio::test]
async fn doctor_checks_the_gitea_tracker_and_names_missing_gate_labels() {
    use orch_integrations::doctor::{Level, check_providers};
    let w = world().await;
    let cfg = orch_config::Config::from_toml_str(&format!(
        "[tracker]\nkind = \"gitea\"\n[tracker.gitea]\nbase_url = \"{}\"\nrepos = [\"acme/app\"]\n\
         [[repos]]\nname = \"app\"\nremote = \"https://example.invalid/acme/app.git\"\n",
        w.fake.uri()
    ))
    .unwrap();
    let tracker_checks = |secret: &'static [(&'static str, &'static str)]| {
        let cfg = cfg.clone();
        async move {
            let get = |n: &str| {
                secret
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            };
            check_providers(&cfg, &get)
                .await
                .into_iter()
                .filter(|c| c.subject == "tracker.gitea")
                .collect::<Vec<_>>()
        }
    };
    let env: &[(&str, &str)] = &[
        ("ORCH_GITEA_TOKEN", TOKEN),
        ("ORCH_GITEA_WEBHOOK_SECRET", "s"),
    ];
    let checks = tracker_checks(env).await;
    let missing = checks
        .iter()
        .find(|c| c.level == Level::Warn)
        .unwrap_or_else(|| panic!("{checks:?}"));
    assert!(missing.message.contains("\"STOP\""), "{missing:?}");
    for gate in [
        "To Analyse",
        "Approved",
        "Rejected",
        "Confirm Deploy",
        "STOP",
    ] {
        w.fake.m().label(gate);
    }
    let checks = tracker_checks(env).await;
    assert!(checks.iter().all(|c| c.level == Level::Ok), "{checks:?}");
    let checks = tracker_checks(&[]).await;
    assert!(
        checks
            .iter()
            .any(|c| c.level == Level::Fail && c.message.contains("ORCH_GITEA_TOKEN")),
        "{checks:?}"
    );
}

// ---- the contract ----------------------------------------------------------

/// Every request the tracker and the reconciler send matches Gitea's swagger.
#[tokio::test]
async fn every_request_the_tracker_sends_matches_the_swagger() {
    let w = world().await;
    let (_dir, _store, p, _ingest) = pipeline(&w).await;
    let t = tracker(&w);
    w.fake.add_issue(5, "c", &["To Analyse", "orch:analysis"]);
    t.item("app-5").await.unwrap();
    t.set_state("app-5", "Analysis").await.unwrap();
    t.set_labels("app-5", &["orch:review".to_string()])
        .await
        .unwrap();
    t.comment("app-5", "hello", Some("k")).await.unwrap();
    t.person_comment_since("app-5", orch_core::Timestamp::EPOCH)
        .await
        .unwrap();
    GiteaReconciler::new(t, p).run_once().await;
    let sw = swagger();
    let mut covered = std::collections::BTreeSet::new();
    for r in w.fake.requests() {
        covered.insert(check(&sw, &r.method, &r.path, &r.query, r.body.as_ref()).unwrap());
    }
    for op in [
        "GET /repos/{owner}/{repo}/issues",
        "GET /repos/{owner}/{repo}/issues/{index}",
        "POST /repos/{owner}/{repo}/issues/{index}/labels",
        "DELETE /repos/{owner}/{repo}/issues/{index}/labels/{id}",
        "GET /repos/{owner}/{repo}/labels",
        "POST /repos/{owner}/{repo}/labels",
        "GET /repos/{owner}/{repo}/issues/{index}/comments",
        "POST /repos/{owner}/{repo}/issues/{index}/comments",
    ] {
        assert!(covered.contains(op), "{op} not exercised: {covered:?}");
    }
}

/// The fake's answers: each route is in the swagger, each status one the
/// operation declares, and each field of a body a property of the schema
/// the swagger gives for that status. The stored excerpt is the full file's
/// text for these operations.
#[tokio::test]
async fn the_fake_answers_as_the_swagger_describes() {
    let sw = swagger();
    let excerpt: Value = serde_json::from_slice(
        &std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/gitea/swagger-issues.json"),
        )
        .unwrap(),
    )
    .unwrap();
    for (path, ops) in excerpt["paths"].as_object().unwrap() {
        for (m, op) in ops.as_object().unwrap() {
            assert_eq!(op, &sw["paths"][path][m], "{m} {path}");
        }
    }
    for (name, def) in excerpt["definitions"].as_object().unwrap() {
        assert_eq!(def, &sw["definitions"][name], "{name}");
    }

    let w = world().await;
    w.fake.add_issue(5, "c", &["To Analyse"]);
    let label = w.fake.m().label("To Analyse");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("{}/api/v1/repos/acme/app", w.fake.uri());
    let j = |v: Value| Some(v);
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        (
            "GET",
            "/issues?state=all&type=issues&page=1&limit=50".into(),
            None,
        ),
        ("GET", "/issues/5".into(), None),
        ("GET", "/issues/404".into(), None),
        (
            "POST",
            "/issues/5/labels".into(),
            j(serde_json::json!({"labels": [label]})),
        ),
        ("DELETE", format!("/issues/5/labels/{label}"), None),
        ("DELETE", "/issues/5/labels/99999".into(), None),
        ("GET", "/labels?page=1&limit=50".into(), None),
        (
            "POST",
            "/labels".into(),
            j(serde_json::json!({"name": "Review", "color": "#00aabb"})),
        ),
        (
            "POST",
            "/labels".into(),
            j(serde_json::json!({"name": "no colour"})),
        ),
        (
            "POST",
            "/issues/5/comments".into(),
            j(serde_json::json!({"body": "hi"})),
        ),
        (
            "GET",
            "/issues/5/comments?since=2020-01-01T00:00:00Z".into(),
            None,
        ),
        (
            "POST",
            "/issues/404/comments".into(),
            j(serde_json::json!({"body": "hi"})),
        ),
    ];
    for (method, rest, body) in cases {
        let mut req = http.request(method.parse().unwrap(), format!("{base}{rest}"));
        req = req.header("Authorization", format!("token {TOKEN}"));
        if let Some(b) = &body {
            req = req.json(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16().to_string();
        let total = resp.headers().get("x-total-count").is_some();
        let answer: Value =
            serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null);
        let url = reqwest::Url::parse(&format!("{base}{rest}")).unwrap();
        let query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        // A body the swagger refuses (asking for a 422) is checked as such,
        // and its operation found from the route alone.
        let op = match check(&sw, method, url.path(), &query, body.as_ref()) {
            Ok(op) => op,
            Err(e) if status == "422" && e.contains("required field") => {
                e.split(':').next().unwrap().to_owned()
            }
            Err(e) => panic!("{e}"),
        };
        let (_, template) = op.split_once(' ').unwrap();
        let spec = &sw["paths"][template][method.to_lowercase()];
        let declared = &spec["responses"][&status];
        assert!(
            declared.is_object(),
            "{op}: {status} is not declared: {}",
            spec["responses"]
        );
        let resp_ref = declared["$ref"]
            .as_str()
            .unwrap()
            .trim_start_matches("#/responses/");
        let schema = &sw["responses"][resp_ref]["schema"];
        if schema.is_null() {
            continue;
        }
        let (items, def) = match schema["type"].as_str() {
            Some("array") => (
                answer.as_array().cloned().unwrap(),
                &schema["items"]["$ref"],
            ),
            _ => (vec![answer.clone()], &schema["$ref"]),
        };
        if schema["type"] == "array" && template.ends_with("/issues")
            || template.ends_with("/labels") && method == "GET"
        {
            assert!(total, "{op}: a listing carries X-Total-Count");
        }
        let def = &sw["definitions"][def.as_str().unwrap().trim_start_matches("#/definitions/")];
        let props = def["properties"].as_object().unwrap();
        for item in items {
            for k in item.as_object().unwrap().keys() {
                assert!(
                    props.contains_key(k),
                    "{op} answers a field {k} its schema lacks"
                );
            }
        }
    }
}
