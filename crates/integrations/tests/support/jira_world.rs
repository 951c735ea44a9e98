//! The Jira tests' world: the fake Jira with two projects (ENG names two
//! of orch's states otherwise, OPS uses orch's names), the tracker over it
//! with a fast retry policy, and a real pipeline with the webhook sink.
#![allow(dead_code)] // each test file uses its own subset

use crate::local_pipeline;
use orch_config::TrackerStates;
use orch_integrations::fakes::FakeJira;
use orch_integrations::http::CallPolicy;
use orch_integrations::ingest::Ingest;
use orch_integrations::jira::tracker::Project;
use orch_integrations::jira::{JiraClient, JiraTracker};
use orch_store::Store;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const EMAIL: &str = "orch-bot@example.com";
pub const TOKEN: &str = "jira_api_token_test";
pub const SECRET: &str = "jira_wh_secret";

/// ENG calls two of orch's states by other names; OPS uses orch's names.
pub const ENG_STATUSES: &[&str] = &[
    "To Do",
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

pub fn fast() -> CallPolicy {
    CallPolicy {
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(20),
        ..CallPolicy::default()
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/jira")
            .join(name),
    )
    .unwrap()
}

pub fn description() -> Value {
    serde_json::from_slice(&fixture("api-v3-excerpt.json")).unwrap()
}

pub fn orch_names() -> Vec<String> {
    TrackerStates::default()
        .entries()
        .iter()
        .map(|(_, n)| n.to_string())
        .collect()
}

pub async fn fake() -> FakeJira {
    let f = FakeJira::start(EMAIL, TOKEN).await;
    f.add_project("ENG", ENG_STATUSES);
    let names = orch_names();
    f.add_project("OPS", &names.iter().map(String::as_str).collect::<Vec<_>>());
    f
}

pub fn eng_names() -> TrackerStates {
    TrackerStates {
        to_analyse: "To Do".into(),
        done: "Shipped".into(),
        ..TrackerStates::default()
    }
}

pub fn tracker_with(f: &FakeJira, policy: CallPolicy) -> Arc<JiraTracker> {
    let client = Arc::new(JiraClient::new(&f.uri(), EMAIL, TOKEN, policy).unwrap());
    Arc::new(JiraTracker::new(
        client,
        BTreeMap::from([
            (
                "ENG".to_string(),
                Project {
                    repo: "app".into(),
                    names: eng_names(),
                },
            ),
            (
                "ops".to_string(),
                Project {
                    repo: "app".into(),
                    names: TrackerStates::default(),
                },
            ),
        ]),
        TrackerStates::default(),
    ))
}

pub fn tracker(f: &FakeJira) -> Arc<JiraTracker> {
    tracker_with(f, fast())
}

/// A real pipeline (SQLite store, local forge) over the Jira tracker, and
/// the webhook sink in front of it.
pub async fn pipeline(
    t: Arc<JiraTracker>,
) -> (
    tempfile::TempDir,
    Arc<dyn Store>,
    Arc<orch_engine::pipeline::Pipeline>,
    Ingest,
) {
    let (dir, store, p) = local_pipeline::local_pipeline(t.clone()).await;
    let ingest = Ingest::new(p.clone(), None, BTreeMap::new()).with_jira(Some(t));
    (dir, store, p, ingest)
}
