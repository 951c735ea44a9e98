//! `orch doctor`: is this orch ready to run? The configuration (already
//! validated by loading it), the store, the agents' commands, and each
//! configured provider (credentials, reachability, webhook secret, states).
//! Every problem says what to fix; any failure makes the exit code 1.

use crate::args::DoctorArgs;
use crate::error::{CliError, CliResult};
use crate::render::print_json;
use orch_config::Config;
use orch_integrations::doctor::{Check, Level, check_providers};

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
            println!("{tag} {:<14} {}", c.subject, c.message);
        }
    }
    if failed > 0 {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "{failed} check(s) failed; fix them as described above"
        )));
    }
    Ok(())
}
