//! Finding every process that belongs to a run.
//!
//! Three sources, each sufficient in the common case and together covering the
//! rest:
//! - the ppid tree under the monitor: the monitor is a child subreaper, so a
//!   process that escaped into its own session and lost its parent is re-parented
//!   to the monitor, not to init;
//! - the members of the monitor's session (the agent and whatever did not call
//!   `setsid`), which still works when the monitor itself has died as long as the
//!   agent lives;
//! - the run's cgroup, which holds every descendant whatever happened.
//!
//! A session id or process group id cannot be reused while any process still
//! carries it, so members are only taken when the session's owner (the monitor
//! or the agent) is verified alive by pid and start ticks.

use super::cgroup::RunCgroup;
use super::procfs::{ProcId, ProcStat, ProcTable, read_stat};
use std::collections::BTreeMap;
use std::io;

/// Who a run is, as far as discovery is concerned.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunRoots {
    /// The monitor, if verified alive.
    pub monitor: Option<ProcId>,
    /// The agent, if verified alive.
    pub agent: Option<ProcId>,
    /// The session id of the run (the monitor's pid), usable while the agent or
    /// the monitor is alive.
    pub sid: Option<i32>,
    /// Processes started before this tick cannot belong to the run.
    pub not_before_ticks: u64,
}

/// Every living process of the run except the monitor, sorted by pid.
pub fn discover(roots: &RunRoots, cgroup: Option<&RunCgroup>) -> io::Result<Vec<ProcStat>> {
    let table = ProcTable::scan()?;
    Ok(discover_in(&table, roots, cgroup))
}

pub fn discover_in(
    table: &ProcTable,
    roots: &RunRoots,
    cgroup: Option<&RunCgroup>,
) -> Vec<ProcStat> {
    let mut found: BTreeMap<i32, ProcStat> = BTreeMap::new();
    let mut add = |p: &ProcStat| {
        if p.start_ticks >= roots.not_before_ticks && !p.is_finished() {
            found.insert(p.pid, p.clone());
        }
    };
    let mut add_ids = |ids: Vec<ProcId>| {
        for id in ids {
            if let Some(stat) = table.get(id.pid) {
                add(stat);
            }
        }
    };
    if let Some(m) = roots.monitor {
        add_ids(table.descendants(m.pid));
    }
    if let Some(a) = roots.agent {
        add_ids(vec![a]);
        add_ids(table.descendants(a.pid));
    }
    if let Some(sid) = roots.sid
        && (roots.monitor.is_some() || roots.agent.is_some())
    {
        add_ids(table.session_members(sid));
    }
    if let Some(cg) = cgroup {
        for pid in cg.procs() {
            match table.get(pid) {
                Some(stat) => add(stat),
                // Started after the table was scanned.
                None => {
                    if let Ok(Some(stat)) = read_stat(pid) {
                        add(&stat);
                    }
                }
            }
        }
    }
    if let Some(m) = roots.monitor {
        found.remove(&m.pid);
    }
    found.into_values().collect()
}
