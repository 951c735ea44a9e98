//! What can go wrong with a configuration, said so an operator can fix it: every
//! problem names the key (`queue.max_attempts`, `repos[1].name`), says what is
//! wrong and, where it helps, what to do instead.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with the configuration. `key` is the dotted key it concerns
/// (`repos[1].name`), or the file name for problems that have no key (TOML syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    /// The whole sentence, starting with or containing the key.
    pub message: String,
}

impl Problem {
    /// A problem phrased `key: what`.
    pub fn at(key: impl Into<String>, what: impl fmt::Display) -> Self {
        let key = key.into();
        Problem {
            message: format!("{key}: {what}"),
            key,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Something that works but is probably not what the operator wants (a secret
/// that is not set, a section that the chosen kind ignores, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub key: String,
    pub message: String,
}

impl Warning {
    /// A warning phrased `key: what`.
    pub fn at(key: impl Into<String>, what: impl fmt::Display) -> Self {
        let key = key.into();
        Warning {
            message: format!("{key}: {what}"),
            key,
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config path was given explicitly but nothing is there.
    #[error(
        "config file {} not found; run `orch init` to create one there, or pass the path of an existing orch.toml",
        path.display()
    )]
    NotFound { path: PathBuf },

    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The workflow file (`--workflow`, `workflow` in orch.toml) cannot be used.
    #[error(transparent)]
    Workflow(#[from] crate::workflow::WorkflowError),

    /// The file or the environment does not describe a valid configuration.
    #[error("{}", render(problems))]
    Invalid { problems: Vec<Problem> },
}

impl ConfigError {
    pub(crate) fn invalid(problems: Vec<Problem>) -> Self {
        ConfigError::Invalid { problems }
    }

    /// The individual problems (empty for IO errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            _ => &[],
        }
    }

    /// The keys the problems concern, e.g. to highlight them in a UI or test.
    pub fn keys(&self) -> Vec<&str> {
        self.problems().iter().map(|p| p.key.as_str()).collect()
    }
}

fn render(problems: &[Problem]) -> String {
    match problems {
        [] => "invalid configuration".to_owned(),
        [one] => one.message.clone(),
        many => {
            let mut s = format!("{} problems in the configuration:", many.len());
            for p in many {
                s.push_str("\n  - ");
                s.push_str(&p.message);
            }
            s
        }
    }
}
