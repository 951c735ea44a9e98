//! Test support shared by the store's tests and benchmarks: a scratch
//! PostgreSQL schema per test on the server named by `ORCH_TEST_PG_URL`.

use crate::clock::ManualClock;
use crate::conformance::Harness;
use crate::postgres::{PgOptions, PgStore};
use crate::traits::Store;
use std::sync::Arc;

/// The variable naming the PostgreSQL server the tests use, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`.
pub const PG_URL_VAR: &str = "ORCH_TEST_PG_URL";

/// The server for the PostgreSQL tests. Unset, a developer without
/// PostgreSQL gets `None` and a note, and runs the rest; under CI (`CI` set)
/// it is a failure, so CI can never pass by skipping them.
pub fn pg_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => {
            panic!("{PG_URL_VAR} is unset under CI: the PostgreSQL store tests must run there")
        }
        _ => {
            eprintln!("note: {PG_URL_VAR} is unset; skipping this PostgreSQL store test");
            None
        }
    }
}

/// A schema of its own on the test server, which the URL of `url()` puts
/// first on every connection's search path. Dropped (with everything in it)
/// when this is dropped, also when the test panics.
pub struct PgScratch {
    base: String,
    schema: String,
    url: String,
}

impl PgScratch {
    /// Create a fresh schema on the server at `base`. Panics (test support)
    /// when the server cannot be reached.
    pub async fn create(base: &str) -> PgScratch {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let uuid = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("orch_t_{secs}_{}", &uuid[..12]);
        // A test process killed before its drops leaves its schemas behind:
        // whoever creates one next drops those older than an hour.
        let sweep = format!(
            "DO $$ DECLARE s text; BEGIN
               FOR s IN SELECT nspname FROM pg_namespace
                        WHERE nspname ~ '^orch_t_[0-9]+_' AND split_part(nspname, '_', 3)::bigint < {}
               LOOP
                 -- Another test sweeping at once may drop it first.
                 BEGIN EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s);
                 EXCEPTION WHEN OTHERS THEN NULL; END;
               END LOOP;
             END $$; CREATE SCHEMA {schema}",
            secs.saturating_sub(3600)
        );
        run_admin(base, &sweep).await;
        // The tests need no durability across a crash of the server: commits
        // that do not wait for the disk keep DDL-heavy tests quick.
        let sep = if base.contains('?') { '&' } else { '?' };
        let url =
            format!("{base}{sep}options[search_path]={schema}&options[synchronous_commit]=off");
        PgScratch {
            base: base.to_owned(),
            schema,
            url,
        }
    }

    /// The URL whose connections work in this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, where blocking on a future is
        // not allowed: a thread of its own with a runtime of its own does it.
        let base = self.base.clone();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(run_admin(&base, &sql));
        })
        .join();
        if done.is_err() && !std::thread::panicking() {
            panic!("could not drop the test schema {}", self.schema);
        }
    }
}

async fn run_admin(url: &str, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {PG_URL_VAR}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// A fresh, migrated `PgStore` in a scratch schema, on a manual clock; `None`
/// when the PostgreSQL tests are skipped (see `pg_url`).
pub async fn pg_harness() -> Option<Harness> {
    let base = pg_url()?;
    let scratch = PgScratch::create(&base).await;
    let clock = ManualClock::new(orch_core::Timestamp(1_750_000_000_000));
    let opts = PgOptions {
        clock: Arc::new(clock.clone()),
        ..PgOptions::default()
    };
    let store = PgStore::open(scratch.url(), opts).await.expect("open");
    store.migrate().await.expect("migrate");
    Some(Harness {
        store: Arc::new(store),
        clock,
        guard: Box::new(scratch),
    })
}

/// Fill a fresh store with a bit of everything it keeps, through the
/// `Store` trait as orch writes it: a task walked through every stage to
/// done (one job and one finished run per agent), a task with a running job
/// holding the merge lease and an INITIATED marker, a failed task, a
/// cancelled one, a queued job waiting on a dependency, webhook deliveries,
/// tracker items with comments, and notifications sent, retried, given up
/// and pending. Text with quotes, new lines and non-ASCII, a real cost, a
/// JSON payload. Returns the tasks, oldest first. Panics (test support).
pub async fn populate(store: &dyn Store) -> Vec<orch_core::Task> {
    use crate::model::*;
    use orch_core::retry::RetryPolicy;
    use orch_core::run::{RunOutcome, Usage};
    use orch_core::{AgentKind, EventInput, EventKind, NewJob, NewTask, Stage};
    use std::time::Duration;

    let now = orch_core::Timestamp(1_750_000_000_000);
    let ev = |kind: EventKind| EventInput::new("test", kind, format!("{kind} — «by the test»"));
    let new_task = |key: &str, title: &str| {
        let mut t = NewTask::new("demo", title);
        t.work_item_id = Some(key.to_owned());
        t.tracker_id = Some(format!("item-{key}"));
        t.body = format!("Body of {key}: 'single', \"double\",\nsecond line, ünïcödé ✓");
        t
    };
    let claim = ClaimRequest::new("worker-a");
    // Enqueue a job for `task` and claim it at once (so no other queued job
    // is taken instead); the running job.
    let run_job = |task: orch_core::TaskId, agent: AgentKind, max_attempts: u32| {
        let claim = claim.clone();
        async move {
            let mut new = NewJob::new(task, agent, "demo", now);
            new.max_attempts = max_attempts;
            new.priority = 3;
            new.payload = serde_json::json!({"phase": "a", "n": [1, 2.5, null]});
            store.enqueue(new).await.expect("enqueue");
            let job = store.claim(&claim).await.expect("claim").expect("a job");
            assert_eq!(job.task_id, task, "claimed the job just queued");
            let run = job.run_id.clone().expect("a run id");
            let process = RunProcess {
                pid: 4242,
                pgid: 4242,
                proc_start_ticks: 987_654_321,
                log_path: format!("/data/runs/{run}/output.log"),
            };
            assert!(store.record_run_process(&run, &process).await.unwrap());
            (job, run)
        }
    };
    let finish = |outcome: RunOutcome, text: Option<&str>| RunFinish {
        outcome,
        exit_code: Some(if outcome == RunOutcome::Succeeded {
            0
        } else {
            1
        }),
        signal: None,
        usage: Usage {
            input_tokens: 1234,
            output_tokens: 567,
            cost_usd: 0.123_456_789,
            ..Usage::default()
        },
        session_id: Some("sess-1".into()),
        error: (outcome != RunOutcome::Succeeded).then(|| "exit 1: it broke".to_owned()),
        final_text: text.map(str::to_owned),
    };

    // Through the whole pipeline.
    let a = store
        .create_task(new_task("DEMO-1", "walk the pipeline"), "test")
        .await
        .unwrap();
    let steps = [
        (AgentKind::Analyst, Stage::AwaitingApproval),
        (AgentKind::Developer, Stage::Review),
        (AgentKind::Reviewer, Stage::Merge),
        (AgentKind::Merger, Stage::Deploy),
        (AgentKind::Deployer, Stage::Done),
    ];
    for (agent, next) in steps {
        if next == Stage::Review {
            store
                .set_stage(a.id, Stage::Development, None, ev(EventKind::Approved))
                .await
                .unwrap();
        }
        let (job, run) = run_job(a.id, agent, 3).await;
        assert!(
            store
                .finish_run(
                    &run,
                    &finish(RunOutcome::Succeeded, Some("VERDICT: approve"))
                )
                .await
                .unwrap()
        );
        assert!(store.complete(job.id, &run).await.unwrap());
        if agent == AgentKind::Merger {
            let m = store
                .write_marker(a.id, "demo", MarkerStep::Merge, "head 0123abcd")
                .await
                .unwrap();
            assert!(
                store
                    .finish_marker(m.id, MarkerState::Completed)
                    .await
                    .unwrap()
            );
        }
        store
            .set_stage(a.id, next, None, ev(EventKind::StageChanged))
            .await
            .unwrap();
    }

    // Running, holding the merge lease, a merge under way.
    let b = store
        .create_task(new_task("DEMO-2", "merging now"), "test")
        .await
        .unwrap();
    for to in [
        Stage::AwaitingApproval,
        Stage::Development,
        Stage::Review,
        Stage::Merge,
    ] {
        store
            .set_stage(b.id, to, None, ev(EventKind::StageChanged))
            .await
            .unwrap();
    }
    let _ = run_job(b.id, AgentKind::Merger, 3).await;
    let lease = store
        .acquire_merge_lease("demo", b.id, "orch/demo-2")
        .await
        .unwrap();
    assert!(matches!(lease, LeaseAcquire::Acquired { .. }));
    store
        .write_marker(b.id, "demo", MarkerStep::Merge, "head fedcba98")
        .await
        .unwrap();

    // Failed for good: its only attempt failed.
    let c = store
        .create_task(new_task("DEMO-3", "fails"), "test")
        .await
        .unwrap();
    let (job, run) = run_job(c.id, AgentKind::Analyst, 1).await;
    store
        .finish_run(&run, &finish(RunOutcome::Failed, None))
        .await
        .unwrap();
    let policy = RetryPolicy {
        jitter: 0.0,
        ..RetryPolicy::default()
    };
    store
        .fail(job.id, &run, "exit 1: it broke", &policy)
        .await
        .unwrap()
        .expect("not stale");
    store
        .set_stage(c.id, Stage::Failed, None, ev(EventKind::Failed))
        .await
        .unwrap();

    // Cancelled while its job waited.
    let d = store
        .create_task(new_task("DEMO-4", "stopped"), "test")
        .await
        .unwrap();
    store
        .enqueue(NewJob::new(d.id, AgentKind::Analyst, "demo", now))
        .await
        .unwrap();
    assert!(
        store
            .set_cancel_requested(d.id, ev(EventKind::CancelRequested))
            .await
            .unwrap()
    );
    store.cancel_jobs_for_task(d.id, false).await.unwrap();
    store
        .mark_cancelled(d.id, ev(EventKind::Cancelled))
        .await
        .unwrap();

    // Queued, waiting for DEMO-2.
    let mut new = new_task("DEMO-5", "waits");
    new.depends_on = vec![b.id];
    let e = store.create_task(new, "test").await.unwrap();
    let mut later = NewJob::new(e.id, AgentKind::Analyst, "demo", now);
    later.run_after = orch_core::Timestamp(now.0 + 3_600_000);
    store.enqueue(later).await.unwrap();
    store
        .append_event(e.id, ev(EventKind::Comment))
        .await
        .expect("an event");

    for (provider, id) in [("gitea", "d-1"), ("gitea", "d-2"), ("plane", "d-1")] {
        assert!(store.record_delivery(provider, id).await.unwrap());
    }

    for (i, key) in ["DEMO-1", "DEMO-2", "DEMO-3"].iter().enumerate() {
        let item = TrackerItem {
            id: format!("item-{key}"),
            project: if i == 2 { "other" } else { "default" }.into(),
            title: format!("Item {key}"),
            body: "What to do, in «detail».".into(),
            state: "Todo".into(),
            labels: vec!["orch".into(), format!("p{i}")],
            created_at: now,
            updated_at: now,
        };
        store.create_item(&item).await.unwrap();
        store
            .add_item_comment(&item.id, "alice", "Please 'hurry'\nthanks", None)
            .await
            .unwrap();
        store
            .add_item_comment(&item.id, "orch", "Analysis ready ✓", Some("ext-1"))
            .await
            .unwrap();
    }
    store.set_item_state("item-DEMO-1", "Done").await.unwrap();

    let note = |n: u32, key: Option<&str>| NewNotification {
        sink: "team-chat".into(),
        task_id: n.is_multiple_of(2).then_some(a.id),
        payload: serde_json::json!({"text": format!("notice {n} «ü»"), "n": n}),
        dedupe_key: key.map(str::to_owned),
    };
    for n in 0..4 {
        let key = format!("k{n}");
        assert!(
            store
                .enqueue_notification(&note(n, (n != 3).then_some(key.as_str())))
                .await
                .unwrap()
        );
    }
    let due = store.due_notifications(10).await.unwrap();
    assert_eq!(due.len(), 4);
    assert!(store.notification_sent(due[0].id).await.unwrap());
    assert!(
        store
            .notification_failed(due[1].id, "HTTP 502", Some(Duration::from_secs(60)))
            .await
            .unwrap()
    );
    assert!(
        store
            .notification_failed(due[2].id, "HTTP 404", None)
            .await
            .unwrap()
    );

    // Disk care: one worktree measured (capped), one measured and cleaned.
    let size = |bytes, complete| orch_core::disk::WorktreeSize { bytes, complete };
    store
        .record_worktree_size(a.id, size(3 << 30, false))
        .await
        .unwrap();
    store
        .record_worktree_size(b.id, size(12_345, true))
        .await
        .unwrap();
    assert!(
        store
            .record_worktree_cleanup(b.id, 10_000, size(2_345, true))
            .await
            .unwrap()
    );

    // Nodes: two engines, one draining, one leading.
    store
        .node_heartbeat(crate::NodeReport {
            name: "node-a",
            boot_id: "boot-1",
            claims_stopped: false,
            api_url: Some("http://10.0.0.1:8080"),
            machine: Some("machine-1"),
        })
        .await
        .unwrap();
    store
        .node_heartbeat(crate::NodeReport {
            name: "node-b",
            boot_id: "boot-7",
            claims_stopped: false,
            api_url: None,
            machine: None,
        })
        .await
        .unwrap();
    assert!(store.set_node_draining("node-b", true).await.unwrap());
    store
        .lead("node-a", std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .expect("nobody led before");

    let mut tasks = Vec::new();
    for t in [a, b, c, d, e] {
        tasks.push(store.get_task(t.id).await.unwrap().expect("the task"));
    }
    tasks
}

/// Read back everything `populate` wrote through every listing and lookup
/// of the `Store` trait, asserting only that each read works and finds
/// rows: what a store must still do when its tables have columns it does
/// not know (a newer version's migration). Panics (test support).
pub async fn read_back(store: &dyn Store, tasks: &[orch_core::Task]) {
    use crate::model::TaskFilter;
    let all = store.list_tasks(&TaskFilter::default()).await.unwrap();
    assert_eq!(all.len(), tasks.len(), "list_tasks");
    for t in tasks {
        assert!(store.get_task(t.id).await.unwrap().is_some(), "get_task");
        assert!(!store.events(t.id).await.unwrap().is_empty(), "events");
        for job in store.jobs_for_task(t.id).await.unwrap() {
            assert!(store.get_job(job.id).await.unwrap().is_some(), "get_job");
        }
        for run in store.runs_for_task(t.id).await.unwrap() {
            assert!(
                store.get_run(&run.run_id).await.unwrap().is_some(),
                "get_run"
            );
        }
        if let Some(key) = &t.tracker_id {
            store.find_live_task_by_tracker_id(key).await.unwrap();
            store.latest_task_of_item(key).await.unwrap();
        }
        store
            .find_live_task_by_work_item(&t.work_item_id)
            .await
            .unwrap();
        store.find_task_by_key(&t.work_item_id).await.unwrap();
    }
    assert!(
        !store.recent_events(50).await.unwrap().is_empty(),
        "recent_events"
    );
    assert!(
        !store.list_jobs(None, 100).await.unwrap().is_empty(),
        "list_jobs"
    );
    assert!(
        !store.running_jobs(None).await.unwrap().is_empty(),
        "running_jobs"
    );
    store.expired_jobs().await.unwrap();
    assert!(
        store.merge_lease("demo").await.unwrap().is_some(),
        "merge_lease"
    );
    assert!(
        !store.merge_leases().await.unwrap().is_empty(),
        "merge_leases"
    );
    assert!(
        !store.initiated_markers(None).await.unwrap().is_empty(),
        "markers"
    );
    let items = store.list_items(None).await.unwrap();
    assert!(!items.is_empty(), "list_items");
    for item in &items {
        assert!(
            store.get_item(&item.id).await.unwrap().is_some(),
            "get_item"
        );
        store.item_comments(&item.id).await.unwrap();
    }
    store.due_notifications(100).await.unwrap();
    store.pending_notifications("team-chat", 100).await.unwrap();
    store
        .given_up_notifications("team-chat", 100)
        .await
        .unwrap();
    store.cancelled_snapshot(10).await.unwrap();
}

/// The merge lease of `repo` for a new task on `branch`, taken from whoever
/// held it (released first): what the engine holds when it merges, for the
/// forges' tests. It goes through the acquisition like any other proof.
pub async fn merge_lease_for(
    store: &dyn Store,
    repo: &str,
    branch: &str,
) -> crate::model::MergeLeaseProof {
    if let Some(held) = store.merge_lease(repo).await.unwrap() {
        store
            .release_merge_lease(repo, held.holder_task)
            .await
            .unwrap();
    }
    let task = store
        .create_task(orch_core::NewTask::new(repo, branch), "test")
        .await
        .unwrap();
    match store
        .acquire_merge_lease(repo, task.id, branch)
        .await
        .unwrap()
    {
        crate::model::LeaseAcquire::Acquired { proof } => proof,
        held => panic!("the lease of {repo} was just released: {held:?}"),
    }
}

/// A SQLite store in `dir` (`orch.db`), migrated: a home for test leases.
pub async fn sqlite_in(dir: &std::path::Path) -> Arc<dyn Store> {
    let store = crate::sqlite::SqliteStore::open(dir.join("orch.db"), Default::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}
