//! `[tracker.jira]`: the site's address, the account, the secrets'
//! variables, and each project's repo and status names. Whether the named
//! statuses exist in the project's workflows is for `orch doctor` (it asks
//! Jira); here only the shape.

use super::Checker;
use super::state_map::{Words, is_unit_key};
use crate::model::{Config, JiraTrackerConfig};

impl Config {
    pub(super) fn validate_jira(&self, c: &mut Checker, j: &JiraTrackerConfig, active: bool) {
        if j.base_url.trim().is_empty() {
            if active {
                c.error(
                    "tracker.jira.base_url",
                    "is missing: set the site's address, e.g. \"https://your-site.atlassian.net\"",
                );
            }
        } else {
            c.http_url("tracker.jira.base_url", &j.base_url);
        }
        if active && j.email.trim().is_empty() {
            c.error(
                "tracker.jira.email",
                "is missing: set the email of the Atlassian account whose API token is in token_env",
            );
        }
        c.env_name("tracker.jira.token_env", &j.token_env);
        c.env_name("tracker.jira.webhook_secret_env", &j.webhook_secret_env);
        if active && j.projects.is_empty() {
            c.error(
                "tracker.jira.projects",
                "is empty: add a [tracker.jira.projects.<KEY>] section for each project whose issues are work items (KEY is the project's key, e.g. ENG for ENG-42)",
            );
        }
        let words = Words {
            unit: "project",
            state: "Jira status",
            field: "statuses",
        };
        for (key, p) in &j.projects {
            let at = format!("tracker.jira.projects.{key}");
            if !is_unit_key(key) {
                c.error(
                    &at,
                    format!("{key:?} is not a Jira project key (letters and digits, as in ENG-42)"),
                );
            }
            self.check_state_map(c, &at, p.repo.as_deref(), &p.statuses, active, &words);
        }
    }
}
