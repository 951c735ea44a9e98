//! `GET /api/changes?after=N&timeout_ms=T`: the engine's change signal,
//! long-polled, so a client waits for the engine instead of polling it.
//!
//! The answer is `{"seq": M, "commits": C, "passes": P}`: `commits` counts
//! the store's committed writes made by this process (`Store::changes`),
//! `passes` the passes of the engine's loops (the ticker, the notification
//! outbox: `orch_engine::passes`), and `seq` is their sum. It answers as
//! soon as `seq > after`, else at the timeout with the current values (a
//! client that reads `seq` first with `timeout_ms=0`, then checks what it
//! waits for, then waits with `after=seq`, misses no change). The timeout
//! is capped at 30 s; the server's shutdown answers at once.
//!
//! Only this process's writes count: a change made by another process (the
//! CLI with no engine running, another node sharing PostgreSQL) moves
//! nothing until this engine writes or its ticker passes.

use crate::AppState;
use crate::error::{ApiResult, QueryParams};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The longest a request waits.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesParams {
    after: Option<u64>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Seq {
    seq: u64,
    commits: u64,
    passes: u64,
}

pub async fn changes(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<ChangesParams>,
) -> ApiResult<Json<Seq>> {
    let after = p.after.unwrap_or(0);
    let wait = Duration::from_millis(p.timeout_ms.unwrap_or(0)).min(MAX_WAIT);
    let mut commits = s.store().changes();
    let mut passes = orch_engine::passes::subscribe();
    let mut closing = s.closing.clone();
    let deadline = tokio::time::sleep(wait);
    tokio::pin!(deadline);
    loop {
        let now = Seq::of(*commits.borrow_and_update(), *passes.borrow_and_update());
        if now.seq > after || s.is_closing() {
            return Ok(Json(now));
        }
        // A sender gone (a store dropped) ends that arm; the others remain.
        tokio::select! {
            r = commits.changed() => {
                if r.is_err() {
                    return Ok(Json(now));
                }
            }
            r = passes.changed() => {
                if r.is_err() {
                    return Ok(Json(now));
                }
            }
            _ = closing.changed() => return Ok(Json(now)),
            () = &mut deadline => return Ok(Json(now)),
        }
    }
}

impl Seq {
    fn of(commits: u64, passes: u64) -> Seq {
        Seq {
            seq: commits.wrapping_add(passes),
            commits,
            passes,
        }
    }
}
