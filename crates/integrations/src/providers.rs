//! The configured providers, built from `orch.toml` and the environment:
//! which tracker and forge the pipeline talks to, the webhook receivers'
//! secrets, the ingest and the reconciler.
//!
//! Clients are shared per process and per credential (a registry keyed by
//! the provider's URL and the name of its key's variable): Plane's budget is
//! per API key, so the pipeline's calls and the webhooks' state lookups must
//! draw from one budget and one circuit breaker.

use crate::gitea::{GiteaClient, GiteaForge, full_name_from_remote};
use crate::github::{GithubClient, GithubForge, GithubIssuesTracker, GithubReconciler};
use crate::http::CallPolicy;
use crate::ingest::Ingest;
use crate::plane::{PlaneClient, PlaneReconciler, PlaneTracker};
use orch_config::{Config, ForgeKind, TrackerKind};
use orch_engine::pipeline::Pipeline;
use orch_engine::ports::{BuiltinTracker, Forge, LocalForge, Tracker};
use orch_git::RepoStore;
use orch_store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// A webhook receiver's settings: the secret (if its variable is set),
/// whether unsigned deliveries are knowingly accepted, and the variable name.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    pub secret: Option<Vec<u8>>,
    pub insecure: bool,
    pub secret_env: String,
}

pub struct Providers {
    pub plane: Option<Arc<PlaneTracker>>,
    pub gitea: Option<Arc<GiteaForge>>,
    pub github: Option<Arc<GithubForge>>,
    pub github_issues: Option<Arc<GithubIssuesTracker>>,
    /// Forge `owner/name` → orch repo (for forge webhooks).
    pub forge_repos: BTreeMap<String, String>,
}

static PLANE_TRACKERS: OnceLock<Mutex<HashMap<String, Arc<PlaneTracker>>>> = OnceLock::new();
static GITEA_CLIENTS: OnceLock<Mutex<HashMap<String, Arc<GiteaClient>>>> = OnceLock::new();

/// The client registered under `key`, made on first use.
fn shared<T>(
    map: &'static OnceLock<Mutex<HashMap<String, Arc<T>>>>,
    key: String,
    make: impl FnOnce() -> Option<T>,
) -> Option<Arc<T>> {
    let mut map = map
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(c) = map.get(&key) {
        return Some(c.clone());
    }
    let c = Arc::new(make()?);
    map.insert(key, c.clone());
    Some(c)
}

impl Providers {
    /// From the config, reading secrets from the environment.
    pub fn from_config(cfg: &Config, repos: &RepoStore) -> Providers {
        Self::build(
            cfg,
            repos,
            &|name| cfg.secret(name),
            CallPolicy::default(),
            true,
        )
    }

    /// As `from_config`, with the secrets and call policy given (tests), and
    /// clients never shared.
    pub fn with(
        cfg: &Config,
        repos: &RepoStore,
        secret: &dyn Fn(&str) -> Option<String>,
        policy: CallPolicy,
    ) -> Providers {
        Self::build(cfg, repos, secret, policy, false)
    }

    fn build(
        cfg: &Config,
        repos: &RepoStore,
        secret: &dyn Fn(&str) -> Option<String>,
        policy: CallPolicy,
        share: bool,
    ) -> Providers {
        let mut out = Providers {
            plane: None,
            gitea: None,
            github: None,
            github_issues: None,
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
            let make = || match PlaneClient::new(&p.base_url, &p.workspace, &key, pol) {
                Ok(c) => Some(PlaneTracker::new(Arc::new(c), plane_projects(cfg))),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the Plane client");
                    None
                }
            };
            // Shared: one budget per key, and one memory of which project each item is in.
            out.plane = if share {
                shared(
                    &PLANE_TRACKERS,
                    format!(
                        "{}|{}|{}|{:?}",
                        p.base_url,
                        p.workspace,
                        p.api_key_env,
                        plane_projects(cfg)
                    ),
                    make,
                )
            } else {
                make().map(Arc::new)
            };
        }
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
            let make = || match GiteaClient::new(&g.base_url, &token, policy.clone()) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the Gitea client");
                    None
                }
            };
            let client = if share {
                shared(
                    &GITEA_CLIENTS,
                    format!("{}|{}", g.base_url, g.token_env),
                    make,
                )
            } else {
                make().map(Arc::new)
            };
            let names = forge_names(cfg, &g.repos);
            out.forge_repos = names.iter().map(|(k, v)| (v.clone(), k.clone())).collect();
            if let Some(client) = client {
                out.gitea = Some(Arc::new(
                    GiteaForge::new(client, repos.clone(), names, &g.merge_style)
                        .with_web_base(&g.base_url),
                ));
            }
        }
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
                    out.github = Some(Arc::new(
                        GithubForge::new(Arc::new(c), repos.clone(), names, &g.merge_method)
                            .with_web_base(&crate::github::web_base(&g.base_url)),
                    ))
                }
                Err(e) => tracing::error!(error = %e, "cannot build the GitHub client"),
            }
        }
        if cfg.tracker.kind == TrackerKind::Github
            && let Some(t) = &cfg.tracker.github
        {
            let token = secret(&t.token_env).unwrap_or_default();
            match GithubClient::new(&t.base_url, &token, policy.clone()) {
                Ok(c) => {
                    out.github_issues = Some(Arc::new(GithubIssuesTracker::new(
                        Arc::new(c),
                        issue_repos(cfg, &t.repos),
                        cfg.tracker.states.clone(),
                    )))
                }
                Err(e) => tracing::error!(error = %e, "cannot build the GitHub client"),
            }
        }
        out
    }

    /// The pipeline's tracker: Plane or GitHub Issues when configured, else the builtin one.
    pub fn tracker(&self, store: Arc<dyn Store>) -> Arc<dyn Tracker> {
        if let Some(p) = &self.plane {
            return p.clone();
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
        match &self.github {
            Some(g) => g.clone(),
            None => Arc::new(LocalForge::new(repos.clone())),
        }
    }

    /// The pipeline over these providers.
    pub fn pipeline(&self, store: Arc<dyn Store>, cfg: Arc<Config>, actor: &str) -> Pipeline {
        let repos = RepoStore::new(cfg.repos_dir());
        let tracker = self.tracker(store.clone());
        let forge = self.forge(&repos);
        Pipeline::new(store, cfg, repos, tracker, forge, actor)
    }

    pub fn ingest(&self, pipeline: Arc<Pipeline>) -> Ingest {
        Ingest::new(pipeline, self.plane.clone(), self.forge_repos.clone())
            .with_github_issues(self.github_issues.clone())
    }

    /// The listing reconciler of the configured tracker (Plane or GitHub
    /// Issues); `None` for the builtin tracker, whose items are local.
    pub fn reconciler(&self, pipeline: Arc<Pipeline>) -> Option<Reconciler> {
        if let Some(p) = &self.plane {
            return Some(Reconciler::Plane(PlaneReconciler::new(p.clone(), pipeline)));
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
}

impl Reconciler {
    pub async fn run_once(&self) -> crate::plane::ReconcileStats {
        match self {
            Reconciler::Plane(r) => r.run_once().await,
            Reconciler::Github(r) => r.run_once().await,
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
    let names = forge_names(cfg, &explicit);
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

/// The receivers of the configured providers (`None`: not configured).
pub fn receivers(
    cfg: &Config,
    secret: &dyn Fn(&str) -> Option<String>,
) -> [Option<ReceiverSettings>; 3] {
    let mk = |env: &str, insecure: bool| ReceiverSettings {
        secret: secret(env).map(String::into_bytes),
        insecure,
        secret_env: env.to_owned(),
    };
    let plane = cfg
        .tracker
        .plane
        .as_ref()
        .filter(|_| cfg.tracker.kind == TrackerKind::Plane)
        .map(|p| mk(&p.webhook_secret_env, p.webhook_insecure));
    let gitea = cfg
        .forge
        .gitea
        .as_ref()
        .filter(|_| cfg.forge.kind == ForgeKind::Gitea)
        .map(|g| mk(&g.webhook_secret_env, g.webhook_insecure));
    // One endpoint serves the GitHub forge and the GitHub Issues tracker.
    let github = cfg
        .forge
        .github
        .as_ref()
        .filter(|_| cfg.forge.kind == ForgeKind::Github)
        .map(|g| mk(&g.webhook_secret_env, g.webhook_insecure))
        .or_else(|| {
            cfg.tracker
                .github
                .as_ref()
                .filter(|_| cfg.tracker.kind == TrackerKind::Github)
                .map(|t| mk(&t.webhook_secret_env, false))
        });
    [plane, gitea, github]
}
