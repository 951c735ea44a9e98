//! Reading a configuration: `orch.toml` merged with `ORCH_…` environment
//! overrides (figment), and turning figment's errors into messages that name the
//! key, say where it came from and what to do.
//!
//! The environment provider only sees variables whose first key segment is a
//! known top-level section: secrets (`ORCH_API_TOKEN`) and unrelated variables
//! (`ORCH_TEST_PG_URL`) share the `ORCH_` namespace and must never become config
//! keys — with `deny_unknown_fields` they would even make loading fail.

use figment::Figment;
use figment::error::Kind;
use figment::providers::{Env, Format, Toml};
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Problem, Warning};
use crate::model::Config;

/// Prefix of environment overrides; nesting uses `__` (`ORCH_STORE__URL`).
pub const ENV_PREFIX: &str = "ORCH_";
/// Separator of nested keys in environment variable names.
pub const ENV_SEPARATOR: &str = "__";
/// The file `Config::load(None)` looks for in the working directory.
pub const DEFAULT_FILE: &str = "orch.toml";

/// Top-level keys an environment variable may override.
pub(crate) const SECTIONS: &[&str] = &[
    "data_dir",
    "server",
    "store",
    "queue",
    "features",
    "stop",
    "tracker",
    "forge",
    "repos",
    "agents",
    "agent_env",
    "budget",
    "review",
    "merge",
    "limits",
    "cleanup",
    "logging",
    "workflow",
];

/// The `ORCH_` environment overrides, restricted to known sections.
pub fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX)
        .split(ENV_SEPARATOR)
        .filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            let first = key.split('.').next().unwrap_or("");
            SECTIONS.contains(&first)
        })
}

impl Config {
    /// Load `path`, or `./orch.toml` when `path` is `None` (the embedded defaults
    /// if that does not exist), then apply `ORCH_…` overrides. A `path` that does
    /// not exist is an error: the operator meant a file, so silently using the
    /// defaults would hide the mistake. Call [`Config::validate`] before use.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with_workflow(path, None)
    }

    /// [`Config::load`] with a Symphony-style workflow file (`orch serve
    /// --workflow PATH`; without one, `workflow` in orch.toml names it).
    ///
    /// The layers, each overriding the one before: the embedded defaults,
    /// the workflow's front matter (mapped onto orch's keys), orch.toml, the
    /// `ORCH_…` environment. orch.toml and the environment are the host's:
    /// what they set wins, and a workflow value they override is named in a
    /// warning. A workflow value orch cannot use is an error, unless the host
    /// overrides that key.
    pub fn load_with_workflow(
        path: Option<&Path>,
        workflow: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        Config::load_layers(path, workflow, true)
    }

    /// orch.toml and the environment alone, without the workflow file it may
    /// name: what `orch status` falls back to while that file does not load
    /// (it still finds the store and the running engine's state).
    pub fn load_without_workflow(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_layers(path, None, false)
    }

    fn load_layers(
        path: Option<&Path>,
        workflow: Option<&Path>,
        with_workflow: bool,
    ) -> Result<Config, ConfigError> {
        let cwd = std::env::current_dir().map_err(|source| ConfigError::Read {
            path: PathBuf::from("."),
            source,
        })?;
        let file = match path {
            Some(p) => {
                let p = cwd.join(p);
                if !p.exists() {
                    return Err(ConfigError::NotFound { path: p });
                }
                Some(p)
            }
            None => Some(cwd.join(DEFAULT_FILE)).filter(|p| p.is_file()),
        };
        let text = match &file {
            Some(p) => Some(
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let base_dir = file
            .as_deref()
            .and_then(Path::parent)
            .map_or_else(|| cwd.clone(), Path::to_path_buf);
        let label = file
            .as_ref()
            .map_or_else(|| DEFAULT_FILE.to_owned(), |p| p.display().to_string());

        let mut host = Figment::new();
        if let Some(text) = &text {
            host = host.merge(Toml::string(text));
        }
        let host = host.merge(env_provider());
        let workflow = match workflow {
            _ if !with_workflow => None,
            Some(p) => Some(cwd.join(p)),
            None => host
                .extract_inner::<Option<PathBuf>>("workflow")
                .ok()
                .flatten()
                .map(|p| base_dir.join(p)),
        };
        let (figment, workflow) = match workflow {
            Some(path) => {
                let loaded = crate::workflow::load_layer(&path, &host)?;
                (
                    Figment::from(&loaded.provider).merge(host.clone()),
                    Some(loaded),
                )
            }
            None => (host.clone(), None),
        };
        let mut config = extract(&figment, &label)?;
        config.base_dir = base_dir;
        config.source = file;
        config.load_warnings = env_warnings(&config, std::env::vars_os().map(|(k, _)| k));
        if let Some(w) = password_in_file(&host, &config, &label) {
            config.load_warnings.push(w);
        }
        if !with_workflow {
            config.workflow = None;
        }
        if let Some(loaded) = workflow {
            config.workflow = Some(loaded.path);
            config.workflow_prompt = loaded.prompt;
            config.load_warnings.extend(loaded.warnings);
        }
        Ok(config)
    }

    /// [`Config::load`], then [`Config::validate`].
    pub fn load_validated(path: Option<&Path>) -> Result<(Config, Vec<Warning>), ConfigError> {
        let config = Config::load(path)?;
        let warnings = config.validate()?;
        Ok((config, warnings))
    }

    /// Parse a TOML text alone, without environment overrides (for tests and
    /// `orch init`). Relative paths resolve against the working directory;
    /// change that with [`Config::with_base_dir`].
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let figment = Figment::from(Toml::string(text));
        let mut config = extract(&figment, DEFAULT_FILE)?;
        config.base_dir = std::env::current_dir().unwrap_or_default();
        Ok(config)
    }
}

fn extract(figment: &Figment, label: &str) -> Result<Config, ConfigError> {
    figment
        .extract::<Config>()
        .map_err(|err| ConfigError::invalid(err.into_iter().map(|e| describe(e, label)).collect()))
}

/// Where a bad value came from, for the end of a message.
enum Origin {
    File(String),
    Env(String),
    Unknown,
}

impl Origin {
    fn of(e: &figment::Error, label: &str, path: &[String]) -> Origin {
        match &e.metadata {
            Some(md) if md.name.starts_with(crate::workflow::PROVIDER_NAME) => Origin::File(
                md.name[crate::workflow::PROVIDER_NAME.len()..]
                    .trim()
                    .to_owned(),
            ),
            Some(md) if md.name.contains("environment") => Origin::Env(format!(
                "{ENV_PREFIX}{}",
                path.iter()
                    .map(|s| s.to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join(ENV_SEPARATOR)
            )),
            Some(_) => Origin::File(label.to_owned()),
            None => Origin::Unknown,
        }
    }

    fn suffix(&self) -> String {
        match self {
            Origin::File(f) => format!(" (in {f})"),
            Origin::Env(v) => format!(" (from environment variable {v})"),
            Origin::Unknown => String::new(),
        }
    }
}

/// Dotted key with sequence indices as `[i]`: `["repos","1","name"]` → `repos[1].name`.
pub(crate) fn render_key(path: &[String]) -> String {
    let mut out = String::new();
    for seg in path {
        if !out.is_empty() && !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(seg);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

fn describe(e: figment::Error, label: &str) -> Problem {
    let key = render_key(&e.path);
    match &e.kind {
        Kind::UnknownField(field, expected) => {
            // figment's path already ends with the unknown field.
            let mut full_path = e.path.clone();
            if full_path.last() != Some(field) {
                full_path.push(field.clone());
            }
            let full = render_key(&full_path);
            let parent = render_key(&full_path[..full_path.len() - 1]);
            let origin = Origin::of(&e, label, &full_path);
            let place = match &origin {
                Origin::File(f) => format!(" in {f}"),
                Origin::Env(v) => format!(" from environment variable {v}"),
                Origin::Unknown => String::new(),
            };
            let hint = match closest(field, expected) {
                Some(best) => format!("; did you mean `{}`?", join_key(&parent, best)),
                None if expected.is_empty() => String::new(),
                None => format!("; known keys here: {}", expected.join(", ")),
            };
            Problem {
                message: format!("unknown key `{full}`{place}{hint}"),
                key: full,
            }
        }
        Kind::MissingField(field) => {
            let full = join_key(&key, field);
            let what = "is required but missing; add it";
            Problem::at(full, what)
        }
        Kind::UnknownVariant(value, expected) => {
            let origin = Origin::of(&e, label, &e.path);
            Problem::at(
                key,
                format!(
                    "unknown value `{value}`{}; expected one of: {}",
                    origin.suffix(),
                    expected.join(", ")
                ),
            )
        }
        Kind::InvalidType(actual, expected) => {
            let origin = Origin::of(&e, label, &e.path);
            Problem::at(
                key,
                format!("expected {expected}, found {actual}{}", origin.suffix()),
            )
        }
        Kind::InvalidValue(actual, expected) => {
            let origin = Origin::of(&e, label, &e.path);
            Problem::at(
                key,
                format!("expected {expected}, found {actual}{}", origin.suffix()),
            )
        }
        Kind::Message(msg) if key.is_empty() => {
            // Provider-level failures (TOML syntax) carry no key: name the file.
            Problem::at(label, format!("cannot parse: {}", msg.trim()))
        }
        other => {
            let origin = Origin::of(&e, label, &e.path);
            let key = if key.is_empty() {
                label.to_owned()
            } else {
                key
            };
            Problem::at(key, format!("{other}{}", origin.suffix()))
        }
    }
}

fn join_key(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// The expected name nearest to a typo, if it is plausibly what was meant.
fn closest<'a>(typo: &str, expected: &[&'a str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|cand| (edit_distance(typo, cand), *cand))
        .filter(|(d, cand)| *d <= 2.max(cand.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, cand)| cand)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `ORCH_SERVER_LISTEN` (one underscore) looks like an override but is ignored:
/// say so, unless the variable is one the config names as a secret.
pub(crate) fn env_warnings(
    config: &Config,
    names: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<Warning> {
    let secrets: Vec<String> = config
        .secret_refs()
        .into_iter()
        .map(|(_, name)| name.to_ascii_uppercase())
        .collect();
    let mut out = Vec::new();
    for name in names {
        let Some(name) = name.to_str().map(str::to_owned) else {
            continue;
        };
        let upper = name.to_ascii_uppercase();
        let Some(rest) = upper.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if rest.contains(ENV_SEPARATOR) || secrets.contains(&upper) {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        let section = SECTIONS
            .iter()
            .filter(|s| **s != "data_dir")
            .find(|s| rest.starts_with(&format!("{s}_")));
        if let Some(section) = section {
            let key = &rest[section.len() + 1..];
            out.push(Warning::at(
                name.clone(),
                format!(
                    "ignored: nested keys of environment overrides are separated by a double \
                     underscore, e.g. {ENV_PREFIX}{}{ENV_SEPARATOR}{} for {section}.{key}",
                    section.to_ascii_uppercase(),
                    key.to_ascii_uppercase()
                ),
            ));
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// A PostgreSQL password written into the file breaks "secrets only by
/// environment variable name" (R-53); the same URL given through
/// `ORCH_STORE__URL` is fine.
fn password_in_file(figment: &Figment, config: &Config, label: &str) -> Option<Warning> {
    let url = config.store.url.as_deref()?;
    let from_file = figment
        .find_metadata("store.url")
        .is_some_and(|md| !md.name.contains("environment"));
    let authority = url.split_once("://")?.1.split('/').next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    (from_file && userinfo.contains(':')).then(|| {
        Warning::at(
            "store.url",
            format!(
                "contains a password in {label}; keep secrets out of the file and set \
                 {ENV_PREFIX}STORE{ENV_SEPARATOR}URL in the environment instead"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_render_with_indices() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(render_key(&p(&["repos", "1", "name"])), "repos[1].name");
        assert_eq!(render_key(&p(&["queue", "limits"])), "queue.limits");
        assert_eq!(render_key(&[]), "");
    }

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("limts", &["retry", "limits"]), Some("limits"));
        assert_eq!(closest("zzzzzz", &["retry", "limits"]), None);
    }

    #[test]
    fn single_underscore_override_is_reported_but_secrets_are_not() {
        let config = Config::default();
        let names = [
            "ORCH_SERVER_LISTEN",
            "ORCH_API_TOKEN",
            "ORCH_TEST_PG_URL",
            "ORCH_STORE__URL",
            "PATH",
        ]
        .into_iter()
        .map(std::ffi::OsString::from);
        let w = env_warnings(&config, names);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].key, "ORCH_SERVER_LISTEN");
        assert!(w[0].message.contains("ORCH_SERVER__LISTEN"), "{}", w[0]);
    }
}
