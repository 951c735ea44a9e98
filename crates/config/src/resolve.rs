//! What the rest of orch reads from a configuration: absolute paths, the store
//! URL, secrets from the process environment, and conversions into the policy
//! types of `orch-core`.

use orch_core::cancel::StopScope;
use orch_core::{AgentKind, Gates, Limits, RetryPolicy};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ConfigError, Problem};
use crate::model::{AgentConfig, Config, ForgeKind, RepoConfig, ServerConfig, TrackerKind};

/// Where the store lives, from `store.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// Absolute path of the SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL, as given.
    Postgres(String),
}

impl StoreLocation {
    /// The URL form `orch-store` opens: `sqlite:///abs/path` or the postgres URL.
    pub fn url(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => format!("sqlite://{}", path.display()),
            StoreLocation::Postgres(url) => url.clone(),
        }
    }
}

impl Config {
    /// Folder relative paths resolve against: the config file's folder, else the
    /// working directory at load time.
    pub fn base_dir(&self) -> PathBuf {
        if self.base_dir.is_absolute() {
            return self.base_dir.clone();
        }
        let rel = if self.base_dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &self.base_dir
        };
        std::path::absolute(rel).unwrap_or_else(|_| rel.to_path_buf())
    }

    /// Resolve relative paths against `dir` instead (e.g. in tests, or for a
    /// config text that `orch init` is about to write into `dir`).
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
    }

    /// The file this configuration was read from, if any.
    pub fn source_path(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// The workflow file's developer prompt template (`WORKFLOW.md`'s body),
    /// if a workflow file with a body was read.
    pub fn workflow_prompt(&self) -> Option<&crate::workflow::WorkflowPrompt> {
        self.workflow_prompt.as_ref()
    }

    /// Takes `other`'s workflow file and its prompt (what a live reload of
    /// the configuration applies).
    pub fn set_workflow_from(&mut self, other: &Config) {
        self.workflow = other.workflow.clone();
        self.workflow_prompt = other.workflow_prompt.clone();
    }

    /// `path` made absolute against [`Config::base_dir`].
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        self.base_dir().join(path)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.resolve_path(&self.data_dir)
    }

    /// Per-run folders (logs, `exit.json`).
    pub fn runs_dir(&self) -> PathBuf {
        self.data_dir().join("runs")
    }

    /// Repository mirrors and task worktrees.
    pub fn repos_dir(&self) -> PathBuf {
        self.data_dir().join("repos")
    }

    /// Where the store lives; a relative SQLite path is made absolute against the
    /// config folder, and an absent `store.url` means `<data_dir>/orch.db`.
    /// Whether several orch nodes may share the store (PostgreSQL): then a
    /// task's runs may land on different machines, and its branch is
    /// handed from one to the next through the remote.
    pub fn store_is_shared(&self) -> bool {
        matches!(self.store_location(), Ok(StoreLocation::Postgres(_)))
    }

    pub fn store_location(&self) -> Result<StoreLocation, ConfigError> {
        let Some(url) = self.store.url.as_deref() else {
            return Ok(StoreLocation::Sqlite(self.data_dir().join("orch.db")));
        };
        let bad = |what: String| ConfigError::invalid(vec![Problem::at("store.url", what)]);
        let hint = "use sqlite://PATH or postgres://USER@HOST/DB";
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(url.to_owned()));
        }
        let path = match url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            Some(path) => path,
            None => {
                return Err(match url.split_once(':') {
                    Some((scheme, _)) if !scheme.is_empty() => {
                        bad(format!("unsupported scheme {scheme:?}; {hint}"))
                    }
                    _ => bad(format!("{url:?} has no scheme; {hint}")),
                });
            }
        };
        if path.is_empty() {
            return Err(bad(format!("no database path in {url:?}; {hint}")));
        }
        if path.contains(":memory:") || path.contains("mode=memory") {
            return Err(bad(
                "an in-memory database loses every task on restart; use sqlite://PATH".into(),
            ));
        }
        if path.contains('?') {
            // orch-store opens the path as a file name: options in the URL would
            // silently become part of it.
            return Err(bad(format!(
                "URL options are not supported in {url:?}; use store.synchronous and store.busy_timeout_ms"
            )));
        }
        Ok(StoreLocation::Sqlite(self.resolve_path(Path::new(path))))
    }

    /// [`Config::store_location`] as a URL (`sqlite:///abs/.orch/orch.db`). An
    /// invalid `store.url` (which [`Config::validate`] reports) is returned unchanged.
    pub fn store_url(&self) -> String {
        match self.store_location() {
            Ok(loc) => loc.url(),
            Err(_) => self.store.url.clone().unwrap_or_default(),
        }
    }

    /// Concurrency limits for the claim gates.
    pub fn limits(&self) -> Limits {
        let l = &self.queue.limits;
        Limits {
            global: l.global,
            per_repo: l.per_repo,
            per_repo_overrides: l.per_repo_overrides.clone(),
            per_agent: l.per_agent.clone(),
        }
    }

    pub fn gates(&self) -> Gates {
        Gates {
            serial: self.features.serial_gate,
            task_deps: self.features.task_deps,
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        let r = &self.queue.retry;
        RetryPolicy {
            base: Duration::from_secs(r.base_secs),
            cap: Duration::from_secs(r.cap_secs),
            factor: r.factor,
            jitter: r.jitter,
        }
    }

    /// The STOP kill switch and repo scope.
    pub fn stop_scope(&self) -> StopScope {
        StopScope {
            enabled: self.features.stop_status,
            repos: self.features.stop_status_repos.clone(),
        }
    }

    pub fn repo(&self, name: &str) -> Option<&RepoConfig> {
        self.repos.iter().find(|r| r.name == name)
    }

    /// The remote of `repo`: a URL as given, a local path made absolute.
    pub fn repo_remote(&self, repo: &RepoConfig) -> String {
        if is_url_like(&repo.remote) {
            repo.remote.clone()
        } else {
            self.resolve_path(Path::new(&repo.remote))
                .display()
                .to_string()
        }
    }

    /// The repo's prompt template folder, made absolute.
    pub fn repo_prompts_dir(&self, repo: &RepoConfig) -> Option<PathBuf> {
        repo.prompts_dir.as_deref().map(|p| self.resolve_path(p))
    }

    /// The agent of `kind`; the defaults (no command) when not configured.
    pub fn agent(&self, kind: AgentKind) -> AgentConfig {
        self.agents.get(kind).cloned().unwrap_or_default()
    }

    /// How agents of `kind` are contained: their own `sandbox`, else
    /// `[sandbox] mode`.
    pub fn sandbox_mode(&self, kind: AgentKind) -> crate::SandboxMode {
        self.agents
            .get(kind)
            .and_then(|a| a.sandbox)
            .unwrap_or(self.sandbox.mode)
    }

    /// The argv of the agent of `kind`, `None` when no command is configured. A
    /// relative program path containing '/' (`examples/agents/developer.sh`) is
    /// made absolute against the config folder, because agents run with their
    /// worktree as the working directory.
    pub fn agent_command(&self, kind: AgentKind) -> Option<Vec<String>> {
        let mut argv = self.agents.get(kind)?.command.clone()?;
        if let Some(program) = argv.first_mut() {
            let path = Path::new(program.as_str());
            if program.contains('/') && path.is_relative() {
                *program = self.resolve_path(path).display().to_string();
            }
        }
        Some(argv)
    }

    /// Attempts for jobs of `kind`: its override, else `queue.max_attempts`.
    pub fn max_attempts(&self, kind: AgentKind) -> u32 {
        self.agents
            .get(kind)
            .and_then(|a| a.max_attempts)
            .unwrap_or(self.queue.max_attempts)
    }

    /// The value of the environment variable `env_name` (a secret the config
    /// names); `None` when unset or empty. Read at call time, never stored, so
    /// secrets do not end up in debug output of the config.
    pub fn secret(&self, env_name: &str) -> Option<String> {
        std::env::var(env_name).ok().filter(|v| !v.is_empty())
    }

    /// The bearer token of the API (`server.api_token_env`).
    pub fn api_token(&self) -> Option<String> {
        self.secret(&self.server.api_token_env)
    }

    /// `(key, variable name)` of every secret the config refers to, including
    /// those of sections the chosen tracker/forge kind ignores.
    pub fn secret_refs(&self) -> Vec<(String, &str)> {
        let mut out = vec![(
            "server.api_token_env".to_owned(),
            self.server.api_token_env.as_str(),
        )];
        if let Some(p) = &self.tracker.plane {
            out.push(("tracker.plane.api_key_env".into(), &p.api_key_env));
            out.push((
                "tracker.plane.webhook_secret_env".into(),
                &p.webhook_secret_env,
            ));
        }
        if let Some(g) = &self.tracker.github {
            out.push(("tracker.github.token_env".into(), &g.token_env));
            out.push((
                "tracker.github.webhook_secret_env".into(),
                &g.webhook_secret_env,
            ));
        }
        if let Some(g) = &self.tracker.gitea {
            out.push(("tracker.gitea.token_env".into(), &g.token_env));
            out.push((
                "tracker.gitea.webhook_secret_env".into(),
                &g.webhook_secret_env,
            ));
        }
        if let Some(g) = &self.tracker.gitlab {
            out.push(("tracker.gitlab.token_env".into(), &g.token_env));
            out.push((
                "tracker.gitlab.webhook_secret_env".into(),
                &g.webhook_secret_env,
            ));
        }
        if let Some(l) = &self.tracker.linear {
            out.push(("tracker.linear.api_key_env".into(), &l.api_key_env));
            out.push((
                "tracker.linear.webhook_secret_env".into(),
                &l.webhook_secret_env,
            ));
        }
        if let Some(j) = &self.tracker.jira {
            out.push(("tracker.jira.token_env".into(), &j.token_env));
            out.push((
                "tracker.jira.webhook_secret_env".into(),
                &j.webhook_secret_env,
            ));
        }
        if let Some(g) = &self.forge.gitea {
            out.push(("forge.gitea.token_env".into(), &g.token_env));
            out.push((
                "forge.gitea.webhook_secret_env".into(),
                &g.webhook_secret_env,
            ));
        }
        if let Some(g) = &self.forge.github {
            out.push(("forge.github.token_env".into(), &g.token_env));
            out.push((
                "forge.github.webhook_secret_env".into(),
                &g.webhook_secret_env,
            ));
        }
        if let Some(g) = &self.forge.gitlab {
            out.push(("forge.gitlab.token_env".into(), &g.token_env));
            out.push((
                "forge.gitlab.webhook_secret_env".into(),
                &g.webhook_secret_env,
            ));
        }
        for (i, n) in self.notify.iter().enumerate() {
            out.push((format!("notify[{i}].url_env"), &n.url_env));
        }
        out
    }

    /// The secrets the active tracker and forge kinds and the server need.
    pub(crate) fn active_secret_refs(&self) -> Vec<(String, &str)> {
        let tracker = format!("tracker.{}.", self.tracker.kind.as_str());
        let forge = format!("forge.{}.", self.forge.kind.as_str());
        self.secret_refs()
            .into_iter()
            .filter(|(key, _)| {
                key.starts_with("server.")
                    || key.starts_with("notify[")
                    || (self.tracker.kind != TrackerKind::Builtin && key.starts_with(&tracker))
                    || (self.forge.kind != ForgeKind::Local && key.starts_with(&forge))
            })
            .collect()
    }

    pub fn stop_grace_int(&self) -> Duration {
        Duration::from_secs(self.stop.grace_int_secs)
    }

    pub fn stop_grace_term(&self) -> Duration {
        Duration::from_secs(self.stop.grace_term_secs)
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.queue.lease_secs)
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.queue.heartbeat_secs)
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.queue.poll_ms)
    }

    pub fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.store.busy_timeout_ms)
    }
}

impl ServerConfig {
    /// `server.listen` as a socket address; `localhost:PORT` means 127.0.0.1
    /// (no name resolution, so the answer does not depend on the machine).
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        parse_listen(&self.listen).ok_or_else(|| {
            ConfigError::invalid(vec![Problem::at(
                "server.listen",
                format!(
                    "{:?} is not a socket address; use IP:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080",
                    self.listen
                ),
            )])
        })
    }
}

impl ServerConfig {
    /// The dashboard's address for links people open: `public_url`, else
    /// `http://` + `listen` (an unspecified IP such as 0.0.0.0 named as
    /// 127.0.0.1), without a trailing slash.
    pub fn dashboard_url(&self) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_owned();
        }
        match parse_listen(&self.listen) {
            Some(mut a) => {
                if a.ip().is_unspecified() {
                    a.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
                }
                format!("http://{a}")
            }
            None => format!("http://{}", self.listen),
        }
    }
}

impl ServerConfig {
    /// Where the other nodes reach this node's API: `node_url`, else
    /// `http://` + `listen`, an unspecified IP (0.0.0.0) named by `host`
    /// (this machine's host name), without a trailing slash.
    pub fn node_url(&self, host: &str) -> String {
        if let Some(u) = &self.node_url {
            return u.trim_end_matches('/').to_owned();
        }
        match parse_listen(&self.listen) {
            Some(a) if a.ip().is_unspecified() => format!("http://{host}:{}", a.port()),
            Some(a) => format!("http://{a}"),
            None => format!("http://{}", self.listen),
        }
    }
}

pub(crate) fn parse_listen(s: &str) -> Option<SocketAddr> {
    if let Ok(addr) = s.parse() {
        return Some(addr);
    }
    let port = s.strip_prefix("localhost:")?.parse().ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

impl AgentConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// `scheme://…` or scp-like `user@host:path`; anything else is a local path.
pub(crate) fn is_url_like(remote: &str) -> bool {
    if remote.contains("://") {
        return true;
    }
    match remote.split_once(':') {
        Some((host, _)) => host.contains('@') && !host.contains('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes() {
        assert!(is_url_like("https://example.org/a.git"));
        assert!(is_url_like("git@example.org:a/b.git"));
        assert!(is_url_like("file:///srv/a.git"));
        assert!(!is_url_like("../remotes/demo.git"));
        assert!(!is_url_like("/srv/demo.git"));
    }

    #[test]
    fn the_node_url_is_node_url_else_the_listen_address_named_by_the_host() {
        let mut s = ServerConfig {
            listen: "0.0.0.0:8080".into(),
            ..ServerConfig::default()
        };
        assert_eq!(s.node_url("node-1"), "http://node-1:8080");
        s.listen = "10.1.2.3:9000".into();
        assert_eq!(s.node_url("node-1"), "http://10.1.2.3:9000");
        s.listen = "[::]:9000".into();
        assert_eq!(s.node_url("node-1"), "http://node-1:9000");
        s.node_url = Some("https://node-1.internal:8443/".into());
        assert_eq!(s.node_url("node-1"), "https://node-1.internal:8443");
    }

    #[test]
    fn the_dashboard_url_is_public_url_else_the_listen_address() {
        let mut s = ServerConfig::default();
        assert_eq!(s.dashboard_url(), "http://127.0.0.1:8080");
        s.listen = "0.0.0.0:9000".into();
        assert_eq!(
            s.dashboard_url(),
            "http://127.0.0.1:9000",
            "an unspecified IP is named"
        );
        s.public_url = Some("https://orch.example.org/".into());
        assert_eq!(s.dashboard_url(), "https://orch.example.org");
    }

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_listen("127.0.0.1:8080"),
            Some("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(parse_listen("[::1]:80"), Some("[::1]:80".parse().unwrap()));
        assert_eq!(
            parse_listen("localhost:9000"),
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(parse_listen("8080"), None);
        assert_eq!(parse_listen("example.org:80"), None);
    }
}
