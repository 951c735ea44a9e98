//! `orch node list|drain`: the engines sharing the store (issue 11). Both
//! read and write the store only: a node follows a drain at its next
//! heartbeat (`queue.heartbeat_secs`), so no engine needs to be reachable.

use crate::args::{NodeDrainArgs, NodeListArgs};
use crate::error::{CliError, CliResult};
use crate::output::{out, outln};
use crate::render::{ago, print_json, table};
use orch_config::Config;
use orch_core::Timestamp;
use orch_store::{Leadership, Node};

/// A node that has not reported for this many heartbeats is shown as silent.
const SILENT_AFTER_HEARTBEATS: i64 = 3;

/// A node's state in a word: what a person asks first.
fn state(n: &Node, now: Timestamp, heartbeat_ms: i64) -> &'static str {
    if now.0 - n.heartbeat_at.0 > heartbeat_ms * SILENT_AFTER_HEARTBEATS {
        "silent"
    } else if n.draining && n.claims_stopped {
        "drained"
    } else if n.draining {
        "draining"
    } else {
        "active"
    }
}

fn leads(n: &Node, leader: Option<&Leadership>, now: Timestamp) -> bool {
    leader.is_some_and(|l| l.node == n.name && l.expires_at > now)
}

pub async fn list(cfg: &Config, a: &NodeListArgs) -> CliResult {
    let store = super::open_store(cfg).await?;
    let nodes = store.nodes().await?;
    let leader = store.leader().await?;
    let now = orch_store::Clock::now(&orch_store::SystemClock);
    let heartbeat_ms = i64::try_from(cfg.heartbeat().as_millis()).unwrap_or(i64::MAX);
    if a.json {
        let rows: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "name": n.name,
                    "state": state(n, now, heartbeat_ms),
                    "leader": leads(n, leader.as_ref(), now),
                    "draining": n.draining,
                    "claims_stopped": n.claims_stopped,
                    "started_at": n.started_at,
                    "heartbeat_at": n.heartbeat_at,
                    "api_url": n.api_url,
                })
            })
            .collect();
        print_json(&serde_json::json!({ "nodes": rows, "leader": leader }))?;
        return Ok(());
    }
    if nodes.is_empty() {
        outln!("no node has reported yet; `orch serve` records itself when it starts");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                state(n, now, heartbeat_ms).to_owned(),
                if leads(n, leader.as_ref(), now) {
                    "yes".into()
                } else {
                    String::new()
                },
                ago(n.started_at),
                ago(n.heartbeat_at),
                n.api_url.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out!(
        "{}",
        table(
            &["NODE", "STATE", "LEADER", "STARTED", "HEARTBEAT", "API"],
            &rows
        )
    );
    Ok(())
}

pub async fn drain(cfg: &Config, a: &NodeDrainArgs) -> CliResult {
    let store = super::open_store(cfg).await?;
    if !store.set_node_draining(&a.name, !a.resume).await? {
        return Err(CliError::Usage(format!(
            "no node is named {:?}; `orch node list` shows them",
            a.name
        )));
    }
    if a.resume {
        outln!("{} claims new work again from its next heartbeat", a.name);
    } else {
        outln!(
            "{} finishes its running work and claims nothing new from its next heartbeat; `orch node list` shows it drained then",
            a.name
        );
    }
    Ok(())
}
