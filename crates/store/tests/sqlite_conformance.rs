//! The store conformance suite against the SQLite store, each case on a fresh file.

use orch_store::conformance::Harness;
use orch_store::{ManualClock, SqliteOptions, SqliteStore, Store};
use std::sync::Arc;

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(orch_core::Timestamp(1_750_000_000_000));
    let opts = SqliteOptions {
        clock: Arc::new(clock.clone()),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(dir.path().join("orch.db"), opts)
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    Harness {
        store: Arc::new(store),
        clock,
        guard: Box::new(dir),
    }
}

orch_store::conformance_suite!(harness());
