//! The status snapshot of R-36 (`GET /queue`, `orch status`): counts, serial
//! gate, task dependencies, auto labels, recent events and the STOP block.
//!
//! Each block is computed on its own; a store error inside one degrades that
//! block to a minimal one carrying `error`, never the whole snapshot (TC-09).

use orch_core::cancel::StopScope;
use orch_core::{JobStatus, Stage, TaskEvent};
use orch_store::Store;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the snapshot reports about the configuration (not read from the store).
#[derive(Debug, Clone)]
pub struct StatusPolicy {
    pub serial_gate: bool,
    pub task_deps: bool,
    pub auto_labels: bool,
    pub stop: StopScope,
    pub recent_limit: u32,
}

impl StatusPolicy {
    /// What `orch status` and `GET /queue` report of this configuration.
    pub fn of(cfg: &orch_config::Config) -> StatusPolicy {
        let gates = cfg.gates();
        StatusPolicy {
            serial_gate: gates.serial,
            task_deps: gates.task_deps,
            auto_labels: cfg.features.auto_labels,
            stop: cfg.stop_scope(),
            recent_limit: 10,
        }
    }
}

impl Default for StatusPolicy {
    fn default() -> Self {
        StatusPolicy {
            serial_gate: true,
            task_deps: true,
            auto_labels: true,
            stop: StopScope {
                enabled: true,
                repos: Vec::new(),
            },
            recent_limit: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueSnapshot {
    pub counts: Counts,
    pub serial_gate: SerialGate,
    pub task_deps: TaskDeps,
    pub auto_labels: AutoLabels,
    pub recent: Recent,
    pub stop: StopBlock,
    pub tracker_outbox: TrackerOutboxBlock,
    /// The running engine's configuration: generation, the files it
    /// follows, an edit that did not load (kept the last good one), sections
    /// waiting for a restart. `None` when no engine with a live
    /// configuration is known (the CLI without `orch serve`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<crate::live_config::ReloadStatus>,
}

/// orch's writes to the tracker not yet taken by it, and those given up
/// (`orch outbox list`, `orch outbox retry`).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct TrackerOutboxBlock {
    pub waiting: u64,
    pub retrying: u64,
    pub given_up: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Counts {
    pub jobs: BTreeMap<JobStatus, u64>,
    pub tasks: BTreeMap<Stage, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaseView {
    pub repo: String,
    pub task_id: i64,
    pub branch: String,
    pub epoch: i64,
    pub since: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SerialGate {
    pub enabled: bool,
    pub leases: Vec<LeaseView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WaitingTask {
    pub task_id: i64,
    pub waiting_on: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskDeps {
    pub enabled: bool,
    pub waiting: Vec<WaitingTask>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AutoLabels {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Recent {
    pub events: Vec<TaskEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CancelledView {
    pub task_id: i64,
    pub work_item_id: String,
    pub repo: String,
    pub cancelled_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StopBlock {
    pub enabled: bool,
    pub repos: Vec<String>,
    pub cancelled_count: u64,
    pub recent: Vec<CancelledView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Build the snapshot. Never fails: a block whose query fails says so in `error`.
pub async fn snapshot(store: &dyn Store, policy: &StatusPolicy) -> QueueSnapshot {
    let counts = match (store.job_counts().await, store.task_counts_by_stage().await) {
        (Ok(jobs), Ok(tasks)) => Counts {
            jobs,
            tasks,
            error: None,
        },
        (Err(e), _) | (_, Err(e)) => Counts {
            error: Some(e.to_string()),
            ..Counts::default()
        },
    };
    let serial_gate = match store.merge_leases().await {
        Ok(leases) => SerialGate {
            enabled: policy.serial_gate,
            leases: leases
                .into_iter()
                .map(|l| LeaseView {
                    repo: l.repo,
                    task_id: l.holder_task.0,
                    branch: l.holder_branch,
                    epoch: l.epoch,
                    since: l.acquired_at.0,
                })
                .collect(),
            error: None,
        },
        Err(e) => SerialGate {
            enabled: policy.serial_gate,
            leases: Vec::new(),
            error: Some(e.to_string()),
        },
    };
    let task_deps = match store.waiting_on_dependencies().await {
        Ok(w) => TaskDeps {
            enabled: policy.task_deps,
            waiting: w
                .into_iter()
                .map(|(t, on)| WaitingTask {
                    task_id: t.0,
                    waiting_on: on.into_iter().map(|x| x.0).collect(),
                })
                .collect(),
            error: None,
        },
        Err(e) => TaskDeps {
            enabled: policy.task_deps,
            waiting: Vec::new(),
            error: Some(e.to_string()),
        },
    };
    let recent = match store.recent_events(policy.recent_limit).await {
        Ok(events) => Recent {
            events,
            error: None,
        },
        Err(e) => Recent {
            events: Vec::new(),
            error: Some(e.to_string()),
        },
    };
    let stop = match store.cancelled_snapshot(policy.recent_limit).await {
        Ok(c) => StopBlock {
            enabled: policy.stop.enabled,
            repos: policy.stop.repos.clone(),
            cancelled_count: c.count,
            recent: c
                .recent
                .into_iter()
                .map(|t| CancelledView {
                    task_id: t.id.0,
                    work_item_id: t.original_work_item_id().to_owned(),
                    repo: t.repo,
                    cancelled_at: t.cancelled_at.map(|x| x.0),
                })
                .collect(),
            error: None,
        },
        Err(e) => StopBlock {
            enabled: policy.stop.enabled,
            repos: policy.stop.repos.clone(),
            cancelled_count: 0,
            recent: Vec::new(),
            error: Some(e.to_string()),
        },
    };
    let tracker_outbox = match store.outbox_counts(orch_store::TRACKER_SINK).await {
        Ok(c) => TrackerOutboxBlock {
            waiting: c.waiting,
            retrying: c.retrying,
            given_up: c.given_up,
            error: None,
        },
        Err(e) => TrackerOutboxBlock {
            error: Some(e.to_string()),
            ..TrackerOutboxBlock::default()
        },
    };
    QueueSnapshot {
        tracker_outbox,
        counts,
        serial_gate,
        task_deps,
        auto_labels: AutoLabels {
            enabled: policy.auto_labels,
        },
        recent,
        stop,
        config: None,
    }
}
