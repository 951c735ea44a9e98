//! `[tracker.linear]`: the API address, the secrets' variables, and each
//! team's repo and workflow state names. Whether the named states exist in
//! Linear is for `orch doctor` (it asks Linear); here only the shape.

use super::Checker;
use super::state_map::{Words, is_unit_key};
use crate::model::{Config, LinearTrackerConfig};

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
        let words = Words {
            unit: "team",
            state: "Linear state",
            field: "workflow_states",
        };
        for (team, t) in &l.teams {
            let at = format!("tracker.linear.teams.{team}");
            if !is_unit_key(team) {
                c.error(
                    &at,
                    format!("{team:?} is not a Linear team key (letters and digits, as in ENG-42)"),
                );
            }
            self.check_state_map(
                c,
                &at,
                t.repo.as_deref(),
                &t.workflow_states,
                active,
                &words,
            );
        }
    }
}
