//! STOP policy (R-30…R-35, ported from ORCH-090): the result notes of `cancel_task`,
//! the kill switch and repo scope, and the critical-window rule with the D7 fix.

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
