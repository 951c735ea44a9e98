//! Jira Cloud as the tracker, against the fake Jira built from Atlassian's
//! published OpenAPI description and webhook payloads
//! (`fixtures/jira/SOURCES.md`): statuses by name per project reached
//! through workflow transitions, ADF comments, signed webhooks, the
//! reconciler's one search per project per cycle, 429 with `Retry-After`,
//! and the doctor. The contract is `jira_contract.rs`.

#[path = "support/local_pipeline.rs"]
mod local_pipeline;

#[path = "support/jira_world.rs"]
mod jira_world;

use jira_world::*;
use orch_engine::ports::Tracker;
use orch_integrations::fakes::FakeJira;
use orch_integrations::fakes::jira::now_ms;
use orch_integrations::http::CallPolicy;
use orch_integrations::ingest::Handled;
use orch_integrations::jira::{JiraClient, JiraReconciler};
use orch_integrations::signature;
use orch_integrations::webhook::{Provider, StateRef, Verify, WebhookEvent, receive};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

// ---- the tracker ----

#[tokio::test]
async fn issues_move_through_the_transition_to_each_projects_status_with_basic_auth() {
    let f = fake().await;
    let t = tracker(&f);
    f.add_issue("ENG-1", "Add a greeting", "To Do");
    f.add_issue("OPS-7", "Rotate keys", "To Analyse");

    // ENG's "To Do" is orch's To Analyse; OPS uses orch's own names. The
    // description (ADF) is read as text.
    let item = t.item("ENG-1").await.unwrap().unwrap();
    assert_eq!(
        (
            item.state.as_str(),
            item.project.as_str(),
            item.title.as_str(),
            item.body.as_str()
        ),
        (
            "To Analyse",
            "app",
            "Add a greeting",
            "Add a greeting: as described by a person."
        )
    );
    assert!(item.updated_at.0 > 0, "Jira's `updated` was read");
    assert_eq!(t.item("OPS-7").await.unwrap().unwrap().state, "To Analyse");
    assert!(t.item("ENG-99").await.unwrap().is_none(), "Jira's 404");
    assert!(
        t.item("WEB-1").await.unwrap().is_none(),
        "a project orch does not serve"
    );

    let before = f.calls().len();
    t.set_state("ENG-1", "Analysis").await.unwrap();
    assert_eq!(f.status_of("ENG-1"), "Analysis");
    assert_eq!(
        f.calls()[before..],
        [
            "GET /issue/ENG-1/transitions",
            "POST /issue/ENG-1/transitions"
        ],
        "the transitions are read, the one to the status is taken"
    );
    let posted = f.m().requests.last().unwrap().seen.body.clone().unwrap();
    let wanted = (f.status_id("ENG", "Analysis").parse::<u64>().unwrap() + 100).to_string();
    assert_eq!(posted, json!({ "transition": { "id": wanted } }));
    t.set_state("ENG-1", "Done").await.unwrap();
    assert_eq!(
        f.status_of("ENG-1"),
        "Shipped",
        "orch's Done is ENG's Shipped"
    );
    t.set_state("OPS-7", "Done").await.unwrap();
    assert_eq!(f.status_of("OPS-7"), "Done");

    // Basic auth with the email and the token on every call.
    let basic = format!(
        "Basic {}",
        orch_integrations::jira::client::base64(format!("{EMAIL}:{TOKEN}").as_bytes())
    );
    assert!(
        f.m()
            .requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(basic.as_str()))
    );
    // A wrong token is Jira's 401, a permanent error.
    let wrong = JiraClient::new(&f.uri(), EMAIL, "nope", fast()).unwrap();
    let e = wrong.transitions("ENG-1").await.unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
}

#[tokio::test]
async fn a_status_without_a_transition_is_a_clear_error_and_nothing_moves() {
    let f = fake().await;
    f.add_issue("ENG-2", "x", "To Do");
    f.remove_transition_to("ENG", "Review");
    let t = tracker(&f);
    let e = t.set_state("ENG-2", "Review").await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("Jira issue ENG-2 has no transition to the status \"Review\"")
            && msg.contains("project ENG's workflow")
            && msg.contains("[tracker.jira.projects.ENG] statuses"),
        "{msg}"
    );
    assert!(e.is_permanent(), "{e}");
    assert_eq!(f.status_of("ENG-2"), "To Do");
    assert!(
        !f.calls()
            .iter()
            .any(|c| c == "POST /issue/ENG-2/transitions")
    );

    // Already in the status (no transition to where it is): a no-op.
    f.person_moves("ENG-2", "Review");
    t.set_state("ENG-2", "Review").await.unwrap();
    assert_eq!(f.status_of("ENG-2"), "Review");
    // A status the project lacks altogether is the same clear error.
    let f2 = FakeJira::start(EMAIL, TOKEN).await;
    f2.add_project("ENG", &["To Do", "Analysis"]);
    f2.add_issue("ENG-3", "x", "To Do");
    let e = tracker(&f2).set_state("ENG-3", "Merge").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("no transition to the status \"Merge\""),
        "{e}"
    );
}

#[tokio::test]
async fn comments_are_adf_with_orchs_marker_once_and_a_persons_reason_is_read_as_text() {
    let f = fake().await;
    let t = tracker(&f);
    f.add_issue("ENG-3", "x", "To Do");
    let since = orch_core::Timestamp(now_ms());
    t.comment("ENG-3", "Analysis started\nby orch", Some("k1"))
        .await
        .unwrap();
    t.comment("ENG-3", "Analysis started\nby orch", Some("k1"))
        .await
        .unwrap();
    let c = f.comments_of("ENG-3");
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0], "Analysis started\nby orch\n\n<!-- orch:k1 -->");
    // What went to Jira is an ADF document of paragraphs and a hard break.
    let posted = f
        .m()
        .requests
        .iter()
        .rev()
        .find(|r| r.seen.method == "POST" && r.seen.path.ends_with("/comment"))
        .and_then(|r| r.seen.body.clone())
        .unwrap();
    assert_eq!(posted["body"]["type"], "doc");
    assert_eq!(posted["body"]["version"], 1);
    assert_eq!(
        posted["body"]["content"][0]["content"][1],
        json!({ "type": "hardBreak" })
    );
    assert_eq!(
        t.person_comment_since("ENG-3", since).await.unwrap(),
        None,
        "orch's own"
    );
    f.person_comments("ENG-3", "too vague");
    f.person_comments("ENG-3", "please name\nthe page");
    assert_eq!(
        t.person_comment_since("ENG-3", since)
            .await
            .unwrap()
            .as_deref(),
        Some("please name\nthe page")
    );
    assert_eq!(
        t.person_comment_since("ENG-3", orch_core::Timestamp(now_ms() + 60_000))
            .await
            .unwrap(),
        None,
        "nothing since a later time"
    );
}

#[tokio::test]
async fn comments_are_read_across_pages() {
    let f = fake().await;
    let t = tracker(&f);
    f.add_issue("OPS-9", "x", "To Analyse");
    for n in 0..150 {
        f.person_comments("OPS-9", &format!("note {n}"));
    }
    t.comment("OPS-9", "done", Some("late")).await.unwrap();
    // The marker is on page two: found, not posted again.
    t.comment("OPS-9", "done", Some("late")).await.unwrap();
    assert_eq!(f.comments_of("OPS-9").len(), 151);
    let reads = f
        .calls()
        .iter()
        .filter(|c| *c == "GET /issue/OPS-9/comment")
        .count();
    assert_eq!(reads, 4, "two pages of 100, twice");
}

// ---- webhooks ----

/// A delivery's headers and body, verified and parsed as the server does.
fn delivered(body: &[u8], sig: &str, delivery: &str) -> Result<(WebhookEvent, Vec<String>), u16> {
    let headers = [
        ("x-hub-signature", sig),
        ("x-atlassian-webhook-identifier", delivery),
        ("x-atlassian-webhook-flow", "Primary"),
    ];
    receive(
        Provider::Jira,
        Verify::Secret(SECRET.as_bytes()),
        |n| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v),
        body,
    )
    .map(|a| (a.event, a.dedupe_keys))
    .map_err(|r| r.status)
}

fn hub(body: &[u8]) -> String {
    format!("sha256={}", signature::sign(SECRET.as_bytes(), body))
}

#[tokio::test]
async fn a_signed_issue_webhook_moves_the_pipeline_and_bad_or_replayed_ones_do_not() {
    let f = fake().await;
    let t = tracker(&f);
    let (_dir, store, _p, ingest) = pipeline(t).await;
    f.add_issue("ENG-7", "Add a greeting", "Backlog");
    f.person_moves("ENG-7", "To Do");
    let body = serde_json::to_vec(&f.issue_webhook("ENG-7", Some("Backlog"))).unwrap();
    let sig = hub(&body);

    // A wrong secret, a changed body, no signature, the bare digest without
    // `sha256=`: 401, the parse never runs.
    let wrong = format!("sha256={}", signature::sign(b"other", &body));
    assert_eq!(delivered(&body, &wrong, "d-1").unwrap_err(), 401);
    let mut changed = body.clone();
    let at = changed.len() - 3;
    changed[at] ^= 1;
    assert_eq!(delivered(&changed, &sig, "d-1").unwrap_err(), 401);
    assert_eq!(delivered(&body, "", "d-1").unwrap_err(), 401);
    let bare = signature::sign(SECRET.as_bytes(), &body);
    assert_eq!(delivered(&body, &bare, "d-1").unwrap_err(), 401);
    assert!(
        store
            .find_live_task_by_tracker_id("ENG-7")
            .await
            .unwrap()
            .is_none()
    );

    let (ev, keys) = delivered(&body, &sig, "d-1").unwrap();
    assert!(
        matches!(&ev, WebhookEvent::ItemState(s) if s.project == "ENG" && s.item == "ENG-7"
            && s.state == StateRef::Name("To Do".into())),
        "{ev:?}"
    );
    let h = ingest.process(Provider::Jira, ev).await;
    assert!(matches!(h, Handled::Routed(_)), "{h:?}");
    let task = store
        .find_live_task_by_tracker_id("ENG-7")
        .await
        .unwrap()
        .expect("started");
    assert_eq!(task.stage, orch_core::Stage::Analysis);
    assert_eq!(f.status_of("ENG-7"), "Analysis");

    // A retry keys the same (delivery and change), so the server answers it
    // as a duplicate; under another delivery id it is the same change (the
    // changelog's id).
    let (_, again) = delivered(&body, &sig, "d-1").unwrap();
    assert_eq!(again, keys);
    let (_, rekeyed) = delivered(&body, &sig, "d-2").unwrap();
    assert_eq!(
        rekeyed[1], keys[1],
        "the change key survives a new delivery id"
    );
    assert_ne!(rekeyed[0], keys[0]);
    // Handled anyway, it is a no-op.
    let (ev, _) = delivered(&body, &sig, "d-1").unwrap();
    let h = ingest.process(Provider::Jira, ev).await;
    assert!(!matches!(h, Handled::Failed(_)), "{h:?}");
    assert_eq!(store.jobs_for_task(task.id).await.unwrap().len(), 1);
    // orch's own move comes back as a webhook and changes nothing.
    let echo = serde_json::to_vec(&f.issue_webhook("ENG-7", Some("To Do"))).unwrap();
    let (ev, _) = delivered(&echo, &hub(&echo), "d-3").unwrap();
    let h = ingest.process(Provider::Jira, ev).await;
    assert!(!matches!(h, Handled::Failed(_)), "{h:?}");
    assert_eq!(store.jobs_for_task(task.id).await.unwrap().len(), 1);
    // A project orch does not serve.
    let other = serde_json::to_vec(&json!({ "webhookEvent": "jira:issue_created",
        "issue": { "key": "WEB-1", "fields": { "status": { "name": "To Do" }, "project": { "key": "WEB" } } } }))
    .unwrap();
    let (ev, _) = delivered(&other, &hub(&other), "d-4").unwrap();
    assert!(matches!(
        ingest.process(Provider::Jira, ev).await,
        Handled::Ignored(_)
    ));
    // A status orch has no gate or stage for: ignored, and said so.
    let backlog = serde_json::to_vec(&f.issue_webhook("ENG-7", Some("Backlog"))).unwrap();
    let mut v: Value = serde_json::from_slice(&backlog).unwrap();
    v["changelog"]["id"] = json!("another-change");
    v["changelog"]["items"][0]["toString"] = json!("Backlog");
    let backlog = serde_json::to_vec(&v).unwrap();
    let (ev, _) = delivered(&backlog, &hub(&backlog), "d-5").unwrap();
    let h = ingest.process(Provider::Jira, ev).await;
    assert!(
        matches!(&h, Handled::Ignored(r) if r.contains("\"Backlog\" stands for no gate or stage of project ENG")),
        "{h:?}"
    );
    assert_eq!(store.jobs_for_task(task.id).await.unwrap().len(), 1);
}

#[test]
fn the_stored_payload_parses_as_jira_sends_it() {
    use orch_integrations::webhook::jira::parse;
    let body = fixture("issue-updated-webhook.json");
    let ev = parse(&body, None).unwrap();
    assert!(
        matches!(&ev, WebhookEvent::ItemState(s) if s.project == "ENG" && s.item == "ENG-42"
            && s.state == StateRef::Name("To Analyse".into())
            && s.change_key == "ENG-42|changelog|10381"),
        "{ev:?}"
    );
    // Signed as Jira signs it, the stored delivery is accepted, keyed by
    // its identifier and its change.
    let (_, keys) = delivered(&body, &hub(&body), "a1b2c3").unwrap();
    assert_eq!(keys[0], "delivery:a1b2c3");
    // Another field changed (no `status` item), a comment event, a
    // deletion: nothing for orch.
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["changelog"]["items"] =
        json!([{ "field": "summary", "fieldtype": "jira", "fromString": "a", "toString": "b" }]);
    let ignored = |v: &Value| {
        matches!(
            parse(&serde_json::to_vec(v).unwrap(), None).unwrap(),
            WebhookEvent::Ignored { .. }
        )
    };
    assert!(ignored(&v));
    v["webhookEvent"] = json!("comment_created");
    assert!(ignored(&v));
    v["webhookEvent"] = json!("jira:issue_deleted");
    assert!(ignored(&v));
    // A created issue is routed by its status (it may be created in To Analyse).
    v["webhookEvent"] = json!("jira:issue_created");
    v.as_object_mut().unwrap().remove("changelog");
    assert!(matches!(
        parse(&serde_json::to_vec(&v).unwrap(), None).unwrap(),
        WebhookEvent::ItemState(_)
    ));
    // A status change without the key or the status is the sender's error.
    v["webhookEvent"] = json!("jira:issue_updated");
    v["changelog"] = json!({ "id": "1", "items": [{ "field": "status", "toString": "" }] });
    v["issue"]["fields"]
        .as_object_mut()
        .unwrap()
        .remove("status");
    assert!(parse(&serde_json::to_vec(&v).unwrap(), None).is_err());
}

// ---- the reconciler ----

#[tokio::test]
async fn the_reconciler_searches_each_project_once_per_cycle_from_its_watermark() {
    let f = fake().await;
    let t = tracker(&f);
    let (_dir, store, p, _ingest) = pipeline(t.clone()).await;
    for n in 1..=150 {
        f.add_issue(&format!("ENG-{n}"), "old", "Shipped");
        f.backdate(&format!("ENG-{n}"), 3_600_000);
    }
    f.add_issue("ENG-151", "moved while orch was down", "To Do");
    f.add_issue("OPS-1", "old", "Done");
    f.backdate("OPS-1", 3_600_000);
    let r = JiraReconciler::new(t, p);
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
    let first: Vec<Value> = f
        .m()
        .requests
        .iter()
        .filter_map(|r| r.seen.body.clone())
        .filter(|b| b.get("jql").is_some())
        .collect();
    assert_eq!(first[0]["jql"], "project = \"ENG\" ORDER BY updated ASC");
    assert_eq!(
        first[0]["fields"],
        json!(["status", "updated"]),
        "no descriptions"
    );
    assert!(first[0].get("nextPageToken").is_none());
    assert_eq!(first[1]["nextPageToken"], "page-100", "paged by the token");

    // The next cycle: one search per project, from the watermark on.
    let before = f.calls().len();
    let st = r.run_once().await;
    assert_eq!(
        f.calls()[before..],
        ["POST /search/jql", "POST /search/jql"],
        "{st:?}"
    );
    assert_eq!(st.api_calls, 2);
    let q = f.m().requests[before].seen.body.clone().unwrap();
    let jql = q["jql"].as_str().unwrap();
    assert!(
        jql.starts_with("project = \"ENG\" AND updated >= \"-")
            && jql.ends_with("m\" ORDER BY updated ASC"),
        "{jql}"
    );
    assert!(st.items_seen < 10, "only what changed lately: {st:?}");

    // A person moves an old issue to To Do while the webhook is lost: the
    // next cycle finds it and starts it.
    f.person_moves("ENG-3", "To Do");
    let st = r.run_once().await;
    assert_eq!(st.repaired, 1, "{st:?}");
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

/// A found record orch cannot read (a broken or hostile server's) is left
/// out and counted; the issues beside it are still repaired.
#[tokio::test]
async fn a_malformed_record_in_a_search_hides_no_other_issue() {
    let f = fake().await;
    let t = tracker(&f);
    let (_dir, store, p, _ingest) = pipeline(t.clone()).await;
    f.add_issue("ENG-1", "moved while orch was down", "To Do");
    f.add_issue("OPS-1", "old", "Done");
    f.add_malformed_issue(json!({"key": "ENG-2", "fields": 7}));
    let st = JiraReconciler::new(t, p).run_once().await;
    // Each project's search answered the malformed record too.
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
async fn a_429_is_paused_for_its_retry_after_then_retried() {
    let f = fake().await;
    let t = tracker(&f);
    f.add_issue("OPS-3", "x", "To Analyse");
    f.m().retry_after_secs = 1;
    f.m().fail_next.extend([429]);
    let started = Instant::now();
    t.set_state("OPS-3", "Analysis").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was waited for: {:?}",
        started.elapsed()
    );
    assert_eq!(f.status_of("OPS-3"), "Analysis");
    // A Retry-After longer than one call waits: the call fails as rate
    // limited (a transient error its owner retries), nothing changed, one
    // request sent.
    let t = tracker_with(
        &f,
        CallPolicy {
            max_retry_after: Duration::from_secs(1),
            ..fast()
        },
    );
    f.m().retry_after_secs = 30;
    f.m().fail_next.extend([429]);
    let sent = f.m().requests.len();
    let e = t.set_state("OPS-3", "Review").await.unwrap_err();
    assert!(!e.is_permanent(), "{e}");
    assert!(e.to_string().contains("rate limiting"), "{e}");
    assert_eq!(f.status_of("OPS-3"), "Analysis");
    assert_eq!(f.m().requests.len(), sent + 1, "no hammering");
}

// ---- doctor ----

#[tokio::test]
async fn doctor_checks_the_token_each_projects_statuses_and_the_secret() {
    use orch_integrations::doctor::{Level, check_providers};
    let f = FakeJira::start(EMAIL, TOKEN).await;
    f.add_project("ENG", ENG_STATUSES);
    f.add_project("OPS", &["To Do", "Done"]);
    let cfg = |projects: &str| {
        orch_config::Config::from_toml_str(&format!(
            "[tracker]\nkind = \"jira\"\n[tracker.jira]\nbase_url = \"{}\"\nemail = \"{EMAIL}\"\n{projects}\
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
            .filter(|c| c.subject.starts_with("tracker.jira"))
            .collect::<Vec<_>>()
    };
    const ENV: &[(&str, &str)] = &[
        ("ORCH_JIRA_API_TOKEN", TOKEN),
        ("ORCH_JIRA_WEBHOOK_SECRET", "s"),
    ];
    let eng =
        "[tracker.jira.projects.ENG]\nstatuses = { to_analyse = \"To Do\", done = \"Shipped\" }\n";
    let ok = run(cfg(eng), ENV).await;
    assert!(
        ok.len() == 3 && ok.iter().all(|c| c.level == Level::Ok),
        "{ok:?}"
    );
    let ops = run(cfg("[tracker.jira.projects.OPS]\n"), ENV).await;
    let fail = ops
        .iter()
        .find(|c| c.level == Level::Fail)
        .expect("a failure");
    assert!(
        fail.subject == "tracker.jira.projects.OPS"
            && fail
                .message
                .contains("no status named \"To Analyse\" (to_analyse)")
            && !fail.message.contains("(done)"),
        "{fail:?}"
    );
    let none = run(cfg("[tracker.jira.projects.WEB]\n"), ENV).await;
    assert!(
        none.iter()
            .any(|c| c.level == Level::Fail && c.message.contains("no project with key WEB")),
        "{none:?}"
    );
    let missing = run(cfg(eng), &[]).await;
    assert!(
        missing
            .iter()
            .any(|c| c.level == Level::Fail && c.message.contains("ORCH_JIRA_API_TOKEN is not set")),
        "{missing:?}"
    );
    let wrong = run(cfg(eng), &[("ORCH_JIRA_API_TOKEN", "not the token")]).await;
    assert!(wrong.iter().any(|c| c.level == Level::Fail), "{wrong:?}");
    let no_secret = run(cfg(eng), &[("ORCH_JIRA_API_TOKEN", TOKEN)]).await;
    assert!(
        no_secret
            .iter()
            .any(|c| c.level != Level::Ok && c.message.contains("ORCH_JIRA_WEBHOOK_SECRET")),
        "{no_secret:?}"
    );
}
