//! One rule for tracker state names, everywhere (routing, reconcile, doctor,
//! writes, config validation): people type state names in their tracker, so
//! two names are the same state when they are equal once trimmed and
//! lowercased (Unicode lowercase). "Stop", " STOP " and "stop" are one state.

use crate::model::TrackerStates;

/// The form a state name is compared in: trimmed, Unicode lowercase.
pub fn state_key(name: &str) -> String {
    name.trim().to_lowercase()
}

/// Whether two tracker state names name the same state.
pub fn same_state(a: &str, b: &str) -> bool {
    // Cheap exact match first; the rule itself otherwise.
    a == b || state_key(a) == state_key(b)
}

/// What a tracker state means to orch: a person's move at a gate (an
/// instruction), or the state a stage shows (orch writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateRole {
    /// "To Analyse": start (or restart) the item's pipeline.
    ToAnalyse,
    Approved,
    Rejected,
    ConfirmDeploy,
    Stop,
    /// The state of a stage (`analysis`, `awaiting_approval`, …, `failed`).
    Stage(orch_core::Stage),
}

impl StateRole {
    /// The role of a `[tracker.states]` key.
    fn of_key(key: &str) -> Option<StateRole> {
        use orch_core::Stage;
        Some(match key {
            "to_analyse" => StateRole::ToAnalyse,
            "approved" => StateRole::Approved,
            "rejected" => StateRole::Rejected,
            "confirm_deploy" => StateRole::ConfirmDeploy,
            "stop" => StateRole::Stop,
            other => StateRole::Stage(other.parse::<Stage>().ok()?),
        })
    }
}

/// Two keys of `[tracker.states]` whose names are the same state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCollision {
    pub first: &'static str,
    pub second: &'static str,
    /// The second key's name as configured.
    pub name: String,
}

impl TrackerStates {
    /// The state name a task in `stage` shows on the tracker.
    pub fn name_of(&self, stage: orch_core::Stage) -> &str {
        use orch_core::Stage;
        match stage {
            Stage::Analysis => &self.analysis,
            Stage::AwaitingApproval => &self.awaiting_approval,
            Stage::Development => &self.development,
            Stage::Review => &self.review,
            Stage::Merge => &self.merge,
            Stage::Deploy => &self.deploy,
            Stage::NeedsAttention => &self.needs_attention,
            Stage::Done => &self.done,
            Stage::Cancelled => &self.cancelled,
            Stage::Failed => &self.failed,
        }
    }

    /// The key of `[tracker.states]` (`"stop"`, `"to_analyse"`, …) whose
    /// state `name` is, by [`same_state`]; `None`: a state orch has no
    /// gate or stage for.
    pub fn key_of(&self, name: &str) -> Option<&'static str> {
        let want = state_key(name);
        self.entries()
            .into_iter()
            .find(|(_, n)| state_key(n) == want)
            .map(|(k, _)| k)
    }

    /// The name `other` gives the state these states call `name` (the same
    /// key of `[tracker.states]`): a provider unit's (a Linear team's, a
    /// Jira project's) name of one of orch's states, or back. `None`: a
    /// state orch has no gate or stage for.
    pub fn name_in<'a>(&self, name: &str, other: &'a TrackerStates) -> Option<&'a str> {
        let key = self.key_of(name)?;
        other
            .entries()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, n)| n)
    }

    /// What the state `name` means to orch, by [`same_state`]; `None`: a
    /// state orch has no gate or stage for.
    pub fn role_of(&self, name: &str) -> Option<StateRole> {
        self.key_of(name).and_then(StateRole::of_key)
    }

    /// Whether `name` is the configured state `configured` (e.g. `&s.stop`).
    pub fn is(&self, name: &str, configured: &str) -> bool {
        same_state(name, configured)
    }

    /// Keys whose names are one state under [`same_state`] (an exact repeat
    /// included): each gate and stage needs its own state.
    pub fn collisions(&self) -> Vec<StateCollision> {
        let entries = self.entries();
        let mut out = Vec::new();
        for (i, &(key, name)) in entries.iter().enumerate() {
            if let Some(&(first, _)) = entries[..i].iter().find(|e| same_state(e.1, name)) {
                out.push(StateCollision {
                    first,
                    second: key,
                    name: name.to_owned(),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_compared_trimmed_and_case_insensitively() {
        assert!(same_state("STOP", " stop "));
        assert!(same_state("To Analyse", "to analyse"));
        assert!(
            same_state("ÉTÉ", "été"),
            "Unicode lowercase, not ASCII only"
        );
        assert!(!same_state("To Analyse", "To  Analyse"));
        let s = TrackerStates::default();
        assert_eq!(s.key_of("Stop"), Some("stop"));
        assert_eq!(s.key_of("to analyse"), Some("to_analyse"));
        assert_eq!(s.key_of("awaiting approval "), Some("awaiting_approval"));
        assert_eq!(s.key_of("In Progress"), None);
        assert_eq!(s.role_of(" STOP"), Some(StateRole::Stop));
        assert_eq!(s.role_of("rejected"), Some(StateRole::Rejected));
        assert_eq!(
            s.role_of("Needs Attention"),
            Some(StateRole::Stage(orch_core::Stage::NeedsAttention))
        );
        assert_eq!(s.role_of("In Progress"), None);
        assert!(s.is("confirm deploy", &s.confirm_deploy));
    }

    /// Every key of `[tracker.states]` has a role: a key added without one
    /// would be a state orch silently ignores.
    #[test]
    fn every_configured_state_has_a_role() {
        let s = TrackerStates::default();
        for (key, name) in s.entries() {
            assert!(s.role_of(name).is_some(), "{key} = {name:?} has no role");
        }
    }

    #[test]
    fn collisions_under_the_rule_are_found() {
        let mut s = TrackerStates::default();
        assert_eq!(s.collisions(), vec![]);
        s.review = "development ".into();
        assert_eq!(
            s.collisions(),
            vec![StateCollision {
                first: "development",
                second: "review",
                name: "development ".into()
            }]
        );
    }
}
