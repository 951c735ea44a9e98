//! The webhook routes over real HTTP on loopback, against the real SQLite
//! store: signed deliveries are accepted once, replays are no-ops, and every
//! refused request (bad or missing signature, wrong secret, oversized body,
//! malformed JSON) leaves every table of the store exactly as it was.

use async_trait::async_trait;
use orch_integrations::ingest::WebhookSink;
use orch_integrations::signature::sign;
use orch_integrations::webhook::{Provider, WebhookEvent};
use orch_server::webhooks::{Receiver, Webhooks, router};
use orch_store::{SqliteOptions, SqliteStore, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const PLANE_SECRET: &str = "plane_wh_0123456789abcdef0123456789abcdef";
const GITEA_SECRET: &str = "gitea-webhook-secret";

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../integrations/tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Records what reached the background side.
struct Recorder(mpsc::UnboundedSender<(Provider, WebhookEvent)>);

#[async_trait]
impl WebhookSink for Recorder {
    async fn handle(&self, provider: Provider, event: WebhookEvent) {
        let _ = self.0.send((provider, event));
    }
}

struct Fixture {
    addr: std::net::SocketAddr,
    db: PathBuf,
    events: mpsc::UnboundedReceiver<(Provider, WebhookEvent)>,
    _dir: tempfile::TempDir,
}

fn receiver(secret: Option<&str>, insecure: bool) -> Option<Receiver> {
    Some(Receiver {
        secret: secret.map(|s| s.as_bytes().to_vec()),
        insecure,
        secret_env: "ORCH_TEST_HOOK_SECRET".into(),
    })
}

async fn start(
    plane: Option<Receiver>,
    gitea: Option<Receiver>,
    github: Option<Receiver>,
) -> Fixture {
    start_all(plane, gitea, github, None).await
}

async fn start_all(
    plane: Option<Receiver>,
    gitea: Option<Receiver>,
    github: Option<Receiver>,
    gitlab: Option<Receiver>,
) -> Fixture {
    start_hooks([plane, gitea, github, gitlab, None, None]).await
}

/// Receivers of Plane, Gitea, GitHub, GitLab, Linear and Jira.
async fn start_hooks(receivers: [Option<Receiver>; 6]) -> Fixture {
    let [plane, gitea, github, gitlab, linear, jira] = receivers;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orch.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&db, SqliteOptions::default())
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    let (tx, events) = mpsc::unbounded_channel();
    let app = router(Webhooks {
        store,
        sink: Arc::new(Recorder(tx)),
        plane,
        gitea,
        github,
        gitlab,
        linear,
        jira,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fixture {
        addr,
        db,
        events,
        _dir: dir,
    }
}

/// One HTTP/1.1 request; returns the status and the body.
async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) and close before the whole body is read.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Row counts of every table: the store's whole visible state.
async fn snapshot(db: &Path) -> Vec<(String, i64)> {
    use sqlx::Row;
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    let mut out = Vec::new();
    for t in tables {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM \"{t}\"")))
                .fetch_one(&pool)
                .await
                .unwrap();
        out.push((t, n));
    }
    pool.close().await;
    out
}

fn count(snap: &[(String, i64)], table: &str) -> i64 {
    snap.iter()
        .find(|(t, _)| t == table)
        .map(|(_, n)| *n)
        .unwrap_or(-1)
}

#[tokio::test]
async fn every_refused_request_changes_nothing_in_the_store() {
    let mut f = start(
        receiver(Some(PLANE_SECRET), false),
        receiver(Some(GITEA_SECRET), false),
        None,
    )
    .await;
    let body = fixture("plane/plane-issue-updated.json");
    let sig = sign(PLANE_SECRET.as_bytes(), &body);
    let before = snapshot(&f.db).await;
    assert!(before.len() >= 5, "the store's tables are seen: {before:?}");

    let mut changed = body.clone();
    changed[100] ^= 1;
    let wrong = sign(b"not the secret", &body);
    let malformed = b"{\"event\": \"issue\", ".to_vec();
    let malformed_sig = sign(PLANE_SECRET.as_bytes(), &malformed);
    let oversized = vec![b' '; 1024 * 1024 + 10];
    let oversized_sig = sign(PLANE_SECRET.as_bytes(), &oversized);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);
    let cases: Vec<Case> = vec![
        (
            "one byte changed",
            vec![("X-Plane-Signature", &sig)],
            &changed,
            401,
        ),
        ("missing header", vec![], &body, 401),
        ("empty header", vec![("X-Plane-Signature", "")], &body, 401),
        (
            "wrong secret",
            vec![("X-Plane-Signature", &wrong)],
            &body,
            401,
        ),
        (
            "not hex",
            vec![("X-Plane-Signature", "sha256=zz")],
            &body,
            401,
        ),
        (
            "malformed JSON",
            vec![("X-Plane-Signature", &malformed_sig)],
            &malformed,
            400,
        ),
        (
            "oversized body",
            vec![("X-Plane-Signature", &oversized_sig)],
            &oversized,
            413,
        ),
    ];
    for (what, headers, b, want) in cases {
        let (status, text) = post(f.addr, "/webhooks/plane", &headers, b).await;
        assert_eq!(status, want, "{what}: {text}");
        assert_eq!(snapshot(&f.db).await, before, "{what} changed the store");
    }
    // A Gitea delivery signed with the Plane secret, and one with a Plane header.
    let g = fixture("gitea/gitea-pull-request-merged.json");
    let psig = sign(PLANE_SECRET.as_bytes(), &g);
    let (status, _) = post(
        f.addr,
        "/webhooks/gitea",
        &[
            ("X-Gitea-Signature", &psig),
            ("X-Gitea-Event", "pull_request"),
        ],
        &g,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post(
        f.addr,
        "/webhooks/gitea",
        &[("X-Plane-Signature", &psig)],
        &g,
    )
    .await;
    assert_eq!(status, 401);
    // GitHub is not configured here.
    let (status, _) = post(f.addr, "/webhooks/github", &[], b"{}").await;
    assert_eq!(status, 404);
    assert_eq!(snapshot(&f.db).await, before);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(f.events.try_recv().is_err(), "nothing reached the pipeline");
}

#[tokio::test]
async fn a_signed_delivery_is_handled_once_and_replays_are_no_ops() {
    let mut f = start(
        receiver(Some(PLANE_SECRET), false),
        receiver(Some(GITEA_SECRET), false),
        None,
    )
    .await;
    let before = snapshot(&f.db).await;
    let body = fixture("plane/plane-issue-updated.json");
    let sig = sign(PLANE_SECRET.as_bytes(), &body);
    let headers = [
        ("X-Plane-Signature", sig.as_str()),
        ("X-Plane-Event", "issue"),
        ("X-Plane-Delivery", "0b7c"),
    ];
    let (status, text) = post(f.addr, "/webhooks/plane", &headers, &body).await;
    assert_eq!(status, 202, "{text}");
    assert!(text.contains("accepted"), "{text}");
    let (p, ev) = tokio::time::timeout(Duration::from_secs(5), f.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p, Provider::Plane);
    assert!(matches!(ev, WebhookEvent::ItemState(_)));
    let after = snapshot(&f.db).await;
    assert_eq!(
        count(&after, "webhook_deliveries"),
        count(&before, "webhook_deliveries") + 1
    );

    // Plane's retry has a new X-Plane-Delivery; the same change via the API
    // (`activity.field = "state"`) is another delivery of the same change.
    let again = [
        ("X-Plane-Signature", sig.as_str()),
        ("X-Plane-Event", "issue"),
        ("X-Plane-Delivery", "ffff"),
    ];
    let (status, text) = post(f.addr, "/webhooks/plane", &again, &body).await;
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    let api = fixture("plane/plane-issue-updated-via-api.json");
    let api_sig = sign(PLANE_SECRET.as_bytes(), &api);
    let (status, _) = post(
        f.addr,
        "/webhooks/plane",
        &[("X-Plane-Signature", &api_sig)],
        &api,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(snapshot(&f.db).await, after, "replays record nothing");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(f.events.try_recv().is_err(), "replays reach nothing");

    // Gitea: a merged PR with the Forgejo header; a replay by delivery id.
    let g = fixture("gitea/gitea-pull-request-merged.json");
    let gsig = sign(GITEA_SECRET.as_bytes(), &g);
    let gh = [
        ("X-Forgejo-Signature", gsig.as_str()),
        ("X-Gitea-Event", "pull_request"),
        ("X-Gitea-Event-Type", "pull_request"),
        ("X-Gitea-Delivery", "d-42"),
    ];
    assert_eq!(post(f.addr, "/webhooks/gitea", &gh, &g).await.0, 202);
    let (p, ev) = tokio::time::timeout(Duration::from_secs(5), f.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p, Provider::Gitea);
    assert!(matches!(ev, WebhookEvent::PullRequestClosed(ref pr) if pr.merged && pr.number == 42));
    assert_eq!(post(f.addr, "/webhooks/gitea", &gh, &g).await.0, 200);

    // An event orch ignores: 202, nothing recorded.
    let push = fixture("gitea/gitea-push.json");
    let psig = sign(GITEA_SECRET.as_bytes(), &push);
    let snap = snapshot(&f.db).await;
    let (status, text) = post(
        f.addr,
        "/webhooks/gitea",
        &[("X-Gitea-Signature", &psig), ("X-Gitea-Event", "push")],
        &push,
    )
    .await;
    assert_eq!(status, 202);
    assert!(text.contains("ignored"), "{text}");
    assert_eq!(snapshot(&f.db).await, snap);
}

#[tokio::test]
async fn no_secret_refuses_unless_explicitly_insecure() {
    let body = fixture("plane/plane-issue-created.json");
    let f = start(receiver(None, false), None, None).await;
    let before = snapshot(&f.db).await;
    let (status, text) = post(f.addr, "/webhooks/plane", &[], &body).await;
    assert_eq!(status, 401);
    assert!(
        text.contains("ORCH_TEST_HOOK_SECRET"),
        "says what to set: {text}"
    );
    assert_eq!(snapshot(&f.db).await, before);

    let mut f = start(receiver(None, true), None, receiver(None, true)).await;
    assert_eq!(post(f.addr, "/webhooks/plane", &[], &body).await.0, 202);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), f.events.recv())
            .await
            .unwrap()
            .is_some()
    );
    // Insecure skips the signature, never the parse.
    assert_eq!(post(f.addr, "/webhooks/plane", &[], b"nope").await.0, 400);
    // GitHub: sha256= prefixed signature, here unchecked; a label event.
    let labeled = br#"{"action":"labeled","issue":{"number":7},"label":{"name":"Approved"},"repository":{"full_name":"acme/app"}}"#;
    assert_eq!(
        post(
            f.addr,
            "/webhooks/github",
            &[("X-GitHub-Event", "issues"), ("X-GitHub-Delivery", "g1")],
            labeled
        )
        .await
        .0,
        202
    );
}

#[tokio::test]
async fn github_signatures_use_the_sha256_prefix() {
    let f = start(None, None, receiver(Some("gh-secret"), false)).await;
    let body = br#"{"action":"labeled","issue":{"number":7},"label":{"name":"Approved"},"repository":{"full_name":"acme/app"}}"#;
    let sig = format!("sha256={}", sign(b"gh-secret", body));
    let bare = sign(b"gh-secret", body);
    assert_eq!(
        post(
            f.addr,
            "/webhooks/github",
            &[("X-Hub-Signature-256", &bare), ("X-GitHub-Event", "issues")],
            body
        )
        .await
        .0,
        401
    );
    assert_eq!(
        post(
            f.addr,
            "/webhooks/github",
            &[
                ("X-Hub-Signature-256", &sig),
                ("X-GitHub-Event", "issues"),
                ("X-GitHub-Delivery", "x1")
            ],
            body
        )
        .await
        .0,
        202
    );
    assert_eq!(
        post(
            f.addr,
            "/webhooks/github",
            &[
                ("X-Hub-Signature-256", &sig),
                ("X-GitHub-Event", "issues"),
                ("X-GitHub-Delivery", "x1")
            ],
            body
        )
        .await
        .0,
        200
    );
}

/// GitLab sends the secret itself as `X-Gitlab-Token`: a wrong or missing
/// token is 401 and changes nothing; the right one is accepted once, and a
/// replay (the same `Idempotency-Key`, or the same event under another
/// key) is a no-op.
#[tokio::test]
async fn gitlab_tokens_are_checked_and_replays_are_no_ops() {
    const TOKEN: &str = "gitlab-hook-token";
    let mut f = start_all(None, None, None, receiver(Some(TOKEN), false)).await;
    let body = fixture("gitlab/issue-hook.json");
    let before = snapshot(&f.db).await;
    for headers in [
        vec![
            ("X-Gitlab-Token", "gitlab-hook-toke"),
            ("X-Gitlab-Event", "Issue Hook"),
        ],
        vec![
            ("X-Gitlab-Token", "gitlab-hook-token2"),
            ("X-Gitlab-Event", "Issue Hook"),
        ],
        vec![("X-Gitlab-Event", "Issue Hook")],
    ] {
        let (status, text) = post(f.addr, "/webhooks/gitlab", &headers, &body).await;
        assert_eq!(status, 401, "{headers:?}: {text}");
    }
    assert_eq!(
        snapshot(&f.db).await,
        before,
        "a refused delivery records nothing"
    );
    assert!(f.events.try_recv().is_err(), "and reaches nothing");

    let ok = [
        ("X-Gitlab-Token", TOKEN),
        ("X-Gitlab-Event", "Issue Hook"),
        ("Idempotency-Key", "k-1"),
    ];
    assert_eq!(post(f.addr, "/webhooks/gitlab", &ok, &body).await.0, 202);
    let (p, ev) = tokio::time::timeout(Duration::from_secs(5), f.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p, Provider::Gitlab);
    assert!(
        matches!(&ev, WebhookEvent::ItemState(s) if s.project == "gitlabhq/gitlab-test" && s.item == "23"),
        "{ev:?}"
    );
    let after = snapshot(&f.db).await;
    let (status, text) = post(f.addr, "/webhooks/gitlab", &ok, &body).await;
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    assert_eq!(snapshot(&f.db).await, after, "a replay records nothing");
    let rekeyed = [
        ("X-Gitlab-Token", TOKEN),
        ("X-Gitlab-Event", "Issue Hook"),
        ("Idempotency-Key", "k-2"),
    ];
    assert_eq!(
        post(f.addr, "/webhooks/gitlab", &rekeyed, &body).await.0,
        200,
        "the same change under another key is the same change"
    );
    let mr = fixture("gitlab/merge-request-hook.json");
    let mr_headers = [
        ("X-Gitlab-Token", TOKEN),
        ("X-Gitlab-Event", "Merge Request Hook"),
    ];
    let (status, text) = post(f.addr, "/webhooks/gitlab", &mr_headers, &mr).await;
    assert_eq!(status, 202);
    assert!(text.contains("ignored"), "an opened merge request: {text}");
    assert!(
        f.events.try_recv().is_err(),
        "replays and ignored events reach nothing"
    );
}

/// Linear signs the body (`Linear-Signature`, hex HMAC-SHA256) and a
/// `webhookTimestamp` inside it: a wrong signature, a changed body or a
/// delivery signed more than a minute ago is 401 and changes nothing; the
/// right one is accepted once, and a replay (the same `Linear-Delivery`, or
/// the same change under another id) is a no-op.
#[tokio::test]
async fn linear_signatures_and_timestamps_are_checked_and_replays_are_no_ops() {
    const SECRET: &str = "lin_wh_test_secret";
    let mut f = start_hooks([None, None, None, None, receiver(Some(SECRET), false), None]).await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let stored = String::from_utf8(fixture("linear/issue-webhook.json")).unwrap();
    // The stored payload, sent now (its own timestamp is long past).
    let at = |ms: u64| {
        stored
            .replace("1779271207123", &ms.to_string())
            .into_bytes()
    };
    let body = at(now_ms);
    let sig = sign(SECRET.as_bytes(), &body);
    let stale = at(now_ms - 61_000);
    let stale_sig = sign(SECRET.as_bytes(), &stale);
    let wrong = sign(b"another secret", &body);
    let mut changed = body.clone();
    changed[20] ^= 1;
    let before = snapshot(&f.db).await;
    for (headers, b) in [
        (vec![("Linear-Signature", wrong.as_str())], &body),
        (vec![("Linear-Signature", sig.as_str())], &changed),
        (vec![], &body),
        (vec![("Linear-Signature", stale_sig.as_str())], &stale),
    ] {
        let (status, text) = post(f.addr, "/webhooks/linear", &headers, b).await;
        assert_eq!(status, 401, "{headers:?}: {text}");
    }
    assert_eq!(
        snapshot(&f.db).await,
        before,
        "a refused delivery records nothing"
    );
    assert!(f.events.try_recv().is_err(), "and reaches nothing");

    let ok = [
        ("Linear-Signature", sig.as_str()),
        ("Linear-Event", "Issue"),
        ("Linear-Delivery", "d-1"),
    ];
    assert_eq!(post(f.addr, "/webhooks/linear", &ok, &body).await.0, 202);
    let (p, ev) = tokio::time::timeout(Duration::from_secs(5), f.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p, Provider::Linear);
    assert!(
        matches!(&ev, WebhookEvent::ItemState(s) if s.project == "ENG" && s.item == "ENG-42"),
        "{ev:?}"
    );
    let after = snapshot(&f.db).await;
    let (status, text) = post(f.addr, "/webhooks/linear", &ok, &body).await;
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    assert_eq!(snapshot(&f.db).await, after, "a replay records nothing");
    let redelivered = [
        ("Linear-Signature", sig.as_str()),
        ("Linear-Event", "Issue"),
        ("Linear-Delivery", "d-2"),
    ];
    assert_eq!(
        post(f.addr, "/webhooks/linear", &redelivered, &body)
            .await
            .0,
        200,
        "the same change under another delivery id is the same change"
    );
    assert!(f.events.try_recv().is_err(), "replays reach nothing");
}

/// Jira's admin webhooks sign the body (`X-Hub-Signature: sha256=<hex>`):
/// a wrong signature, a changed body, no signature, or the digest without
/// its `sha256=` is 401 and changes nothing; the right one is accepted
/// once, and a replay (the same `X-Atlassian-Webhook-Identifier`, or the
/// same change under another id) is a no-op.
#[tokio::test]
async fn jira_signatures_are_checked_and_replays_are_no_ops() {
    const SECRET: &str = "jira_wh_test_secret";
    let mut f = start_hooks([None, None, None, None, None, receiver(Some(SECRET), false)]).await;
    let body = fixture("jira/issue-updated-webhook.json");
    let hex = sign(SECRET.as_bytes(), &body);
    let sig = format!("sha256={hex}");
    let wrong = format!("sha256={}", sign(b"another secret", &body));
    let mut changed = body.clone();
    changed[20] ^= 1;
    let before = snapshot(&f.db).await;
    for (headers, b) in [
        (vec![("X-Hub-Signature", wrong.as_str())], &body),
        (vec![("X-Hub-Signature", sig.as_str())], &changed),
        (vec![], &body),
        (vec![("X-Hub-Signature", hex.as_str())], &body),
    ] {
        let (status, text) = post(f.addr, "/webhooks/jira", &headers, b).await;
        assert_eq!(status, 401, "{headers:?}: {text}");
    }
    assert_eq!(
        snapshot(&f.db).await,
        before,
        "a refused delivery records nothing"
    );
    assert!(f.events.try_recv().is_err(), "and reaches nothing");

    let ok = [
        ("X-Hub-Signature", sig.as_str()),
        ("X-Atlassian-Webhook-Identifier", "d-1"),
        ("X-Atlassian-Webhook-Flow", "Primary"),
    ];
    assert_eq!(post(f.addr, "/webhooks/jira", &ok, &body).await.0, 202);
    let (p, ev) = tokio::time::timeout(Duration::from_secs(5), f.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p, Provider::Jira);
    assert!(
        matches!(&ev, WebhookEvent::ItemState(s) if s.project == "ENG" && s.item == "ENG-42"),
        "{ev:?}"
    );
    let after = snapshot(&f.db).await;
    let (status, text) = post(f.addr, "/webhooks/jira", &ok, &body).await;
    assert_eq!((status, text.contains("duplicate")), (200, true), "{text}");
    assert_eq!(snapshot(&f.db).await, after, "a replay records nothing");
    let retried = [
        ("X-Hub-Signature", sig.as_str()),
        ("X-Atlassian-Webhook-Identifier", "d-2"),
        ("X-Atlassian-Webhook-Retry", "1"),
    ];
    assert_eq!(
        post(f.addr, "/webhooks/jira", &retried, &body).await.0,
        200,
        "the same change under another delivery id is the same change"
    );
    assert!(f.events.try_recv().is_err(), "replays reach nothing");
}
