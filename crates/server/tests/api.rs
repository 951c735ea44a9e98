//! The HTTP API over real HTTP (the server of `common`): a real `Pipeline` on a real SQLite store, a
//! config with one repo whose remote is a real bare git repository, and the
//! server from `serve` on an ephemeral port.

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use orch_core::EventKind;
use orch_core::run::{RunOutcome, Usage};
use orch_core::{JobStatus, Stage, TaskId};
use orch_store::{RunFinish, TaskFilter};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

mod common;
use common::*;

fn task_id(v: &Value) -> TaskId {
    TaskId(v["result"]["task"].as_i64().expect("a task id"))
}

#[tokio::test]
async fn healthz_answers_ok() {
    let s = Server::start().await;
    let (status, body) = s.get_json("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"ok": true, "store": "ok"}));
    let (status, body) = s.get_json("/no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string());
    s.shutdown().await;
}

#[tokio::test]
async fn every_answer_names_orch_as_its_server() {
    // A client that reaches something else on the printed address (a proxy, a
    // reused port) can tell from this header, and the browser tests check it.
    let s = Server::start().await;
    for (method, path, token) in [
        (Method::GET, "/healthz", None),
        (Method::GET, "/api/tasks", None),
        (Method::GET, "/no/such/route", Some(TOKEN)),
        (Method::POST, "/webhooks/plane", None),
    ] {
        let (_, headers, _) = s.call(method, path, token, Some("{}")).await;
        let server = headers
            .get("server")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(
            server.as_deref(),
            Some(concat!("orch/", env!("CARGO_PKG_VERSION"))),
            "{path}"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn post_needs_the_token_and_changes_nothing_without_it() {
    let s = Server::start().await;
    let body = json!({"repo": "demo", "title": "Add a greeting"}).to_string();
    for token in [None, Some("wrong-token")] {
        let (status, headers, text) = s.call(Method::POST, "/api/tasks", token, Some(&body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        let err: Value = serde_json::from_str(&text).unwrap();
        assert!(err["error"].as_str().unwrap().contains("ORCH_API_TOKEN"));
    }
    // The auth check comes first: malformed JSON without a token is still a 401.
    let (status, _, _) = s
        .call(Method::POST, "/api/tasks/1/stop", None, Some("{"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        s.store
            .list_tasks(&TaskFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.store.list_items(None).await.unwrap().is_empty());
    s.shutdown().await;

    // No token configured: every change is refused, naming the variable to set.
    let s = Server::start_with(None).await;
    let (status, _, text) = s
        .call(Method::POST, "/api/tasks", Some(""), Some(&body))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        text.contains("set the environment variable ORCH_API_TOKEN"),
        "{text}"
    );
    assert!(s.store.list_items(None).await.unwrap().is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn create_starts_the_analysis_and_lists_it() {
    let s = Server::start().await;
    let created = s
        .create(json!({"repo": "demo", "title": "Add a greeting", "body": "Say hello."}))
        .await;
    assert_eq!(created["item"]["id"], "DEMO-1");
    assert_eq!(created["item"]["project"], "demo");
    assert_eq!(created["result"]["stage"], "analysis");
    let id = task_id(&created);
    let task = s.store.get_task(id).await.unwrap().unwrap();
    assert_eq!(task.stage, Stage::Analysis);
    assert_eq!(task.work_item_id, "DEMO-1");
    let jobs = s.store.jobs_for_task(id).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Queued);
    assert_eq!(jobs[0].agent, orch_core::AgentKind::Analyst);

    // The next minted key, an explicit one, a held one, and a duplicate.
    let second = s.create(json!({"repo": "demo", "title": "Second"})).await;
    assert_eq!(second["item"]["id"], "DEMO-2");
    let held = s
        .create(json!({"repo": "demo", "title": "Later", "key": "DEMO-70", "hold": true}))
        .await;
    assert_eq!(held["item"]["id"], "DEMO-70");
    assert_eq!(held["result"], Value::Null);
    let (status, err) = s
        .post_json(
            "/api/tasks",
            Some(json!({"repo": "demo", "title": "Again", "key": "DEMO-70"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    for bad in [
        json!({"repo": "nope", "title": "x"}),
        json!({"repo": "demo", "title": "  "}),
        json!({"repo": "demo", "title": "x", "key": "../etc"}),
        json!({"repo": "demo", "title": "x", "colour": "red"}),
    ] {
        let (status, err) = s.post_json("/api/tasks", Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} → {err}");
        assert!(err["error"].is_string());
    }

    // A held item starts by its key.
    let (status, started) = s.post_json("/api/tasks/DEMO-70/start", None).await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(started["stage"], "analysis");

    let (status, list) = s.get_json("/api/tasks").await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["work_item_id"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.contains(&"DEMO-1"));
    let (_, list) = s
        .get_json("/api/tasks?repo=demo&stage=analysis&limit=1")
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, list) = s.get_json("/api/tasks?repo=other").await;
    assert!(list.as_array().unwrap().is_empty());
    let (status, err) = s.get_json("/api/tasks?stage=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap().contains("stage"), "{err}");
    let (status, _) = s.get_json("/api/tasks?limit=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for path in [format!("/api/tasks/{id}"), "/api/tasks/DEMO-1".to_owned()] {
        let (status, detail) = s.get_json(&path).await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        for key in ["task", "jobs", "runs", "usage", "events", "depends_on"] {
            assert!(detail.get(key).is_some(), "{path} has {key}");
        }
        assert_eq!(detail["task"]["id"], id.0);
        assert_eq!(detail["jobs"].as_array().unwrap().len(), 1);
    }
    for path in ["/api/tasks/999", "/api/tasks/NOPE-1"] {
        let (status, err) = s.get_json(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(err["error"].as_str().unwrap().contains("GET /api/tasks"));
    }
    s.shutdown().await;
}

#[tokio::test]
async fn gates_and_stop() {
    let s = Server::start().await;
    let created = s.create(json!({"repo": "demo", "title": "Gate me"})).await;
    let id = task_id(&created);
    let base = format!("/api/tasks/{id}");

    // Nothing to approve in analysis: refused (409) with the reason, and the
    // stage stays.
    let (status, r) = s
        .post_json(
            &format!("{base}/approve"),
            Some(json!({"comment": "looks good"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{r}");
    assert_eq!(r["applied"], false, "{r}");
    assert_eq!(r["stage"], "analysis");
    assert_eq!(r["task"], id.0);
    assert!(!r["note"].as_str().unwrap().is_empty());
    assert_eq!(
        s.store.get_task(id).await.unwrap().unwrap().stage,
        Stage::Analysis
    );

    // Reject needs a comment.
    for body in [None, Some(json!({})), Some(json!({"comment": "   "}))] {
        let (status, err) = s.post_json(&format!("{base}/reject"), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert!(err["error"].as_str().unwrap().contains("comment"));
    }
    let (status, err) = s.post_json(&format!("{base}/launch"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(err["error"].as_str().unwrap().contains("confirm-deploy"));
    let (status, _) = s.post_json("/api/tasks/999/approve", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, r) = s.post_json(&format!("{base}/stop"), None).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["note"], "cancelled");
    assert_eq!(r["ok"], true);
    assert_eq!(r["deferred"], false);
    let task = s.store.get_task(id).await.unwrap().unwrap();
    assert_eq!(task.stage, Stage::Cancelled);
    assert!(task.cancelled_at.is_some());
    let jobs = s.store.jobs_for_task(id).await.unwrap();
    assert!(jobs.iter().all(|j| j.status == JobStatus::Cancelled));

    // A second STOP is harmless and says why.
    let (status, r) = s.post_json(&format!("{base}/stop"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r["note"], "already-terminal:cancelled");
    s.shutdown().await;
}

/// `retry` resumes a failed task where it failed; Start on a failed task's
/// key runs its item again as a new task; the key then names the new task.
#[tokio::test]
async fn retry_and_a_fresh_start_of_a_failed_task() {
    let s = Server::start().await;
    let created = s.create(json!({"repo": "demo", "title": "Retry me"})).await;
    let id = task_id(&created);
    let key = created["item"]["id"].as_str().unwrap().to_owned();
    let base = format!("/api/tasks/{id}");
    // Retry applies only to a parked or failed task.
    let (status, r) = s.post_json(&format!("{base}/retry"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{r}");
    assert_eq!(r["applied"], false);

    let fail = |what: &'static str| {
        let store = s.store.clone();
        async move {
            store.cancel_jobs_for_task(id, false).await.unwrap();
            store
                .set_stage(
                    id,
                    Stage::Failed,
                    None,
                    orch_core::EventInput::new("test", EventKind::Failed, what),
                )
                .await
                .unwrap();
        }
    };
    fail("the analyst gave up for good").await;
    let (status, r) = s
        .post_json(
            &format!("{base}/retry"),
            Some(json!({"comment": "once more"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (r["applied"].clone(), r["stage"].clone()),
        (json!(true), json!("analysis"))
    );
    let jobs = s.store.jobs_for_task(id).await.unwrap();
    assert_eq!(
        jobs.last().unwrap().status,
        JobStatus::Queued,
        "the analyst is queued again"
    );

    fail("failed again").await;
    let (status, r) = s.post_json(&format!("/api/tasks/{key}/start"), None).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let fresh = r["task"].as_i64().unwrap();
    assert_ne!(fresh, id.0);
    let (_, shown) = s.get_json(&format!("/api/tasks/{key}")).await;
    assert_eq!(shown["task"]["id"], fresh);
    let (_, old) = s.get_json(&base).await;
    assert_eq!(old["task"]["stage"], "failed");
    assert_eq!(old["task"]["work_item_id"], format!("{key}#retired-{id}"));
    // The retired task is not reopened: its item runs as the new task.
    let (status, r) = s.post_json(&format!("{base}/retry"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{r}");
    s.shutdown().await;
}

#[tokio::test]
async fn queue_and_metrics() {
    let s = Server::start().await;
    s.create(json!({"repo": "demo", "title": "Count me"})).await;
    let (status, q) = s.get_json("/queue").await;
    assert_eq!(status, StatusCode::OK);
    for key in [
        "counts",
        "serial_gate",
        "task_deps",
        "auto_labels",
        "recent",
        "stop",
    ] {
        assert!(q.get(key).is_some(), "/queue has {key}: {q}");
    }
    assert_eq!(q["counts"]["tasks"]["analysis"], 1);

    let (status, headers, text) = s.call(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(text.contains("# TYPE orch_tasks gauge"), "{text}");
    assert!(text.contains("orch_tasks{stage=\"analysis\"} 1"), "{text}");
    assert!(text.contains("orch_jobs{status=\"queued\"} 1"), "{text}");
    s.shutdown().await;
}

#[tokio::test]
async fn bad_bodies_are_400_and_large_ones_413() {
    let s = Server::start().await;
    let (status, _, text) = s
        .call(Method::POST, "/api/tasks", Some(TOKEN), Some("{\"repo\": "))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let err: Value = serde_json::from_str(&text).unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("not valid JSON"),
        "{err}"
    );
    let (status, _, _) = s
        .call(Method::POST, "/api/tasks", Some(TOKEN), Some(""))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let big = format!(
        "{{\"repo\": \"demo\", \"title\": \"x\", \"body\": \"{}\"}}",
        "a".repeat(orch_server::BODY_LIMIT + 1)
    );
    let (status, _, text) = s
        .call(Method::POST, "/api/tasks", Some(TOKEN), Some(&big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert!(s.store.list_items(None).await.unwrap().is_empty());
    s.shutdown().await;
}

/// Claim the task's queued job and record its process with a log file.
async fn start_run(s: &Server, id: TaskId, log: &Path) -> orch_core::RunId {
    let (task, run) = s.start_run("test-worker", log).await;
    assert_eq!(task, id);
    run
}

fn finish() -> RunFinish {
    RunFinish {
        outcome: RunOutcome::Succeeded,
        exit_code: Some(0),
        signal: None,
        usage: Usage::default(),
        session_id: None,
        error: None,
        final_text: Some("done".into()),
    }
}

/// The `data:` lines and `event:` names of an SSE body, in order.
fn sse(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("data:") || l.starts_with("event:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn logs_stream_a_finished_run_then_end() {
    let s = Server::start().await;
    let created = s.create(json!({"repo": "demo", "title": "Log me"})).await;
    let id = task_id(&created);

    // No run yet: the stream ends at once.
    let (status, headers, text) = s
        .call(
            Method::GET,
            &format!("/api/tasks/{id}/logs"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(sse(&text), ["event: end", "data: end of log"]);

    let log = s.dir.path().join("output.log");
    std::fs::write(&log, "first line\nsecond line\n").unwrap();
    let run = start_run(&s, id, &log).await;
    assert!(s.store.finish_run(&run, &finish()).await.unwrap());

    let (status, _, text) = s
        .call(Method::GET, "/api/tasks/DEMO-1/logs", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sse(&text),
        [
            "data: first line",
            "data: second line",
            "event: end",
            "data: end of log"
        ]
    );
    s.shutdown().await;
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[tokio::test]
async fn logs_follow_a_live_run_and_shutdown_ends_the_stream() {
    let mut s = Server::start().await;
    let created = s
        .create(json!({"repo": "demo", "title": "Follow me"}))
        .await;
    let id = task_id(&created);
    let log = s.dir.path().join("live.log");
    std::fs::write(&log, "early\n").unwrap();
    start_run(&s, id, &log).await;

    let res = s
        .send(
            Method::GET,
            &format!("/api/tasks/{id}/logs"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "data: early\n").await;
    // Written while the client watches: it arrives; a partial line waits for its newline.
    append(&log, b"later\nhalf");
    read_until(&mut body, &mut seen, "data: later\n").await;
    assert!(!seen.contains("half"));
    append(&log, b" done\r\n");
    read_until(&mut body, &mut seen, "data: half done\n").await;
    assert!(!seen.contains("event: end"), "the run is still going");

    // Shutdown is graceful yet quick: the open stream ends without waiting for the run.
    let _ = s.stop.take().unwrap().send(());
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(5), body.frame())
        .await
        .expect("the stream ends on shutdown")
    {
        if let Ok(data) = frame.unwrap().into_data() {
            seen.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    assert!(!seen.contains("event: end"), "{seen}");
    tokio::time::timeout(Duration::from_secs(5), &mut s.served)
        .await
        .expect("the server stops in time")
        .unwrap()
        .unwrap();
}

/// `GET /api/changes`: a long poll on the engine's change counter. With no
/// change it answers the same `seq` at its timeout; a write made while it
/// waits answers it at once with a higher one.
#[tokio::test]
async fn changes_long_polls_until_a_write_or_the_timeout() {
    let s = Server::start().await;
    let (status, v) = s.get_json("/api/changes?after=0&timeout_ms=0").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let seq = v["seq"].as_u64().expect("a seq");
    assert_eq!(
        seq,
        v["commits"].as_u64().unwrap() + v["passes"].as_u64().unwrap()
    );

    // Nothing changes: the answer comes at the timeout, the same seq.
    let asked = std::time::Instant::now();
    let (status, v) = s
        .get_json(&format!("/api/changes?after={seq}&timeout_ms=300"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["seq"].as_u64(), Some(seq), "{v}");
    assert!(asked.elapsed() >= Duration::from_millis(300));

    // A write while it waits (20 s at most) answers it, well before.
    let waiting = {
        let path = format!("/api/changes?after={seq}&timeout_ms=20000");
        let s = &s;
        async move { s.get_json(&path).await }
    };
    let write = async {
        s.store
            .create_task(orch_core::NewTask::new("demo", "Wake up"), "test")
            .await
            .unwrap();
    };
    let asked = std::time::Instant::now();
    let ((status, v), ()) = tokio::join!(waiting, write);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["seq"].as_u64().unwrap() > seq, "{v}");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "the write did not end the wait"
    );

    // An answer already past `after` comes at once.
    let (_, v) = s.get_json("/api/changes?after=0&timeout_ms=20000").await;
    assert!(v["seq"].as_u64().unwrap() > seq, "{v}");

    // Bad input is a 400 that says what is wrong; no token, a 401.
    for bad in [
        "/api/changes?after=soon",
        "/api/changes?timeout_ms=-1",
        "/api/changes?since=3",
    ] {
        let (status, _, text) = s.call(Method::GET, bad, Some(TOKEN), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {text}");
        assert!(text.contains("bad query string"), "{bad}: {text}");
    }
    let (status, _, _) = s.call(Method::GET, "/api/changes", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
