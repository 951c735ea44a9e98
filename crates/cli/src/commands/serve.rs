//! `orch serve`: the engine (`orch_engine::Engine`: the pipeline, the
//! supervisor, the ticker, the outboxes) and the HTTP API, in one process,
//! built once from the configuration.
//!
//! SIGTERM/SIGINT stop claiming and leave running agents alone: the next
//! `orch serve` re-adopts them.

use crate::error::{CliError, CliResult};
use orch_agent::process::MonitorCommand;
use orch_config::Config;
use orch_engine::EngineParts;
use orch_engine::live_config::LiveConfig;
use orch_engine::pipeline::Pipeline;
use orch_engine::ports::{NotifyPoster, TrackerReconciler};
use orch_integrations::providers::Providers;
use orch_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Everything `orch serve` runs, started, with the data folder's lock held
/// while it runs; `shutdown` stops it gracefully.
pub struct Engine {
    pub inner: orch_engine::Engine,
    /// The providers the engine's pipeline was built on; the webhooks use
    /// the same clients (one budget per credential).
    pub providers: Arc<Providers>,
    /// Held while the engine runs; the kernel drops it when the process dies.
    _lock: DataDirLock,
}

/// One engine per data folder: two would both claim, tick and merge. An
/// exclusive `flock` on `<data_dir>/serve.pid`, which also names the holder's
/// pid (a self-deploy script restarts orch with it).
struct DataDirLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

/// How long a starting engine waits for the data folder's lock before it
/// says another engine holds it.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

impl DataDirLock {
    fn take(cfg: &Config) -> CliResult<DataDirLock> {
        use std::io::{Read, Seek, Write};
        let dir = cfg.data_dir();
        std::fs::create_dir_all(&dir).map_err(|e| {
            CliError::Runtime(anyhow::anyhow!("cannot create {}: {e}", dir.display()))
        })?;
        let path = dir.join("serve.pid");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                CliError::Runtime(anyhow::anyhow!("cannot open {}: {e}", path.display()))
            })?;
        // A CLI command asking whether an engine runs takes a shared lock
        // for an instant (`engine_link::engine_runs_on`): a lock refused
        // for that long is not another engine. One that holds it for
        // LOCK_PATIENCE is.
        let deadline = std::time::Instant::now() + LOCK_PATIENCE;
        let mut file = file;
        let taken = loop {
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(l) => break Ok(l),
                Err((f, nix::errno::Errno::EWOULDBLOCK))
                    if std::time::Instant::now() < deadline =>
                {
                    file = f;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err((f, _)) => break Err(f),
            }
        };
        let mut lock = match taken {
            Ok(l) => l,
            Err(mut file) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(CliError::Runtime(anyhow::anyhow!(
                    "another orch engine (pid {}) runs on {}; stop it first, or give this one its own data_dir",
                    holder.trim(),
                    dir.display()
                )));
            }
        };
        let written = lock
            .set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "{}", std::process::id()));
        written.map_err(|e| {
            CliError::Runtime(anyhow::anyhow!("cannot write {}: {e}", path.display()))
        })?;
        // An engine killed with SIGKILL left its address behind; it is not
        // ours (the CLI checks the pid in it as well).
        let _ = std::fs::remove_file(dir.join("serve.control"));
        let _ = std::fs::remove_file(dir.join(orch_engine::live_config::STATUS_FILE));
        Ok(DataDirLock(lock))
    }
}

impl Engine {
    /// Take the data folder, build the providers, the pipeline and the rest
    /// once, and start the engine on them.
    pub async fn start(
        cfg: &Config,
        store: Arc<dyn Store>,
        node: Option<String>,
        live: Option<Arc<LiveConfig>>,
        api_url: Option<String>,
    ) -> CliResult<Engine> {
        let lock = DataDirLock::take(cfg)?;
        let worker = node.unwrap_or_else(worker_id);
        let repos = orch_git::RepoStore::new(cfg.repos_dir());
        let providers = Arc::new(Providers::from_config(cfg, &repos));
        let pipeline = providers.pipeline(
            store.clone(),
            Arc::new(cfg.clone()),
            &format!("worker:{worker}"),
        );
        let monitor =
            MonitorCommand::current_exe().map_err(|e| CliError::Runtime(anyhow::anyhow!("{e}")))?;
        let reconciler = providers
            .reconciler(pipeline.clone())
            .map(|r| Arc::new(r) as Arc<dyn TrackerReconciler>);
        let poster = if cfg.notify.is_empty() {
            None
        } else {
            match orch_integrations::notify::HttpPoster::new(Duration::from_secs(10)) {
                Ok(p) => Some(Arc::new(p) as Arc<dyn NotifyPoster>),
                Err(e) => {
                    tracing::error!(error = %e, "notifications cannot be sent");
                    None
                }
            }
        };
        let inner = orch_engine::Engine::start(EngineParts {
            store,
            pipeline,
            reconciler,
            poster,
            monitor,
            worker,
            live,
            api_url,
        })
        .await;
        Ok(Engine {
            inner,
            providers,
            _lock: lock,
        })
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.inner.pipeline
    }

    /// This node's name among the engines sharing the store.
    pub fn node(&self) -> &str {
        self.inner.node()
    }

    /// Stop claiming and ticking; running agents keep running (re-adopted later).
    pub async fn shutdown(self) {
        self.inner.shutdown().await;
    }
}

/// A stable name for this machine's worker: a restart on the same machine
/// re-adopts the runs the previous process started.
fn worker_id() -> String {
    std::env::var("ORCH_WORKER_ID")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(host_name)
        .unwrap_or_else(|| "local".into())
}

/// This machine's host name, if it has one.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Logs to stderr: the configured level (RUST_LOG overrides it) and format.
pub fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.logging.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or journald gets plain text.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // A log line that cannot be written is dropped: reporting that on
        // stderr too would panic (`eprintln!`) when stderr is what failed.
        .log_internal_errors(false);
    let _ = match cfg.logging.format {
        orch_config::LogFormat::Json => builder.json().try_init(),
        orch_config::LogFormat::Human => builder.try_init(),
    };
}

/// Where `orch serve`'s configuration came from, so that an edit of its
/// files can be loaded again the same way (live reload).
pub struct ConfigRecipe {
    pub file: Option<PathBuf>,
    pub workflow: Option<PathBuf>,
    pub log_format: Option<orch_config::LogFormat>,
}

impl ConfigRecipe {
    /// The loader of the live configuration: the files as at start, with
    /// the command line's settings and the address really listened on.
    fn loader(self, listen: String) -> orch_engine::live_config::Loader {
        Box::new(move || {
            let mut c = Config::load_with_workflow(self.file.as_deref(), self.workflow.as_deref())
                .map_err(|e| e.to_string())?;
            let warnings = c.validate().map_err(|e| e.to_string())?;
            if let Some(f) = self.log_format {
                c.logging.format = f;
            }
            c.server.listen = listen.clone();
            if c.workflow_prompt().is_some() {
                orch_engine::pipeline::prompt_set(&c, &[]).map_err(|e| e.to_string())?;
            }
            Ok((c, warnings.iter().map(ToString::to_string).collect()))
        })
    }
}

pub async fn run(
    cfg: &Config,
    recipe: ConfigRecipe,
    listen: Option<String>,
    node: Option<String>,
) -> CliResult {
    init_logging(cfg);
    // A workflow's prompt that does not parse stops orch here, not at the
    // first developer run.
    if cfg.workflow_prompt().is_some() {
        orch_engine::pipeline::prompt_set(cfg, &[])
            .map_err(|e| CliError::Runtime(anyhow::anyhow!("{e}")))?;
    }
    let store = super::open_store(cfg).await?;
    let addr = match listen {
        Some(l) => l
            .parse()
            .map_err(|e| CliError::Usage(format!("--listen {l:?}: {e}; use HOST:PORT")))?,
        None => cfg.server.listen_addr()?,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::Runtime(anyhow::anyhow!(
            "cannot listen on {addr}: {e}; pick another address with --listen or server.listen"
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::Runtime(e.into()))?;
    // The address really listened on (`--listen`, port 0): the links orch
    // writes into tracker comments name it unless server.public_url is set.
    let mut cfg = cfg.clone();
    cfg.server.listen = local.to_string();
    let cfg = &cfg;
    // Before the engine starts, so its first claims are already counted.
    orch_server::install_metrics_recorder();
    let warnings = cfg.validate()?.iter().map(ToString::to_string).collect();
    let live = LiveConfig::reloading(
        Arc::new(cfg.clone()),
        warnings,
        recipe.loader(cfg.server.listen.clone()),
    );
    // The other nodes sharing the store stream this node's run logs from here.
    let api_url = cfg
        .server
        .node_url(&host_name().unwrap_or_else(|| "localhost".into()));
    let engine = Engine::start(cfg, store, node, Some(live), Some(api_url)).await?;
    // The CLI beside this engine sends its changes here (crate::engine_link).
    let mut reach = local;
    if reach.ip().is_unspecified() {
        reach.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let (control, _control_file) =
        crate::engine_link::Control::publish(cfg, &format!("http://{reach}"))?;
    orch_core::note!(
        "orch serve: listening on http://{local} (pid {})",
        std::process::id()
    );
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    crate::http::serve(
        listener,
        engine.pipeline().clone(),
        engine.providers.clone(),
        cfg,
        Some(control.token),
        engine.node().to_owned(),
        shutdown,
    )
    .await?;
    orch_core::note!(
        "orch serve: shutting down; running agents are left for the next start to re-adopt"
    );
    engine.shutdown().await;
    let _ = std::fs::remove_file(cfg.data_dir().join(orch_engine::live_config::STATUS_FILE));
    Ok(())
}
