//! The units of the trackers that name orch's states per unit (Linear's
//! teams, Jira's projects): each unit's repo and what each gate and stage
//! is called in it, from the config.

use crate::jira::tracker::Project;
use crate::linear::tracker::Team;
use orch_config::Config;
use std::collections::BTreeMap;

/// Linear team key → its repo (the one named, else the only `[[repos]]`
/// entry) and what each gate and stage is called in it; a team with no
/// repo to go to is left out (validation reports it).
pub fn linear_teams(cfg: &Config) -> BTreeMap<String, Team> {
    let Some(l) = &cfg.tracker.linear else {
        return BTreeMap::new();
    };
    let only = (cfg.repos.len() == 1).then(|| cfg.repos[0].name.clone());
    l.teams
        .iter()
        .filter_map(|(key, t)| {
            let repo = t.repo.clone().or_else(|| only.clone())?;
            Some((
                key.clone(),
                Team {
                    repo,
                    names: t.states(&cfg.tracker.states),
                },
            ))
        })
        .collect()
}

/// Jira project key → its repo (the one named, else the only `[[repos]]`
/// entry) and what each gate and stage is called in it; a project with no
/// repo to go to is left out (validation reports it).
pub fn jira_projects(cfg: &Config) -> BTreeMap<String, Project> {
    let Some(j) = &cfg.tracker.jira else {
        return BTreeMap::new();
    };
    let only = (cfg.repos.len() == 1).then(|| cfg.repos[0].name.clone());
    j.projects
        .iter()
        .filter_map(|(key, p)| {
            let repo = p.repo.clone().or_else(|| only.clone())?;
            Some((
                key.clone(),
                Project {
                    repo,
                    names: p.states(&cfg.tracker.states),
                },
            ))
        })
        .collect()
}
