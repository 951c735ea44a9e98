//! `GET /metrics`: Prometheus text from the `metrics` crates' recorder.
//!
//! The engine counts where things happen (`metrics::counter!` and friends in
//! the supervisor and pipeline); this module installs the process-wide
//! recorder, describes every series, and at each scrape refreshes the gauges
//! read from the store (queue depth by status, tasks by stage) before it
//! renders. Series that may be zero for a long time (webhooks, call errors)
//! are registered at start so dashboards and alerts see them from the first
//! scrape.

use crate::AppState;
use crate::error::ApiResult;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use orch_core::{AgentKind, JobStatus, Stage};
use std::sync::OnceLock;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Seconds; from a fast claim to an hour-long agent run.
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use. `None` when another
/// recorder was installed first (an embedding program's): then `/metrics`
/// shows only the store gauges it renders itself.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?
                .install_recorder();
            match recorder {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics shows only the store gauges");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    describe_gauge!("orch_tasks", "Tasks by pipeline stage.");
    describe_gauge!("orch_jobs", "Jobs by status (queue depth).");
    describe_counter!("orch_runs_started_total", "Agent runs started, by agent.");
    describe_counter!(
        "orch_runs_finished_total",
        "Agent runs finished, by agent and outcome."
    );
    describe_histogram!(
        "orch_run_duration_seconds",
        Unit::Seconds,
        "How long agent runs took, by agent."
    );
    describe_histogram!(
        "orch_claim_latency_seconds",
        Unit::Seconds,
        "From a job becoming due to a worker claiming it, by agent."
    );
    describe_histogram!(
        "orch_stop_latency_seconds",
        Unit::Seconds,
        "From a STOP to the task being cancelled (deferred STOPs included)."
    );
    describe_counter!(
        "orch_webhook_deliveries_total",
        "Webhook deliveries, by provider and result."
    );
    describe_counter!(
        "orch_tracker_errors_total",
        "Failed calls to the issue tracker, by operation."
    );
    describe_counter!(
        "orch_forge_errors_total",
        "Failed calls to the forge, by operation."
    );
    describe_counter!(
        "orch_tracker_unmapped_states_total",
        "Tracker state changes naming no gate or stage of [tracker.states] (logged on the task, nothing done)."
    );
    describe_counter!(
        "orch_ticker_passes_total",
        "Passes of the level-triggered ticker over every live task."
    );
    describe_counter!(
        "orch_notify_rounds_total",
        "Rounds of the [[notify]] outbox (each posts what is due)."
    );
    for agent in AgentKind::ALL {
        counter!("orch_runs_started_total", "agent" => agent.as_str()).absolute(0);
    }
    counter!("orch_tracker_unmapped_states_total").absolute(0);
    counter!("orch_ticker_passes_total").absolute(0);
    counter!("orch_notify_rounds_total").absolute(0);
    for provider in ["plane", "gitea", "github", "gitlab", "linear", "jira"] {
        for result in ["accepted", "duplicate", "rejected"] {
            counter!("orch_webhook_deliveries_total", "provider" => provider, "result" => result)
                .absolute(0);
        }
    }
}

pub async fn metrics(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    let tasks = s.store().task_counts_by_stage().await?;
    let jobs = s.store().job_counts().await?;
    let body = match handle() {
        Some(h) => {
            for stage in &Stage::ALL {
                gauge!("orch_tasks", "stage" => stage.as_str())
                    .set(tasks.get(stage).copied().unwrap_or(0) as f64);
            }
            for status in &JobStatus::ALL {
                gauge!("orch_jobs", "status" => status.as_str())
                    .set(jobs.get(status).copied().unwrap_or(0) as f64);
            }
            h.run_upkeep();
            h.render()
        }
        None => fallback(&tasks, &jobs),
    };
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body))
}

/// The store gauges alone, for when the recorder is someone else's.
fn fallback(
    tasks: &std::collections::BTreeMap<Stage, u64>,
    jobs: &std::collections::BTreeMap<JobStatus, u64>,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "# TYPE orch_tasks gauge");
    for s in &Stage::ALL {
        let n = tasks.get(s).copied().unwrap_or(0);
        let _ = writeln!(out, "orch_tasks{{stage=\"{}\"}} {n}", s.as_str());
    }
    let _ = writeln!(out, "# TYPE orch_jobs gauge");
    for s in &JobStatus::ALL {
        let n = jobs.get(s).copied().unwrap_or(0);
        let _ = writeln!(out, "orch_jobs{{status=\"{}\"}} {n}", s.as_str());
    }
    out
}
