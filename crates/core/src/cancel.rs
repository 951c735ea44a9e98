//! STOP (R-30…R-35, ported from ORCH-090), decided here and only here:
//! [`decide_stop`] turns the facts of a task into a [`StopPlan`] — the result
//! note and the ordered steps of the reset (or of the deferral inside a
//! critical window, D7). The engine gathers the facts as the task's owner
//! and carries the steps out in the order given; it decides nothing itself.

use crate::stage::Stage;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `note` of a cancel result; its string form is part of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelNote {
    NoTask,
    AlreadyTerminal(Stage),
    Cancelled,
    DeferredCriticalWindow,
    DeferredAlreadyPending,
    /// The kill switch is off or the repo is out of scope.
    Disabled,
    /// The cancel could not be carried out (e.g. the store failed); the
    /// result's error says why. Not `no-task`: the task may well exist.
    Error,
}

impl fmt::Display for CancelNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelNote::NoTask => f.write_str("no-task"),
            CancelNote::AlreadyTerminal(st) => write!(f, "already-terminal:{st}"),
            CancelNote::Cancelled => f.write_str("cancelled"),
            CancelNote::DeferredCriticalWindow => f.write_str("deferred-critical-window"),
            CancelNote::DeferredAlreadyPending => f.write_str("deferred-already-pending"),
            CancelNote::Disabled => f.write_str("disabled"),
            CancelNote::Error => f.write_str("error"),
        }
    }
}

/// The kill switch and repo scope of STOP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopScope {
    pub enabled: bool,
    /// Empty = every repo.
    pub repos: Vec<String>,
}

impl StopScope {
    /// Whether STOP acts on tasks of `repo` (TC-08).
    pub fn applies(&self, repo: &str) -> bool {
        self.enabled && (self.repos.is_empty() || self.repos.iter().any(|r| r == repo))
    }
}

/// Facts about a task that decide whether an irreversible step is in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowFacts {
    /// An INITIATED marker (merge or deploy phase B) exists for the task.
    pub initiated_marker: bool,
    /// The task's branch holds its repo's merge lease.
    pub holds_merge_lease: bool,
    /// A merge or deploy job of the task is running.
    pub running_serial_actor: bool,
}

/// R-33 with the D7 fix: holding the lease while parked idle is NOT critical.
pub fn in_critical_window(f: WindowFacts) -> bool {
    f.initiated_marker || (f.holds_merge_lease && f.running_serial_actor)
}

/// Why a task is being cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelCause {
    /// A person's STOP (tracker, CLI, API): the kill switch and the repo
    /// scope apply, and a critical window defers it.
    Stop,
    /// A STOP deferred by a critical window, applied by the finalizer of the
    /// step that deferred it: the window has closed, so it is carried out in
    /// full at once.
    DeferredStop,
}

/// What STOP looks at, gathered by the engine as the task's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopFacts {
    /// The task's stage; `None` when there is no such task.
    pub stage: Option<Stage>,
    /// The kill switch is on and the task's repo is in its scope.
    pub in_scope: bool,
    /// An irreversible step is in flight ([`in_critical_window`]).
    pub in_critical_window: bool,
    /// A deferred STOP already waits for the window to end.
    pub cancel_requested: bool,
}

/// The one tracker comment a cancel sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopNotice {
    /// "applies as soon as the irreversible step ends" (sent once, D7).
    Deferred,
    /// "cancelled; N agent run(s) stopped".
    Cancelled,
}

/// One step of a cancel, in the order the plan lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStep {
    /// Cancel the task's queued jobs only: the running merge or deploy keeps
    /// its job and finishes.
    CancelQueuedJobs,
    /// Stamp the deferred STOP on the task (the store logs
    /// `cancel_requested`, with the item's one comment, with the first stamp).
    RequestCancel,
    /// Cancel every job of the task, running ones included — before the runs
    /// are stopped, so a watcher that sees its run end finds its claim gone
    /// and records the run as cancelled, and nothing claims it again (TC-03).
    CancelAllJobs,
    /// Stop the runs of the jobs that were running, through the runs' owner
    /// (TC-02: an idle task stops nothing).
    StopRuns,
    /// Keep what the agent left (archive), then remove the task's worktree.
    RetireWorktree,
    /// Delete the task's remote branch, never a protected one (TC-05).
    DeleteBranch,
    ReleaseMergeLease,
    /// Stage `cancelled`, tracker keys tombstoned (TC-06: the task row and
    /// its docs stay), the tracker's stage and the cancel's comment written
    /// to the tracker outbox in the same transaction.
    MarkCancelled,
    /// The tracker item hears of it: a deferral's one comment; a cancel's
    /// writes (queued by `MarkCancelled`) delivered.
    Tell(StopNotice),
}

/// What a STOP does: the result note and the steps to carry out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopPlan {
    pub note: CancelNote,
    /// The API's `ok`: the task is (or will be) stopped, or already was.
    pub ok: bool,
    pub deferred: bool,
    pub steps: Vec<StopStep>,
}

impl StopPlan {
    fn nothing(note: CancelNote, ok: bool) -> StopPlan {
        StopPlan {
            note,
            ok,
            deferred: false,
            steps: Vec::new(),
        }
    }
}

/// The full reset of R-32, in its order: jobs, runs, worktree, branch,
/// lease, the task row, then the tracker.
pub const RESET: [StopStep; 7] = [
    StopStep::CancelAllJobs,
    StopStep::StopRuns,
    StopStep::RetireWorktree,
    StopStep::DeleteBranch,
    StopStep::ReleaseMergeLease,
    StopStep::MarkCancelled,
    StopStep::Tell(StopNotice::Cancelled),
];

/// R-30…R-35 with D7: what a cancel of a task does.
///
/// - No task: `no-task`, nothing done (TC-01, TC-07).
/// - A STOP while the kill switch is off or the repo is out of scope:
///   `disabled`, nothing done (TC-08).
/// - A terminal task: `already-terminal:<stage>`, ok, nothing done (TC-07).
/// - A STOP inside a critical window: deferred — queued jobs go, the running
///   merge/deploy finishes, and its finalizer applies the cancel; the person
///   is told once, a repeated STOP only says it is pending (D7).
/// - Otherwise the full reset ([`RESET`]).
pub fn decide_stop(facts: &StopFacts, cause: CancelCause) -> StopPlan {
    let Some(stage) = facts.stage else {
        return StopPlan::nothing(CancelNote::NoTask, false);
    };
    if cause == CancelCause::Stop && !facts.in_scope {
        return StopPlan::nothing(CancelNote::Disabled, false);
    }
    if stage.is_terminal() {
        return StopPlan::nothing(CancelNote::AlreadyTerminal(stage), true);
    }
    if cause == CancelCause::Stop && facts.in_critical_window {
        let (note, steps) = if facts.cancel_requested {
            (
                CancelNote::DeferredAlreadyPending,
                vec![StopStep::CancelQueuedJobs],
            )
        } else {
            (
                CancelNote::DeferredCriticalWindow,
                vec![
                    StopStep::CancelQueuedJobs,
                    StopStep::RequestCancel,
                    StopStep::Tell(StopNotice::Deferred),
                ],
            )
        };
        return StopPlan {
            note,
            ok: true,
            deferred: true,
            steps,
        };
    }
    StopPlan {
        note: CancelNote::Cancelled,
        ok: true,
        deferred: false,
        steps: RESET.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_render_as_the_api_says() {
        assert_eq!(
            CancelNote::AlreadyTerminal(Stage::Done).to_string(),
            "already-terminal:done"
        );
        assert_eq!(CancelNote::NoTask.to_string(), "no-task");
        assert_eq!(CancelNote::Error.to_string(), "error");
        assert_eq!(
            CancelNote::DeferredAlreadyPending.to_string(),
            "deferred-already-pending"
        );
    }

    #[test]
    fn tc08_scope() {
        let off = StopScope {
            enabled: false,
            repos: vec![],
        };
        assert!(!off.applies("orchestrator"));
        let scoped = StopScope {
            enabled: true,
            repos: vec!["enduro-trails".into()],
        };
        assert!(scoped.applies("enduro-trails"));
        assert!(!scoped.applies("orchestrator"));
        assert!(
            StopScope {
                enabled: true,
                repos: vec![]
            }
            .applies("anything")
        );
    }

    #[test]
    fn d7_window_rules() {
        let lease_idle = WindowFacts {
            holds_merge_lease: true,
            ..Default::default()
        };
        assert!(
            !in_critical_window(lease_idle),
            "parked awaiting Confirm Deploy is reversible"
        );
        let lease_running = WindowFacts {
            holds_merge_lease: true,
            running_serial_actor: true,
            ..Default::default()
        };
        assert!(in_critical_window(lease_running));
        let marker = WindowFacts {
            initiated_marker: true,
            ..Default::default()
        };
        assert!(in_critical_window(marker));
        assert!(!in_critical_window(WindowFacts::default()));
    }
}
