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
        assert!(s.is("confirm deploy", &s.confirm_deploy));
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
