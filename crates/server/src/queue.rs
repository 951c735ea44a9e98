//! `GET /queue`: the status snapshot of R-36.

use crate::AppState;
use axum::Json;
use axum::extract::State;
use orch_config::Config;
use orch_engine::status::{QueueSnapshot, StatusPolicy, snapshot};

/// What the snapshot reports about the configuration (as `orch status` does).
pub fn policy(cfg: &Config) -> StatusPolicy {
    let gates = cfg.gates();
    StatusPolicy {
        serial_gate: gates.serial,
        task_deps: gates.task_deps,
        auto_labels: cfg.features.auto_labels,
        stop: cfg.stop_scope(),
        recent_limit: 10,
    }
}

/// Never an error: a block whose query fails carries its own `error`.
pub async fn queue(State(s): State<AppState>) -> Json<QueueSnapshot> {
    let policy = policy(s.pipeline().config());
    let mut snap = snapshot(s.store(), &policy).await;
    snap.config = s.pipeline().config_status();
    Json(snap)
}
