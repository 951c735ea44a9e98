//! A real pipeline for the tracker tests: a SQLite store, the local forge
//! and one repo `app`, over the tracker under test.

use orch_engine::pipeline::Pipeline;
use orch_engine::ports::Tracker;
use orch_store::Store;
use std::sync::Arc;

/// The pipeline over `tracker`, its store, and the folder they live in
/// (kept alive by the caller).
pub async fn local_pipeline(
    tracker: Arc<dyn Tracker>,
) -> (tempfile::TempDir, Arc<dyn Store>, Arc<Pipeline>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orch.toml"),
        "data_dir = \".orch\"\n[[repos]]\nname = \"app\"\nremote = \"r.git\"\nverify = [\"true\"]\n",
    )
    .unwrap();
    let cfg = orch_config::Config::load(Some(&dir.path().join("orch.toml"))).unwrap();
    std::fs::create_dir_all(cfg.data_dir()).unwrap();
    let store = orch_store::testing::sqlite_in(&cfg.data_dir()).await;
    let repos = orch_git::RepoStore::new(cfg.repos_dir());
    let forge = Arc::new(orch_engine::ports::LocalForge::new(repos.clone()));
    let p = Pipeline::new(store.clone(), Arc::new(cfg), repos, tracker, forge, "test");
    (dir, store, p)
}
