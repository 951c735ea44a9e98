//! `GET /metrics`: Prometheus text format, written by hand.

use crate::AppState;
use crate::error::ApiResult;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use orch_core::{JobStatus, Stage};
use std::collections::BTreeMap;
use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(s): State<AppState>) -> ApiResult<impl IntoResponse> {
    let tasks = s.store().task_counts_by_stage().await?;
    let jobs = s.store().job_counts().await?;
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(&tasks, &jobs),
    ))
}

/// Every stage and status gets a sample, zero included, so a series drops to
/// zero instead of vanishing.
pub fn render(tasks: &BTreeMap<Stage, u64>, jobs: &BTreeMap<JobStatus, u64>) -> String {
    let mut out = String::new();
    gauge(
        &mut out,
        "orch_tasks",
        "Tasks by pipeline stage.",
        "stage",
        Stage::ALL
            .iter()
            .map(|s| (s.as_str(), tasks.get(s).copied().unwrap_or(0))),
    );
    gauge(
        &mut out,
        "orch_jobs",
        "Jobs by status.",
        "status",
        JobStatus::ALL
            .iter()
            .map(|s| (s.as_str(), jobs.get(s).copied().unwrap_or(0))),
    );
    out
}

fn gauge<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: impl Iterator<Item = (&'a str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    for (value, n) in samples {
        // Label values are our own snake_case names: nothing to escape.
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format() {
        let tasks = BTreeMap::from([(Stage::Analysis, 2)]);
        let jobs = BTreeMap::from([(JobStatus::Queued, 1)]);
        let text = render(&tasks, &jobs);
        assert!(text.contains("# TYPE orch_tasks gauge\n"));
        assert!(text.contains("orch_tasks{stage=\"analysis\"} 2\n"));
        assert!(text.contains("orch_tasks{stage=\"done\"} 0\n"));
        assert!(text.contains("orch_jobs{status=\"queued\"} 1\n"));
        assert!(text.ends_with('\n'));
    }
}
