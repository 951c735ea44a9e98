//! The shape of `orch.toml`: one serde type per section, each with the embedded
//! defaults (SQLite under `.orch/`, builtin tracker, local forge), so an empty file
//! is a complete configuration.
//!
//! Every section denies unknown fields: a typo such as `[queue.limts]` must be an
//! error naming the key, not a silently ignored setting. Secrets never appear
//! here: fields ending in `_env` hold the NAME of an environment variable.

use orch_core::AgentKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::Warning;
pub use crate::policy::*;

/// The whole configuration. Read it with [`Config::load`]; check it with
/// [`Config::validate`] before use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Database, `runs/` and `repos/` (worktrees) live here. Relative paths
    /// resolve against the folder of the config file.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub queue: QueueConfig,
    pub features: FeaturesConfig,
    pub stop: StopConfig,
    pub tracker: TrackerConfig,
    pub forge: ForgeConfig,
    pub repos: Vec<RepoConfig>,
    pub agents: AgentsConfig,
    pub agent_env: AgentEnvConfig,
    pub budget: BudgetConfig,
    pub review: ReviewConfig,
    pub merge: MergeConfig,
    pub limits: crate::disk::DiskLimitsConfig,
    pub cleanup: crate::disk::CleanupConfig,
    pub sandbox: crate::sandbox::SandboxConfig,
    pub logging: LoggingConfig,
    /// `[[notify]]`: outgoing webhooks told about the pipeline.
    pub notify: Vec<NotifyConfig>,
    /// A Symphony-style `WORKFLOW.md` read beneath this file (its front
    /// matter as defaults, its body as the developer's prompt); relative to
    /// this file's folder. `orch serve --workflow PATH` overrides it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<PathBuf>,

    /// Folder that relative paths resolve against (the config file's folder, or
    /// the working directory when there is no file).
    #[serde(skip)]
    pub(crate) base_dir: PathBuf,
    /// The file this configuration was read from, if any.
    #[serde(skip)]
    pub(crate) source: Option<PathBuf>,
    /// Warnings found while loading (they need the raw environment, which
    /// `validate` no longer sees).
    #[serde(skip)]
    pub(crate) load_warnings: Vec<Warning>,
    /// The workflow file's developer prompt template, if it has one.
    #[serde(skip)]
    pub(crate) workflow_prompt: Option<crate::workflow::WorkflowPrompt>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(".orch"),
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            queue: QueueConfig::default(),
            features: FeaturesConfig::default(),
            stop: StopConfig::default(),
            tracker: TrackerConfig::default(),
            forge: ForgeConfig::default(),
            repos: Vec::new(),
            agents: AgentsConfig::default(),
            agent_env: AgentEnvConfig::default(),
            budget: BudgetConfig::default(),
            review: ReviewConfig::default(),
            merge: MergeConfig::default(),
            limits: Default::default(),
            cleanup: Default::default(),
            sandbox: Default::default(),
            logging: LoggingConfig::default(),
            notify: Vec::new(),
            workflow: None,
            base_dir: PathBuf::new(),
            source: None,
            load_warnings: Vec::new(),
            workflow_prompt: None,
        }
    }
}

/// `[server]`: the HTTP API, webhooks and dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `IP:PORT` (or `localhost:PORT`).
    pub listen: String,
    /// Name of the variable holding the bearer token mutating API calls require.
    pub api_token_env: String,
    /// When true, read-only endpoints and the dashboard need no token.
    pub read_only_open: bool,
    /// The dashboard's address as people reach it (`https://orch.example`),
    /// for the links orch writes into tracker comments. Absent: the address
    /// `orch serve` listens on.
    pub public_url: Option<String>,
    /// How the other nodes sharing the store reach this node's API (they
    /// stream its runs' logs from it). Absent: `http://` + `listen`, a
    /// wildcard address named by the host name ([`ServerConfig::node_url`]).
    pub node_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            api_token_env: "ORCH_API_TOKEN".into(),
            read_only_open: false,
            public_url: None,
            node_url: None,
        }
    }
}

/// `[store]`: where jobs and tasks live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://…`. Absent: `sqlite://<data_dir>/orch.db`,
    /// so moving `data_dir` moves the database with it.
    pub url: Option<String>,
    pub synchronous: Synchronous,
    pub busy_timeout_ms: u64,
    /// The store's pool: PostgreSQL's connections (default 8), or SQLite's
    /// read connections (default 4; its writer is one whatever this says).
    /// Absent: the backend's default, as the backend is known only from
    /// `url`.
    pub max_connections: Option<u32>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            synchronous: Synchronous::Normal,
            busy_timeout_ms: 5000,
            max_connections: None,
        }
    }
}

/// SQLite's `synchronous` pragma: `normal` survives process crashes under WAL,
/// `full` also the last commits before a power loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Synchronous {
    #[default]
    Normal,
    Full,
}

/// `[queue]`: attempts, worker leases and polling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Attempts per job unless `agents.<kind>.max_attempts` overrides it.
    pub max_attempts: u32,
    /// A running job whose worker has not renewed for this long has an unknown outcome.
    pub lease_secs: u64,
    /// How often a worker renews its leases; must be well below `lease_secs`.
    pub heartbeat_secs: u64,
    /// Idle workers look for due jobs this often.
    pub poll_ms: u64,
    pub retry: RetryConfig,
    pub limits: LimitsConfig,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_attempts: 3,
            lease_secs: 60,
            heartbeat_secs: 15,
            poll_ms: 500,
            retry: RetryConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// `[queue.retry]`: exponential backoff with jitter and a cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    pub base_secs: u64,
    pub cap_secs: u64,
    pub factor: f64,
    /// Fraction of each delay that is randomised, 0..=1.
    pub jitter: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            base_secs: 10,
            cap_secs: 600,
            factor: 2.0,
            jitter: 0.2,
        }
    }
}

/// `[queue.limits]`: concurrency limits; an absent limit is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub global: Option<u32>,
    pub per_repo: Option<u32>,
    /// repo name → limit, replacing `per_repo` for that repo.
    pub per_repo_overrides: BTreeMap<String, u32>,
    pub per_agent: BTreeMap<AgentKind, u32>,
}

/// `[features]`: switches of the gates and the STOP kill switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeaturesConfig {
    pub serial_gate: bool,
    pub task_deps: bool,
    /// false makes STOP inert.
    pub stop_status: bool,
    /// Repos STOP acts on; empty = all.
    pub stop_status_repos: Vec<String>,
    pub auto_labels: bool,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig {
            serial_gate: true,
            task_deps: true,
            stop_status: true,
            stop_status_repos: Vec::new(),
            auto_labels: true,
        }
    }
}

/// `[stop]`: grace periods between SIGINT, SIGTERM and SIGKILL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StopConfig {
    pub grace_int_secs: u64,
    pub grace_term_secs: u64,
}

impl Default for StopConfig {
    fn default() -> Self {
        StopConfig {
            grace_int_secs: 10,
            grace_term_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackerKind {
    #[default]
    Builtin,
    Plane,
    Github,
    Gitea,
    Gitlab,
    Linear,
    Jira,
}

impl TrackerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerKind::Builtin => "builtin",
            TrackerKind::Plane => "plane",
            TrackerKind::Github => "github",
            TrackerKind::Gitea => "gitea",
            TrackerKind::Gitlab => "gitlab",
            TrackerKind::Linear => "linear",
            TrackerKind::Jira => "jira",
        }
    }
}

/// `[tracker]`: where work items and their gate states live.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    pub kind: TrackerKind,
    pub states: TrackerStates,
    pub plane: Option<PlaneConfig>,
    pub github: Option<GithubTrackerConfig>,
    pub gitea: Option<GiteaTrackerConfig>,
    pub gitlab: Option<GitlabTrackerConfig>,
    pub linear: Option<LinearTrackerConfig>,
    pub jira: Option<JiraTrackerConfig>,
}

/// `[tracker.states]`: the tracker state name of each gate and stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerStates {
    pub to_analyse: String,
    pub analysis: String,
    pub awaiting_approval: String,
    pub approved: String,
    pub rejected: String,
    pub development: String,
    pub review: String,
    pub merge: String,
    pub deploy: String,
    pub confirm_deploy: String,
    pub done: String,
    pub stop: String,
    pub cancelled: String,
    pub failed: String,
    pub needs_attention: String,
}

impl Default for TrackerStates {
    fn default() -> Self {
        TrackerStates {
            to_analyse: "To Analyse".into(),
            analysis: "Analysis".into(),
            awaiting_approval: "Awaiting Approval".into(),
            approved: "Approved".into(),
            rejected: "Rejected".into(),
            development: "Development".into(),
            review: "Review".into(),
            merge: "Merge".into(),
            deploy: "Deploy".into(),
            confirm_deploy: "Confirm Deploy".into(),
            done: "Done".into(),
            stop: "STOP".into(),
            cancelled: "Cancelled".into(),
            failed: "Failed".into(),
            needs_attention: "Needs Attention".into(),
        }
    }
}

impl TrackerStates {
    /// These names with `renames` (key of `[tracker.states]` → another
    /// name) in place: what each gate and stage is called in one team or
    /// project of a tracker. Unknown keys are left to validation.
    pub fn renamed(&self, renames: &BTreeMap<String, String>) -> TrackerStates {
        let mut out = self.clone();
        for (key, name) in renames {
            if let Some(slot) = out.slot_mut(key) {
                *slot = name.clone();
            }
        }
        out
    }

    /// The name of the entry `key` (`"to_analyse"`, …), to set it.
    pub fn slot_mut(&mut self, key: &str) -> Option<&mut String> {
        Some(match key {
            "to_analyse" => &mut self.to_analyse,
            "analysis" => &mut self.analysis,
            "awaiting_approval" => &mut self.awaiting_approval,
            "approved" => &mut self.approved,
            "rejected" => &mut self.rejected,
            "development" => &mut self.development,
            "review" => &mut self.review,
            "merge" => &mut self.merge,
            "deploy" => &mut self.deploy,
            "confirm_deploy" => &mut self.confirm_deploy,
            "done" => &mut self.done,
            "stop" => &mut self.stop,
            "cancelled" => &mut self.cancelled,
            "failed" => &mut self.failed,
            "needs_attention" => &mut self.needs_attention,
            _ => return None,
        })
    }

    /// `(key, state name)` of every entry, in file order.
    pub fn entries(&self) -> [(&'static str, &str); 15] {
        [
            ("to_analyse", &self.to_analyse),
            ("analysis", &self.analysis),
            ("awaiting_approval", &self.awaiting_approval),
            ("approved", &self.approved),
            ("rejected", &self.rejected),
            ("development", &self.development),
            ("review", &self.review),
            ("merge", &self.merge),
            ("deploy", &self.deploy),
            ("confirm_deploy", &self.confirm_deploy),
            ("done", &self.done),
            ("stop", &self.stop),
            ("cancelled", &self.cancelled),
            ("failed", &self.failed),
            ("needs_attention", &self.needs_attention),
        ]
    }
}

/// `[tracker.plane]`: Plane (webhooks + REST API v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaneConfig {
    pub base_url: String,
    pub workspace: String,
    #[serde(default)]
    pub project_ids: Vec<String>,
    #[serde(default = "plane_api_key_env")]
    pub api_key_env: String,
    #[serde(default = "plane_webhook_secret_env")]
    pub webhook_secret_env: String,
    /// Plane project uuid → orch repo name. A project left out goes to the
    /// only `[[repos]]` entry when there is exactly one.
    #[serde(default)]
    pub repos: BTreeMap<String, String>,
    /// Calls per minute orch allows itself per API key (Plane's default limit).
    #[serde(default = "plane_per_minute")]
    pub calls_per_minute: u32,
    /// Accept webhooks without a signature. Only for a trusted network.
    #[serde(default)]
    pub webhook_insecure: bool,
}

fn plane_per_minute() -> u32 {
    60
}

fn plane_api_key_env() -> String {
    "ORCH_PLANE_API_KEY".into()
}
fn plane_webhook_secret_env() -> String {
    "ORCH_PLANE_WEBHOOK_SECRET".into()
}

/// `[tracker.github]`: GitHub issues as the tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubTrackerConfig {
    #[serde(default = "github_api")]
    pub base_url: String,
    /// `owner/name` of each repository whose issues are work items.
    #[serde(default)]
    pub repos: Vec<String>,
    #[serde(default = "github_token_env")]
    pub token_env: String,
    #[serde(default = "github_webhook_secret_env")]
    pub webhook_secret_env: String,
}

/// `[tracker.gitea]`: Gitea/Forgejo issues as the tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiteaTrackerConfig {
    pub base_url: String,
    /// `owner/name` of each repository whose issues are work items.
    #[serde(default)]
    pub repos: Vec<String>,
    #[serde(default = "gitea_token_env")]
    pub token_env: String,
    #[serde(default = "gitea_webhook_secret_env")]
    pub webhook_secret_env: String,
}

/// `[tracker.gitlab]`: GitLab issues as the tracker, gate and stage names
/// as scoped labels `orch::<state>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabTrackerConfig {
    /// The instance's address; orch adds `/api/v4`.
    pub base_url: String,
    /// Each project whose issues are work items: its path
    /// (`group/subgroup/name`) or its numeric id.
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default = "gitlab_token_env")]
    pub token_env: String,
    #[serde(default = "gitlab_webhook_secret_env")]
    pub webhook_secret_env: String,
}

/// `[tracker.linear]`: Linear issues as the tracker (GraphQL API), orch's
/// gates and stages mapped to each team's workflow states by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearTrackerConfig {
    /// The API's address; orch adds `/graphql`.
    #[serde(default = "linear_api")]
    pub base_url: String,
    /// A personal API key, sent as `Authorization: <key>` (no `Bearer`).
    #[serde(default = "linear_api_key_env")]
    pub api_key_env: String,
    /// The webhook's signing secret (`Linear-Signature`).
    #[serde(default = "linear_webhook_secret_env")]
    pub webhook_secret_env: String,
    /// Team key (`ENG`, what issue identifiers start with) → that team's
    /// repo and state names.
    #[serde(default)]
    pub teams: BTreeMap<String, LinearTeamConfig>,
}

/// `[tracker.linear.teams.<KEY>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearTeamConfig {
    /// The orch repo of the team's issues; may be left out when there is
    /// exactly one `[[repos]]` entry.
    #[serde(default)]
    pub repo: Option<String>,
    /// Key of `[tracker.states]` (`to_analyse`, `done`, …) → the name of the
    /// team's workflow state that stands for it. A key left out is the
    /// state named as in `[tracker.states]`.
    #[serde(default)]
    pub workflow_states: BTreeMap<String, String>,
}

impl LinearTeamConfig {
    /// `[tracker.states]` with this team's Linear names in place: what
    /// each gate and stage is called in this team.
    pub fn states(&self, global: &TrackerStates) -> TrackerStates {
        global.renamed(&self.workflow_states)
    }
}

/// `[tracker.jira]`: Jira Cloud issues as the tracker (REST API v3), orch's
/// gates and stages mapped to each project's statuses by name; orch moves
/// an issue with the workflow transition that leads to the wanted status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraTrackerConfig {
    /// The site's address (`https://<site>.atlassian.net`); orch adds
    /// `/rest/api/3/…`.
    #[serde(default)]
    pub base_url: String,
    /// The Atlassian account orch acts as (Basic auth: this email and the
    /// API token).
    #[serde(default)]
    pub email: String,
    /// The account's API token.
    #[serde(default = "jira_token_env")]
    pub token_env: String,
    /// The admin webhook's secret (`X-Hub-Signature: sha256=…`).
    #[serde(default = "jira_webhook_secret_env")]
    pub webhook_secret_env: String,
    /// Project key (`ENG`, what issue keys start with) → that project's
    /// repo and status names.
    #[serde(default)]
    pub projects: BTreeMap<String, JiraProjectConfig>,
}

/// `[tracker.jira.projects.<KEY>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraProjectConfig {
    /// The orch repo of the project's issues; may be left out when there
    /// is exactly one `[[repos]]` entry.
    #[serde(default)]
    pub repo: Option<String>,
    /// Key of `[tracker.states]` (`to_analyse`, `done`, …) → the name of
    /// the project's status that stands for it. A key left out is the
    /// status named as in `[tracker.states]`.
    #[serde(default)]
    pub statuses: BTreeMap<String, String>,
}

impl JiraProjectConfig {
    /// `[tracker.states]` with this project's Jira status names in place.
    pub fn states(&self, global: &TrackerStates) -> TrackerStates {
        global.renamed(&self.statuses)
    }
}

fn jira_token_env() -> String {
    "ORCH_JIRA_API_TOKEN".into()
}
fn jira_webhook_secret_env() -> String {
    "ORCH_JIRA_WEBHOOK_SECRET".into()
}

fn linear_api() -> String {
    "https://api.linear.app".into()
}
fn linear_api_key_env() -> String {
    "ORCH_LINEAR_API_KEY".into()
}
fn linear_webhook_secret_env() -> String {
    "ORCH_LINEAR_WEBHOOK_SECRET".into()
}

fn gitlab_token_env() -> String {
    "ORCH_GITLAB_TOKEN".into()
}
fn gitlab_webhook_secret_env() -> String {
    "ORCH_GITLAB_WEBHOOK_SECRET".into()
}

fn github_api() -> String {
    "https://api.github.com".into()
}
fn github_token_env() -> String {
    "ORCH_GITHUB_TOKEN".into()
}
fn github_webhook_secret_env() -> String {
    "ORCH_GITHUB_WEBHOOK_SECRET".into()
}
fn gitea_token_env() -> String {
    "ORCH_GITEA_TOKEN".into()
}
fn gitea_webhook_secret_env() -> String {
    "ORCH_GITEA_WEBHOOK_SECRET".into()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForgeKind {
    #[default]
    Local,
    Gitea,
    Github,
    Gitlab,
}

impl ForgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Local => "local",
            ForgeKind::Gitea => "gitea",
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
        }
    }
}

/// `[forge]`: where branches are pushed and pull requests merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForgeConfig {
    pub kind: ForgeKind,
    pub gitea: Option<GiteaForgeConfig>,
    pub github: Option<GithubForgeConfig>,
    pub gitlab: Option<GitlabForgeConfig>,
}

/// `[forge.gitea]`: Gitea/Forgejo REST API v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GiteaForgeConfig {
    pub base_url: String,
    #[serde(default = "gitea_token_env")]
    pub token_env: String,
    #[serde(default = "gitea_webhook_secret_env")]
    pub webhook_secret_env: String,
    /// orch repo name → `owner/name` on the forge. A repo left out is read
    /// from its remote URL (`…/owner/name.git`).
    #[serde(default)]
    pub repos: BTreeMap<String, String>,
    /// How pull requests are merged (`do`): merge, rebase, rebase-merge,
    /// squash or fast-forward-only.
    #[serde(default = "gitea_merge_style")]
    pub merge_style: String,
    /// Accept webhooks without a signature. Only for a trusted network.
    #[serde(default)]
    pub webhook_insecure: bool,
}

fn github_merge_method() -> String {
    "merge".into()
}

fn gitea_merge_style() -> String {
    "merge".into()
}

/// The `do` values Gitea's merge endpoint accepts that orch may use.
pub const GITEA_MERGE_STYLES: [&str; 5] = [
    "merge",
    "rebase",
    "rebase-merge",
    "squash",
    "fast-forward-only",
];

/// `[forge.github]`: GitHub REST API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubForgeConfig {
    #[serde(default = "github_api")]
    pub base_url: String,
    #[serde(default = "github_token_env")]
    pub token_env: String,
    #[serde(default = "github_webhook_secret_env")]
    pub webhook_secret_env: String,
    /// orch repo name → `owner/name` on GitHub (else read from the remote URL).
    #[serde(default)]
    pub repos: BTreeMap<String, String>,
    /// How pull requests are merged: merge, squash or rebase.
    #[serde(default = "github_merge_method")]
    pub merge_method: String,
    /// Accept webhooks without a signature. Only for a trusted network.
    #[serde(default)]
    pub webhook_insecure: bool,
}

/// `[forge.gitlab]`: GitLab REST API v4 (merge requests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabForgeConfig {
    /// The instance's address; orch adds `/api/v4`.
    pub base_url: String,
    #[serde(default = "gitlab_token_env")]
    pub token_env: String,
    #[serde(default = "gitlab_webhook_secret_env")]
    pub webhook_secret_env: String,
    /// orch repo name → the project's path (`group/name`, subgroups
    /// allowed) or numeric id. A repo left out is read from its remote URL.
    #[serde(default)]
    pub repos: BTreeMap<String, String>,
    /// Squash the merge request's commits when merging (GitLab's `squash`;
    /// the merge method itself is the project's setting).
    #[serde(default)]
    pub squash: bool,
    /// Accept webhooks without the token. Only for a trusted network.
    #[serde(default)]
    pub webhook_insecure: bool,
}

/// `[[repos]]`: one repository the pipeline works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    /// Short name: a folder name and a lookup key (orch-core `validate_repo_name`).
    pub name: String,
    /// Path (resolved against the config folder) or URL of the remote.
    pub remote: String,
    #[serde(default = "main_branch")]
    pub default_branch: String,
    /// Branches that are never deleted, besides `main`, `master` and the default.
    #[serde(default)]
    pub protected_branches: Vec<String>,
    /// argv run in the worktree before merging; it must succeed.
    #[serde(default = "default_verify")]
    pub verify: Vec<String>,
    /// Prompt templates overriding the built-in ones for this repo.
    #[serde(default)]
    pub prompts_dir: Option<PathBuf>,
    #[serde(default)]
    pub deploy: Option<DeployConfig>,
    /// CI checks (status contexts or check-run names, exactly as the forge
    /// shows them) that must pass on the reviewed head before the merge
    /// gate merges; a failure sends the work back to the developer with it
    /// (issue 16). Needs a Gitea or GitHub forge, which reports them.
    #[serde(default)]
    pub required_checks: Vec<String>,
}

fn main_branch() -> String {
    "main".into()
}
fn default_verify() -> Vec<String> {
    vec!["cargo".into(), "test".into()]
}

/// `[repos.deploy]`: the optional deploy stage of a repo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Phase A, before Confirm Deploy.
    #[serde(default)]
    pub prepare: Option<Vec<String>>,
    /// Phase B, the irreversible step.
    pub run: Vec<String>,
    /// Checked by the deploy finalizer; success = healthy.
    #[serde(default)]
    pub health: Option<Vec<String>>,
    /// Run phase B without waiting for Confirm Deploy.
    #[serde(default)]
    pub auto: bool,
    /// No longer has an effect, and is not documented: every deploy's phase
    /// B may restart orch (it runs under `orch monitor`, and the next
    /// `orch serve` re-adopts it and finishes the task), so orch's own repo
    /// needs no flag. Still accepted so that older files load; validation
    /// warns that it can go.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_deploy: Option<bool>,
}

/// `[agents.<kind>]`, one optional entry per agent kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    pub analyst: Option<AgentConfig>,
    pub developer: Option<AgentConfig>,
    pub reviewer: Option<AgentConfig>,
    pub merger: Option<AgentConfig>,
    pub deployer: Option<AgentConfig>,
}

impl AgentsConfig {
    pub fn get(&self, kind: AgentKind) -> Option<&AgentConfig> {
        match kind {
            AgentKind::Analyst => self.analyst.as_ref(),
            AgentKind::Developer => self.developer.as_ref(),
            AgentKind::Reviewer => self.reviewer.as_ref(),
            AgentKind::Merger => self.merger.as_ref(),
            AgentKind::Deployer => self.deployer.as_ref(),
        }
    }
}

/// How the agent's output is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    /// Exit status only.
    #[default]
    Command,
    /// Claude Code `--output-format stream-json`.
    ClaudeCode,
    /// Codex `exec --json`.
    Codex,
}

impl AdapterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Command => "command",
            AdapterKind::ClaudeCode => "claude_code",
            AdapterKind::Codex => "codex",
        }
    }
}

/// One agent kind: what to run and how long it may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    pub adapter: AdapterKind,
    /// argv; `None` = not configured (jobs of this kind cannot run an agent).
    pub command: Option<Vec<String>>,
    /// Wall-clock limit of one run.
    pub timeout_secs: u64,
    /// A run that prints nothing for this long is stalled.
    pub idle_timeout_secs: u64,
    /// Overrides `queue.max_attempts` for this kind.
    pub max_attempts: Option<u32>,
    /// Overrides `[sandbox] mode` for this kind.
    pub sandbox: Option<crate::sandbox::SandboxMode>,
    /// Sandboxed, the hosts this kind may reach through orch's proxy:
    /// `host:port`, or `host` for any port. Empty: none.
    pub egress_allow: Vec<String>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            adapter: AdapterKind::Command,
            command: None,
            timeout_secs: 3600,
            idle_timeout_secs: 600,
            max_attempts: None,
            sandbox: None,
            egress_allow: Vec::new(),
        }
    }
}

/// `[agent_env]`: the minimal environment an agent receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentEnvConfig {
    /// Names of variables passed through from the orchestrator's environment.
    pub allow: Vec<String>,
    /// Literal extra variables (never secrets: this is the file).
    pub set: BTreeMap<String, String>,
}

impl Default for AgentEnvConfig {
    fn default() -> Self {
        AgentEnvConfig {
            allow: ["PATH", "HOME", "LANG", "TERM"]
                .into_iter()
                .map(String::from)
                .collect(),
            set: BTreeMap::new(),
        }
    }
}
