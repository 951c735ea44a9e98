//! Metrics the engine records where things happen (issue 6). The names are
//! described, and rendered at `/metrics`, by `orch-server`; without an
//! installed recorder every call here is a no-op.
//!
//! The tracker and forge ports are wrapped by [`MeteredTracker`] and
//! [`MeteredForge`] in `Pipeline::new`, so every implementation (builtin,
//! Plane, Gitea, …) counts its failed calls without doing anything itself.

use crate::ports::{Forge, MergeOutcome, PortResult, Tracker};
use async_trait::async_trait;
use orch_core::run::RunOutcome;
use orch_core::{AgentKind, Job, Timestamp};
use orch_git::{DeleteOutcome, ProtectedBranches};
use orch_store::{MergeLeaseProof, TrackerItem};
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn run_started(job: &Job) {
    metrics::counter!("orch_runs_started_total", "agent" => job.agent.as_str()).increment(1);
    // The claim stamps `updated_at`; the job became due when it was queued or
    // when its backoff (`run_after`) passed, whichever is later.
    let waited = job.updated_at.since(job.due_at());
    metrics::histogram!("orch_claim_latency_seconds", "agent" => job.agent.as_str())
        .record(waited.as_secs_f64());
}

pub(crate) fn run_finished(agent: AgentKind, outcome: RunOutcome, took: Duration) {
    metrics::counter!(
        "orch_runs_finished_total",
        "agent" => agent.as_str(),
        "outcome" => outcome.as_str()
    )
    .increment(1);
    metrics::histogram!("orch_run_duration_seconds", "agent" => agent.as_str())
        .record(took.as_secs_f64());
}

pub(crate) fn stopped(took: Duration) {
    metrics::histogram!("orch_stop_latency_seconds").record(took.as_secs_f64());
}

/// The wall clock as a store timestamp (the store's clock is the system's in production).
pub(crate) fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp(ms)
}

fn counted<T, E>(what: &'static str, op: &'static str, r: Result<T, E>) -> Result<T, E> {
    if r.is_err() {
        metrics::counter!(what, "op" => op).increment(1);
    }
    r
}

pub struct MeteredTracker(pub Arc<dyn Tracker>);

#[async_trait]
impl Tracker for MeteredTracker {
    async fn item(&self, id: &str) -> PortResult<Option<TrackerItem>> {
        counted("orch_tracker_errors_total", "item", self.0.item(id).await)
    }
    async fn set_state(&self, id: &str, state: &str) -> PortResult<()> {
        let r = self.0.set_state(id, state).await;
        counted("orch_tracker_errors_total", "set_state", r)
    }
    async fn set_labels(&self, id: &str, labels: &[String]) -> PortResult<()> {
        let r = self.0.set_labels(id, labels).await;
        counted("orch_tracker_errors_total", "set_labels", r)
    }
    async fn comment(&self, id: &str, body: &str, dedupe_key: Option<&str>) -> PortResult<()> {
        let r = self.0.comment(id, body, dedupe_key).await;
        counted("orch_tracker_errors_total", "comment", r)
    }
    async fn person_comment_since(
        &self,
        id: &str,
        since: orch_core::Timestamp,
    ) -> PortResult<Option<String>> {
        let r = self.0.person_comment_since(id, since).await;
        counted("orch_tracker_errors_total", "person_comment_since", r)
    }
    async fn task_key(&self, item: &TrackerItem) -> PortResult<String> {
        let r = self.0.task_key(item).await;
        counted("orch_tracker_errors_total", "task_key", r)
    }
}

pub struct MeteredForge(pub Arc<dyn Forge>);

#[async_trait]
impl Forge for MeteredForge {
    async fn push_branch(&self, repo: &str, branch: &str) -> PortResult<String> {
        let r = self.0.push_branch(repo, branch).await;
        counted("orch_forge_errors_total", "push_branch", r)
    }
    async fn base_head(&self, repo: &str, base: &str) -> PortResult<Option<String>> {
        let r = self.0.base_head(repo, base).await;
        counted("orch_forge_errors_total", "base_head", r)
    }
    async fn merge(
        &self,
        lease: &MergeLeaseProof,
        base: &str,
        head: &str,
        expected_base: &str,
    ) -> PortResult<MergeOutcome> {
        let r = self.0.merge(lease, base, head, expected_base).await;
        counted("orch_forge_errors_total", "merge", r)
    }
    async fn is_merged(&self, repo: &str, base: &str, head: &str) -> PortResult<bool> {
        let r = self.0.is_merged(repo, base, head).await;
        counted("orch_forge_errors_total", "is_merged", r)
    }
    async fn delete_branch(
        &self,
        repo: &str,
        branch: &str,
        protected: &ProtectedBranches,
    ) -> PortResult<DeleteOutcome> {
        let r = self.0.delete_branch(repo, branch, protected).await;
        counted("orch_forge_errors_total", "delete_branch", r)
    }
    async fn report_verify(
        &self,
        repo: &str,
        sha: &str,
        ok: bool,
        description: &str,
    ) -> PortResult<()> {
        let r = self.0.report_verify(repo, sha, ok, description).await;
        counted("orch_forge_errors_total", "report_verify", r)
    }
    async fn open_pull_request(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
    ) -> PortResult<Option<crate::ports::PullRequestLink>> {
        let r = self.0.open_pull_request(repo, branch, base).await;
        counted("orch_forge_errors_total", "open_pull_request", r)
    }
    async fn reviews(
        &self,
        repo: &str,
        branch: &str,
        base: &str,
    ) -> PortResult<Vec<orch_core::people::PersonReview>> {
        let r = self.0.reviews(repo, branch, base).await;
        counted("orch_forge_errors_total", "reviews", r)
    }
    async fn checks(&self, repo: &str, sha: &str) -> PortResult<Vec<orch_core::ci::Check>> {
        let r = self.0.checks(repo, sha).await;
        counted("orch_forge_errors_total", "checks", r)
    }
    async fn required_checks(&self, repo: &str, base: &str) -> PortResult<Vec<String>> {
        let r = self.0.required_checks(repo, base).await;
        counted("orch_forge_errors_total", "required_checks", r)
    }
    fn browse_url(&self, repo: &str, branch: &str, path: &str) -> Option<String> {
        self.0.browse_url(repo, branch, path)
    }
}
