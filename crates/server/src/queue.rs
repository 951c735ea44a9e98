//! `GET /queue`: the status snapshot of R-36.

use crate::AppState;
use axum::Json;
use axum::extract::State;
use orch_engine::status::{QueueSnapshot, StatusPolicy, snapshot};

/// Never an error: a block whose query fails carries its own `error`.
pub async fn queue(State(s): State<AppState>) -> Json<QueueSnapshot> {
    let policy = StatusPolicy::of(s.pipeline().config());
    let mut snap = snapshot(s.store(), &policy).await;
    snap.config = s.pipeline().config_status();
    Json(snap)
}
