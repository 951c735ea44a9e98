//! One team's (Linear) or project's (Jira) entry of a tracker that names
//! orch's states per unit: its repo and its renames of `[tracker.states]`.
//! The rules are the same for every such tracker; only the words differ.

use super::Checker;
use crate::model::{Config, TrackerStates};
use std::collections::BTreeMap;

/// How the tracker calls things, for the messages.
pub(super) struct Words {
    /// `"team"`, `"project"`.
    pub unit: &'static str,
    /// `"Linear state"`, `"Jira status"`.
    pub state: &'static str,
    /// The key of the renames (`workflow_states`, `statuses`).
    pub field: &'static str,
}

impl Config {
    /// The unit at `at` (`tracker.linear.teams.ENG`): its repo exists (or
    /// may be left out), each rename names a key of `[tracker.states]` and
    /// a state, and no two gates or stages end up on one state.
    pub(super) fn check_state_map(
        &self,
        c: &mut Checker,
        at: &str,
        repo: Option<&str>,
        renames: &BTreeMap<String, String>,
        active: bool,
        w: &Words,
    ) {
        match repo {
            Some(r) if self.repo(r).is_none() => c.error(
                format!("{at}.repo"),
                format!("no repo named {r:?} is configured in [[repos]]"),
            ),
            None if active && self.repos.len() > 1 => c.error(
                format!("{at}.repo"),
                format!(
                    "missing: with several [[repos]], each {} needs its repo",
                    w.unit
                ),
            ),
            _ => {}
        }
        let keys: Vec<&str> = TrackerStates::default()
            .entries()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        for (key, name) in renames {
            if !keys.contains(&key.as_str()) {
                c.error(
                    format!("{at}.{}.{key}", w.field),
                    format!(
                        "{key:?} is not a key of [tracker.states] (one of: {})",
                        keys.join(", ")
                    ),
                );
            }
            c.non_empty(&format!("{at}.{}.{key}", w.field), name);
        }
        for x in self.tracker.states.renamed(renames).collisions() {
            if x.name.trim().is_empty() {
                continue;
            }
            c.error(
                format!("{at}.{}.{}", w.field, x.second),
                format!(
                    "{:?} is also the state of {} in this {} (names are compared trimmed and case-insensitively); each gate and stage needs its own {}",
                    x.name, x.first, w.unit, w.state
                ),
            );
        }
    }
}

/// A key of a tracker's units as its issues carry it (`ENG` of `ENG-42`):
/// letters, digits and `_`; a dash or a blank would make keys ambiguous.
pub(super) fn is_unit_key(key: &str) -> bool {
    !key.trim().is_empty()
        && key
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}
