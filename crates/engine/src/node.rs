//! This engine as one node of the store (issue 11): it reports itself at
//! each heartbeat, drains when a person asks (`orch node drain`: it claims
//! nothing new and says so at its next heartbeat), and takes or keeps the
//! leader lease. Only the leader runs the work that one node must do for
//! all: the tracker reconciler, the outboxes' senders and the cleanup of
//! idle worktrees. Another node takes over within `queue.lease_secs` when
//! the leader stops renewing.

use crate::supervisor::Supervisor;
use orch_core::Run;
use orch_store::{NodeReport, Store};
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
    /// Where the other nodes reach this node's API (its runs' logs are
    /// streamed from there); `None`: this engine serves no API.
    pub api_url: Option<String>,
    /// The machine this engine runs on ([`this_machine`]).
    pub machine: String,
}

impl NodeIdentity {
    pub fn new(name: &str, api_url: Option<String>) -> NodeIdentity {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        NodeIdentity {
            name: name.to_owned(),
            boot_id: format!("{}-{nanos}", std::process::id()),
            api_url,
            machine: this_machine(),
        }
    }
}

/// The machine this process runs on: `ORCH_MACHINE_ID` when set (engines
/// in containers of one host that must count as machines of their own),
/// else the kernel's boot id, which names this machine until its next boot
/// (a process id means something only on the machine, and in the boot,
/// that gave it).
pub fn this_machine() -> String {
    std::env::var("ORCH_MACHINE_ID")
        .ok()
        .filter(|m| !m.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|b| b.trim().to_owned())
        })
        .unwrap_or_default()
}

/// Whether `run` ran on another machine than this one, as its node last
/// reported: then its process ids mean nothing here, and only its node may
/// signal it (it hears of a cancel through the queue signal, or at its
/// watcher's next heartbeat). A node that never said, or a store that
/// cannot be read, counts as this machine, as before nodes were recorded.
pub async fn ran_elsewhere(store: &dyn Store, run: &Run) -> bool {
    let nodes = match store.nodes().await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "listing the nodes failed; taking the run as this machine's");
            return false;
        }
    };
    let here = this_machine();
    nodes
        .iter()
        .find(|n| n.name == run.worker_id.0)
        .and_then(|n| n.machine.as_deref())
        .is_some_and(|m| !here.is_empty() && m != here)
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
    let report = NodeReport {
        name: &me.name,
        boot_id: &me.boot_id,
        claims_stopped: stopped,
        api_url: me.api_url.as_deref(),
        machine: Some(&me.machine),
    };
    match store.node_heartbeat(report).await {
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
