//! Linear as the tracker, against the fake Linear built from Linear's
//! published schema and webhook payloads (`fixtures/linear/SOURCES.md`):
//! states by name per team, comments, signed webhooks with their timestamp
//! check, the reconciler's one listing per team per cycle, rate limits, the
//! doctor, and the contract of every document orch sends.

#[path = "support/graphql.rs"]
mod graphql;

#[path = "support/local_pipeline.rs"]
mod local_pipeline;

use graphql::Schema;
use orch_config::TrackerStates;
use orch_engine::ports::Tracker;
use orch_integrations::fakes::FakeLinear;
use orch_integrations::http::CallPolicy;
use orch_integrations::ingest::{Handled, Ingest};
use orch_integrations::linear::tracker::Team;
use orch_integrations::linear::{LinearClient, LinearReconciler, LinearTracker, queries};
use orch_integrations::signature;
use orch_integrations::webhook::{Provider, StateRef, Verify, WebhookEvent, receive};
use orch_store::Store;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "lin_api_test";
const SECRET: &str = "lin_wh_secret";

/// ENG calls two of orch's states by other names; OPS uses orch's names.
const ENG_STATES: &[&str] = &[
    "Todo",
    "Analysis",
    "Awaiting Approval",
    "Approved",
    "Rejected",
    "Development",
    "Review",
    "Merge",
    "Deploy",
    "Confirm Deploy",
    "Shipped",
    "STOP",
    "Cancelled",
    "Failed",
    "Needs Attention",
    "Backlog",
];

fn fast() -> CallPolicy {
    CallPolicy {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..CallPolicy::default()
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/linear")
            .join(name),
    )
    .unwrap()
}

fn schema() -> Schema {
    Schema::parse(&String::from_utf8(fixture("schema-excerpt.graphql")).unwrap())
}

async fn fake() -> FakeLinear {
    let f = FakeLinear::start(KEY).await;
    f.add_team("ENG", ENG_STATES);
    let names: Vec<String> = TrackerStates::default()
        .entries()
        .iter()
        .map(|(_, n)| n.to_string())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    f.add_team("OPS", &names);
    f
}

fn eng_names() -> TrackerStates {
    TrackerStates {
        to_analyse: "Todo".into(),
        done: "Shipped".into(),
        ..TrackerStates::default()
    }
}

fn tracker_with(f: &FakeLinear, policy: CallPolicy) -> Arc<LinearTracker> {
    let client = Arc::new(LinearClient::new(&f.uri(), KEY, policy).unwrap());
    Arc::new(LinearTracker::new(
        client,
        BTreeMap::from([
            (
                "ENG".to_string(),
                Team {
                    repo: "app".into(),
                    names: eng_names(),
                },
            ),
            (
                "ops".to_string(),
                Team {
                    repo: "app".into(),
                    names: TrackerStates::default(),
                },
            ),
        ]),
        TrackerStates::default(),
    ))
}

fn tracker(f: &FakeLinear) -> Arc<LinearTracker> {
    tracker_with(f, fast())
}

/// A real pipeline (SQLite store, local forge) over the Linear tracker, and
/// the webhook sink in front of it.
async fn pipeline(
    t: Arc<LinearTracker>,
) -> (
    tempfile::TempDir,
    Arc<dyn Store>,
    Arc<orch_engine::pipeline::Pipeline>,
    Ingest,
) {
    let (dir, store, p) = local_pipeline::local_pipeline(t.clone()).await;
    let ingest = Ingest::new(p.clone(), None, BTreeMap::new()).with_linear(Some(t));
    (dir, store, p, ingest)
}

fn now() -> orch_core::Timestamp {
    orch_core::Timestamp(orch_integrations::fakes::linear::now_ms())
}

// ---- the tracker ----

#[tokio::test]
async fn issues_move_by_each_teams_state_names_with_the_bare_api_key() {
    let f = fake().await;
    let t = tracker(&f);
    f.add_issue("ENG-1", "Add a greeting", "Todo");
    f.add_issue("OPS-7", "Rotate keys", "To Analyse");

    // ENG's "Todo" is orch's To Analyse; OPS uses orch's own names.
    let item = t.item("ENG-1").await.unwrap().unwrap();
    assert_eq!(
        (
            item.state.as_str(),
            item.project.as_str(),
            item.title.as_str()
        ),
        ("To Analyse", "app", "Add a greeting")
    );
    assert_eq!(t.item("OPS-7").await.unwrap().unwrap().state, "To Analyse");
    assert!(
        t.item("ENG-99").await.unwrap().is_none(),
        "Linear's Entity not found"
    );
    assert!(
        t.item("WEB-1").await.unwrap().is_none(),
        "a team orch does not serve"
    );

    t.set_state("ENG-1", "Analysis").await.unwrap();
    assert_eq!(f.state_of("ENG-1"), "Analysis");
    t.set_state("ENG-1", "Done").await.unwrap();
    assert_eq!(
        f.state_of("ENG-1"),
        "Shipped",
        "orch's Done is ENG's Shipped"
    );
    t.set_state("OPS-7", "Done").await.unwrap();
    assert_eq!(f.state_of("OPS-7"), "Done");

    // The key goes as it is: personal keys take no `Bearer`.
    assert!(
        f.m()
            .requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(KEY))
    );
    // The team's states were read once and kept.
    let reads = f
        .operations()
        .iter()
        .filter(|o| *o == "OrchTeamStates")
        .count();
    assert_eq!(reads, 2, "one read per team: {:?}", f.operations());
}

#[tokio::test]
async fn a_state_the_team_lacks_is_a_clear_error_and_nothing_moves() {
    let f = FakeLinear::start(KEY).await;
    f.add_team("ENG", &["Todo", "Analysis"]);
    f.add_issue("ENG-2", "x", "Todo");
    let t = tracker(&f);
    let e = t.set_state("ENG-2", "Review").await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("team ENG has no workflow state named \"Review\"")
            && msg.contains("workflow_states"),
        "{msg}"
    );
    assert_eq!(f.state_of("ENG-2"), "Todo");
    assert!(!f.operations().iter().any(|o| o == "OrchIssueUpdate"));
}

#[tokio::test]
async fn comments_carry_orchs_marker_once_and_a_persons_reason_is_the_newest_unmarked() {
    let f = fake().await;
    let t = tracker(&f);
    f.add_issue("ENG-3", "x", "Todo");
    let since = now();
    t.comment("ENG-3", "Analysis started", Some("k1"))
        .await
        .unwrap();
    t.comment("ENG-3", "Analysis started", Some("k1"))
        .await
        .unwrap();
    let c = f.comments_of("ENG-3");
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(
        c[0].starts_with("Analysis started") && c[0].contains("<!-- orch:k1 -->"),
        "{c:?}"
    );
    assert_eq!(
        t.person_comment_since("ENG-3", since).await.unwrap(),
        None,
        "orch's own"
    );
    f.person_comments("ENG-3", "too vague");
    f.person_comments("ENG-3", "please name the page");
    assert_eq!(
        t.person_comment_since("ENG-3", since)
            .await
            .unwrap()
            .as_deref(),
        Some("please name the page")
    );
    assert_eq!(
        t.person_comment_since("ENG-3", orch_core::Timestamp(now().0 + 60_000))
            .await
            .unwrap(),
        None,
        "nothing since a later time"
    );
}

// ---- webhooks ----

/// A delivery's headers and body, verified and parsed as the server does.
fn delivered(body: &[u8], sig: &str, delivery: &str) -> Result<(WebhookEvent, Vec<String>), u16> {
    let headers = [
        ("linear-signature", sig),
        ("linear-event", "Issue"),
        ("linear-delivery", delivery),
    ];
    receive(
        Provider::Linear,
        Verify::Secret(SECRET.as_bytes()),
        |n| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v),
        body,
    )
    .map(|a| (a.event, a.dedupe_keys))
    .map_err(|r| r.status)
}

#[tokio::test]
async fn a_signed_issue_webhook_moves_the_pipeline_and_bad_stale_or_replayed_ones_do_not() {
    let f = fake().await;
    let t = tracker(&f);
    let (_dir, store, _p, ingest) = pipeline(t).await;
    f.add_issue("ENG-7", "Add a greeting", "Backlog");
    f.person_moves("ENG-7", "Todo");
    let body = serde_json::to_vec(&f.issue_webhook("ENG-7", Some("Backlog"))).unwrap();
    let sig = signature::sign(SECRET.as_bytes(), &body);

    // A wrong secret, a changed body, no signature: 401, the parse never runs.
    let wrong = signature::sign(b"other", &body);
    assert_eq!(delivered(&body, &wrong, "d-1").unwrap_err(), 401);
    let mut changed = body.clone();
    let at = changed.len() - 3;
    changed[at] ^= 1;
    assert_eq!(delivered(&changed, &sig, "d-1").unwrap_err(), 401);
    assert_eq!(delivered(&body, "", "d-1").unwrap_err(), 401);
    // Signed right but sent 61 s ago (a captured delivery played again):
    // refused too.
    let mut old = f.issue_webhook("ENG-7", Some("Backlog"));
    old["webhookTimestamp"] = json!(orch_integrations::fakes::linear::now_ms() - 61_000);
    let old = serde_json::to_vec(&old).unwrap();
    assert_eq!(
        delivered(&old, &signature::sign(SECRET.as_bytes(), &old), "d-0").unwrap_err(),
        401
    );
    // A timestamp a minute and more ahead is refused the same way.
    let mut ahead = f.issue_webhook("ENG-7", Some("Backlog"));
    ahead["webhookTimestamp"] = json!(orch_integrations::fakes::linear::now_ms() + 61_000);
    let ahead = serde_json::to_vec(&ahead).unwrap();
    assert_eq!(
        delivered(&ahead, &signature::sign(SECRET.as_bytes(), &ahead), "d-0b").unwrap_err(),
        401
    );
    assert!(
        store
            .find_live_task_by_tracker_id("ENG-7")
            .await
            .unwrap()
            .is_none()
    );

    let (ev, keys) = delivered(&body, &sig, "d-1").unwrap();
    let todo = f.state_id("ENG", "Todo");
    assert!(
        matches!(&ev, WebhookEvent::ItemState(s) if s.project == "ENG" && s.item == "ENG-7"
            && s.state == StateRef::Id { id: todo.clone(), name: Some("Todo".into()) }),
        "{ev:?}"
    );
    let h = ingest.process(Provider::Linear, ev).await;
    assert!(matches!(h, Handled::Routed(_)), "{h:?}");
    let task = store
        .find_live_task_by_tracker_id("ENG-7")
        .await
        .unwrap()
        .expect("started");
    assert_eq!(task.stage, orch_core::Stage::Analysis);
    assert_eq!(f.state_of("ENG-7"), "Analysis");

    // A replay keys the same (delivery and change), so the server answers
    // it as a duplicate; under another delivery id it is the same change.
    let (_, again) = delivered(&body, &sig, "d-1").unwrap();
    assert_eq!(again, keys);
    let (_, rekeyed) = delivered(&body, &sig, "d-2").unwrap();
    assert_eq!(
        rekeyed[1], keys[1],
        "the change key survives a new delivery id"
    );
    // Handled anyway, it is a no-op.
    let (ev, _) = delivered(&body, &sig, "d-1").unwrap();
    let h = ingest.process(Provider::Linear, ev).await;
    assert!(!matches!(h, Handled::Failed(_)), "{h:?}");
    assert_eq!(store.jobs_for_task(task.id).await.unwrap().len(), 1);
    // orch's own move comes back as a webhook and changes nothing.
    let echo = serde_json::to_vec(&f.issue_webhook("ENG-7", Some("Todo"))).unwrap();
    let (ev, _) = delivered(&echo, &signature::sign(SECRET.as_bytes(), &echo), "d-3").unwrap();
    let h = ingest.process(Provider::Linear, ev).await;
    assert!(!matches!(h, Handled::Failed(_)), "{h:?}");
    assert_eq!(store.jobs_for_task(task.id).await.unwrap().len(), 1);
}

#[test]
fn the_stored_payload_parses_as_linear_sends_it() {
    use orch_integrations::webhook::linear::parse;
    let body = fixture("issue-webhook.json");
    let ev = parse(&body, Some("Issue")).unwrap();
    assert!(
        matches!(&ev, WebhookEvent::ItemState(s) if s.project == "ENG" && s.item == "ENG-42"
            && s.state == StateRef::Id { id: "a7d3e1f0-2b4c-4d5e-8f6a-9b0c1d2e3f4a".into(), name: Some("To Analyse".into()) }
            && s.change_key.contains("2026-05-20T10:00:07.123Z")),
        "{ev:?}"
    );
    // Another field changed (no `stateId` in `updatedFrom`), a comment, a
    // removal: nothing for orch.
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["updatedFrom"] = json!({ "title": "Old title" });
    assert!(matches!(
        parse(&serde_json::to_vec(&v).unwrap(), None).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    v["type"] = json!("Comment");
    assert!(matches!(
        parse(&serde_json::to_vec(&v).unwrap(), None).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    v["type"] = json!("Issue");
    v["action"] = json!("remove");
    assert!(matches!(
        parse(&serde_json::to_vec(&v).unwrap(), None).unwrap(),
        WebhookEvent::Ignored { .. }
    ));
    // A created issue is routed (it may be created in To Analyse).
    v["action"] = json!("create");
    assert!(matches!(
        parse(&serde_json::to_vec(&v).unwrap(), None).unwrap(),
        WebhookEvent::ItemState(_)
    ));
    // The stored payload's own timestamp is long past: refused as stale.
    let sig = signature::sign(SECRET.as_bytes(), &body);
    assert_eq!(delivered(&body, &sig, "d-9").unwrap_err(), 401);
}

// ---- the reconciler ----

#[tokio::test]
async fn the_reconciler_lists_each_team_once_per_cycle_from_its_watermark() {
    let f = fake().await;
    let t = tracker(&f);
    let (_dir, store, p, _ingest) = pipeline(t.clone()).await;
    for n in 1..=150 {
        f.add_issue(&format!("ENG-{n}"), "old", "Shipped");
    }
    f.add_issue("ENG-151", "moved while orch was down", "Todo");
    f.add_issue("OPS-1", "old", "Done");
    let r = LinearReconciler::new(t, p);
    let st = r.run_once().await;
    // ENG: 151 issues in two pages of 100; OPS: one page.
    assert_eq!(
        (st.repaired, st.errors, st.pages, st.projects),
        (1, 0, 3, 2),
        "{st:?}"
    );
    assert!(
        store
            .find_live_task_by_tracker_id("ENG-151")
            .await
            .unwrap()
            .is_some()
    );

    // The next cycle: one listing per team, from the watermark on.
    let before = f.m().requests.len();
    let st = r.run_once().await;
    let ops: Vec<String> = f.operations()[before..].to_vec();
    assert_eq!(ops, ["OrchTeamIssues", "OrchTeamIssues"], "{st:?}");
    assert_eq!(st.api_calls, 2);
    let listing = f.m().requests[before].clone();
    assert_eq!(listing.variables["filter"]["team"]["key"]["eq"], "ENG");
    assert!(
        listing.variables["filter"]["updatedAt"]["gte"].is_string(),
        "the listing starts at the watermark: {:?}",
        listing.variables
    );
    assert!(
        listing.query.contains("orderBy: updatedAt"),
        "{}",
        listing.query
    );
    schema().check(&listing.query, &listing.variables).unwrap();

    // A person moves an old issue to Todo while the webhook is lost: the
    // next cycle lists what changed since (that issue, and ones at the
    // watermark again: `gte`) and starts it.
    f.person_moves("ENG-3", "Todo");
    let st = r.run_once().await;
    assert_eq!(st.repaired, 1, "{st:?}");
    assert!(st.items_seen < 5, "only what changed: {st:?}");
    assert!(
        store
            .find_live_task_by_tracker_id("ENG-3")
            .await
            .unwrap()
            .is_some()
    );
    // An outage: nothing changes, the watermark stays, the next cycle retries.
    f.m().fail_next.extend([500; 8]);
    let st = r.run_once().await;
    assert!(st.errors >= 1 && st.repaired == 0, "{st:?}");
}

// ---- rate limits ----

/// A listed record orch cannot read (a broken or hostile server's) is left
/// out and counted; the issues beside it are still repaired.
#[tokio::test]
async fn a_malformed_record_in_a_listing_hides_no_other_issue() {
    let f = fake().await;
    let t = tracker(&f);
    let (_dir, store, p, _ingest) = pipeline(t.clone()).await;
    f.add_issue("ENG-1", "moved while orch was down", "Todo");
    f.add_issue("OPS-1", "old", "Done");
    f.add_malformed_issue(json!({"id": 7, "identifier": null, "state": 3}));
    let st = LinearReconciler::new(t, p).run_once().await;
    // Each team's listing answered the malformed record too.
    assert_eq!((st.repaired, st.malformed, st.errors), (1, 2, 0), "{st:?}");
    assert!(
        store
            .find_live_task_by_tracker_id("ENG-1")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_ratelimited_answer_is_paused_for_until_its_reset_then_retried() {
    let f = fake().await;
    let t = tracker(&f);
    f.add_issue("OPS-3", "x", "To Analyse");
    t.item("OPS-3").await.unwrap();
    f.m().reset_after_ms = 600;
    f.m().rate_limited_next = 2;
    let started = Instant::now();
    t.set_state("OPS-3", "Analysis").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "two RATELIMITED answers, each paused to its reset: {:?}",
        started.elapsed()
    );
    assert_eq!(f.state_of("OPS-3"), "Analysis");
    // A reset further off than one call waits: the call fails as rate
    // limited (a transient error its owner retries), nothing changed.
    let t = tracker_with(
        &f,
        CallPolicy {
            max_retry_after: Duration::from_secs(1),
            ..fast()
        },
    );
    t.item("OPS-3").await.unwrap();
    f.m().reset_after_ms = 30_000;
    f.m().rate_limited_next = 1;
    let sent = f.m().requests.len();
    let e = t.set_state("OPS-3", "Review").await.unwrap_err();
    assert!(!e.is_permanent(), "{e}");
    assert!(e.to_string().contains("rate limiting"), "{e}");
    assert_eq!(f.state_of("OPS-3"), "Analysis");
    assert_eq!(
        f.m().requests.len(),
        sent + 1,
        "no hammering: one request, then the pause"
    );
}

#[tokio::test]
async fn a_spent_complexity_budget_pauses_the_next_call_until_its_reset() {
    let f = fake().await;
    let t = tracker(&f);
    f.add_issue("OPS-4", "x", "To Analyse");
    f.m().reset_after_ms = 800;
    f.m().complexity_spent_next = true;
    t.item("OPS-4").await.unwrap();
    let started = Instant::now();
    t.item("OPS-4").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "X-RateLimit-Complexity-Remaining: 0 paused the next call: {:?}",
        started.elapsed()
    );
}

// ---- doctor ----

#[tokio::test]
async fn doctor_checks_the_key_each_teams_states_and_the_secret() {
    use orch_integrations::doctor::{Level, check_providers};
    let f = FakeLinear::start(KEY).await;
    f.add_team("ENG", ENG_STATES);
    f.add_team("OPS", &["Todo", "Done"]);
    let cfg = |teams: &str| {
        orch_config::Config::from_toml_str(&format!(
            "[tracker]\nkind = \"linear\"\n[tracker.linear]\nbase_url = \"{}\"\n{teams}\
             [[repos]]\nname = \"app\"\nremote = \"https://example.invalid/acme/app.git\"\n",
            f.uri()
        ))
        .unwrap()
    };
    let run = |cfg: orch_config::Config, env: &'static [(&'static str, &'static str)]| async move {
        let get = |n: &str| {
            env.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        };
        check_providers(&cfg, &get)
            .await
            .into_iter()
            .filter(|c| c.subject.starts_with("tracker.linear"))
            .collect::<Vec<_>>()
    };
    const ENV: &[(&str, &str)] = &[
        ("ORCH_LINEAR_API_KEY", KEY),
        ("ORCH_LINEAR_WEBHOOK_SECRET", "s"),
    ];
    let eng = "[tracker.linear.teams.ENG]\nworkflow_states = { to_analyse = \"Todo\", done = \"Shipped\" }\n";
    let ok = run(cfg(eng), ENV).await;
    assert!(
        ok.len() == 3 && ok.iter().all(|c| c.level == Level::Ok),
        "{ok:?}"
    );
    // OPS lacks most of orch's states: each missing one is named.
    let ops = run(cfg("[tracker.linear.teams.OPS]\n"), ENV).await;
    let fail = ops
        .iter()
        .find(|c| c.level == Level::Fail)
        .expect("a failure");
    assert!(
        fail.subject == "tracker.linear.teams.OPS"
            && fail
                .message
                .contains("no workflow state named \"To Analyse\" (to_analyse)")
            && !fail.message.contains("(done)"),
        "{fail:?}"
    );
    let none = run(cfg("[tracker.linear.teams.WEB]\n"), ENV).await;
    assert!(
        none.iter()
            .any(|c| c.level == Level::Fail && c.message.contains("no team with key WEB")),
        "{none:?}"
    );
    let missing = run(cfg(eng), &[]).await;
    assert!(
        missing.iter().any(|c| c.level == Level::Fail && c.message.contains("ORCH_LINEAR_API_KEY is not set")),
        "{missing:?}"
    );
    let wrong = run(cfg(eng), &[("ORCH_LINEAR_API_KEY", "Bearer lin_api_test")]).await;
    assert!(wrong.iter().any(|c| c.level == Level::Fail), "{wrong:?}");
}

// ---- the contract ----

/// Every document orch sends, as sent (with its variables) in a session
/// that exercises the tracker, the reconciler and the doctor, uses only
/// fields, arguments and input fields of Linear's published schema.
#[tokio::test]
async fn every_document_orch_sends_is_valid_against_the_published_schema() {
    let s = schema();
    for doc in queries::ALL {
        s.check(doc, &json!({}))
            .unwrap_or_else(|e| panic!("{doc}: {e}"));
    }
    let f = fake().await;
    let t = tracker(&f);
    let (_dir, _store, p, _ingest) = pipeline(t.clone()).await;
    f.add_issue("ENG-1", "x", "Todo");
    f.person_comments("ENG-1", "hello");
    t.item("ENG-1").await.unwrap();
    t.set_state("ENG-1", "Analysis").await.unwrap();
    t.comment("ENG-1", "note", Some("k")).await.unwrap();
    t.person_comment_since("ENG-1", orch_core::Timestamp(0))
        .await
        .unwrap();
    let r = LinearReconciler::new(t.clone(), p);
    r.run_once().await;
    r.run_once().await;
    t.client().viewer().await.unwrap();
    let seen = f.m().requests.clone();
    let ops: std::collections::BTreeSet<&str> = seen.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(
        ops.len(),
        queries::ALL.len(),
        "every document was sent: {ops:?}"
    );
    for r in &seen {
        s.check(&r.query, &r.variables)
            .unwrap_or_else(|e| panic!("{}: {e}", r.operation));
    }
}

#[test]
fn the_linear_contract_checker_can_fail() {
    let s = schema();
    let bad = [
        (
            "query Q { issue(id: \"x\") { id colour } }",
            json!({}),
            "Issue has no field colour",
        ),
        (
            "query Q { issue(key: \"x\") { id } }",
            json!({}),
            "Query.issue has no argument key",
        ),
        (
            "query Q { issue(id: \"x\") { state } }",
            json!({}),
            "Issue.state is an object",
        ),
        (
            "query Q { issue(id: \"x\") { title { id } } }",
            json!({}),
            "Issue.title is a String",
        ),
        (
            "query Q { teams(filter: { slug: { eq: \"E\" } }) { nodes { id } } }",
            json!({}),
            "TeamFilter has no field slug",
        ),
        (
            "query Q($f: IssueFilter!) { issues(filter: $f) { nodes { id } } }",
            json!({ "f": { "team": { "key": { "equals": "E" } } } }),
            "StringComparator has no field equals",
        ),
        (
            "query Q($f: IssueFilterX) { viewer { id } }",
            json!({}),
            "IssueFilterX",
        ),
        (
            "query Q { viewer { id } }",
            json!({ "x": 1 }),
            "$x is sent but not declared",
        ),
        (
            "mutation M { issueUpdate(id: \"x\", input: { status: \"s\" }) { success } }",
            json!({}),
            "IssueUpdateInput has no field status",
        ),
    ];
    for (doc, vars, want) in bad {
        let e = s.check(doc, &vars).expect_err(doc);
        assert!(e.contains(want), "{doc}: {e}");
    }
    assert!(
        s.check(
            queries::TEAM_ISSUES,
            &json!({ "filter": { "updatedAt": { "gte": "2026-01-01T00:00:00Z" } } })
        )
        .is_ok()
    );
}
