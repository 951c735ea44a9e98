//! Forge webhooks routed into the pipeline: a pull request closed without
//! merging by someone else parks the task for a person (never cancels it); a
//! merged one on a task that is not merging changes nothing but the log.

use orch_core::EventKind;
use orch_core::{NewTask, Stage};
use orch_engine::pipeline::Pipeline;
use orch_integrations::ingest::{Handled, Ingest};
use orch_integrations::webhook::{Provider, PullRequestClosed, WebhookEvent};
use orch_store::{SqliteOptions, SqliteStore, Store};
use std::collections::BTreeMap;
use std::sync::Arc;

async fn world() -> (tempfile::TempDir, Arc<dyn Store>, Arc<Pipeline>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orch.toml"),
        "data_dir = \".orch\"\n[[repos]]\nname = \"demo\"\nremote = \"remote.git\"\nverify = [\"true\"]\n",
    )
    .unwrap();
    let cfg = orch_config::Config::load(Some(&dir.path().join("orch.toml"))).unwrap();
    std::fs::create_dir_all(cfg.data_dir()).unwrap();
    let store = SqliteStore::open(cfg.data_dir().join("orch.db"), SqliteOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let pipeline = Pipeline::with_defaults(store.clone(), Arc::new(cfg), "test");
    (dir, store, pipeline)
}

fn closed(branch: &str, merged: bool) -> WebhookEvent {
    WebhookEvent::PullRequestClosed(PullRequestClosed {
        repo: "acme/demo".into(),
        number: 7,
        branch: branch.into(),
        head_sha: "abc".into(),
        base: "main".into(),
        merged,
        merge_commit_sha: None,
    })
}

#[tokio::test]
async fn a_pull_request_closed_outside_orch_goes_to_a_person() {
    let (_d, store, pipeline) = world().await;
    let mut t = NewTask::new("demo", "Fix it");
    t.work_item_id = Some("DEMO-7".into());
    let task = store.create_task(t, "test").await.unwrap();
    let ingest = Ingest::new(
        pipeline,
        None,
        BTreeMap::from([("acme/demo".to_string(), "demo".to_string())]),
    );

    // Unknown repos and branches are ignored.
    assert!(matches!(
        ingest
            .process(Provider::Gitea, closed("feature/other", false))
            .await,
        Handled::Ignored(_)
    ));
    let mut other = closed(&task.branch, false);
    if let WebhookEvent::PullRequestClosed(p) = &mut other {
        p.repo = "acme/elsewhere".into();
    }
    assert!(matches!(
        ingest.process(Provider::Gitea, other).await,
        Handled::Ignored(_)
    ));

    // Merged while the task is not merging: noted, nothing moves.
    let h = ingest
        .process(Provider::Gitea, closed(&task.branch, true))
        .await;
    assert!(matches!(h, Handled::Routed(_)), "{h:?}");
    assert_eq!(
        store.get_task(task.id).await.unwrap().unwrap().stage,
        task.stage
    );

    // Closed unmerged: parked for a person, with the reason on the log.
    let h = ingest
        .process(Provider::Gitea, closed(&task.branch, false))
        .await;
    assert!(matches!(h, Handled::Routed(_)), "{h:?}");
    let now = store.get_task(task.id).await.unwrap().unwrap();
    assert_eq!(now.stage, Stage::NeedsAttention);
    let events = store.events(task.id).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == EventKind::PrClosed),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::NeedsAttention
                && e.message.contains("closed without merging")),
        "{events:?}"
    );
}
