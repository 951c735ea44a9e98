//! This engine as one node of the store (issue 11): it reports itself at
//! each heartbeat, drains when a person asks (`orch node drain`: it claims
//! nothing new and says so at its next heartbeat), and takes or keeps the
//! leader lease. Only the leader runs the work that one node must do for
//! all: the tracker reconciler, the outboxes' senders and the cleanup of
//! idle worktrees. Another node takes over within `queue.lease_secs` when
//! the leader stops renewing.

use crate::supervisor::Supervisor;
use orch_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Who this node is.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    /// New at each start of the engine.
    pub boot_id: String,
}

impl NodeIdentity {
    pub fn new(name: &str) -> NodeIdentity {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        NodeIdentity {
            name: name.to_owned(),
            boot_id: format!("{}-{nanos}", std::process::id()),
        }
    }
}

/// One heartbeat: report, follow a drain, take or keep the lead. Returns
/// whether this node leads now. A store that cannot be reached leads
/// nobody here: the work of the leader waits rather than run twice.
pub async fn heartbeat(
    store: &dyn Store,
    me: &NodeIdentity,
    supervisor: &Supervisor,
    lease: Duration,
) -> bool {
    let stopped = supervisor.draining();
    match store.node_heartbeat(&me.name, &me.boot_id, stopped).await {
        Ok(row) if row.draining != stopped => {
            supervisor.set_draining(row.draining);
            tracing::info!(node = %me.name, draining = row.draining, "node drain changed");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(node = %me.name, error = %e, "node heartbeat failed"),
    }
    match store.lead(&me.name, lease).await {
        Ok(epoch) => epoch.is_some(),
        Err(e) => {
            tracing::warn!(node = %me.name, error = %e, "renewing the leader lease failed; leading nothing until it works");
            false
        }
    }
}

/// Heartbeat every `every` until the task is aborted; `leading` says
/// whether this node leads (changes logged).
pub async fn run(
    store: Arc<dyn Store>,
    me: NodeIdentity,
    supervisor: Arc<Supervisor>,
    every: Duration,
    lease: Duration,
    leading: watch::Sender<bool>,
) {
    loop {
        let now = heartbeat(store.as_ref(), &me, &supervisor, lease).await;
        if *leading.borrow() != now {
            tracing::info!(node = %me.name, leading = now, "leadership changed");
        }
        leading.send_replace(now);
        tokio::time::sleep(every).await;
    }
}

/// Run `work` while this node leads: started when it becomes the leader,
/// dropped when it stops leading, started afresh if it leads again.
pub async fn while_leading<F, Fut>(mut leading: watch::Receiver<bool>, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        tokio::select! {
            _ = work() => return,
            _ = leading.wait_for(|l| !*l) => {}
        }
    }
}
