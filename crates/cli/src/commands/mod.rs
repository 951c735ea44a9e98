//! One module per command group; `run` dispatches.

mod archives;
mod db;
mod doctor;
mod gc;
mod init;
mod logs;
mod node;
mod outbox;
mod quickstart;
pub mod serve;
mod status;
mod task;

use crate::args::{Cli, Command, DbCommand, NodeCommand, OutboxCommand, TaskAction, TaskCommand};
use crate::error::CliResult;
use orch_config::Config;
use orch_store::{SqliteOptions, Store, Synchronous};
use std::path::Path;
use std::sync::Arc;

pub async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Init(a) => init::run(&a),
        Command::Db(DbCommand::Migrate) => db::migrate(&load_config(cli.config.as_deref())?).await,
        Command::Db(DbCommand::Copy(a)) => db::copy(&load_config(cli.config.as_deref())?, &a).await,
        Command::Task(cmd) => {
            let cfg = load_config(cli.config.as_deref())?;
            match cmd {
                TaskCommand::Add(a) => task::add(&cfg, a).await,
                TaskCommand::List(a) => task::list(&cfg, &a).await,
                TaskCommand::Show(a) => task::show(&cfg, &a).await,
                TaskCommand::Wait(a) => task::wait(&cfg, &a).await,
                TaskCommand::Start(a) => task::action(&cfg, &a, TaskAction::Start).await,
                TaskCommand::Approve(a) => task::action(&cfg, &a, TaskAction::Approve).await,
                TaskCommand::Reject(a) => task::action(&cfg, &a, TaskAction::Reject).await,
                TaskCommand::ConfirmDeploy(a) => {
                    task::action(&cfg, &a, TaskAction::ConfirmDeploy).await
                }
                TaskCommand::Stop(a) => task::action(&cfg, &a, TaskAction::Stop).await,
                TaskCommand::Retry(a) => task::action(&cfg, &a, TaskAction::Retry).await,
                TaskCommand::Answer(a) => {
                    let a = crate::args::TaskActionArgs {
                        task: a.task,
                        comment: Some(a.answer),
                        json: a.json,
                    };
                    task::action(&cfg, &a, TaskAction::Answer).await
                }
                TaskCommand::Logs(a) => logs::run(&cfg, &a).await,
                TaskCommand::Restore(a) => archives::restore(&cfg, &a).await,
            }
        }
        Command::Doctor(a) => doctor::run(&load_config(cli.config.as_deref())?, &a).await,
        Command::Outbox(cmd) => {
            let cfg = load_config(cli.config.as_deref())?;
            match cmd {
                OutboxCommand::List(a) => outbox::list(&cfg, &a).await,
                OutboxCommand::Retry(a) => outbox::retry(&cfg, &a).await,
            }
        }
        Command::Node(cmd) => {
            let cfg = load_config(cli.config.as_deref())?;
            match cmd {
                NodeCommand::List(a) => node::list(&cfg, &a).await,
                NodeCommand::Drain(a) => node::drain(&cfg, &a).await,
            }
        }
        Command::Quickstart(a) => quickstart::run(&a).await,
        Command::Mcp(a) => crate::mcp::run(&a).await,
        Command::Serve(a) => {
            let mut cfg = load_config_with(cli.config.as_deref(), a.workflow.as_deref())?;
            let log_format = a.log_format.map(|f| match f {
                crate::args::LogFormatArg::Human => orch_config::LogFormat::Human,
                crate::args::LogFormatArg::Json => orch_config::LogFormat::Json,
            });
            if let Some(f) = log_format {
                cfg.logging.format = f;
            }
            let recipe = serve::ConfigRecipe {
                file: cli.config.clone(),
                workflow: a.workflow.clone(),
                log_format,
            };
            serve::run(&cfg, recipe, a.listen, a.node).await
        }
        Command::Status(a) => status::run(&load_config(cli.config.as_deref())?, &a).await,
        Command::Gc(a) => gc::run(&load_config(cli.config.as_deref())?, &a).await,
    }
}

/// Load and validate the configuration; warnings go to stderr. Warnings about
/// the HTTP server are left to the commands that serve (they are noise here).
///
/// A workflow file (`workflow` in orch.toml) that does not load does not stop
/// the commands beside the engine: its content matters to `orch serve`
/// alone, which keeps working with its last good version (live reload). They
/// warn and go on with orch.toml alone.
pub fn load_config(path: Option<&Path>) -> CliResult<Config> {
    match load_config_with(path, None) {
        Ok(cfg) => Ok(cfg),
        Err(e) => match Config::load_without_workflow(path) {
            Ok(cfg) if cfg.validate().is_ok() => {
                orch_core::note!(
                    "warning: {e}\nwarning: going on without the workflow file (orch serve keeps its last good version)"
                );
                Ok(cfg)
            }
            _ => Err(e),
        },
    }
}

/// [`load_config`] with a workflow file (`orch serve --workflow`).
pub fn load_config_with(path: Option<&Path>, workflow: Option<&Path>) -> CliResult<Config> {
    let cfg = Config::load_with_workflow(path, workflow)?;
    let warnings = cfg.validate()?;
    for w in warnings.iter().filter(|w| !w.key.starts_with("server.")) {
        orch_core::note!("warning: {w}");
    }
    Ok(cfg)
}

/// Open the configured store, bringing its schema up to date (idempotent).
pub async fn open_store(cfg: &Config) -> CliResult<Arc<dyn Store>> {
    let location = cfg.store_location()?;
    let options = SqliteOptions {
        synchronous: match cfg.store.synchronous {
            orch_config::Synchronous::Normal => Synchronous::Normal,
            orch_config::Synchronous::Full => Synchronous::Full,
        },
        busy_timeout: cfg.busy_timeout(),
        ..SqliteOptions::default()
    };
    let store = orch_store::open(&location.url(), options, cfg.store.max_connections).await?;
    store.migrate().await?;
    Ok(store)
}

/// The pipeline over the configured tracker and forge (the builtin tracker
/// and local forge unless orch.toml names Plane or Gitea).
pub fn pipeline(
    cfg: &Config,
    store: Arc<dyn Store>,
    actor: &str,
) -> Arc<orch_engine::pipeline::Pipeline> {
    let repos = orch_git::RepoStore::new(cfg.repos_dir());
    let providers = orch_integrations::providers::Providers::from_config(cfg, &repos);
    providers.pipeline(store, Arc::new(cfg.clone()), actor)
}
