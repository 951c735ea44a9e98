//! The sections that bound and report the pipeline: `[budget]`, `[review]`,
//! `[merge]`, `[logging]` and `[[notify]]` (split from `model.rs`, whose
//! `Config` holds them).

use serde::{Deserialize, Serialize};

/// `[budget]`: per-task limits; exceeding one parks the task. Absent = none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    pub max_tokens: Option<u64>,
    pub max_cost_usd: Option<f64>,
    /// Agent wall time: the analyst's, developer's and reviewer's runs, each
    /// from its claim to its end, summed (`orch_core::budget`).
    pub max_wall_secs: Option<u64>,
}

/// `[review]`: bounds of the review and analysis-rejection loops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReviewConfig {
    pub max_review_rounds: u32,
    pub max_rejection_rounds: u32,
    /// Required CI checks failing more often than this park the task for a
    /// person with the last failure (`repos.required_checks`).
    pub max_ci_rounds: u32,
    /// How a person's approving review on the task's pull request counts:
    /// `required` (the merge waits for one), `enough` (it passes the review
    /// stage even when the reviewer agent asked for changes) or `ignored`.
    /// A person's change request goes back to the developer in every mode.
    pub human_approval: orch_core::people::HumanApproval,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            max_review_rounds: 3,
            max_rejection_rounds: 3,
            max_ci_rounds: 3,
            human_approval: orch_core::people::HumanApproval::Ignored,
        }
    }
}

/// `[merge]`: the merge gate's bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MergeConfig {
    /// Attempts of the merge step (push, merge on the forge) before the task
    /// parks for a person. A failure that asking again can cure (a 5xx, a
    /// timeout, a refused connection, a base that moved) is retried with the
    /// backoff of `[queue.retry]`; a refusal that cannot be cured (branch
    /// protection, a bad remote or credentials) parks at once.
    pub max_attempts: u32,
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig { max_attempts: 5 }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// A level (`info`) or a tracing filter (`info,orch_engine=debug`).
    pub level: String,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

/// `[[notify]]`: an outgoing webhook that hears when a task enters one of
/// `stages`. The JSON carries `text` (Slack), `body` and `msgtype`
/// (Matrix), `chat_id` when set (Telegram), and an `orch` object with the
/// facts. Messages wait in the store's outbox until the endpoint takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A short name, for logs and the task's event log.
    pub name: String,
    /// The NAME of the variable holding the URL: such URLs carry a token.
    pub url_env: String,
    /// Telegram's `chat_id`, sent as given.
    #[serde(default)]
    pub chat_id: Option<String>,
    /// The stages whose entry is told. The default: where a person is needed,
    /// and the ends.
    #[serde(default = "NotifyConfig::default_stages")]
    pub stages: Vec<orch_core::Stage>,
}

impl NotifyConfig {
    pub fn default_stages() -> Vec<orch_core::Stage> {
        use orch_core::Stage::*;
        vec![
            AwaitingApproval,
            Deploy,
            NeedsAttention,
            Done,
            Cancelled,
            Failed,
        ]
    }
}
