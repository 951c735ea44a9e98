//! Tracker calls per reconcile cycle with 1,000 live tasks on Plane:
//! the Plane reconciler's one paginated listing per project, against the
//! per-task way (`Pipeline::reconcile_once`, one `item` call per task).
//!
//! cargo bench -p orch-integrations --bench reconcile_calls [-- TASKS]

use orch_core::NewTask;
use orch_engine::pipeline::Pipeline;
use orch_integrations::fakes::FakePlane;
use orch_integrations::http::CallPolicy;
use orch_integrations::plane::{PlaneClient, PlaneReconciler, PlaneTracker};
use orch_store::{SqliteOptions, SqliteStore, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

const PROJECT: &str = "59e3be42-87ec-4950-99a3-ae639cf2b089";

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let plane = FakePlane::start("acme", "key").await;
        let names: Vec<String> = orch_config::TrackerStates::default().entries().iter().map(|(_, s)| s.to_string()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        plane.add_project(PROJECT, &refs);
        // No budget pauses: the count of calls is what is measured here.
        let policy = CallPolicy { per_minute: Some(1_000_000), ..CallPolicy::default() };
        let client = Arc::new(PlaneClient::new(&plane.uri(), "acme", "key", policy).unwrap());
        let tracker = Arc::new(PlaneTracker::new(client.clone(), BTreeMap::from([(PROJECT.to_string(), "demo".to_string())])));

        let dir = tempfile::tempdir().unwrap();
        let toml = format!("data_dir = \".orch\"\n[[repos]]\nname = \"demo\"\nremote = \"r.git\"\n[tracker]\nkind = \"plane\"\n[tracker.plane]\nbase_url = \"http://127.0.0.1:1\"\nworkspace = \"acme\"\nproject_ids = [\"{PROJECT}\"]\n");
        std::fs::write(dir.path().join("orch.toml"), toml).unwrap();
        let cfg = orch_config::Config::load(Some(&dir.path().join("orch.toml"))).unwrap();
        std::fs::create_dir_all(cfg.data_dir()).unwrap();
        let store = SqliteStore::open(cfg.data_dir().join("orch.db"), SqliteOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        for i in 0..n {
            let id = plane.add_item(PROJECT, &format!("item {i}"), "Development");
            let mut t = NewTask::new("demo", format!("item {i}"));
            t.tracker_id = Some(id.clone());
            t.work_item_id = Some(id);
            store.create_task(t, "bench").await.unwrap();
        }
        let repos = orch_git::RepoStore::new(cfg.repos_dir());
        let forge = Arc::new(orch_engine::ports::LocalForge::new(repos.clone()));
        let pipeline = Pipeline::new(store.clone(), Arc::new(cfg), repos, tracker.clone(), forge, "bench");
        let r = PlaneReconciler::new(tracker.clone(), pipeline.clone());

        let t = Instant::now();
        let cold = r.run_once().await;
        let cold_t = t.elapsed();
        let t = Instant::now();
        let warm = r.run_once().await;
        let warm_t = t.elapsed();
        for i in 0..5 {
            let id = plane.add_item(PROJECT, &format!("new {i}"), "Review");
            let _ = id;
        }
        let t = Instant::now();
        let changed = r.run_once().await;
        let changed_t = t.elapsed();

        let before = client.api().requests_sent();
        let t = Instant::now();
        let per_task = pipeline.reconcile_once().await.unwrap();
        let per_task_t = t.elapsed();
        let per_task_calls = client.api().requests_sent() - before;

        println!("reconcile with {n} live tasks on one Plane project (per_page 100):");
        println!("  first cycle (cold: states + every page): {} calls, {} pages, {:?}", cold.api_calls, cold.pages, cold_t);
        println!("  next cycle, nothing changed:             {} calls, {} pages, {:?}", warm.api_calls, warm.pages, warm_t);
        println!("  next cycle, 5 items changed:             {} calls, {} pages, {:?}", changed.api_calls, changed.pages, changed_t);
        println!("  per-task reconcile (one call per task):  {} calls for {} tasks, {:?}", per_task_calls, per_task.checked, per_task_t);
        println!("  budget a quiet cycle uses at 60 calls/min: {:.0} s (per-task: {:.1} min)", warm.api_calls as f64, per_task_calls as f64 / 60.0);
    });
}
