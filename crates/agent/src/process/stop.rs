//! Stopping a run: every descendant of the agent ends, including processes that
//! left its process group or session, and a reused pid is never signalled.
//!
//! Sequence: SIGINT to the agent's group (the gentlest stop for Claude Code,
//! which then ends its own tools) → grace → SIGTERM to the group and to every
//! other process of the run → grace → SIGKILL to all of them and `cgroup.kill`.
//! The monitor is not signalled while the agent runs: it reaps the agent,
//! ends the leftovers, writes `exit.json` and exits on its own. Only if it is
//! still there after the last wait is it killed too.
//!
//! Before the first signal the monitor's start ticks are compared with the
//! recorded ones; if the pid now belongs to another process nothing is sent.

use super::ProcessError;
use super::cgroup::RunCgroup;
use super::launcher::RunHandle;
use super::procfs::{Identity, ProcId, ProcStat};
use super::run_dir::{self, ExitRecord, MonitorInfo, StopRecord};
use super::signal::{SignalOutcome, signal_group, signal_process};
use super::tree::{self, RunRoots};
use nix::sys::signal::Signal;
use orch_core::RunId;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Grace periods of a stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopPolicy {
    /// After SIGINT, before SIGTERM.
    pub grace_int: Duration,
    /// After SIGTERM, before SIGKILL.
    pub grace_term: Duration,
    /// After SIGKILL, how long the monitor gets to record the exit and leave
    /// before it is killed as well.
    pub kill_wait: Duration,
}

impl Default for StopPolicy {
    /// 10 s for each grace.
    fn default() -> StopPolicy {
        StopPolicy {
            grace_int: Duration::from_secs(10),
            grace_term: Duration::from_secs(10),
            kill_wait: Duration::from_secs(5),
        }
    }
}

impl StopPolicy {
    /// The same grace after SIGINT and after SIGTERM.
    pub fn with_grace(grace: Duration) -> StopPolicy {
        StopPolicy {
            grace_int: grace,
            grace_term: grace,
            ..StopPolicy::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StopSignal {
    #[serde(rename = "SIGINT")]
    Int,
    #[serde(rename = "SIGTERM")]
    Term,
    #[serde(rename = "SIGKILL")]
    Kill,
}

impl StopSignal {
    fn signal(self) -> Signal {
        match self {
            StopSignal::Int => Signal::SIGINT,
            StopSignal::Term => Signal::SIGTERM,
            StopSignal::Kill => Signal::SIGKILL,
        }
    }
}

/// Who received a signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SignalTarget {
    /// The agent's process group.
    AgentGroup { pgid: i32 },
    /// One process of the run outside the agent's group (or after the agent
    /// itself has gone).
    Process { pid: i32 },
    /// The run's cgroup, through `cgroup.kill`.
    Cgroup { path: PathBuf },
    /// The monitor: before the agent started, or as the very last resort.
    Monitor { pid: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalSent {
    pub signal: StopSignal,
    pub target: SignalTarget,
    /// Time since the stop began.
    pub after: Duration,
}

/// Why a stop sent nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Refusal {
    /// The recorded pid belongs to another process now.
    PidReused {
        pid: i32,
        recorded_ticks: u64,
        current_ticks: u64,
    },
}

/// What a stop did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopReport {
    pub run_id: RunId,
    pub reason: String,
    /// Set when the stop refused to signal anything.
    pub refused: Option<Refusal>,
    /// Every signal sent, in order.
    pub signals: Vec<SignalSent>,
    /// Every process of the run seen during the stop (the monitor excluded).
    pub pids: Vec<i32>,
    /// Processes still alive at the end (empty when `all_gone`).
    pub survivors: Vec<i32>,
    /// Nothing of the run is left: monitor and every descendant are gone.
    pub all_gone: bool,
    /// The monitor was gone before the stop began.
    pub already_gone: bool,
    pub used_cgroup: bool,
    pub elapsed: Duration,
    /// The monitor's record, if it wrote one.
    pub exit: Option<ExitRecord>,
}

/// The run as seen at one moment.
struct View {
    monitor_alive: bool,
    info: Option<MonitorInfo>,
    agent: Option<ProcId>,
    cgroup: Option<RunCgroup>,
    procs: Vec<ProcStat>,
}

impl View {
    fn is_gone(&self) -> bool {
        !self.monitor_alive && self.procs.is_empty()
    }
}

struct Stopper<'a> {
    handle: &'a RunHandle,
    monitor: ProcId,
    t0: Instant,
    report: StopReport,
    seen: BTreeSet<i32>,
    /// (signal, target) pairs already recorded, so re-sent SIGKILLs do not
    /// flood the report.
    sent: BTreeSet<(u8, i32)>,
}

/// Stops the run named by `handle`. Returns once everything is gone or the last
/// wait ran out; `Err` only when `/proc` cannot be read at all.
pub fn stop(
    handle: &RunHandle,
    policy: &StopPolicy,
    reason: &str,
) -> Result<StopReport, ProcessError> {
    let monitor = handle.monitor();
    let mut s = Stopper {
        handle,
        monitor,
        t0: Instant::now(),
        report: StopReport {
            run_id: handle.run_id.clone(),
            reason: reason.to_owned(),
            refused: None,
            signals: Vec::new(),
            pids: Vec::new(),
            survivors: Vec::new(),
            all_gone: false,
            already_gone: false,
            used_cgroup: false,
            elapsed: Duration::ZERO,
            exit: None,
        },
        seen: BTreeSet::new(),
        sent: BTreeSet::new(),
    };
    match monitor.identity() {
        Identity::Reused { current_ticks } => {
            s.report.refused = Some(Refusal::PidReused {
                pid: monitor.pid,
                recorded_ticks: monitor.start_ticks,
                current_ticks,
            });
            s.report.elapsed = s.t0.elapsed();
            return Ok(s.report);
        }
        Identity::Gone | Identity::Zombie => s.report.already_gone = true,
        Identity::Alive => {}
    }
    if handle.run_dir.is_dir() {
        let rec = StopRecord {
            reason: reason.to_owned(),
            requested_at: run_dir::now(),
        };
        // Best effort: the reason helps a later reader, the stop works without it.
        let _ = run_dir::write_json_atomic(&handle.run_dir, run_dir::STOP_JSON, &rec);
    }

    let phases = [
        (StopSignal::Int, policy.grace_int),
        (StopSignal::Term, policy.grace_term),
        (StopSignal::Kill, policy.kill_wait),
    ];
    let mut gone = false;
    for (sig, wait) in phases {
        let view = s.view()?;
        if view.is_gone() {
            gone = true;
            break;
        }
        s.send(sig, &view);
        if s.wait_gone(sig, wait)? {
            gone = true;
            break;
        }
    }
    if !gone {
        // The monitor outlived the agent by more than `kill_wait` (hung on a
        // disk write, say): kill it, and the agent too should it somehow remain
        // (its parent-death signal would also do that).
        let view = s.view()?;
        if view.monitor_alive && signal_process(&monitor, Signal::SIGKILL) == SignalOutcome::Sent {
            s.record(StopSignal::Kill, SignalTarget::Monitor { pid: monitor.pid });
        }
        gone = s.wait_gone(StopSignal::Kill, Duration::from_secs(2))?;
    }

    let last = s.view()?;
    if let Some(cg) = &last.cgroup
        && gone
    {
        cg.remove();
    }
    s.report.all_gone = gone && last.is_gone();
    s.report.survivors = last.procs.iter().map(|p| p.pid).collect();
    if last.monitor_alive {
        s.report.survivors.push(monitor.pid);
    }
    s.report.pids = s.seen.iter().copied().collect();
    s.report.exit = run_dir::read_exit(&handle.run_dir);
    s.report.elapsed = s.t0.elapsed();
    Ok(s.report)
}

impl Stopper<'_> {
    fn view(&mut self) -> Result<View, ProcessError> {
        let monitor_alive = self.monitor.is_alive();
        // Only a record written by this very monitor is trusted.
        let info = run_dir::read_monitor_info(&self.handle.run_dir).filter(|i| {
            i.monitor_pid == self.monitor.pid && i.monitor_start_ticks == self.monitor.start_ticks
        });
        let agent = info
            .as_ref()
            .map(|i| ProcId {
                pid: i.agent_pid,
                start_ticks: i.agent_start_ticks,
            })
            .filter(ProcId::is_alive);
        let cgroup = info
            .as_ref()
            .and_then(|i| i.cgroup.as_deref())
            .and_then(RunCgroup::from_recorded);
        let roots = RunRoots {
            monitor: monitor_alive.then_some(self.monitor),
            agent,
            sid: Some(self.monitor.pid),
            not_before_ticks: self.monitor.start_ticks,
        };
        let procs = tree::discover(&roots, cgroup.as_ref())
            .map_err(|e| ProcessError::io("scanning /proc", e))?;
        self.seen.extend(procs.iter().map(|p| p.pid));
        self.report.used_cgroup |= cgroup.is_some();
        Ok(View {
            monitor_alive,
            info,
            agent,
            cgroup,
            procs,
        })
    }

    fn record(&mut self, signal: StopSignal, target: SignalTarget) {
        let key_pid = match &target {
            SignalTarget::AgentGroup { pgid } => -*pgid,
            SignalTarget::Process { pid } | SignalTarget::Monitor { pid } => *pid,
            SignalTarget::Cgroup { .. } => 0,
        };
        if self.sent.insert((signal as u8, key_pid)) {
            self.report.signals.push(SignalSent {
                signal,
                target,
                after: self.t0.elapsed(),
            });
        }
    }

    fn send(&mut self, sig: StopSignal, view: &View) {
        let signal = sig.signal();
        if sig == StopSignal::Kill
            && let Some(cg) = &view.cgroup
            && cg.kill().is_ok()
        {
            self.record(
                sig,
                SignalTarget::Cgroup {
                    path: cg.dir.clone(),
                },
            );
        }
        if let Some(agent) = &view.agent
            && signal_group(agent, signal) == SignalOutcome::Sent
        {
            self.record(sig, SignalTarget::AgentGroup { pgid: agent.pid });
        }
        if view.info.is_none() && view.monitor_alive {
            // The monitor has not started the agent yet (or could not record
            // it): it forwards the signal to the agent as soon as it runs. Before
            // a SIGKILL takes the monitor (and, by its parent-death signal, the
            // agent), whatever its tree holds is killed directly, since without
            // monitor.json nothing else would find escaped processes afterwards.
            if sig == StopSignal::Kill {
                for p in &view.procs {
                    if signal_process(&ProcId::of(p), signal) == SignalOutcome::Sent {
                        self.record(sig, SignalTarget::Process { pid: p.pid });
                    }
                }
            }
            if signal_process(&self.monitor, signal) == SignalOutcome::Sent {
                self.record(
                    sig,
                    SignalTarget::Monitor {
                        pid: self.monitor.pid,
                    },
                );
            }
            return;
        }
        // SIGINT is for the agent alone (it ends its own tools); only when the
        // agent is already gone do the leftovers get it.
        if sig == StopSignal::Int && view.agent.is_some() {
            return;
        }
        let agent_pgid = view.agent.map(|a| a.pid);
        for p in &view.procs {
            if Some(p.pgid) == agent_pgid {
                continue; // reached through the group
            }
            if signal_process(&ProcId::of(p), signal) == SignalOutcome::Sent {
                self.record(sig, SignalTarget::Process { pid: p.pid });
            }
        }
    }

    /// Polls until the run is gone or `wait` has passed. While the monitor
    /// lives, only the monitor is checked (it leaves last); during the SIGKILL
    /// phase every poll also kills whatever appeared since.
    fn wait_gone(&mut self, sig: StopSignal, wait: Duration) -> Result<bool, ProcessError> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(1);
        loop {
            if sig == StopSignal::Kill || !self.monitor.is_alive() {
                let view = self.view()?;
                if view.is_gone() {
                    return Ok(true);
                }
                if sig == StopSignal::Kill && !view.procs.is_empty() {
                    self.send(sig, &view);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}
