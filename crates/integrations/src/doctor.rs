//! `orch doctor`'s checks of the configured providers (R-50, issue 5 §7):
//! credentials present, API reachable, webhook secret set, states mapping
//! complete. Each finding says what to fix. One call per Plane project and
//! per Gitea repo, no retries: doctor reports, it does not wait out outages.

use crate::gitea::GiteaClient;
use crate::github::GithubClient;
use crate::gitlab::GitlabClient;
use crate::http::{ApiError, CallPolicy};
use crate::jira::JiraClient;
use crate::linear::LinearClient;
use crate::plane::{PlaneClient, PlaneState};
use crate::providers::{
    forge_names, gitea_issue_repos, gitlab_issue_projects, issue_repos, jira_projects,
    linear_teams, plane_projects,
};
use orch_config::{Config, ForgeKind, TrackerKind, TrackerStates, same_state};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub subject: String,
    pub level: Level,
    pub message: String,
}

fn check(subject: impl Into<String>, level: Level, message: impl Into<String>) -> Check {
    Check {
        subject: subject.into(),
        level,
        message: message.into(),
    }
}

/// The gate and stage names of `[tracker.states]` that a project lacks,
/// compared by the one rule routing uses (`orch_config::same_state`:
/// trimmed, case-insensitive). Names that collide under it are refused when
/// the configuration loads, so `orch doctor` fails on them before this.
pub fn missing_states(wanted: &TrackerStates, have: &[PlaneState]) -> Vec<String> {
    let names: Vec<&str> = have.iter().map(|s| s.name.as_str()).collect();
    missing_state_names(wanted, &names)
}

/// As [`missing_states`], from the names a tracker has.
pub fn missing_state_names(wanted: &TrackerStates, have: &[&str]) -> Vec<String> {
    wanted
        .entries()
        .iter()
        .filter(|(_, name)| !have.iter().any(|s| same_state(s, name)))
        .map(|(key, name)| format!("{name:?} ({key})"))
        .collect()
}

fn doctor_policy() -> CallPolicy {
    CallPolicy {
        timeout: Duration::from_secs(10),
        max_attempts: 1,
        per_minute: Some(60),
        ..CallPolicy::default()
    }
}

fn api_problem(e: &ApiError, key_env: &str) -> String {
    match e {
        ApiError::Status {
            status: 401 | 403, ..
        } => {
            format!("the credential is refused ({e}); check the value of {key_env}")
        }
        ApiError::Status { status: 404, .. } => {
            format!("not found ({e}); check the id/slug in orch.toml")
        }
        _ => format!("unreachable ({e}); check base_url and that this machine can reach it"),
    }
}

fn secret_check(
    subject: &str,
    env: &str,
    insecure: bool,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Check {
    match (secret(env).is_some(), insecure) {
        (true, _) => check(subject, Level::Ok, format!("webhook secret set ({env})")),
        (false, true) => check(
            subject,
            Level::Warn,
            format!(
                "webhooks are accepted unsigned (webhook_insecure = true); set {env} and drop the flag unless the network is trusted"
            ),
        ),
        (false, false) => check(
            subject,
            Level::Fail,
            format!(
                "{env} is not set, so every webhook is refused with 401; set it to the secret configured on the webhook"
            ),
        ),
    }
}

/// Check every configured provider.
pub async fn check_providers(cfg: &Config, secret: &dyn Fn(&str) -> Option<String>) -> Vec<Check> {
    let mut out = Vec::new();
    match (cfg.tracker.kind, &cfg.tracker.plane) {
        (TrackerKind::Builtin, _) => out.push(check(
            "tracker",
            Level::Ok,
            "builtin tracker (items live in orch's store)",
        )),
        (TrackerKind::Plane, Some(p)) => {
            let subject = "tracker.plane";
            out.push(secret_check(
                subject,
                &p.webhook_secret_env,
                p.webhook_insecure,
                secret,
            ));
            let projects = plane_projects(cfg);
            for id in &p.project_ids {
                if !projects.contains_key(id) {
                    out.push(check(
                        subject,
                        Level::Fail,
                        format!("project {id} has no repo; add it to [tracker.plane.repos]"),
                    ));
                }
            }
            if projects.is_empty() {
                out.push(check(
                    subject,
                    Level::Warn,
                    "no project is served; list them in tracker.plane.project_ids",
                ));
            }
            match secret(&p.api_key_env) {
                None => out.push(check(subject, Level::Fail, format!("{} is not set; create an API key in Plane (profile → API tokens) and export it", p.api_key_env))),
                Some(key) => match PlaneClient::new(&p.base_url, &p.workspace, &key, doctor_policy()) {
                    Err(e) => out.push(check(subject, Level::Fail, e.to_string())),
                    Ok(client) => {
                        for (project, repo) in &projects {
                            match client.list_states(project).await {
                                Err(e) => out.push(check(subject, Level::Fail, format!("project {project}: {}", api_problem(&e, &p.api_key_env)))),
                                Ok(states) => {
                                    let missing = missing_states(&cfg.tracker.states, &states);
                                    if missing.is_empty() {
                                        out.push(check(subject, Level::Ok, format!("project {project} (repo {repo}): reachable, every state of [tracker.states] exists")));
                                    } else {
                                        out.push(check(subject, Level::Fail, format!(
                                            "project {project} lacks the states {}; add them in Plane (project settings → states) or rename them in [tracker.states]",
                                            missing.join(", ")
                                        )));
                                    }
                                }
                            }
                        }
                    }
                },
            }
        }
        (TrackerKind::Github, _) if cfg.tracker.github.is_some() => {
            let t = cfg.tracker.github.as_ref().expect("checked above");
            let repos = issue_repos(cfg, &t.repos);
            for full in t.repos.iter().filter(|f| !repos.values().any(|v| v == *f)) {
                out.push(check("tracker.github", Level::Fail, format!("{full} matches no [[repos]] entry; list it in [forge.github.repos] or use one repo")));
            }
            out.extend(
                github_checks(
                    cfg,
                    "tracker.github",
                    &t.base_url,
                    &t.token_env,
                    &repos,
                    secret,
                )
                .await,
            );
            out.push(secret_check(
                "tracker.github",
                &t.webhook_secret_env,
                false,
                secret,
            ));
        }
        (TrackerKind::Gitlab, _) if cfg.tracker.gitlab.is_some() => {
            let t = cfg.tracker.gitlab.as_ref().expect("checked above");
            let projects = gitlab_issue_projects(cfg, &t.projects);
            for p in t
                .projects
                .iter()
                .filter(|p| !projects.values().any(|v| v == *p))
            {
                out.push(check("tracker.gitlab", Level::Fail, format!("{p} matches no [[repos]] entry; map it in [forge.gitlab.repos] or use one repo")));
            }
            out.extend(
                gitlab_checks(
                    cfg,
                    "tracker.gitlab",
                    &t.base_url,
                    &t.token_env,
                    &projects,
                    secret,
                )
                .await,
            );
            out.push(secret_check(
                "tracker.gitlab",
                &t.webhook_secret_env,
                false,
                secret,
            ));
        }
        (TrackerKind::Linear, _) if cfg.tracker.linear.is_some() => {
            out.extend(linear_checks(cfg, secret).await);
        }
        (TrackerKind::Jira, _) if cfg.tracker.jira.is_some() => {
            out.extend(jira_checks(cfg, secret).await);
        }
        (TrackerKind::Gitea, _) if cfg.tracker.gitea.is_some() => {
            out.extend(gitea_tracker_checks(cfg, secret).await);
        }
        (kind, _) => out.push(check(
            format!("tracker.{}", kind.as_str()),
            Level::Fail,
            format!(
                "tracker.kind = \"{0}\" needs its [tracker.{0}] section",
                kind.as_str()
            ),
        )),
    }
    match (cfg.forge.kind, &cfg.forge.gitea) {
        (ForgeKind::Local, _) => out.push(check(
            "forge",
            Level::Ok,
            "local forge (a repository on disk is the remote)",
        )),
        (ForgeKind::Gitea, Some(g)) => {
            let subject = "forge.gitea";
            out.push(secret_check(
                subject,
                &g.webhook_secret_env,
                g.webhook_insecure,
                secret,
            ));
            let names = forge_names(cfg, &g.repos);
            for r in cfg.repos.iter().filter(|r| !names.contains_key(&r.name)) {
                out.push(check(
                    subject,
                    Level::Fail,
                    format!(
                        "repo {} has no `owner/name`; add it to [forge.gitea.repos]",
                        r.name
                    ),
                ));
            }
            match secret(&g.token_env) {
                None => out.push(check(subject, Level::Fail, format!("{} is not set; create an access token with write:repository and write:issue and export it", g.token_env))),
                Some(token) => match GiteaClient::new(&g.base_url, &token, doctor_policy()) {
                    Err(e) => out.push(check(subject, Level::Fail, e.to_string())),
                    Ok(client) => {
                        for (repo, full) in &names {
                            let want = cfg.repo(repo).map(|r| r.default_branch.clone()).unwrap_or_default();
                            match client.default_branch(full).await {
                                Ok(b) if b == want => out.push(check(subject, Level::Ok, format!("{full} (repo {repo}): reachable, default branch {b}"))),
                                Ok(b) => out.push(check(subject, Level::Warn, format!("{full}: Gitea's default branch is {b} but repos.default_branch is {want}; make them agree"))),
                                Err(e) => out.push(check(subject, Level::Fail, format!("{full}: {}", api_problem(&e, &g.token_env)))),
                            }
                        }
                    }
                },
            }
        }
        (ForgeKind::Gitlab, _) if cfg.forge.gitlab.is_some() => {
            let g = cfg.forge.gitlab.as_ref().expect("checked above");
            out.push(secret_check(
                "forge.gitlab",
                &g.webhook_secret_env,
                g.webhook_insecure,
                secret,
            ));
            let names = forge_names(cfg, &g.repos);
            out.extend(
                gitlab_checks(
                    cfg,
                    "forge.gitlab",
                    &g.base_url,
                    &g.token_env,
                    &names,
                    secret,
                )
                .await,
            );
        }
        (ForgeKind::Github, _) if cfg.forge.github.is_some() => {
            let g = cfg.forge.github.as_ref().expect("checked above");
            out.push(secret_check(
                "forge.github",
                &g.webhook_secret_env,
                g.webhook_insecure,
                secret,
            ));
            let names = forge_names(cfg, &g.repos);
            out.extend(
                github_checks(
                    cfg,
                    "forge.github",
                    &g.base_url,
                    &g.token_env,
                    &names,
                    secret,
                )
                .await,
            );
        }
        (kind, _) => out.push(check(
            format!("forge.{}", kind.as_str()),
            Level::Fail,
            format!(
                "forge.kind = \"{0}\" needs its [forge.{0}] section",
                kind.as_str()
            ),
        )),
    }
    out
}

/// Gitea issues: each listed repository maps to an orch repo, the token is
/// set, each repository answers, and the gate labels exist (a person can
/// only apply a label the repository has; orch creates the labels it sets
/// itself on first use).
async fn gitea_tracker_checks(cfg: &Config, secret: &dyn Fn(&str) -> Option<String>) -> Vec<Check> {
    let subject = "tracker.gitea";
    let t = cfg.tracker.gitea.as_ref().expect("checked by the caller");
    let mut out = vec![secret_check(subject, &t.webhook_secret_env, false, secret)];
    let repos = gitea_issue_repos(cfg, &t.repos);
    for full in t.repos.iter().filter(|f| !repos.values().any(|v| v == *f)) {
        out.push(check(
            subject,
            Level::Fail,
            format!(
                "{full} matches no [[repos]] entry; list it in [forge.gitea.repos] or use one repo"
            ),
        ));
    }
    if t.repos.is_empty() {
        out.push(check(subject, Level::Fail, "tracker.gitea.repos is empty: no issue is a work item; list the `owner/name` of each repository"));
    }
    let Some(token) = secret(&t.token_env) else {
        out.push(check(
            subject,
            Level::Fail,
            format!(
                "{} is not set; create an access token with write:issue and export it",
                t.token_env
            ),
        ));
        return out;
    };
    let client = match GiteaClient::new(&t.base_url, &token, doctor_policy()) {
        Ok(c) => c,
        Err(e) => {
            out.push(check(subject, Level::Fail, e.to_string()));
            return out;
        }
    };
    let s = &cfg.tracker.states;
    let gates = [
        &s.to_analyse,
        &s.approved,
        &s.rejected,
        &s.confirm_deploy,
        &s.stop,
    ];
    for (repo, full) in &repos {
        match client.repo_labels(full).await {
            Err(e) => out.push(check(
                subject,
                Level::Fail,
                format!("{full}: {}", api_problem(&e, &t.token_env)),
            )),
            Ok(labels) => {
                let missing: Vec<String> = gates
                    .iter()
                    .filter(|g| !labels.iter().any(|l| same_state(&l.name, g)))
                    .map(|g| format!("{g:?}"))
                    .collect();
                if missing.is_empty() {
                    out.push(check(
                        subject,
                        Level::Ok,
                        format!("{full} (repo {repo}): reachable, every gate label exists"),
                    ));
                } else {
                    out.push(check(subject, Level::Warn, format!(
                        "{full} lacks the gate labels {}; create them in Gitea (issues → labels) so people can apply them",
                        missing.join(", ")
                    )));
                }
            }
        }
    }
    out
}

/// GitHub: the token is set and each repository answers.
async fn github_checks(
    cfg: &Config,
    subject: &str,
    base_url: &str,
    token_env: &str,
    repos: &std::collections::BTreeMap<String, String>,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Vec<Check> {
    let Some(token) = secret(token_env) else {
        return vec![check(
            subject,
            Level::Fail,
            format!(
                "{token_env} is not set; create a token with repo (contents, pull requests, issues, statuses) access and export it"
            ),
        )];
    };
    let client = match GithubClient::new(base_url, &token, doctor_policy()) {
        Ok(c) => c,
        Err(e) => return vec![check(subject, Level::Fail, e.to_string())],
    };
    let mut out = Vec::new();
    for (repo, full) in repos {
        let want = cfg
            .repo(repo)
            .map(|r| r.default_branch.clone())
            .unwrap_or_default();
        match client.default_branch(full).await {
            Ok(b) if b == want => out.push(check(subject, Level::Ok, format!("{full} (repo {repo}): reachable, default branch {b}"))),
            Ok(b) => out.push(check(subject, Level::Warn, format!("{full}: the default branch is {b} but repos.default_branch is {want}; make them agree"))),
            Err(e) => out.push(check(subject, Level::Fail, format!("{full}: {}", api_problem(&e, token_env)))),
        }
    }
    out
}

/// GitLab: the token is set, and each project answers with the default
/// branch orch expects (`repos`: orch repo → project path or id).
async fn gitlab_checks(
    cfg: &Config,
    subject: &str,
    base_url: &str,
    token_env: &str,
    repos: &std::collections::BTreeMap<String, String>,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Vec<Check> {
    let Some(token) = secret(token_env) else {
        return vec![check(
            subject,
            Level::Fail,
            format!("{token_env} is not set; create a token with the api scope and export it"),
        )];
    };
    let client = match GitlabClient::new(base_url, &token, doctor_policy()) {
        Ok(c) => c,
        Err(e) => return vec![check(subject, Level::Fail, e.to_string())],
    };
    let mut out = Vec::new();
    for (repo, project) in repos {
        let want = cfg
            .repo(repo)
            .map(|r| r.default_branch.clone())
            .unwrap_or_default();
        match client.default_branch(project).await {
            Ok(b) if b == want => out.push(check(subject, Level::Ok, format!("{project} (repo {repo}): reachable, default branch {b}"))),
            Ok(b) => out.push(check(subject, Level::Warn, format!("{project}: GitLab's default branch is {b} but repos.default_branch is {want}; make them agree"))),
            Err(e) => out.push(check(subject, Level::Fail, format!("{project}: {}", api_problem(&e, token_env)))),
        }
    }
    out
}

/// Linear: the API key is set and works, each team is visible to it and
/// has a workflow state for every gate and stage (by the team's names),
/// and the webhook secret is set.
async fn linear_checks(cfg: &Config, secret: &dyn Fn(&str) -> Option<String>) -> Vec<Check> {
    const SUBJECT: &str = "tracker.linear";
    let l = cfg.tracker.linear.as_ref().expect("checked by the caller");
    let mut out = Vec::new();
    let Some(key) = secret(&l.api_key_env) else {
        out.push(check(
            SUBJECT,
            Level::Fail,
            format!(
                "{} is not set; create a personal API key in Linear (Settings → API) and export it",
                l.api_key_env
            ),
        ));
        return out;
    };
    let client = match LinearClient::new(&l.base_url, &key, doctor_policy()) {
        Ok(c) => c,
        Err(e) => return vec![check(SUBJECT, Level::Fail, e.to_string())],
    };
    match client.viewer().await {
        Ok(name) => out.push(check(
            SUBJECT,
            Level::Ok,
            format!("the API key works (user {name})"),
        )),
        Err(e) => {
            out.push(check(SUBJECT, Level::Fail, api_problem(&e, &l.api_key_env)));
            return out;
        }
    }
    for (team, t) in linear_teams(cfg) {
        let subject = format!("tracker.linear.teams.{team}");
        match client.team(&team.to_ascii_uppercase()).await {
            Ok(Some(found)) => {
                let names: Vec<&str> = found.states.iter().map(|s| s.name.as_str()).collect();
                let missing = missing_state_names(&t.names, &names);
                if missing.is_empty() {
                    out.push(check(&subject, Level::Ok, format!("team {} (repo {}): every gate and stage has its workflow state", found.key, t.repo)));
                } else {
                    out.push(check(&subject, Level::Fail, format!("team {} has no workflow state named {}; add them in Linear (team settings → workflow) or map them in workflow_states", found.key, missing.join(", "))));
                }
            }
            Ok(None) => out.push(check(&subject, Level::Fail, format!("Linear shows the API key no team with key {team}; check the key in [tracker.linear.teams] and the key's access"))),
            Err(e) => out.push(check(&subject, Level::Fail, api_problem(&e, &l.api_key_env))),
        }
    }
    out.push(secret_check(SUBJECT, &l.webhook_secret_env, false, secret));
    out
}

/// Jira: the API token is set and works (as the configured account), each
/// project is visible to it and has a status for every gate and stage (by
/// the project's names), and the webhook secret is set. Whether every move
/// has a transition depends on the issue's current status: a missing one
/// is named when orch makes the move.
async fn jira_checks(cfg: &Config, secret: &dyn Fn(&str) -> Option<String>) -> Vec<Check> {
    const SUBJECT: &str = "tracker.jira";
    let j = cfg.tracker.jira.as_ref().expect("checked by the caller");
    let mut out = Vec::new();
    let Some(token) = secret(&j.token_env) else {
        out.push(check(
            SUBJECT,
            Level::Fail,
            format!(
                "{} is not set; create an API token for {} (Atlassian account settings → Security → API tokens) and export it",
                j.token_env, j.email
            ),
        ));
        return out;
    };
    let client = match JiraClient::new(&j.base_url, &j.email, &token, doctor_policy()) {
        Ok(c) => c,
        Err(e) => return vec![check(SUBJECT, Level::Fail, e.to_string())],
    };
    match client.myself().await {
        Ok(name) => out.push(check(
            SUBJECT,
            Level::Ok,
            format!("the API token works (user {name})"),
        )),
        Err(e) => {
            out.push(check(SUBJECT, Level::Fail, api_problem(&e, &j.token_env)));
            return out;
        }
    }
    for (key, p) in jira_projects(cfg) {
        let subject = format!("tracker.jira.projects.{key}");
        let key = key.to_ascii_uppercase();
        match client.project_statuses(&key).await {
            Ok(Some(names)) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let missing = missing_state_names(&p.names, &names);
                if missing.is_empty() {
                    out.push(check(&subject, Level::Ok, format!("project {key} (repo {}): every gate and stage has its status", p.repo)));
                } else {
                    out.push(check(&subject, Level::Fail, format!("project {key} has no status named {}; add them to the project's workflow in Jira or map them in statuses", missing.join(", "))));
                }
            }
            Ok(None) => out.push(check(&subject, Level::Fail, format!("Jira shows {} no project with key {key}; check the key in [tracker.jira.projects] and the account's access", j.email))),
            Err(e) => out.push(check(&subject, Level::Fail, api_problem(&e, &j.token_env))),
        }
    }
    out.push(secret_check(SUBJECT, &j.webhook_secret_env, false, secret));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_states_are_named_with_their_keys() {
        let s = TrackerStates::default();
        let have: Vec<PlaneState> = s
            .entries()
            .iter()
            .filter(|(k, _)| *k != "confirm_deploy")
            .map(|(_, n)| PlaneState {
                id: n.to_string(),
                name: format!(" {} ", n.to_uppercase()),
                group: String::new(),
            })
            .collect();
        assert_eq!(
            missing_states(&s, &have),
            vec!["\"Confirm Deploy\" (confirm_deploy)".to_string()]
        );
    }
}
