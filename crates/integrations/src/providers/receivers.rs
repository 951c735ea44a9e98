//! The webhook receivers of the configured providers: which routes have a
//! provider behind them, with the variable naming each one's secret and
//! whether unsigned deliveries are knowingly accepted. One route serves a
//! provider that is both forge and tracker (Gitea, GitHub, GitLab).

use orch_config::{Config, ForgeKind, TrackerKind};

/// A webhook receiver's settings: the secret (if its variable is set),
/// whether unsigned deliveries are knowingly accepted, and the variable name.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    pub secret: Option<Vec<u8>>,
    pub insecure: bool,
    pub secret_env: String,
}

/// The receivers of the configured providers (`None`: not configured).
pub fn receivers(
    cfg: &Config,
    secret: &dyn Fn(&str) -> Option<String>,
) -> [Option<ReceiverSettings>; 6] {
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
    // One endpoint serves the Gitea forge and the Gitea issues tracker.
    let gitea = cfg
        .forge
        .gitea
        .as_ref()
        .filter(|_| cfg.forge.kind == ForgeKind::Gitea)
        .map(|g| mk(&g.webhook_secret_env, g.webhook_insecure))
        .or_else(|| {
            cfg.tracker
                .gitea
                .as_ref()
                .filter(|_| cfg.tracker.kind == TrackerKind::Gitea)
                .map(|t| mk(&t.webhook_secret_env, false))
        });
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
    // One endpoint serves the GitLab forge and the GitLab issues tracker.
    let gitlab = cfg
        .forge
        .gitlab
        .as_ref()
        .filter(|_| cfg.forge.kind == ForgeKind::Gitlab)
        .map(|g| mk(&g.webhook_secret_env, g.webhook_insecure))
        .or_else(|| {
            cfg.tracker
                .gitlab
                .as_ref()
                .filter(|_| cfg.tracker.kind == TrackerKind::Gitlab)
                .map(|t| mk(&t.webhook_secret_env, false))
        });
    let linear = cfg
        .tracker
        .linear
        .as_ref()
        .filter(|_| cfg.tracker.kind == TrackerKind::Linear)
        .map(|l| mk(&l.webhook_secret_env, false));
    let jira = cfg
        .tracker
        .jira
        .as_ref()
        .filter(|_| cfg.tracker.kind == TrackerKind::Jira)
        .map(|j| mk(&j.webhook_secret_env, false));
    [plane, gitea, github, gitlab, linear, jira]
}
