//! `orch doctor`: is this orch ready to run? The configuration (already
//! validated by loading it), the store, the agents' commands, and each
//! configured provider (credentials, reachability, webhook secret, states),
//! and whether agents can be (and are) sandboxed.
//! Every problem says what to fix; any failure makes the exit code 1.

use crate::args::DoctorArgs;
use crate::error::{CliError, CliResult};
use crate::output::outln;
use crate::render::print_json;
use orch_config::Config;
use orch_integrations::doctor::{Check, Level, check_providers};

/// Whether the machine can sandbox agents, and whether the configuration
/// asks for it: a configured sandbox the machine cannot make fails.
fn sandbox_check(cfg: &Config) -> Check {
    use orch_config::SandboxMode;
    let support = orch_agent::process::sandbox::probe();
    let wanted = orch_core::AgentKind::ALL
        .iter()
        .any(|k| cfg.sandbox_mode(*k) == SandboxMode::Namespaces);
    let landlock = match support.landlock_abi {
        Some(v) => format!("Landlock ABI {v}"),
        None => "no Landlock in this kernel (the mounts are the only fence)".to_owned(),
    };
    let (level, message) = match (&support.namespaces, wanted) {
        (Ok(()), true) => (Level::Ok, format!("agents run in namespaces; {landlock}")),
        (Ok(()), false) => (
            Level::Warn,
            format!(
                "this machine supports [sandbox] mode = \"namespaces\" ({landlock}), but agents run unsandboxed"
            ),
        ),
        (Err(why), true) => (
            Level::Fail,
            format!("[sandbox] mode = \"namespaces\" is configured but unsupported here: {why}"),
        ),
        (Err(why), false) => (
            Level::Warn,
            format!("agents run unsandboxed; this machine cannot sandbox them: {why}"),
        ),
    };
    Check {
        subject: "sandbox".into(),
        level,
        message,
    }
}

pub async fn run(cfg: &Config, a: &DoctorArgs) -> CliResult {
    let mut checks = vec![Check {
        subject: "config".into(),
        level: Level::Ok,
        message: match cfg.source_path() {
            Some(p) => format!("{} is valid", p.display()),
            None => "no orch.toml here: the embedded defaults are valid".into(),
        },
    }];
    checks.push(match super::open_store(cfg).await {
        Ok(store) => match store.ping().await {
            Ok(()) => Check {
                subject: "store".into(),
                level: Level::Ok,
                message: "opened and migrated".into(),
            },
            Err(e) => Check {
                subject: "store".into(),
                level: Level::Fail,
                message: format!("{e}"),
            },
        },
        Err(e) => Check {
            subject: "store".into(),
            level: Level::Fail,
            message: format!("{e}; check store.url and that data_dir is writable"),
        },
    });
    checks.push(sandbox_check(cfg));
    checks.extend(check_providers(cfg, &|name| cfg.secret(name)).await);
    let failed = checks.iter().filter(|c| c.level == Level::Fail).count();
    if a.json {
        print_json(&checks)?;
    } else {
        for c in &checks {
            let tag = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            outln!("{tag} {:<14} {}", c.subject, c.message);
        }
    }
    if failed > 0 {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "{failed} check(s) failed; fix them as described above"
        )));
    }
    Ok(())
}
