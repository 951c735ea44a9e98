//! `[sandbox]`: how agents are contained (issue 12). The mechanism lives in
//! `orch_agent::process::sandbox`; this is what the operator chooses.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[sandbox] mode`, and its per-kind override `[agents.<kind>] sandbox`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// The agent runs as orch's user, seeing what that user sees.
    #[default]
    Off,
    /// New mount, PID, IPC, UTS and network namespaces, no capabilities,
    /// Landlock where the kernel has it; only the run's paths are visible.
    Namespaces,
}

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Off => "off",
            SandboxMode::Namespaces => "namespaces",
        }
    }
}

/// `[sandbox]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    pub mode: SandboxMode,
    /// Read-only inside the sandbox, at the same path: the programs, libraries
    /// and configuration agents need. Missing paths are skipped.
    pub toolchain_paths: Vec<PathBuf>,
    /// Inside the toolchain paths, replaced by an empty file or folder:
    /// secrets an agent never needs.
    pub hidden_paths: Vec<PathBuf>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            mode: SandboxMode::Off,
            toolchain_paths: [
                "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            hidden_paths: [
                "/etc/shadow",
                "/etc/shadow-",
                "/etc/gshadow",
                "/etc/gshadow-",
                "/etc/sudoers",
                "/etc/sudoers.d",
                "/etc/ssh",
                "/etc/ssl/private",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        }
    }
}

/// The problems of the section, as (key, what) pairs for `validate`.
pub(crate) fn check_sandbox(s: &SandboxConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, list) in [
        ("toolchain_paths", &s.toolchain_paths),
        ("hidden_paths", &s.hidden_paths),
    ] {
        for (i, p) in list.iter().enumerate() {
            let plain = p.is_absolute()
                && p.components().all(|c| {
                    matches!(
                        c,
                        std::path::Component::RootDir | std::path::Component::Normal(_)
                    )
                });
            if !plain || p == std::path::Path::new("/") {
                out.push((
                    format!("sandbox.{name}[{i}]"),
                    format!(
                        "{} must be an absolute path below / without . or ..",
                        p.display()
                    ),
                ));
            }
        }
    }
    out
}

/// Each `[agents.<kind>] egress_allow` entry must be `host` or `host:port`.
pub(crate) fn check_egress(agents: &crate::AgentsConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for kind in orch_core::AgentKind::ALL {
        let Some(a) = agents.get(kind) else { continue };
        for (i, entry) in a.egress_allow.iter().enumerate() {
            let host = match entry.rsplit_once(':') {
                Some((h, p)) if p.parse::<u16>().is_ok_and(|p| p > 0) => h,
                Some(_) => "",
                None => entry.as_str(),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let fine = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
            if !fine {
                out.push((
                    format!("agents.{kind}.egress_allow[{i}]"),
                    format!("{entry:?} must be a host name or address, optionally with :port"),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchain_paths_must_be_plain_and_absolute() {
        let mut s = SandboxConfig::default();
        assert!(check_sandbox(&s).is_empty());
        s.toolchain_paths = vec!["usr".into(), "/".into(), "/a/../etc".into(), "/ok".into()];
        let keys: Vec<String> = check_sandbox(&s).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "sandbox.toolchain_paths[0]",
                "sandbox.toolchain_paths[1]",
                "sandbox.toolchain_paths[2]"
            ]
        );
    }

    #[test]
    fn a_kinds_own_mode_overrides_the_sandbox_section() {
        let cfg = crate::Config::from_toml_str(
            "[sandbox]\nmode = \"namespaces\"\n[agents.deployer]\nsandbox = \"off\"\n",
        )
        .unwrap();
        use orch_core::AgentKind;
        assert_eq!(
            cfg.sandbox_mode(AgentKind::Developer),
            SandboxMode::Namespaces
        );
        assert_eq!(cfg.sandbox_mode(AgentKind::Deployer), SandboxMode::Off);
        let off = crate::Config::from_toml_str("").unwrap();
        assert_eq!(off.sandbox_mode(AgentKind::Developer), SandboxMode::Off);
    }

    #[test]
    fn egress_entries_are_hosts_with_an_optional_port() {
        let agents = crate::AgentsConfig {
            developer: Some(crate::AgentConfig {
                egress_allow: vec![
                    "api.example:443".into(),
                    "api.example".into(),
                    "[::1]:8080".into(),
                    "api.example:0".into(),
                    "http://api.example".into(),
                    "".into(),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let keys: Vec<String> = check_egress(&agents).into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "agents.developer.egress_allow[3]",
                "agents.developer.egress_allow[4]",
                "agents.developer.egress_allow[5]"
            ]
        );
    }
}
