//! `orch outbox list|retry`: orch's writes to the tracker that it gave up on
//! (after `orch_engine::tracker_outbox::MAX_ATTEMPTS` attempts). Giving up
//! parks nothing; these let a person see what the tracker never got and
//! send it again once the cause is fixed. Sending again queues the write as
//! new: the running engine's tracker outbox delivers it within seconds (a
//! CLI without an engine delivers nothing; the next `orch serve` does).

use crate::args::{OutboxListArgs, OutboxRetryArgs};
use crate::error::{CliError, CliResult};
use crate::output::{out, outln};
use crate::render::{ago, clip, print_json, table};
use orch_config::Config;
use orch_store::TRACKER_SINK;

/// At most this many given-up writes are listed or sent again at once.
const LIMIT: u32 = 1000;

pub async fn list(cfg: &Config, a: &OutboxListArgs) -> CliResult {
    let store = super::open_store(cfg).await?;
    let gone = store.given_up_notifications(TRACKER_SINK, LIMIT).await?;
    if a.json {
        print_json(&gone)?;
        return Ok(());
    }
    if gone.is_empty() {
        outln!("no tracker write was given up");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = gone
        .iter()
        .map(|n| {
            vec![
                n.id.to_string(),
                n.task_id.map(|t| t.to_string()).unwrap_or_default(),
                n.payload["item"].as_str().unwrap_or("?").to_owned(),
                clip(&write_of(&n.payload), 40),
                n.failed_at.map(ago).unwrap_or_default(),
                clip(n.last_error.as_deref().unwrap_or(""), 60),
            ]
        })
        .collect();
    out!(
        "{}",
        table(
            &["ID", "TASK", "ITEM", "WRITE", "GIVEN UP", "LAST ERROR"],
            &rows
        )
    );
    outln!("send them again with `orch outbox retry ID…` or `orch outbox retry --all`");
    Ok(())
}

/// What a write does, in a few words (`stage development`, `comment …`).
fn write_of(p: &serde_json::Value) -> String {
    let s = |k: &str| p[k].as_str().unwrap_or("").to_owned();
    match p["op"].as_str() {
        Some("stage") => format!("stage {}", s("stage")),
        Some("comment") => format!("comment {}", s("body")),
        _ => p.to_string(),
    }
}

pub async fn retry(cfg: &Config, a: &OutboxRetryArgs) -> CliResult {
    let store = super::open_store(cfg).await?;
    let ids: Vec<i64> = if a.all {
        store
            .given_up_notifications(TRACKER_SINK, LIMIT)
            .await?
            .into_iter()
            .map(|n| n.id)
            .collect()
    } else {
        a.ids.clone()
    };
    let mut refused = Vec::new();
    let mut sent = 0;
    for id in ids {
        if store.resend_notification(id).await? {
            sent += 1;
        } else {
            refused.push(id.to_string());
        }
    }
    outln!("{sent} tracker write(s) queued again");
    if refused.is_empty() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "not given up (sent, still being retried, or no such id): {}; see `orch outbox list`",
            refused.join(", ")
        )))
    }
}
