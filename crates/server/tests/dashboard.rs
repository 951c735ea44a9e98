//! The dashboard's server side over real HTTP: who may read and change
//! (token, session cookie, CSRF, loopback-open reads), the embedded assets,
//! the board and its live event stream, log resumption, branch diff and
//! artefacts, and `/metrics` as parseable Prometheus text.

use hyper::{Method, StatusCode};
use orch_core::TaskId;
use orch_core::run::{RunOutcome, Usage};
use orch_store::RunFinish;
use serde_json::{Value, json};
use std::time::Duration;

mod common;
use common::*;

fn task_id(v: &Value) -> TaskId {
    TaskId(v["result"]["task"].as_i64().expect("a task id"))
}

#[tokio::test]
async fn reads_need_the_token_unless_open_on_loopback() {
    let s = Server::start().await;
    for path in [
        "/api/tasks",
        "/api/board",
        "/api/events",
        "/queue",
        "/metrics",
        "/api/tasks/1",
    ] {
        let (status, _, text) = s.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {text}");
        assert!(text.contains("ORCH_API_TOKEN"), "{path}: {text}");
        let (status, _, _) = s.call(Method::GET, path, Some("wrong"), None).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} with a wrong token"
        );
    }
    // The page shell, its assets and the health check hold no data.
    for path in ["/", "/assets/app.js", "/assets/app.css", "/healthz"] {
        let (status, _, _) = s.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (_, _, text) = s.call(Method::GET, "/api/session", None, None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"authenticated": false, "read_open": false})
    );
    s.shutdown().await;

    // read_only_open: reads from loopback pass without a token, changes still do not.
    let s = Server::start_full(Some(TOKEN.into()), "[server]\nread_only_open = true\n").await;
    let (status, _, _) = s.call(Method::GET, "/api/tasks", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, text) = s.call(Method::GET, "/api/session", None, None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["read_open"],
        true
    );
    let body = json!({"repo": "demo", "title": "x"}).to_string();
    let (status, _, _) = s.call(Method::POST, "/api/tasks", None, Some(&body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(s.store.list_items(None).await.unwrap().is_empty());
    s.shutdown().await;
}

/// The `orch_session=…` pair of a Set-Cookie header.
fn session_cookie(headers: &hyper::HeaderMap) -> String {
    let set = headers["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().trim().to_owned()
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_changes_need_the_csrf_header() {
    let s = Server::start().await;
    // A wrong token: no cookie.
    let (status, headers, _) = s
        .call_with(
            Method::POST,
            "/login",
            &[],
            Some(&json!({"token": "nope"}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("set-cookie").is_none());

    let (status, headers, _) = s
        .call_with(
            Method::POST,
            "/login",
            &[],
            Some(&json!({"token": TOKEN}).to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let set = headers["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(
        !set.contains(TOKEN),
        "the cookie is a session id, never the token"
    );
    let cookie = session_cookie(&headers);

    // Reads work with the cookie.
    let (status, _, text) = s
        .call_with(Method::GET, "/api/board", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (_, _, text) = s
        .call_with(Method::GET, "/api/session", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["authenticated"],
        true
    );

    // A change with the cookie alone (what a forged cross-site form sends) is refused…
    let body = json!({"repo": "demo", "title": "Via the dashboard"}).to_string();
    let (status, _, text) = s
        .call_with(
            Method::POST,
            "/api/tasks",
            &[("cookie", &cookie)],
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("X-Orch-Csrf"), "{text}");
    // …so is one from another origin, even with the header…
    let (status, _, _) = s
        .call_with(
            Method::POST,
            "/api/tasks",
            &[
                ("cookie", &cookie),
                ("x-orch-csrf", "1"),
                ("origin", "http://evil.invalid"),
            ],
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(s.store.list_items(None).await.unwrap().is_empty());
    // …and the dashboard's own request (header, same origin) passes.
    let origin = format!("http://{}", s.addr);
    let (status, _, text) = s
        .call_with(
            Method::POST,
            "/api/tasks",
            &[
                ("cookie", &cookie),
                ("x-orch-csrf", "1"),
                ("origin", &origin),
            ],
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");

    // After logout the cookie is worthless.
    let (status, headers, _) = s
        .call_with(Method::POST, "/logout", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _, _) = s
        .call_with(Method::GET, "/api/board", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A made-up session id is refused too.
    let fake = format!("orch_session={}", "0".repeat(64));
    let (status, _, _) = s
        .call_with(Method::GET, "/api/board", &[("cookie", &fake)], None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    s.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_is_embedded_with_a_strict_content_security_policy() {
    let s = Server::start().await;
    let (status, headers, html) = s.call(Method::GET, "/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(html.contains("<script src=\"/assets/app.js\""));
    // Nothing is loaded from elsewhere: no CDN, works offline.
    assert!(!html.contains("http://") && !html.contains("https://"));
    let (_, headers, js) = s.call(Method::GET, "/assets/app.js", None, None).await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(js.contains("EventSource('/api/events')"));
    assert!(js.contains("X-Orch-Csrf"));
    s.shutdown().await;
}

fn finish(tokens: u64, cost: f64) -> RunFinish {
    RunFinish {
        outcome: RunOutcome::Succeeded,
        exit_code: Some(0),
        signal: None,
        usage: Usage {
            input_tokens: tokens,
            output_tokens: 0,
            cost_usd: cost,
            ..Usage::default()
        },
        session_id: None,
        error: None,
        final_text: Some("done".into()),
    }
}

#[tokio::test]
async fn the_board_has_cards_running_agents_and_totals() {
    let s = Server::start().await;
    s.create(json!({"repo": "demo", "title": "First"})).await;
    s.create(json!({"repo": "demo", "title": "Second"})).await;
    let log = s.dir.path().join("a.log");
    std::fs::write(&log, "").unwrap();
    let run = s.start_run("test-worker", &log).await.1;

    let (status, b) = s.get_json("/api/board").await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let cards = b["tasks"].as_array().unwrap();
    assert_eq!(cards.len(), 2);
    let running: Vec<_> = cards.iter().filter(|c| !c["running"].is_null()).collect();
    assert_eq!(running.len(), 1, "{b}");
    assert_eq!(running[0]["running"], "analyst");
    assert_eq!(b["totals"]["by_stage"]["analysis"], 2);
    assert_eq!(b["totals"]["by_stage"]["done"], 0);
    assert_eq!(b["totals"]["running"], 1);
    assert_eq!(b["totals"]["runs_today"], 1);
    assert_eq!(b["repos"], json!(["demo"]));

    assert!(s.store.finish_run(&run, &finish(1234, 0.5)).await.unwrap());
    let (_, b) = s.get_json("/api/board").await;
    let repo = &b["totals"]["repos"][0];
    assert_eq!(repo["repo"], "demo");
    assert_eq!(repo["usage"]["input_tokens"], 1234);
    assert_eq!(repo["usage"]["cost_usd"], 0.5);
    assert_eq!(b["totals"]["disk"], json!([]), "nothing measured yet");

    // Disk per repo: the live tasks' worktrees as last measured.
    let size = |bytes, complete| orch_core::disk::WorktreeSize { bytes, complete };
    let tasks = s.store.list_tasks(&Default::default()).await.unwrap();
    s.store
        .record_worktree_size(tasks[0].id, size(3 << 20, true))
        .await
        .unwrap();
    s.store
        .record_worktree_size(tasks[1].id, size(2 << 20, false))
        .await
        .unwrap();
    let (_, b) = s.get_json("/api/board").await;
    assert_eq!(
        b["totals"]["disk"],
        json!([{"repo": "demo", "worktrees": 2, "bytes": 5 << 20, "size": "≥ 5 MB"}])
    );
    s.shutdown().await;
}

#[tokio::test]
async fn events_stream_task_changes_live() {
    let s = Server::start().await;
    let res = s.send(Method::GET, "/api/events", Some(TOKEN), None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "event: hello").await;
    // Let the poller take its baseline before the change.
    tokio::time::sleep(Duration::from_millis(700)).await;

    let id = task_id(&s.create(json!({"repo": "demo", "title": "Watch me"})).await);
    read_until(&mut body, &mut seen, "\"stage\":\"analysis\"").await;
    assert!(seen.contains("event: task"), "{seen}");
    assert!(seen.contains("\"key\":\"DEMO-1\""), "{seen}");
    read_until(&mut body, &mut seen, "event: totals").await;

    // A claim (no task event) shows as the running agent…
    let log = s.dir.path().join("w.log");
    std::fs::write(&log, "").unwrap();
    s.start_run("test-worker", &log).await;
    read_until(&mut body, &mut seen, "\"running\":\"analyst\"").await;
    // …and a STOP as the cancelled stage.
    let (status, _) = s.post_json(&format!("/api/tasks/{id}/stop"), None).await;
    assert_eq!(status, StatusCode::OK);
    read_until(&mut body, &mut seen, "\"stage\":\"cancelled\"").await;
    s.shutdown().await;
}

#[tokio::test]
async fn a_log_stream_resumes_after_last_event_id() {
    let s = Server::start().await;
    let id = task_id(&s.create(json!({"repo": "demo", "title": "Log me"})).await);
    let log = s.dir.path().join("out.log");
    std::fs::write(&log, "one\ntwo\nthree\n").unwrap();
    let run = s.start_run("test-worker", &log).await.1;
    assert!(s.store.finish_run(&run, &finish(0, 0.0)).await.unwrap());

    let path = format!("/api/tasks/{id}/logs");
    let (_, _, text) = s.call(Method::GET, &path, Some(TOKEN), None).await;
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(
        ids,
        [format!("{run}:4"), format!("{run}:8"), format!("{run}:14")],
        "{text}"
    );
    // A reconnect after "one" gets the rest, once.
    let auth = format!("Bearer {TOKEN}");
    let first = format!("{run}:4");
    let (_, _, text) = s
        .call_with(
            Method::GET,
            &path,
            &[("authorization", &auth), ("last-event-id", &first)],
            None,
        )
        .await;
    let data: Vec<&str> = text.lines().filter(|l| l.starts_with("data:")).collect();
    assert_eq!(
        data,
        ["data: two", "data: three", "data: end of log"],
        "{text}"
    );
    // An id of another run starts from the top.
    let (_, _, text) = s
        .call_with(
            Method::GET,
            &path,
            &[("authorization", &auth), ("last-event-id", "other-run:8")],
            None,
        )
        .await;
    assert!(text.contains("data: one\n"), "{text}");
    s.shutdown().await;
}

#[tokio::test]
async fn diff_and_artefacts_come_from_the_task_branch() {
    let s = Server::start().await;
    let created = s.create(json!({"repo": "demo", "title": "Greet"})).await;
    let id = task_id(&created);
    let task = s.store.get_task(id).await.unwrap().unwrap();
    let remote = s.dir.path().join("remote.git");
    let repos = s.pipeline.repos();
    repos
        .ensure_mirror("demo", remote.to_str().unwrap())
        .await
        .unwrap();
    let wt = repos
        .create_or_reuse_worktree("demo", &task.branch, "main")
        .await
        .unwrap();
    let docs = wt.path.join("docs/work-items/DEMO-1");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("analysis.md"),
        "# Analysis\n\nSay *hello*.\n\n<script>alert(1)</script>\n",
    )
    .unwrap();
    std::fs::write(wt.path.join("hello.txt"), "hello\n").unwrap();
    git(&wt.path, &["add", "-A"]);
    git(&wt.path, &["commit", "--quiet", "-m", "work"]);

    let (status, _, diff) = s
        .call(
            Method::GET,
            &format!("/api/tasks/{id}/diff"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert!(diff.contains("+++ b/hello.txt"), "{diff}");
    assert!(diff.contains("+hello"), "{diff}");

    let (status, arts) = s.get_json(&format!("/api/tasks/{id}/artefacts")).await;
    assert_eq!(status, StatusCode::OK, "{arts}");
    let arts = arts.as_array().unwrap();
    assert_eq!(arts.len(), 1);
    assert_eq!(arts[0]["path"], "docs/work-items/DEMO-1/analysis.md");
    let html = arts[0]["html"].as_str().unwrap();
    assert!(html.contains("<h1>Analysis</h1>") && html.contains("<em>hello</em>"));
    assert!(!html.contains("<script>"), "{html}");

    // STOP: the worktree and local branch go (archived first); the task page
    // still shows the work, from the archive.
    let (status, _, text) = s
        .call(
            Method::POST,
            &format!("/api/tasks/{id}/stop"),
            Some(TOKEN),
            None,
        )
        .await;
    assert!(status.is_success(), "{status}: {text}");
    let task = s.store.get_task(id).await.unwrap().unwrap();
    assert_eq!(task.stage, orch_core::Stage::Cancelled);
    assert!(!wt.path.exists(), "the worktree is gone");
    let (status, arts) = s.get_json(&format!("/api/tasks/{id}/artefacts")).await;
    assert_eq!(status, StatusCode::OK, "{arts}");
    assert_eq!(
        arts[0]["path"], "docs/work-items/DEMO-1/analysis.md",
        "{arts}"
    );
    let (status, _, diff) = s
        .call(
            Method::GET,
            &format!("/api/tasks/{id}/diff"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert!(diff.contains("+hello"), "the archived work: {diff}");
    // GET /api/tasks/{id} lists the archive with the files it changed.
    let (status, detail) = s.get_json(&format!("/api/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    let archives = detail["archives"].as_array().expect("archives");
    assert_eq!(archives.len(), 1, "{detail:#}");
    assert_eq!(archives[0]["ref_name"], "refs/orch/archive/DEMO-1/1");
    assert_eq!(
        archives[0]["files"],
        json!(["docs/work-items/DEMO-1/analysis.md", "hello.txt"])
    );
    s.shutdown().await;
}

#[tokio::test]
async fn a_hostile_or_huge_artefact_is_defused_and_cut() {
    let s = Server::start().await;
    let id = task_id(&s.create(json!({"repo": "demo", "title": "Hostile"})).await);
    let task = s.store.get_task(id).await.unwrap().unwrap();
    let remote = s.dir.path().join("remote.git");
    let repos = s.pipeline.repos();
    repos
        .ensure_mirror("demo", remote.to_str().unwrap())
        .await
        .unwrap();
    let wt = repos
        .create_or_reuse_worktree("demo", &task.branch, "main")
        .await
        .unwrap();
    let docs = wt.path.join("docs/work-items/DEMO-1");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("01-hostile.md"),
        "# Hostile\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n\
         [x](javascript:alert(3))\n\n```js\nconst never = 'closed';\n",
    )
    .unwrap();
    // 5 MB of Markdown: shown cut, not whole.
    let line = "A long line of an agent's notes that goes on and on. ".repeat(20) + "\n";
    std::fs::write(
        docs.join("02-huge.md"),
        line.repeat(5 * 1024 * 1024 / line.len()),
    )
    .unwrap();
    git(&wt.path, &["add", "-A"]);
    git(&wt.path, &["commit", "--quiet", "-m", "artefacts"]);

    let (status, arts) = s.get_json(&format!("/api/tasks/{id}/artefacts")).await;
    assert_eq!(status, StatusCode::OK);
    let arts = arts.as_array().unwrap();
    assert_eq!(arts.len(), 2);
    let hostile = arts[0]["html"].as_str().unwrap();
    for bad in ["<script", "<img", "javascript:"] {
        assert!(!hostile.contains(bad), "{bad} in {hostile}");
    }
    // The fence that never closes is one code block to the end.
    assert!(
        hostile.contains("<pre><code class=\"language-js\">const never"),
        "{hostile}"
    );
    let huge = arts[1]["html"].as_str().unwrap();
    assert!(huge.len() < 400 * 1024, "{} bytes", huge.len());
    assert!(huge.contains("cut: too long to show here"));
    s.shutdown().await;
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text() {
    let s = Server::start().await;
    s.create(json!({"repo": "demo", "title": "Count me"})).await;
    let (status, headers, text) = s.call(Method::GET, "/metrics", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("valid Prometheus text");
    let value = |name: &str, label: (&str, &str)| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(value("orch_tasks", ("stage", "analysis")), Some(1.0));
    assert_eq!(value("orch_jobs", ("status", "queued")), Some(1.0));
    // Series that exist before anything happened.
    for name in ["orch_webhook_deliveries_total", "orch_runs_started_total"] {
        assert!(
            scrape.samples.iter().any(|s| s.metric == name),
            "{name} in {text}"
        );
    }
    s.shutdown().await;
}
