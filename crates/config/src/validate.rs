//! Checks a loaded configuration beyond what its types say: value ranges, repo
//! names, argv lists, URLs, secret variable names, and consistency between
//! sections. Every problem is collected (not just the first) so one run of
//! `orch doctor` shows them all; things that work but look wrong are warnings.

use orch_core::keys::validate_repo_name;
use std::collections::BTreeMap;

use crate::error::{ConfigError, Problem, Warning};
use crate::load::{ENV_PREFIX, ENV_SEPARATOR, SECTIONS};
use crate::model::{AgentConfig, Config, ForgeKind, RepoConfig, TrackerKind};
use crate::resolve::parse_listen;

mod jira;
mod linear;
mod state_map;

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    warnings: Vec<Warning>,
}

impl Checker {
    fn error(&mut self, key: impl Into<String>, what: impl std::fmt::Display) {
        self.problems.push(Problem::at(key, what));
    }

    fn warn(&mut self, key: impl Into<String>, what: impl std::fmt::Display) {
        self.warnings.push(Warning::at(key, what));
    }

    fn at_least(&mut self, key: &str, value: u64, min: u64) {
        if value < min {
            self.error(key, format!("must be at least {min} (got {value})"));
        }
    }

    fn limit(&mut self, key: &str, value: Option<u32>) {
        if value == Some(0) {
            self.error(
                key,
                "must be at least 1 (got 0); remove the key for no limit",
            );
        }
    }

    /// An argv list: a program and its arguments.
    fn argv(&mut self, key: &str, argv: &[String]) {
        match argv.first() {
            None => self.error(
                key,
                "must not be empty; give the program and its arguments, e.g. [\"cargo\", \"test\"]",
            ),
            Some(program) if program.trim().is_empty() => {
                self.error(format!("{key}[0]"), "the program name must not be empty")
            }
            Some(_) => {}
        }
    }

    fn env_name(&mut self, key: &str, name: &str) {
        if !is_env_name(name) {
            self.error(
                key,
                format!(
                    "{name:?} is not an environment variable name (letters, digits and '_', not \
                     starting with a digit); give the NAME of the variable that holds the \
                     secret, never the secret itself"
                ),
            );
            return;
        }
        // `ORCH_SERVER__TOKEN` would be read as the config key `server.token`.
        let upper = name.to_ascii_uppercase();
        if let Some(rest) = upper.strip_prefix(ENV_PREFIX)
            && let Some((first, _)) = rest.split_once(ENV_SEPARATOR)
            && SECTIONS.contains(&first.to_ascii_lowercase().as_str())
        {
            self.error(
                key,
                format!(
                    "{name} would be read as a config override ({ENV_PREFIX}<SECTION>{ENV_SEPARATOR}<KEY>); \
                     choose a name without '{ENV_SEPARATOR}'"
                ),
            );
        }
    }

    fn http_url(&mut self, key: &str, url: &str) {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        if rest.is_none_or(|host| host.is_empty() || host.starts_with('/')) {
            self.error(
                key,
                format!("{url:?} is not an http(s) URL; use e.g. https://tracker.example.org"),
            );
        }
    }

    fn non_empty(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.error(key, "must not be empty");
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Config {
    /// Check the configuration. `Ok` carries the warnings (things that work but
    /// are probably unintended, such as an unset secret); `Err` lists every
    /// problem, each naming its key. Reads the process environment to see which
    /// secrets are set.
    pub fn validate(&self) -> Result<Vec<Warning>, ConfigError> {
        let mut c = Checker {
            warnings: self.load_warnings.clone(),
            ..Checker::default()
        };
        if self.data_dir.as_os_str().is_empty() {
            c.error("data_dir", "must not be empty; the default is \".orch\"");
        }
        self.check_server(&mut c);
        self.check_store(&mut c);
        self.check_queue(&mut c);
        self.check_repos(&mut c);
        self.check_features(&mut c);
        self.check_tracker(&mut c);
        self.check_forge(&mut c);
        self.check_agents(&mut c);
        self.check_agent_env(&mut c);
        self.check_budget_review_logging(&mut c);
        self.check_notify(&mut c);
        for (key, what) in crate::disk::check_disk_sections(&self.limits, &self.cleanup) {
            c.error(key, what);
        }
        for (key, what) in crate::sandbox::check_sandbox(&self.sandbox)
            .into_iter()
            .chain(crate::sandbox::check_egress(&self.agents))
        {
            c.error(key, what);
        }
        self.check_secrets_set(&mut c);
        if c.problems.is_empty() {
            Ok(c.warnings)
        } else {
            Err(ConfigError::invalid(c.problems))
        }
    }

    fn check_server(&self, c: &mut Checker) {
        if parse_listen(&self.server.listen).is_none() {
            c.error(
                "server.listen",
                format!(
                    "{:?} is not a socket address; use IP:PORT such as 127.0.0.1:8080 or 0.0.0.0:8080",
                    self.server.listen
                ),
            );
        }
        c.env_name("server.api_token_env", &self.server.api_token_env);
        if let Some(url) = &self.server.node_url {
            c.http_url("server.node_url", url);
        }
        match &self.server.public_url {
            Some(url) => c.http_url("server.public_url", url),
            None => {
                if parse_listen(&self.server.listen).is_some_and(|a| a.ip().is_unspecified()) {
                    c.warn(
                        "server.public_url",
                        format!(
                            "unset while server.listen is {}: links in tracker comments name 127.0.0.1, which only this machine can open; set server.public_url to the address people use",
                            self.server.listen
                        ),
                    );
                }
            }
        }
    }

    fn check_store(&self, c: &mut Checker) {
        if let Err(e) = self.store_location() {
            c.problems.extend(e.problems().iter().cloned());
        }
        if self.store.max_connections == Some(0) {
            c.error(
                "store.max_connections",
                "must be at least 1 (got 0): a pool of none could run no statement; \
                 remove the key for the default (PostgreSQL 8, SQLite 4 readers)",
            );
        }
        if self.store.busy_timeout_ms == 0 {
            c.warn(
                "store.busy_timeout_ms",
                "0 makes every concurrent write fail at once with SQLITE_BUSY; the default is 5000",
            );
        }
    }

    fn check_queue(&self, c: &mut Checker) {
        let q = &self.queue;
        c.at_least("queue.max_attempts", q.max_attempts.into(), 1);
        c.at_least("queue.lease_secs", q.lease_secs, 1);
        c.at_least("queue.heartbeat_secs", q.heartbeat_secs, 1);
        c.at_least("queue.poll_ms", q.poll_ms, 1);
        if q.heartbeat_secs >= q.lease_secs && q.lease_secs > 0 {
            c.error(
                "queue.heartbeat_secs",
                format!(
                    "must be less than queue.lease_secs ({} >= {}), or every lease expires before it is renewed",
                    q.heartbeat_secs, q.lease_secs
                ),
            );
        }

        let r = &q.retry;
        if !(r.factor.is_finite() && r.factor >= 1.0) {
            c.error(
                "queue.retry.factor",
                format!(
                    "must be at least 1.0 (got {}): delays must not shrink",
                    r.factor
                ),
            );
        }
        if !(r.jitter.is_finite() && (0.0..=1.0).contains(&r.jitter)) {
            c.error(
                "queue.retry.jitter",
                format!("must be between 0 and 1 (got {})", r.jitter),
            );
        }
        if r.base_secs > r.cap_secs {
            c.error(
                "queue.retry.base_secs",
                format!(
                    "must not exceed queue.retry.cap_secs ({} > {})",
                    r.base_secs, r.cap_secs
                ),
            );
        }

        let l = &q.limits;
        c.limit("queue.limits.global", l.global);
        c.limit("queue.limits.per_repo", l.per_repo);
        for (repo, n) in &l.per_repo_overrides {
            let key = format!("queue.limits.per_repo_overrides.{repo}");
            c.limit(&key, Some(*n));
            if self.repo(repo).is_none() {
                c.warn(
                    key,
                    format!("no repo named {repo:?} is configured in [[repos]]"),
                );
            }
        }
        for (agent, n) in &l.per_agent {
            c.limit(&format!("queue.limits.per_agent.{agent}"), Some(*n));
        }
    }

    fn check_repos(&self, c: &mut Checker) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, repo) in self.repos.iter().enumerate() {
            let at = |field: &str| format!("repos[{i}].{field}");
            if let Err(e) = validate_repo_name(&repo.name) {
                c.error(at("name"), e);
            } else if let Some(first) = seen.insert(&repo.name, i) {
                // Keep the first index so a third duplicate points at the first too.
                seen.insert(&self.repos[first].name, first);
                c.error(
                    at("name"),
                    format!(
                        "duplicate repo name {:?} (also repos[{first}].name); names must be unique",
                        repo.name
                    ),
                );
            }
            c.non_empty(&at("remote"), &repo.remote);
            check_branch(c, &at("default_branch"), &repo.default_branch);
            for (j, b) in repo.protected_branches.iter().enumerate() {
                check_branch(c, &at(&format!("protected_branches[{j}]")), b);
            }
            c.argv(&at("verify"), &repo.verify);
            if repo
                .prompts_dir
                .as_ref()
                .is_some_and(|p| p.as_os_str().is_empty())
            {
                c.error(
                    at("prompts_dir"),
                    "must not be empty; remove it to use the built-in prompts",
                );
            }
            check_deploy(c, i, repo);
            for (j, name) in repo.required_checks.iter().enumerate() {
                if name.trim().is_empty() {
                    c.error(at(&format!("required_checks[{j}]")), "must not be empty");
                }
            }
            if !repo.required_checks.is_empty() && self.forge.kind == ForgeKind::Local {
                c.error(
                    at("required_checks"),
                    "needs a forge that reports CI checks (forge.kind = \"gitea\", \"github\" or \"gitlab\"); the local forge has no CI, so the merge would wait forever",
                );
            }
        }
    }

    fn check_features(&self, c: &mut Checker) {
        for (i, repo) in self.features.stop_status_repos.iter().enumerate() {
            let key = format!("features.stop_status_repos[{i}]");
            if let Err(e) = validate_repo_name(repo) {
                c.error(key, e);
            } else if self.repo(repo).is_none() {
                c.warn(
                    key,
                    format!("no repo named {repo:?} is configured in [[repos]]"),
                );
            }
        }
    }

    fn check_tracker(&self, c: &mut Checker) {
        let t = &self.tracker;
        for (key, state) in t.states.entries() {
            if state.trim().is_empty() {
                c.error(format!("tracker.states.{key}"), "must not be empty");
            }
        }
        // One rule for state names (`same_state`: trimmed, case-insensitive),
        // the one routing and the trackers use: two keys whose names are one
        // state under it would make a tracker move ambiguous.
        for x in t.states.collisions() {
            if x.name.trim().is_empty() {
                continue;
            }
            c.error(
                format!("tracker.states.{}", x.second),
                format!(
                    "{:?} is also tracker.states.{} (state names are compared trimmed and case-insensitively); each gate and stage needs its own state",
                    x.name, x.first
                ),
            );
        }

        let missing = |kind: &str| {
            format!("required when tracker.kind = \"{kind}\"; add a [tracker.{kind}] section")
        };
        match t.kind {
            TrackerKind::Builtin => {}
            TrackerKind::Plane if t.plane.is_none() => c.error("tracker.plane", missing("plane")),
            TrackerKind::Github if t.github.is_none() => {
                c.error("tracker.github", missing("github"))
            }
            TrackerKind::Gitea if t.gitea.is_none() => c.error("tracker.gitea", missing("gitea")),
            TrackerKind::Gitlab if t.gitlab.is_none() => {
                c.error("tracker.gitlab", missing("gitlab"))
            }
            TrackerKind::Linear if t.linear.is_none() => {
                c.error("tracker.linear", missing("linear"))
            }
            TrackerKind::Jira if t.jira.is_none() => c.error("tracker.jira", missing("jira")),
            _ => {}
        }
        if let Some(p) = &t.plane {
            c.http_url("tracker.plane.base_url", &p.base_url);
            c.non_empty("tracker.plane.workspace", &p.workspace);
            if p.project_ids.is_empty() && t.kind == TrackerKind::Plane {
                c.warn(
                    "tracker.plane.project_ids",
                    "is empty: the reconciler has no project to poll, so missed webhooks are never repaired",
                );
            }
            for (i, id) in p.project_ids.iter().enumerate() {
                c.non_empty(&format!("tracker.plane.project_ids[{i}]"), id);
            }
            c.env_name("tracker.plane.api_key_env", &p.api_key_env);
            c.env_name("tracker.plane.webhook_secret_env", &p.webhook_secret_env);
            for (project, repo) in &p.repos {
                if self.repo(repo).is_none() {
                    c.error(
                        format!("tracker.plane.repos.{project}"),
                        format!("no repo named {repo:?} is configured in [[repos]]"),
                    );
                }
            }
            if t.kind == TrackerKind::Plane && self.repos.len() > 1 {
                for id in p.project_ids.iter().filter(|id| !p.repos.contains_key(*id)) {
                    c.error(
                        format!("tracker.plane.repos.{id}"),
                        "missing: with several [[repos]], each project needs its repo (`\"<project uuid>\" = \"<repo>\"`)",
                    );
                }
            }
            if p.calls_per_minute == 0 {
                c.error("tracker.plane.calls_per_minute", "must be at least 1");
            }
        }
        if let Some(g) = &t.github {
            c.http_url("tracker.github.base_url", &g.base_url);
            check_owner_names(c, "tracker.github.repos", &g.repos);
            c.env_name("tracker.github.token_env", &g.token_env);
            c.env_name("tracker.github.webhook_secret_env", &g.webhook_secret_env);
        }
        if let Some(g) = &t.gitea {
            c.http_url("tracker.gitea.base_url", &g.base_url);
            check_owner_names(c, "tracker.gitea.repos", &g.repos);
            c.env_name("tracker.gitea.token_env", &g.token_env);
            c.env_name("tracker.gitea.webhook_secret_env", &g.webhook_secret_env);
        }
        if let Some(g) = &t.gitlab {
            c.http_url("tracker.gitlab.base_url", &g.base_url);
            if g.projects.is_empty() && t.kind == TrackerKind::Gitlab {
                c.error(
                    "tracker.gitlab.projects",
                    "is empty: list each project whose issues are work items (`group/name` or its numeric id)",
                );
            }
            for (i, p) in g.projects.iter().enumerate() {
                let key = format!("tracker.gitlab.projects[{i}]");
                check_gitlab_project(c, &key, p);
                // GitLab's issue hooks name the project by its path: an id
                // here is listed by the reconciler, but its webhooks match
                // nothing.
                if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                    c.warn(
                        key,
                        format!("{p:?} is a numeric id: webhooks name projects by path, so its issue events are only picked up by the reconciler; use the path (`group/name`)"),
                    );
                }
            }
            c.env_name("tracker.gitlab.token_env", &g.token_env);
            c.env_name("tracker.gitlab.webhook_secret_env", &g.webhook_secret_env);
        }
        if let Some(l) = &t.linear {
            self.validate_linear(c, l, t.kind == TrackerKind::Linear);
        }
        if let Some(j) = &t.jira {
            self.validate_jira(c, j, t.kind == TrackerKind::Jira);
        }
        for (present, kind) in [
            (t.jira.is_some(), TrackerKind::Jira),
            (t.linear.is_some(), TrackerKind::Linear),
            (t.plane.is_some(), TrackerKind::Plane),
            (t.github.is_some(), TrackerKind::Github),
            (t.gitea.is_some(), TrackerKind::Gitea),
            (t.gitlab.is_some(), TrackerKind::Gitlab),
        ] {
            if present && t.kind != kind {
                c.warn(
                    format!("tracker.{}", kind.as_str()),
                    format!("is ignored because tracker.kind = \"{}\"", t.kind.as_str()),
                );
            }
        }
    }

    fn check_forge(&self, c: &mut Checker) {
        let f = &self.forge;
        let missing = |kind: &str| {
            format!("required when forge.kind = \"{kind}\"; add a [forge.{kind}] section")
        };
        match f.kind {
            ForgeKind::Local => {}
            ForgeKind::Gitea if f.gitea.is_none() => c.error("forge.gitea", missing("gitea")),
            ForgeKind::Github if f.github.is_none() => c.error("forge.github", missing("github")),
            ForgeKind::Gitlab if f.gitlab.is_none() => c.error("forge.gitlab", missing("gitlab")),
            _ => {}
        }
        if let Some(g) = &f.gitea {
            c.http_url("forge.gitea.base_url", &g.base_url);
            c.env_name("forge.gitea.token_env", &g.token_env);
            c.env_name("forge.gitea.webhook_secret_env", &g.webhook_secret_env);
            if !crate::model::GITEA_MERGE_STYLES.contains(&g.merge_style.as_str()) {
                c.error(
                    "forge.gitea.merge_style",
                    format!(
                        "{:?} is not one of {}",
                        g.merge_style,
                        crate::model::GITEA_MERGE_STYLES.join(", ")
                    ),
                );
            }
            self.check_forge_repos(c, "forge.gitea.repos", &g.repos);
        }
        if let Some(g) = &f.github {
            c.http_url("forge.github.base_url", &g.base_url);
            c.env_name("forge.github.token_env", &g.token_env);
            c.env_name("forge.github.webhook_secret_env", &g.webhook_secret_env);
            self.check_forge_repos(c, "forge.github.repos", &g.repos);
            if !["merge", "squash", "rebase"].contains(&g.merge_method.as_str()) {
                c.error(
                    "forge.github.merge_method",
                    format!("{:?} is not one of merge, squash, rebase", g.merge_method),
                );
            }
        }
        if let Some(g) = &f.gitlab {
            c.http_url("forge.gitlab.base_url", &g.base_url);
            c.env_name("forge.gitlab.token_env", &g.token_env);
            c.env_name("forge.gitlab.webhook_secret_env", &g.webhook_secret_env);
            for (repo, project) in &g.repos {
                let key = format!("forge.gitlab.repos.{repo}");
                if self.repo(repo).is_none() {
                    c.error(
                        key.clone(),
                        format!("no repo named {repo:?} is configured in [[repos]]"),
                    );
                }
                check_gitlab_project(c, &key, project);
                // Merge request hooks name the project by its path.
                if !project.is_empty() && project.bytes().all(|b| b.is_ascii_digit()) {
                    c.warn(
                        key,
                        format!("{project:?} is a numeric id: merges and closes made on GitLab are matched by path in webhooks, so they are only seen when orch merges; use the path (`group/name`)"),
                    );
                }
            }
        }
        for (present, kind) in [
            (f.gitea.is_some(), ForgeKind::Gitea),
            (f.github.is_some(), ForgeKind::Github),
            (f.gitlab.is_some(), ForgeKind::Gitlab),
        ] {
            if present && f.kind != kind {
                c.warn(
                    format!("forge.{}", kind.as_str()),
                    format!("is ignored because forge.kind = \"{}\"", f.kind.as_str()),
                );
            }
        }
    }

    /// `orch repo → owner/name`: the repo exists and the value has one slash.
    fn check_forge_repos(
        &self,
        c: &mut Checker,
        key: &str,
        repos: &std::collections::BTreeMap<String, String>,
    ) {
        for (repo, full) in repos {
            if self.repo(repo).is_none() {
                c.error(
                    format!("{key}.{repo}"),
                    format!("no repo named {repo:?} is configured in [[repos]]"),
                );
            }
            let parts: Vec<&str> = full.split('/').collect();
            if parts.len() != 2 || parts.iter().any(|p| p.trim().is_empty()) {
                c.error(
                    format!("{key}.{repo}"),
                    format!("{full:?} is not `owner/name`"),
                );
            }
        }
    }

    fn check_agents(&self, c: &mut Checker) {
        let mut unconfigured = Vec::new();
        for kind in orch_core::AgentKind::ALL {
            if let Some(agent) = self.agents.get(kind) {
                check_agent(c, &format!("agents.{kind}"), agent);
            }
            // The merger runs the repo's `verify` and the deployer its deploy
            // commands; only the agents proper need a command.
            if !kind.is_serial() && self.agents.get(kind).is_none_or(|a| a.command.is_none()) {
                unconfigured.push(kind.as_str());
            }
        }
        if !unconfigured.is_empty() {
            c.warn(
                "agents",
                format!(
                    "no command for: {}; jobs of these kinds fail until agents.<kind>.command is set",
                    unconfigured.join(", ")
                ),
            );
        }
    }

    fn check_agent_env(&self, c: &mut Checker) {
        let secrets = self.secret_refs();
        for (i, name) in self.agent_env.allow.iter().enumerate() {
            let key = format!("agent_env.allow[{i}]");
            if !is_env_name(name) {
                c.error(key, format!("{name:?} is not an environment variable name"));
            } else if let Some((secret_key, _)) = secrets.iter().find(|(_, s)| s == name) {
                c.error(
                    key,
                    format!(
                        "{name} holds an orchestrator secret ({secret_key}); agents must not receive it"
                    ),
                );
            }
        }
        for name in self.agent_env.set.keys() {
            if !is_env_name(name) {
                c.error(
                    format!("agent_env.set.{name}"),
                    format!("{name:?} is not an environment variable name"),
                );
            }
        }
    }

    fn check_budget_review_logging(&self, c: &mut Checker) {
        let b = &self.budget;
        let positive = "must be greater than 0; remove the key for no limit";
        if b.max_tokens == Some(0) {
            c.error("budget.max_tokens", positive);
        }
        if b.max_wall_secs == Some(0) {
            c.error("budget.max_wall_secs", positive);
        }
        if let Some(cost) = b.max_cost_usd
            && !(cost.is_finite() && cost > 0.0)
        {
            c.error("budget.max_cost_usd", format!("{positive} (got {cost})"));
        }
        c.at_least(
            "review.max_review_rounds",
            self.review.max_review_rounds.into(),
            1,
        );
        c.at_least(
            "review.max_rejection_rounds",
            self.review.max_rejection_rounds.into(),
            1,
        );
        c.at_least("review.max_ci_rounds", self.review.max_ci_rounds.into(), 1);
        if self.review.human_approval != orch_core::people::HumanApproval::Ignored
            && self.forge.kind == ForgeKind::Local
        {
            c.error(
                "review.human_approval",
                "counts people's reviews on pull requests, which the local forge has none of; use forge.kind = \"gitea\", \"github\" or \"gitlab\", or \"ignored\"",
            );
        }
        c.at_least("merge.max_attempts", self.merge.max_attempts.into(), 1);
        let level = self.logging.level.trim();
        let is_directive = level.contains(['=', ',']);
        let known = ["trace", "debug", "info", "warn", "error", "off"];
        if !is_directive && !known.contains(&level.to_ascii_lowercase().as_str()) {
            c.error(
                "logging.level",
                format!(
                    "unknown level {level:?}; use one of {} or a filter such as \"info,orch_engine=debug\"",
                    known.join(", ")
                ),
            );
        }
    }

    fn check_notify(&self, c: &mut Checker) {
        // The outbox sink of the tracker's writes (`orch_store::TRACKER_SINK`).
        const RESERVED_NOTIFY_NAME: &str = "tracker";
        let mut names = std::collections::BTreeSet::new();
        for (i, n) in self.notify.iter().enumerate() {
            let key = format!("notify[{i}]");
            if n.name.trim().is_empty() {
                c.error(format!("{key}.name"), "must not be empty");
            } else if n.name == RESERVED_NOTIFY_NAME {
                c.error(
                    format!("{key}.name"),
                    format!(
                        "{RESERVED_NOTIFY_NAME:?} is reserved for orch's writes to the tracker; choose another name"
                    ),
                );
            } else if !names.insert(n.name.as_str()) {
                c.error(
                    format!("{key}.name"),
                    format!(
                        "{:?} is used by another [[notify]]; give each its own name",
                        n.name
                    ),
                );
            }
            c.env_name(&format!("{key}.url_env"), &n.url_env);
            if n.stages.is_empty() {
                c.error(
                    format!("{key}.stages"),
                    "is empty, so nothing would ever be sent; list stages or leave it out for the default",
                );
            }
        }
    }

    fn check_secrets_set(&self, c: &mut Checker) {
        for (key, name) in self.active_secret_refs() {
            if !is_env_name(name) || self.secret(name).is_some() {
                continue;
            }
            let consequence = match key.as_str() {
                "server.api_token_env" => {
                    let exposed =
                        parse_listen(&self.server.listen).is_some_and(|a| !a.ip().is_loopback());
                    if exposed {
                        "mutating API calls will be refused (and the server listens beyond this machine)"
                    } else {
                        "mutating API calls will be refused"
                    }
                }
                k if k.ends_with("webhook_secret_env") => {
                    "webhooks cannot be verified and will be refused"
                }
                k if k.starts_with("notify[") => "its notifications wait in the outbox unsent",
                _ => "calls to the service will fail to authenticate",
            };
            c.warn(
                key,
                format!("names {name}, which is not set: {consequence}"),
            );
        }
    }
}

fn check_branch(c: &mut Checker, key: &str, branch: &str) {
    let bad = branch.trim().is_empty()
        || branch
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control() || "~^:?*[\\".contains(ch))
        || branch.contains("..")
        || branch.starts_with(['/', '-'])
        || branch.ends_with(['/', '.'])
        || branch.ends_with(".lock");
    if bad {
        c.error(key, format!("{branch:?} is not a valid git branch name"));
    }
}

fn check_deploy(c: &mut Checker, i: usize, repo: &RepoConfig) {
    let Some(d) = &repo.deploy else { return };
    let at = |field: &str| format!("repos[{i}].deploy.{field}");
    if let Some(prepare) = &d.prepare {
        c.argv(&at("prepare"), prepare);
    }
    c.argv(&at("run"), &d.run);
    if let Some(health) = &d.health {
        c.argv(&at("health"), health);
    }
    if d.self_deploy.is_some() {
        c.warn(
            at("self_deploy"),
            "has no effect; remove it: every deploy's phase B may restart orch (it runs under \
             `orch monitor`, and the next `orch serve` re-adopts it and finishes the task)",
        );
    }
}

fn check_agent(c: &mut Checker, key: &str, agent: &AgentConfig) {
    if let Some(cmd) = &agent.command {
        c.argv(&format!("{key}.command"), cmd);
    }
    c.at_least(&format!("{key}.timeout_secs"), agent.timeout_secs, 1);
    c.at_least(
        &format!("{key}.idle_timeout_secs"),
        agent.idle_timeout_secs,
        1,
    );
    if let Some(n) = agent.max_attempts {
        c.at_least(&format!("{key}.max_attempts"), n.into(), 1);
    }
    if agent.idle_timeout_secs > agent.timeout_secs {
        c.warn(
            format!("{key}.idle_timeout_secs"),
            format!(
                "is longer than {key}.timeout_secs ({} > {}), so it never triggers",
                agent.idle_timeout_secs, agent.timeout_secs
            ),
        );
    }
}

fn check_owner_names(c: &mut Checker, key: &str, repos: &[String]) {
    for (i, r) in repos.iter().enumerate() {
        let ok = r.split_once('/').is_some_and(|(owner, name)| {
            !owner.is_empty() && !name.is_empty() && !name.contains('/')
        });
        if !ok {
            c.error(format!("{key}[{i}]"), format!("{r:?} must be OWNER/NAME"));
        }
    }
}

/// A GitLab project is named by its numeric id or its full path
/// (`group/name`, subgroups allowed: `group/sub/name`).
fn check_gitlab_project(c: &mut Checker, key: &str, project: &str) {
    let numeric = !project.is_empty() && project.bytes().all(|b| b.is_ascii_digit());
    let segments: Vec<&str> = project.split('/').collect();
    let path = segments.len() >= 2 && segments.iter().all(|s| !s.trim().is_empty());
    if !numeric && !path {
        c.error(
            key.to_owned(),
            format!(
                "{project:?} is neither a project path (`group/name`) nor a numeric project id"
            ),
        );
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
