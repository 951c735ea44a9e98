//! The configured providers, built from `orch.toml` and the environment:
//! which tracker and forge the pipeline talks to, the webhook receivers'
//! secrets, the ingest and the reconciler.
//!
//! `orch serve` builds `Providers` once and hands the same clients to the
//! pipeline, the webhooks' ingest and the reconciler: a provider's budget is
//! per credential (Plane's per API key, GitHub's per token), so every call
//! of the process must draw from one budget and one circuit breaker. When
//! GitHub is both the tracker and the forge with the same URL and token,
//! both use one client for the same reason. No registry behind the scenes:
//! who needs a client gets it from the one `Providers`.

use crate::gitea::{
    GiteaClient, GiteaForge, GiteaIssuesTracker, GiteaReconciler, full_name_from_remote,
};
use crate::github::{GithubClient, GithubForge, GithubIssuesTracker, GithubReconciler};
use crate::gitlab::{GitlabClient, GitlabForge, GitlabIssuesTracker, GitlabReconciler};
use crate::http::CallPolicy;
use crate::ingest::Ingest;
use crate::jira::{JiraClient, JiraReconciler, JiraTracker};
use crate::linear::{LinearClient, LinearReconciler, LinearTracker};
use crate::plane::{PlaneClient, PlaneReconciler, PlaneTracker};
use orch_config::{Config, ForgeKind, TrackerKind};
use orch_engine::pipeline::Pipeline;
use orch_engine::ports::{BuiltinTracker, Forge, LocalForge, Tracker};
use orch_git::RepoStore;
use orch_store::Store;
use std::collections::BTreeMap;
use std::sync::Arc;

mod receivers;
mod units;
pub use receivers::{ReceiverSettings, receivers};
pub use units::{jira_projects, linear_teams};

pub struct Providers {
    pub plane: Option<Arc<PlaneTracker>>,
    pub gitea: Option<Arc<GiteaForge>>,
    pub github: Option<Arc<GithubForge>>,
    pub github_issues: Option<Arc<GithubIssuesTracker>>,
    pub gitea_issues: Option<Arc<GiteaIssuesTracker>>,
    pub gitlab: Option<Arc<GitlabForge>>,
    pub gitlab_issues: Option<Arc<GitlabIssuesTracker>>,
    pub linear: Option<Arc<LinearTracker>>,
    pub jira: Option<Arc<JiraTracker>>,
    /// Forge `owner/name` → orch repo (for forge webhooks).
    pub forge_repos: BTreeMap<String, String>,
}

impl Providers {
    /// From the config, reading secrets from the environment.
    pub fn from_config(cfg: &Config, repos: &RepoStore) -> Providers {
        Self::with(cfg, repos, &|name| cfg.secret(name), CallPolicy::default())
    }

    /// As `from_config`, with the secrets and call policy given (tests).
    pub fn with(
        cfg: &Config,
        repos: &RepoStore,
        secret: &dyn Fn(&str) -> Option<String>,
        policy: CallPolicy,
    ) -> Providers {
        let mut out = Providers {
            plane: None,
            gitea: None,
            github: None,
            github_issues: None,
            gitea_issues: None,
            gitlab: None,
            gitlab_issues: None,
            linear: None,
            jira: None,
            forge_repos: BTreeMap::new(),
        };
        if cfg.tracker.kind == TrackerKind::Plane
            && let Some(p) = &cfg.tracker.plane
        {
            let key = secret(&p.api_key_env).unwrap_or_default();
            if key.is_empty() {
                tracing::warn!(
                    "{} is not set: every Plane call will be refused",
                    p.api_key_env
                );
            }
            let mut pol = policy.clone();
            pol.per_minute = Some(p.calls_per_minute.max(1));
            out.plane = match PlaneClient::new(&p.base_url, &p.workspace, &key, pol) {
                Ok(c) => Some(Arc::new(PlaneTracker::new(
                    Arc::new(c),
                    plane_projects(cfg),
                ))),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the Plane client");
                    None
                }
            };
        }
        // The Gitea forge's client, with its URL and token variable.
        let mut gitea_client: Option<(String, String, Arc<GiteaClient>)> = None;
        if cfg.forge.kind == ForgeKind::Gitea
            && let Some(g) = &cfg.forge.gitea
        {
            let token = secret(&g.token_env).unwrap_or_default();
            if token.is_empty() {
                tracing::warn!(
                    "{} is not set: every Gitea call will be refused",
                    g.token_env
                );
            }
            let client = match GiteaClient::new(&g.base_url, &token, policy.clone()) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the Gitea client");
                    None
                }
            };
            let names = forge_names(cfg, &g.repos);
            out.forge_repos = names.iter().map(|(k, v)| (v.clone(), k.clone())).collect();
            if let Some(client) = client {
                gitea_client = Some((g.base_url.clone(), g.token_env.clone(), client.clone()));
                out.gitea = Some(Arc::new(
                    GiteaForge::new(client, repos.clone(), names, &g.merge_style)
                        .with_web_base(&g.base_url),
                ));
            }
        }
        // The GitHub forge's client, with its URL and token variable.
        let mut github_client: Option<(String, String, Arc<GithubClient>)> = None;
        if cfg.forge.kind == ForgeKind::Github
            && let Some(g) = &cfg.forge.github
        {
            let token = secret(&g.token_env).unwrap_or_default();
            if token.is_empty() {
                tracing::warn!(
                    "{} is not set: every GitHub call will be refused",
                    g.token_env
                );
            }
            let names = forge_names(cfg, &g.repos);
            out.forge_repos = names.iter().map(|(k, v)| (v.clone(), k.clone())).collect();
            match GithubClient::new(&g.base_url, &token, policy.clone()) {
                Ok(c) => {
                    let c = Arc::new(c);
                    github_client = Some((g.base_url.clone(), g.token_env.clone(), c.clone()));
                    out.github = Some(Arc::new(
                        GithubForge::new(c, repos.clone(), names, &g.merge_method)
                            .with_web_base(&crate::github::web_base(&g.base_url)),
                    ))
                }
                Err(e) => tracing::error!(error = %e, "cannot build the GitHub client"),
            }
        }
        // The GitLab forge's client, with its URL and token variable.
        let mut gitlab_client: Option<(String, String, Arc<GitlabClient>)> = None;
        if cfg.forge.kind == ForgeKind::Gitlab
            && let Some(g) = &cfg.forge.gitlab
        {
            let token = secret(&g.token_env).unwrap_or_default();
            if token.is_empty() {
                tracing::warn!(
                    "{} is not set: every GitLab call will be refused",
                    g.token_env
                );
            }
            let names = forge_names(cfg, &g.repos);
            out.forge_repos = names.iter().map(|(k, v)| (v.clone(), k.clone())).collect();
            match GitlabClient::new(&g.base_url, &token, policy.clone()) {
                Ok(c) => {
                    let c = Arc::new(c);
                    gitlab_client = Some((g.base_url.clone(), g.token_env.clone(), c.clone()));
                    out.gitlab = Some(Arc::new(
                        GitlabForge::new(c, repos.clone(), names, g.squash)
                            .with_web_base(&g.base_url),
                    ))
                }
                Err(e) => tracing::error!(error = %e, "cannot build the GitLab client"),
            }
        }
        if cfg.tracker.kind == TrackerKind::Github
            && let Some(t) = &cfg.tracker.github
        {
            let token = secret(&t.token_env).unwrap_or_default();
            // The forge's client when it is the same account: one rate budget.
            let same = github_client
                .take()
                .filter(|(url, env, _)| *url == t.base_url && *env == t.token_env)
                .map(|(_, _, c)| c);
            let client = match same {
                Some(c) => Ok(c),
                None => GithubClient::new(&t.base_url, &token, policy.clone()).map(Arc::new),
            };
            match client {
                Ok(c) => {
                    out.github_issues = Some(Arc::new(GithubIssuesTracker::new(
                        c,
                        issue_repos(cfg, &t.repos),
                        cfg.tracker.states.clone(),
                    )))
                }
                Err(e) => tracing::error!(error = %e, "cannot build the GitHub client"),
            }
        }
        if cfg.tracker.kind == TrackerKind::Gitea
            && let Some(t) = &cfg.tracker.gitea
        {
            let token = secret(&t.token_env).unwrap_or_default();
            if token.is_empty() {
                tracing::warn!(
                    "{} is not set: every Gitea call will be refused",
                    t.token_env
                );
            }
            // The forge's client when it is the same account: one rate budget.
            let same = gitea_client
                .take()
                .filter(|(url, env, _)| *url == t.base_url && *env == t.token_env)
                .map(|(_, _, c)| c);
            let client = match same {
                Some(c) => Ok(c),
                None => GiteaClient::new(&t.base_url, &token, policy.clone()).map(Arc::new),
            };
            match client {
                Ok(c) => {
                    out.gitea_issues = Some(Arc::new(GiteaIssuesTracker::new(
                        c,
                        gitea_issue_repos(cfg, &t.repos),
                        cfg.tracker.states.clone(),
                    )))
                }
                Err(e) => tracing::error!(error = %e, "cannot build the Gitea client"),
            }
        }
        if cfg.tracker.kind == TrackerKind::Gitlab
            && let Some(t) = &cfg.tracker.gitlab
        {
            let token = secret(&t.token_env).unwrap_or_default();
            if token.is_empty() {
                tracing::warn!(
                    "{} is not set: every GitLab call will be refused",
                    t.token_env
                );
            }
            // The forge's client when it is the same account: one rate budget.
            let same = gitlab_client
                .take()
                .filter(|(url, env, _)| *url == t.base_url && *env == t.token_env)
                .map(|(_, _, c)| c);
            let client = match same {
                Some(c) => Ok(c),
                None => GitlabClient::new(&t.base_url, &token, policy.clone()).map(Arc::new),
            };
            match client {
                Ok(c) => {
                    out.gitlab_issues = Some(Arc::new(GitlabIssuesTracker::new(
                        c,
                        gitlab_issue_projects(cfg, &t.projects),
                        cfg.tracker.states.clone(),
                    )))
                }
                Err(e) => tracing::error!(error = %e, "cannot build the GitLab client"),
            }
        }
        if cfg.tracker.kind == TrackerKind::Linear
            && let Some(l) = &cfg.tracker.linear
        {
            let key = secret(&l.api_key_env).unwrap_or_default();
            if key.is_empty() {
                tracing::warn!(
                    "{} is not set: every Linear call will be refused",
                    l.api_key_env
                );
            }
            match LinearClient::new(&l.base_url, &key, policy.clone()) {
                Ok(c) => {
                    out.linear = Some(Arc::new(LinearTracker::new(
                        Arc::new(c),
                        linear_teams(cfg),
                        cfg.tracker.states.clone(),
                    )))
                }
                Err(e) => tracing::error!(error = %e, "cannot build the Linear client"),
            }
        }
        if cfg.tracker.kind == TrackerKind::Jira
            && let Some(j) = &cfg.tracker.jira
        {
            let token = secret(&j.token_env).unwrap_or_default();
            if token.is_empty() {
                tracing::warn!(
                    "{} is not set: every Jira call will be refused",
                    j.token_env
                );
            }
            match JiraClient::new(&j.base_url, &j.email, &token, policy.clone()) {
                Ok(c) => {
                    out.jira = Some(Arc::new(JiraTracker::new(
                        Arc::new(c),
                        jira_projects(cfg),
                        cfg.tracker.states.clone(),
                    )))
                }
                Err(e) => tracing::error!(error = %e, "cannot build the Jira client"),
            }
        }
        out
    }

    /// The pipeline's tracker: Plane, GitHub Issues or Gitea issues when
    /// configured, else the builtin one.
    pub fn tracker(&self, store: Arc<dyn Store>) -> Arc<dyn Tracker> {
        if let Some(p) = &self.plane {
            return p.clone();
        }
        if let Some(g) = &self.gitea_issues {
            return g.clone();
        }
        if let Some(g) = &self.gitlab_issues {
            return g.clone();
        }
        if let Some(l) = &self.linear {
            return l.clone();
        }
        if let Some(j) = &self.jira {
            return j.clone();
        }
        match &self.github_issues {
            Some(g) => g.clone(),
            None => Arc::new(BuiltinTracker::new(store)),
        }
    }

    pub fn forge(&self, repos: &RepoStore) -> Arc<dyn Forge> {
        if let Some(g) = &self.gitea {
            return g.clone();
        }
        if let Some(g) = &self.gitlab {
            return g.clone();
        }
        match &self.github {
            Some(g) => g.clone(),
            None => Arc::new(LocalForge::new(repos.clone())),
        }
    }

    /// The pipeline over these providers.
    pub fn pipeline(&self, store: Arc<dyn Store>, cfg: Arc<Config>, actor: &str) -> Arc<Pipeline> {
        let repos = RepoStore::new(cfg.repos_dir());
        let tracker = self.tracker(store.clone());
        let forge = self.forge(&repos);
        Pipeline::new(store, cfg, repos, tracker, forge, actor)
    }

    pub fn ingest(&self, pipeline: Arc<Pipeline>) -> Ingest {
        Ingest::new(pipeline, self.plane.clone(), self.forge_repos.clone())
            .with_github_issues(self.github_issues.clone())
            .with_gitea_issues(self.gitea_issues.clone())
            .with_gitlab_issues(self.gitlab_issues.clone())
            .with_linear(self.linear.clone())
            .with_jira(self.jira.clone())
    }

    /// The listing reconciler of the configured tracker (Plane, GitHub
    /// Issues or Gitea issues); `None` for the builtin tracker, whose items
    /// are local.
    pub fn reconciler(&self, pipeline: Arc<Pipeline>) -> Option<Reconciler> {
        if let Some(p) = &self.plane {
            return Some(Reconciler::Plane(PlaneReconciler::new(p.clone(), pipeline)));
        }
        if let Some(g) = &self.gitea_issues {
            return Some(Reconciler::Gitea(GiteaReconciler::new(g.clone(), pipeline)));
        }
        if let Some(g) = &self.gitlab_issues {
            return Some(Reconciler::Gitlab(GitlabReconciler::new(
                g.clone(),
                pipeline,
            )));
        }
        if let Some(l) = &self.linear {
            return Some(Reconciler::Linear(LinearReconciler::new(
                l.clone(),
                pipeline,
            )));
        }
        if let Some(j) = &self.jira {
            return Some(Reconciler::Jira(JiraReconciler::new(j.clone(), pipeline)));
        }
        self.github_issues
            .as_ref()
            .map(|g| Reconciler::Github(GithubReconciler::new(g.clone(), pipeline)))
    }
}

/// A tracker's reconciler: one listing per project per cycle.
pub enum Reconciler {
    Plane(PlaneReconciler),
    Github(GithubReconciler),
    Gitea(GiteaReconciler),
    Gitlab(GitlabReconciler),
    Linear(LinearReconciler),
    Jira(JiraReconciler),
}

impl Reconciler {
    pub async fn run_once(&self) -> crate::plane::ReconcileStats {
        match self {
            Reconciler::Plane(r) => r.run_once().await,
            Reconciler::Github(r) => r.run_once().await,
            Reconciler::Gitea(r) => r.run_once().await,
            Reconciler::Gitlab(r) => r.run_once().await,
            Reconciler::Linear(r) => r.run_once().await,
            Reconciler::Jira(r) => r.run_once().await,
        }
    }
}

#[async_trait::async_trait]
impl orch_engine::ports::TrackerReconciler for Reconciler {
    async fn run_once(&self) -> orch_engine::ports::ReconcileSummary {
        let st = Reconciler::run_once(self).await;
        orch_engine::ports::ReconcileSummary {
            repaired: st.repaired,
            errors: st.errors,
            api_calls: st.api_calls,
        }
    }
}

/// Plane project → repo: the explicit map, else the only repo.
pub fn plane_projects(cfg: &Config) -> BTreeMap<String, String> {
    let Some(p) = &cfg.tracker.plane else {
        return BTreeMap::new();
    };
    let only = (cfg.repos.len() == 1).then(|| cfg.repos[0].name.clone());
    let mut out = p.repos.clone();
    for id in &p.project_ids {
        if !out.contains_key(id)
            && let Some(r) = &only
        {
            out.insert(id.clone(), r.clone());
        }
    }
    out
}

/// orch repo → `owner/name` of the GitHub issue trackers: each listed
/// repository goes to the orch repo whose remote (or forge mapping) names it,
/// or to the only repo.
pub fn issue_repos(cfg: &Config, listed: &[String]) -> BTreeMap<String, String> {
    let explicit = cfg
        .forge
        .github
        .as_ref()
        .map(|g| g.repos.clone())
        .unwrap_or_default();
    listed_repos(cfg, &explicit, listed)
}

/// As [`issue_repos`] for the Gitea issue tracker, with `[forge.gitea.repos]`
/// as the explicit mapping.
pub fn gitea_issue_repos(cfg: &Config, listed: &[String]) -> BTreeMap<String, String> {
    let explicit = cfg
        .forge
        .gitea
        .as_ref()
        .map(|g| g.repos.clone())
        .unwrap_or_default();
    listed_repos(cfg, &explicit, listed)
}

/// orch repo → GitLab project of the issues tracker: each listed project
/// goes to the orch repo whose `[forge.gitlab.repos]` mapping or remote
/// names it, or to the only repo.
pub fn gitlab_issue_projects(cfg: &Config, listed: &[String]) -> BTreeMap<String, String> {
    let explicit = cfg
        .forge
        .gitlab
        .as_ref()
        .map(|g| g.repos.clone())
        .unwrap_or_default();
    listed_repos(cfg, &explicit, listed)
}

fn listed_repos(
    cfg: &Config,
    explicit: &BTreeMap<String, String>,
    listed: &[String],
) -> BTreeMap<String, String> {
    let names = forge_names(cfg, explicit);
    let only = (cfg.repos.len() == 1).then(|| cfg.repos[0].name.clone());
    let mut out = BTreeMap::new();
    for full in listed {
        let repo = names
            .iter()
            .find(|(_, f)| *f == full)
            .map(|(r, _)| r.clone())
            .or_else(|| only.clone());
        if let Some(r) = repo {
            out.insert(r, full.clone());
        }
    }
    out
}

/// orch repo → `owner/name`: the explicit map, else the remote URL's path.
pub fn forge_names(cfg: &Config, explicit: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in &cfg.repos {
        if let Some(full) = explicit
            .get(&r.name)
            .cloned()
            .or_else(|| full_name_from_remote(&r.remote))
        {
            out.insert(r.name.clone(), full);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn github_both(tracker_token_env: &str) -> Config {
        Config::from_toml_str(&format!(
            "[tracker]\nkind = \"github\"\n[tracker.github]\nbase_url = \"http://127.0.0.1:9\"\n\
             repos = [\"team/demo\"]\ntoken_env = \"{tracker_token_env}\"\n\
             [forge]\nkind = \"github\"\n[forge.github]\nbase_url = \"http://127.0.0.1:9\"\n\
             token_env = \"ORCH_GITHUB_TOKEN\"\n\
             [[repos]]\nname = \"demo\"\nremote = \"https://example.invalid/team/demo.git\"\n"
        ))
        .unwrap()
    }

    fn build(cfg: &Config) -> Providers {
        let repos = RepoStore::new(std::env::temp_dir().join("orch-providers-test"));
        Providers::with(cfg, &repos, &|_| Some("t".into()), CallPolicy::default())
    }

    /// GitHub as tracker and forge with one account: one client, so one rate
    /// budget and one circuit breaker for every call of the process.
    #[test]
    fn github_tracker_and_forge_of_one_account_share_one_client() {
        let p = build(&github_both("ORCH_GITHUB_TOKEN"));
        let (forge, issues) = (p.github.unwrap(), p.github_issues.unwrap());
        assert!(Arc::ptr_eq(forge.client(), issues.client()));
        // Another token is another account: another budget.
        let p = build(&github_both("ORCH_OTHER_TOKEN"));
        let (forge, issues) = (p.github.unwrap(), p.github_issues.unwrap());
        assert!(!Arc::ptr_eq(forge.client(), issues.client()));
    }

    /// Gitea as tracker and forge with one account: one client; the one
    /// `/webhooks/gitea` receiver takes the forge's secret, and the
    /// tracker's alone when the forge is not Gitea.
    #[test]
    fn gitea_tracker_and_forge_of_one_account_share_one_client_and_receiver() {
        let cfg = |forge: &str| {
            Config::from_toml_str(&format!(
                "[tracker]\nkind = \"gitea\"\n[tracker.gitea]\nbase_url = \"http://127.0.0.1:9\"\n\
                 repos = [\"team/demo\"]\nwebhook_secret_env = \"TRACKER_SECRET\"\n\
                 [forge]\nkind = \"{forge}\"\n[forge.gitea]\nbase_url = \"http://127.0.0.1:9\"\n\
                 [[repos]]\nname = \"demo\"\nremote = \"https://example.invalid/team/demo.git\"\n"
            ))
            .unwrap()
        };
        let both = cfg("gitea");
        let p = build(&both);
        let (forge, issues) = (p.gitea.clone().unwrap(), p.gitea_issues.clone().unwrap());
        assert!(Arc::ptr_eq(forge.client(), issues.client()));
        assert_eq!(
            issues.repos().get("demo").map(String::as_str),
            Some("team/demo")
        );
        let [_, gitea, _, _, _, _] = receivers(&both, &|_| None);
        assert_eq!(gitea.unwrap().secret_env, "ORCH_GITEA_WEBHOOK_SECRET");
        let alone = cfg("local");
        let p = build(&alone);
        assert!(p.gitea.is_none() && p.gitea_issues.is_some());
        let [_, gitea, _, _, _, _] = receivers(&alone, &|_| None);
        assert_eq!(gitea.unwrap().secret_env, "TRACKER_SECRET");
    }

    /// GitLab as tracker and forge with one account: one client (one
    /// budget, one breaker), the tracker and reconciler built, and the one
    /// `/webhooks/gitlab` receiver with the forge's secret.
    #[test]
    fn gitlab_tracker_and_forge_of_one_account_share_one_client_and_receiver() {
        let cfg = Config::from_toml_str(
            "[tracker]\nkind = \"gitlab\"\n[tracker.gitlab]\nbase_url = \"http://127.0.0.1:9\"\n\
             projects = [\"team/demo\"]\nwebhook_secret_env = \"TRACKER_SECRET\"\n\
             [forge]\nkind = \"gitlab\"\n[forge.gitlab]\nbase_url = \"http://127.0.0.1:9\"\n\
             [[repos]]\nname = \"demo\"\nremote = \"https://example.invalid/team/demo.git\"\n",
        )
        .unwrap();
        let p = build(&cfg);
        let (forge, issues) = (p.gitlab.clone().unwrap(), p.gitlab_issues.clone().unwrap());
        assert!(Arc::ptr_eq(forge.client(), issues.client()));
        assert_eq!(
            issues.projects().get("demo").map(String::as_str),
            Some("team/demo")
        );
        assert_eq!(
            p.forge_repos.get("team/demo").map(String::as_str),
            Some("demo")
        );
        let [_, _, _, gitlab, _, _] = receivers(&cfg, &|_| None);
        assert_eq!(gitlab.unwrap().secret_env, "ORCH_GITLAB_WEBHOOK_SECRET");
    }

    /// Jira as the tracker: the tracker over the configured projects (keys
    /// upper case, the only repo when none is named), and the one
    /// `/webhooks/jira` receiver with its secret's variable; nothing of
    /// Jira when another tracker is chosen.
    #[test]
    fn the_jira_tracker_and_receiver_are_built_only_when_chosen() {
        let cfg = |kind: &str| {
            Config::from_toml_str(&format!(
                "[tracker]\nkind = \"{kind}\"\n[tracker.jira]\nbase_url = \"http://127.0.0.1:9\"\n\
                 email = \"bot@example.invalid\"\nwebhook_secret_env = \"JIRA_SECRET\"\n\
                 [tracker.jira.projects.eng]\nstatuses = {{ done = \"Shipped\" }}\n\
                 [[repos]]\nname = \"demo\"\nremote = \"https://example.invalid/team/demo.git\"\n"
            ))
            .unwrap()
        };
        let chosen = cfg("jira");
        let p = build(&chosen);
        let jira = p.jira.clone().expect("the Jira tracker");
        let eng = jira.projects().get("ENG").expect("the key upper case");
        assert_eq!(
            (eng.repo.as_str(), eng.names.done.as_str()),
            ("demo", "Shipped")
        );
        let [_, _, _, _, _, receiver] = receivers(&chosen, &|_| None);
        assert_eq!(receiver.unwrap().secret_env, "JIRA_SECRET");
        let other = cfg("builtin");
        assert!(build(&other).jira.is_none());
        let [_, _, _, _, _, receiver] = receivers(&other, &|_| None);
        assert!(receiver.is_none());
    }
}
