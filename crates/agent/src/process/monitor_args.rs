//! The monitor's command line, parsed by hand (it is tiny and must accept any
//! bytes after `--`), and rendered back by the launcher so both sides agree.
//!
//! ```text
//! orch-monitor --run-dir DIR [--run-id ID] [--cwd DIR]
//!              [--env-file FILE] [--env K=V]... [--no-cgroup]
//!              [--sandbox FILE] [--memory-mb N] [--cpu-percent N]
//!              [--pids N] [--stray-grace-ms N] -- PROGRAM [ARGS...]
//! ```
//!
//! `--env` puts values on the command line, where every user can read them in
//! `/proc/<pid>/cmdline`; the launcher therefore passes the environment in an
//! `--env-file` (a JSON object, mode 0600) that the monitor deletes once read.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

/// Time the monitor gives processes the agent left behind to exit on SIGTERM
/// before it SIGKILLs them.
pub const DEFAULT_STRAY_GRACE: Duration = Duration::from_secs(2);

/// Everything the monitor needs to run one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorArgs {
    pub run_dir: PathBuf,
    /// Defaults to the run folder's name.
    pub run_id: Option<String>,
    /// The agent's working directory; defaults to the monitor's.
    pub cwd: Option<PathBuf>,
    /// Variables given with `--env`; merged over those of `env_file`.
    pub env: BTreeMap<String, String>,
    pub env_file: Option<PathBuf>,
    /// Put the agent in a cgroup v2 of its own where possible.
    pub cgroup: bool,
    /// A `sandbox.json` ([`super::sandbox::SandboxSpec`]): run the agent
    /// sandboxed, or not at all.
    pub sandbox: Option<PathBuf>,
    pub limits: super::limits::ResourceLimits,
    pub stray_grace: Duration,
    /// The agent's command: program and arguments, run without a shell.
    pub argv: Vec<OsString>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("missing --run-dir")]
    MissingRunDir,
    #[error("missing the agent command after `--`")]
    MissingCommand,
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error("unknown option {0:?}; usage: {USAGE}")]
    Unknown(String),
    #[error("invalid value for {option}: {value:?} ({why})")]
    Invalid {
        option: &'static str,
        value: String,
        why: &'static str,
    },
}

pub const USAGE: &str = "orch-monitor --run-dir DIR [--run-id ID] [--cwd DIR] [--env-file FILE] \
                         [--env K=V]... [--no-cgroup] [--sandbox FILE] [--memory-mb N] [--cpu-percent N] [--pids N] [--stray-grace-ms N] -- PROGRAM [ARGS...]";

impl MonitorArgs {
    /// A monitor for `argv` writing into `run_dir`, with defaults for the rest.
    pub fn new(run_dir: impl Into<PathBuf>, argv: Vec<OsString>) -> MonitorArgs {
        MonitorArgs {
            run_dir: run_dir.into(),
            run_id: None,
            cwd: None,
            env: BTreeMap::new(),
            env_file: None,
            cgroup: true,
            sandbox: None,
            limits: Default::default(),
            stray_grace: DEFAULT_STRAY_GRACE,
            argv,
        }
    }

    /// Parses the arguments that follow the program name (or the `monitor`
    /// subcommand).
    pub fn parse<I, S>(args: I) -> Result<MonitorArgs, ArgsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut it = args.into_iter().map(Into::into);
        let mut run_dir = None;
        let mut out = MonitorArgs::new(PathBuf::new(), Vec::new());
        while let Some(arg) = it.next() {
            let mut value = |name: &str| {
                it.next()
                    .ok_or_else(|| ArgsError::MissingValue(name.to_owned()))
            };
            match arg.to_str() {
                Some("--") => {
                    out.argv = it.by_ref().collect();
                    break;
                }
                Some("--run-dir") => run_dir = Some(PathBuf::from(value("--run-dir")?)),
                Some("--run-id") => out.run_id = Some(utf8("--run-id", value("--run-id")?)?),
                Some("--cwd") => out.cwd = Some(PathBuf::from(value("--cwd")?)),
                Some("--env-file") => out.env_file = Some(PathBuf::from(value("--env-file")?)),
                Some("--env") => {
                    let kv = utf8("--env", value("--env")?)?;
                    let (k, v) = kv.split_once('=').ok_or(ArgsError::Invalid {
                        option: "--env",
                        value: kv.clone(),
                        why: "expected K=V",
                    })?;
                    if k.is_empty() {
                        return Err(ArgsError::Invalid {
                            option: "--env",
                            value: kv.clone(),
                            why: "empty name",
                        });
                    }
                    out.env.insert(k.to_owned(), v.to_owned());
                }
                Some("--no-cgroup") => out.cgroup = false,
                Some("--memory-mb") => {
                    out.limits.memory_mb = Some(number("--memory-mb", value("--memory-mb")?)?)
                }
                Some("--cpu-percent") => {
                    out.limits.cpu_percent = Some(number("--cpu-percent", value("--cpu-percent")?)?)
                }
                Some("--pids") => out.limits.pids = Some(number("--pids", value("--pids")?)?),
                Some("--sandbox") => out.sandbox = Some(PathBuf::from(value("--sandbox")?)),
                Some("--stray-grace-ms") => {
                    let v = utf8("--stray-grace-ms", value("--stray-grace-ms")?)?;
                    let ms = v.parse::<u64>().map_err(|_| ArgsError::Invalid {
                        option: "--stray-grace-ms",
                        value: v,
                        why: "expected milliseconds",
                    })?;
                    out.stray_grace = Duration::from_millis(ms);
                }
                _ => return Err(ArgsError::Unknown(arg.to_string_lossy().into_owned())),
            }
        }
        out.run_dir = run_dir.ok_or(ArgsError::MissingRunDir)?;
        if out.argv.is_empty() {
            return Err(ArgsError::MissingCommand);
        }
        Ok(out)
    }

    /// The command line that [`MonitorArgs::parse`] turns back into `self`.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["--run-dir".into(), self.run_dir.clone().into()];
        if let Some(id) = &self.run_id {
            a.extend(["--run-id".into(), id.into()]);
        }
        if let Some(cwd) = &self.cwd {
            a.extend(["--cwd".into(), cwd.clone().into()]);
        }
        if let Some(f) = &self.env_file {
            a.extend(["--env-file".into(), f.clone().into()]);
        }
        for (k, v) in &self.env {
            a.extend(["--env".into(), format!("{k}={v}").into()]);
        }
        if !self.cgroup {
            a.push("--no-cgroup".into());
        }
        let l = &self.limits;
        for (flag, v) in [
            ("--memory-mb", l.memory_mb),
            ("--cpu-percent", l.cpu_percent.map(u64::from)),
            ("--pids", l.pids.map(u64::from)),
        ] {
            if let Some(v) = v {
                a.extend([flag.into(), v.to_string().into()]);
            }
        }
        if let Some(f) = &self.sandbox {
            a.extend(["--sandbox".into(), f.clone().into()]);
        }
        if self.stray_grace != DEFAULT_STRAY_GRACE {
            a.extend([
                "--stray-grace-ms".into(),
                self.stray_grace.as_millis().to_string().into(),
            ]);
        }
        a.push("--".into());
        a.extend(self.argv.iter().cloned());
        a
    }
}

fn number<T: std::str::FromStr>(option: &'static str, v: OsString) -> Result<T, ArgsError> {
    let v = utf8(option, v)?;
    v.parse().map_err(|_| ArgsError::Invalid {
        option,
        value: v,
        why: "expected a whole number",
    })
}

fn utf8(option: &'static str, v: OsString) -> Result<String, ArgsError> {
    v.into_string().map_err(|v| ArgsError::Invalid {
        option,
        value: OsStr::new(&v).to_string_lossy().into_owned(),
        why: "not UTF-8",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_command_line_and_round_trips() {
        let a = MonitorArgs::parse([
            "--run-dir",
            "/r",
            "--run-id",
            "r-1",
            "--cwd",
            "/w",
            "--env-file",
            "/r/agent.env",
            "--env",
            "A=1=2",
            "--no-cgroup",
            "--sandbox",
            "/r/sandbox.json",
            "--memory-mb",
            "64",
            "--pids",
            "32",
            "--stray-grace-ms",
            "250",
            "--",
            "sh",
            "-c",
            "echo --run-dir",
        ])
        .expect("parses");
        assert_eq!(a.run_dir, PathBuf::from("/r"));
        assert_eq!(a.run_id.as_deref(), Some("r-1"));
        assert_eq!(a.env.get("A").map(String::as_str), Some("1=2"));
        assert!(!a.cgroup);
        assert_eq!(a.sandbox, Some(PathBuf::from("/r/sandbox.json")));
        assert_eq!(
            a.limits,
            super::super::limits::ResourceLimits {
                memory_mb: Some(64),
                cpu_percent: None,
                pids: Some(32),
            }
        );
        assert_eq!(a.stray_grace, Duration::from_millis(250));
        assert_eq!(
            a.argv,
            vec![OsString::from("sh"), "-c".into(), "echo --run-dir".into()]
        );
        assert_eq!(MonitorArgs::parse(a.to_args()), Ok(a));
    }

    #[test]
    fn rejects_incomplete_command_lines() {
        assert_eq!(
            MonitorArgs::parse(["--", "x"]),
            Err(ArgsError::MissingRunDir)
        );
        assert_eq!(
            MonitorArgs::parse(["--run-dir", "/r"]),
            Err(ArgsError::MissingCommand)
        );
        assert_eq!(
            MonitorArgs::parse(["--run-dir"]),
            Err(ArgsError::MissingValue("--run-dir".into()))
        );
        assert!(matches!(
            MonitorArgs::parse(["--bogus"]),
            Err(ArgsError::Unknown(_))
        ));
        assert!(matches!(
            MonitorArgs::parse(["--run-dir", "/r", "--env", "NOEQUALS", "--", "x"]),
            Err(ArgsError::Invalid { .. })
        ));
    }
}
