//! `[tracker.linear]`: the API address, the secrets' variables, and each
//! team's repo and workflow state names. Whether the named states exist in
//! Linear is for `orch doctor` (it asks Linear); here only the shape.

use super::Checker;
use crate::model::{Config, LinearTrackerConfig, TrackerStates};

impl Config {
    pub(super) fn validate_linear(&self, c: &mut Checker, l: &LinearTrackerConfig, active: bool) {
        c.http_url("tracker.linear.base_url", &l.base_url);
        c.env_name("tracker.linear.api_key_env", &l.api_key_env);
        c.env_name("tracker.linear.webhook_secret_env", &l.webhook_secret_env);
        if active && l.teams.is_empty() {
            c.error(
                "tracker.linear.teams",
                "is empty: add a [tracker.linear.teams.<KEY>] section for each team whose issues are work items (KEY is the team's key, e.g. ENG for ENG-42)",
            );
        }
        let keys: Vec<&str> = TrackerStates::default()
            .entries()
            .iter()
            .map(|(k, _)| *k)
            .collect();
        for (team, t) in &l.teams {
            let at = format!("tracker.linear.teams.{team}");
            // Issue identifiers are `<team key>-<number>`: a key with a dash
            // or blank would make them ambiguous.
            if team.trim().is_empty()
                || !team
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            {
                c.error(
                    &at,
                    format!("{team:?} is not a Linear team key (letters and digits, as in ENG-42)"),
                );
            }
            match &t.repo {
                Some(r) if self.repo(r).is_none() => c.error(
                    format!("{at}.repo"),
                    format!("no repo named {r:?} is configured in [[repos]]"),
                ),
                None if active && self.repos.len() > 1 => c.error(
                    format!("{at}.repo"),
                    "missing: with several [[repos]], each team needs its repo",
                ),
                _ => {}
            }
            for (key, name) in &t.workflow_states {
                if !keys.contains(&key.as_str()) {
                    c.error(
                        format!("{at}.workflow_states.{key}"),
                        format!(
                            "{key:?} is not a key of [tracker.states] (one of: {})",
                            keys.join(", ")
                        ),
                    );
                }
                c.non_empty(&format!("{at}.workflow_states.{key}"), name);
            }
            for x in t.states(&self.tracker.states).collisions() {
                if x.name.trim().is_empty() {
                    continue;
                }
                c.error(
                    format!("{at}.workflow_states.{}", x.second),
                    format!(
                        "{:?} is also the state of {} in this team (names are compared trimmed and case-insensitively); each gate and stage needs its own Linear state",
                        x.name, x.first
                    ),
                );
            }
        }
    }
}
