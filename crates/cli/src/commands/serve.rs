//! `orch serve`: the pipeline, the supervisor (dispatcher, watchers, reaper),
//! the ticker that repairs half-done steps, and the HTTP API, in one process.
//!
//! SIGTERM/SIGINT stop claiming and leave running agents alone: the next
//! `orch serve` re-adopts them.

use crate::error::{CliError, CliResult};
use orch_agent::process::{CgroupMode, MonitorCommand, StopPolicy};
use orch_config::Config;
use orch_engine::pipeline::{Pipeline, PipelinePreparer};
use orch_engine::supervisor::{AgentEnv, Budget, Supervisor, SupervisorConfig};
use orch_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Everything `orch serve` runs, started; `shutdown` stops it gracefully.
pub struct Engine {
    pub pipeline: Arc<Pipeline>,
    pub supervisor: Arc<Supervisor>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Held while the engine runs; the kernel drops it when the process dies.
    _lock: DataDirLock,
}

/// One engine per data folder: two would both claim, tick and merge. An
/// exclusive `flock` on `<data_dir>/serve.pid`, which also names the holder's
/// pid (a self-deploy script restarts orch with it).
struct DataDirLock(#[allow(dead_code)] nix::fcntl::Flock<std::fs::File>);

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
        let mut lock = match nix::fcntl::Flock::lock(
            file,
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        ) {
            Ok(l) => l,
            Err((mut file, _)) => {
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
        Ok(DataDirLock(lock))
    }
}

impl Engine {
    pub async fn start(cfg: &Config, store: Arc<dyn Store>) -> CliResult<Engine> {
        let lock = DataDirLock::take(cfg)?;
        let worker = worker_id();
        let pipeline = super::pipeline(cfg, store.clone(), &format!("worker:{worker}"));
        let cfg_arc = Arc::new(cfg.clone());
        for repo in &cfg.repos {
            let remote = cfg.repo_remote(repo);
            if let Err(e) = pipeline.repos().ensure_mirror(&repo.name, &remote).await {
                eprintln!("warning: repo {}: cannot mirror {remote}: {e}", repo.name);
            }
        }
        if let Err(e) = pipeline.repos().prune_stale().await {
            tracing::warn!(error = %e, "pruning stale worktrees failed");
        }
        let preparer = Arc::new(PipelinePreparer::new(
            store.clone(),
            cfg_arc.clone(),
            pipeline.repos().clone(),
        ));
        let monitor =
            MonitorCommand::current_exe().map_err(|e| CliError::Runtime(anyhow::anyhow!("{e}")))?;
        let sup_cfg = SupervisorConfig {
            worker: orch_core::WorkerId(worker),
            runs_dir: cfg.runs_dir(),
            lease: cfg.lease(),
            heartbeat: cfg.heartbeat(),
            poll: cfg.poll_interval(),
            tick: Duration::from_secs(1),
            limits: cfg.limits(),
            gates: cfg.gates(),
            retry: cfg.retry_policy(),
            stop: StopPolicy {
                grace_int: cfg.stop_grace_int(),
                grace_term: cfg.stop_grace_term(),
                kill_wait: Duration::from_secs(10),
            },
            budget: Budget {
                max_tokens: cfg.budget.max_tokens,
                max_cost_usd: cfg.budget.max_cost_usd,
                max_wall_secs: cfg.budget.max_wall_secs,
            },
            env: AgentEnv {
                allow: cfg.agent_env.allow.clone(),
                set: cfg.agent_env.set.clone(),
            },
            monitor,
            cgroup: CgroupMode::Auto,
        };
        let (supervisor, mut reports) = Supervisor::new(store.clone(), preparer, sup_cfg);
        pipeline.attach_supervisor(supervisor.clone());
        // Repair what a crash left half done before new work is claimed: git's
        // leftovers in the worktrees first, then the pipeline's steps.
        if let Err(e) = pipeline.recover_worktrees().await {
            tracing::warn!(error = %e, "clearing crash leftovers in the worktrees failed");
        }
        if let Err(e) = pipeline.tick_all().await {
            tracing::warn!(error = %e, "start-up tick failed");
        }
        let mut tasks = supervisor.start().await;
        // A job queued by this process (API, webhook, ticker) is claimed at once.
        {
            let (queued, s) = (pipeline.job_queued(), supervisor.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    queued.notified().await;
                    s.wake();
                }
            }));
        }
        // Writes by other processes sharing the store (another node, the CLI
        // without an engine) wake this one at once on PostgreSQL
        // (LISTEN/NOTIFY, `Store::queue_signals`); SQLite has no signals.
        // The dispatcher's poll and the ticker below stay the fallback.
        match store.queue_signals().await {
            Ok(Some(signals)) => tasks.extend(follow_signals(
                signals,
                pipeline.clone(),
                supervisor.clone(),
            )),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                error = %e,
                "cannot listen for queue signals; other nodes' work is seen at the next poll"
            ),
        }
        // The tracker's writes that failed (an outage, a refusal) are retried
        // in order until the tracker takes them, across restarts.
        tasks.push(tokio::spawn(
            pipeline.tracker_outbox().run(Duration::from_secs(2)),
        ));
        // Outgoing notifications: post what the outbox holds, at once
        // when the pipeline writes, and retries on a timer.
        if !cfg.notify.is_empty() {
            match orch_integrations::notify::HttpPoster::new(Duration::from_secs(10)) {
                Ok(poster) => {
                    let outbox = orch_engine::notify::Outbox::new(
                        store.clone(),
                        &cfg.notify,
                        &|name| cfg.secret(name),
                        Arc::new(poster),
                        pipeline.notification_queued(),
                    );
                    tasks.push(tokio::spawn(outbox.run(Duration::from_secs(2))));
                }
                Err(e) => tracing::error!(error = %e, "notifications cannot be sent"),
            }
        }
        // A finished run moves its task on at once.
        {
            let (p, s) = (pipeline.clone(), supervisor.clone());
            tasks.push(tokio::spawn(async move {
                while let Some(r) = reports.recv().await {
                    if let Err(e) = p.on_run_report(&r).await {
                        tracing::warn!(task = %r.task_id, error = %e, "tick after a run failed");
                    }
                    s.wake();
                }
            }));
        }
        // The level-triggered ticker: gates moved by other processes (the CLI),
        // leases freed, restarts.
        {
            let (p, s) = (pipeline.clone(), supervisor.clone());
            let plane = orch_integrations::providers::Providers::from_config(cfg, pipeline.repos())
                .reconciler(pipeline.clone());
            let every = cfg.poll_interval().max(Duration::from_millis(200));
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    tokio::time::sleep(every).await;
                    if let Err(e) = p.tick_all().await {
                        tracing::warn!(error = %e, "tick failed");
                    }
                    // The reconciler repairs gate states nobody told us about.
                    if n % 25 == 0 {
                        // Plane or GitHub Issues: one listing per project per cycle.
                        if let Some(r) = &plane {
                            let st = r.run_once().await;
                            if st.repaired > 0 || st.errors > 0 {
                                tracing::info!(
                                    repaired = st.repaired,
                                    errors = st.errors,
                                    calls = st.api_calls,
                                    "reconciled with the tracker"
                                );
                            }
                        } else {
                            match p.reconcile_once().await {
                                Ok(r) if r.repaired > 0 => tracing::info!(
                                    repaired = r.repaired,
                                    skipped_terminal = r.skipped_terminal,
                                    "reconciled"
                                ),
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, "reconcile failed"),
                            }
                        }
                    }
                    s.wake();
                }
            }));
        }
        Ok(Engine {
            pipeline,
            supervisor,
            tasks,
            _lock: lock,
        })
    }

    /// Stop claiming and ticking; running agents keep running (re-adopted later).
    pub fn shutdown(self) {
        self.supervisor.shutdown();
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Act on queue signals from other processes. What each one does, and why:
/// - every signal wakes the dispatcher: claiming is one statement that
///   evaluates every gate (dependencies, the serial gate, limits), so a new
///   job, a freed limit slot or an opened gate is claimed at once;
/// - a cancelled job whose run this node watches is stopped now
///   (`Supervisor::stop_cancelled_job`) rather than at its next heartbeat;
/// - a task created, moved, cancelled or releasing a lease is ticked, that
///   task only (a task another process added gets its first job at once).
///   Not `tick_all`: every node hears every move of the cluster, and a
///   pass over all tasks per move would grow with the table; the ticker
///   keeps doing that pass every poll. Ticks go through a set drained by
///   one loop, so a burst of signals for one task costs one tick and a burst
///   for many tasks never runs more than one tick at a time;
/// - `Resync` (the listener reconnected and may have missed signals) does
///   what a poll does: a dispatch and a `tick_all`.
fn follow_signals(
    mut signals: orch_store::QueueSignals,
    pipeline: Arc<Pipeline>,
    supervisor: Arc<Supervisor>,
) -> [tokio::task::JoinHandle<()>; 2] {
    use orch_store::QueueSignal;
    use std::collections::BTreeSet;
    // Tasks to tick; `None` in it: tick them all.
    let pending: Arc<std::sync::Mutex<BTreeSet<Option<orch_core::TaskId>>>> = Arc::default();
    let nudge = Arc::new(tokio::sync::Notify::new());
    let ticker = {
        let (pending, nudge, p, s) = (pending.clone(), nudge.clone(), pipeline, supervisor.clone());
        tokio::spawn(async move {
            loop {
                nudge.notified().await;
                let due = std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
                if due.contains(&None) {
                    if let Err(e) = p.tick_all().await {
                        tracing::warn!(error = %e, "tick after a queue resync failed");
                    }
                } else {
                    for task in due.into_iter().flatten() {
                        // Another node ticking the same task may win a
                        // step (a stage conflict): expected, so not a warning.
                        if let Err(e) = p.tick(task).await {
                            tracing::debug!(task = %task, error = %e, "tick after a queue signal failed");
                        }
                    }
                }
                s.wake();
            }
        })
    };
    let follower = tokio::spawn(async move {
        while let Some(signal) = signals.recv().await {
            let tick = match signal {
                QueueSignal::JobQueued { .. } | QueueSignal::JobEnded { .. } => None,
                QueueSignal::JobCancelled { job, task } => {
                    if supervisor.stop_cancelled_job(job).await {
                        tracing::info!(job = %job, "run stopped: its job was cancelled by another process");
                    }
                    Some(Some(task))
                }
                QueueSignal::GateMoved { task } => Some(Some(task)),
                QueueSignal::Resync => Some(None),
            };
            if let Some(t) = tick {
                pending.lock().unwrap_or_else(|e| e.into_inner()).insert(t);
                nudge.notify_one();
            }
            supervisor.wake();
        }
        tracing::warn!("queue signals ended; other nodes' work is seen at the next poll");
    });
    [follower, ticker]
}

/// A stable name for this machine's worker: a restart on the same machine
/// re-adopts the runs the previous process started.
fn worker_id() -> String {
    std::env::var("ORCH_WORKER_ID")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
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
        .with_writer(std::io::stderr);
    let _ = match cfg.logging.format {
        orch_config::LogFormat::Json => builder.json().try_init(),
        orch_config::LogFormat::Human => builder.try_init(),
    };
}

pub async fn run(cfg: &Config, listen: Option<String>) -> CliResult {
    init_logging(cfg);
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
    let engine = Engine::start(cfg, store).await?;
    // The CLI beside this engine sends its changes here (crate::engine_link).
    let mut reach = local;
    if reach.ip().is_unspecified() {
        reach.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let (control, _control_file) =
        crate::engine_link::Control::publish(cfg, &format!("http://{reach}"))?;
    eprintln!(
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
        engine.pipeline.clone(),
        cfg,
        Some(control.token),
        shutdown,
    )
    .await?;
    eprintln!("orch serve: shutting down; running agents are left for the next start to re-adopt");
    engine.shutdown();
    Ok(())
}
