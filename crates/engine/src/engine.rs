//! The engine: everything `orch serve` runs, built once and started as one.
//!
//! `Engine::start` takes what the configuration made — the store, the
//! pipeline over the configured tracker and forge, the tracker's reconciler
//! and the notification poster, each made once by the caller — and owns the
//! loops that carry work forward: the supervisor (dispatcher, watchers,
//! reaper), the run reports, the level-triggered ticker with the
//! reconciler, the cleanup of idle worktrees, the tracker outbox, the notification outbox, and the queue
//! signals of other processes. `orch serve` and `orch quickstart` are thin
//! callers of it.

use crate::live_config::LiveConfig;
use crate::notify::Outbox;
use crate::pipeline::{Pipeline, PipelinePreparer};
use crate::ports::{NotifyPoster, TrackerReconciler};
use crate::supervisor::{AgentEnv, Budget, Supervisor, SupervisorConfig};
use orch_agent::process::{CgroupMode, MonitorCommand, StopPolicy};
use orch_config::Config;
use orch_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How often the engine looks for idle worktrees to clean.
const CLEANUP_EVERY: Duration = Duration::from_secs(10 * 60);

/// What the engine is built from; each piece made once by the caller.
pub struct EngineParts {
    pub store: Arc<dyn Store>,
    pub pipeline: Arc<Pipeline>,
    /// The tracker's listing reconciler (Plane, GitHub Issues); `None`: the
    /// builtin tracker, whose items the pipeline reconciles itself.
    pub reconciler: Option<Arc<dyn TrackerReconciler>>,
    /// Posts the `[[notify]]` webhooks; `None` when none can be posted.
    pub poster: Option<Arc<dyn NotifyPoster>>,
    /// How agents are launched under a monitor (normally `orch monitor`).
    pub monitor: MonitorCommand,
    /// This machine's worker name (runs it started are re-adopted by it).
    pub worker: String,
    /// The configuration reloaded live (`orch serve`); `None`: the
    /// pipeline's configuration, fixed.
    pub live: Option<Arc<LiveConfig>>,
    /// Where the other nodes reach this engine's API (`server.node_url`);
    /// `None`: it serves none (`orch quickstart`).
    pub api_url: Option<String>,
}

/// The running engine; `shutdown` stops it gracefully.
pub struct Engine {
    pub pipeline: Arc<Pipeline>,
    pub supervisor: Arc<Supervisor>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    store: Arc<dyn Store>,
    /// This node's name among the engines sharing the store.
    node: String,
}

/// The supervisor's settings from the configuration.
pub fn supervisor_config(
    cfg: &Config,
    worker: String,
    monitor: MonitorCommand,
) -> SupervisorConfig {
    SupervisorConfig {
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
    }
}

impl Engine {
    /// Mirror the repos, repair what a crash left half done, and start every
    /// loop. Problems with one repo or one repair are logged, not fatal.
    pub async fn start(parts: EngineParts) -> Engine {
        let EngineParts {
            store,
            pipeline,
            reconciler,
            poster,
            monitor,
            worker,
            live,
            api_url,
        } = parts;
        let cfg = Arc::new(pipeline.config().clone());
        let live = live.unwrap_or_else(|| LiveConfig::fixed(cfg.clone()));
        pipeline.attach_live_config(live.clone());
        live.write_status();
        // A git killed with the previous orch leaves its locks in the
        // mirror, and every fetch of the repo would fail on them.
        for repo in &cfg.repos {
            if let Err(e) = pipeline.repos().clear_stale_mirror_locks(&repo.name) {
                tracing::warn!(repo = %repo.name, error = %e, "clearing stale locks in the mirror failed");
            }
        }
        for repo in &cfg.repos {
            let remote = cfg.repo_remote(repo);
            if let Err(e) = pipeline.repos().ensure_mirror(&repo.name, &remote).await {
                orch_core::note!("warning: repo {}: cannot mirror {remote}: {e}", repo.name);
            }
        }
        if let Err(e) = pipeline.repos().prune_stale().await {
            tracing::warn!(error = %e, "pruning stale worktrees failed");
        }
        let mut preparer =
            PipelinePreparer::new(store.clone(), cfg.clone(), pipeline.repos().clone())
                .with_live_config(live.clone());
        // The agents' `orch mcp` tools talk to this engine's API, on this
        // machine (the address it listens on; loopback for a wildcard).
        if let Ok(mut addr) = cfg.server.listen.parse::<std::net::SocketAddr>() {
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            preparer = preparer.with_agent_tools(monitor.program.clone(), format!("http://{addr}"));
        }
        let preparer = Arc::new(preparer);
        let worker_name = worker.clone();
        let sup_cfg = supervisor_config(&cfg, worker.clone(), monitor.clone());
        let (supervisor, mut reports) = Supervisor::new(store.clone(), preparer, sup_cfg);
        // A reload's limits, retry policy, budget and agent environment
        // apply to the work claimed after it. Weak: the live configuration
        // is held by the preparer the supervisor holds.
        {
            let sup = Arc::downgrade(&supervisor);
            live.on_reload(move |c| {
                if let Some(s) = sup.upgrade() {
                    s.reload(&supervisor_config(c, worker.clone(), monitor.clone()));
                }
            });
        }
        // STOP has the supervisor stop the runs it watches: one killer.
        pipeline.attach_supervisor(supervisor.clone());
        // Repair what a crash left half done before new work is claimed: git's
        // leftovers in the worktrees first, then the pipeline's steps.
        if let Err(e) = pipeline.recover_worktrees().await {
            tracing::warn!(error = %e, "clearing crash leftovers in the worktrees failed");
        }
        if let Err(e) = pipeline.tick_all().await {
            tracing::warn!(error = %e, "start-up tick failed");
        }
        // This engine as a node of the store: its first heartbeat before
        // any claim (a drain asked while it was down holds from the start),
        // then one every `queue.heartbeat_secs`.
        let me = crate::node::NodeIdentity::new(&worker_name, api_url);
        let worker_name = me.name.clone();
        let leads = crate::node::heartbeat(store.as_ref(), &me, &supervisor, cfg.lease()).await;
        let (leading, lead) = tokio::sync::watch::channel(leads);
        let mut tasks = supervisor.start().await;
        if live.reloads() {
            tasks.push(tokio::spawn(follow_config_edits(live.clone())));
        }
        tasks.push(tokio::spawn(crate::node::run(
            store.clone(),
            me,
            supervisor.clone(),
            cfg.heartbeat(),
            cfg.lease(),
            leading,
        )));
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
        // in order until the tracker takes them, across restarts; by the
        // leader only, so two nodes never send one item's writes at once.
        {
            let p = pipeline.clone();
            tasks.push(tokio::spawn(crate::node::while_leading(
                lead.clone(),
                move || p.tracker_outbox().run(Duration::from_secs(2)),
            )));
        }
        // Outgoing notifications: post what the outbox holds, at once
        // when the pipeline writes, and retries on a timer.
        if !cfg.notify.is_empty() {
            match poster {
                Some(poster) => {
                    let outbox = Arc::new(Outbox::new(
                        store.clone(),
                        &cfg.notify,
                        &|name| cfg.secret(name),
                        poster,
                        pipeline.notification_queued(),
                    ));
                    // By the leader only: one sender per message.
                    tasks.push(tokio::spawn(crate::node::while_leading(
                        lead.clone(),
                        move || {
                            let outbox = outbox.clone();
                            async move { outbox.run(Duration::from_secs(2)).await }
                        },
                    )));
                }
                None => tracing::error!("notifications are configured but cannot be sent"),
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
        // Disk care: ignored build outputs of worktrees idle for
        // `cleanup.cleanup_after_hours` go (issue 12). Idleness is counted
        // in hours, so a pass every few minutes is early enough.
        if let Some(idle) = cfg.cleanup.idle_after() {
            let (p, lead) = (pipeline.clone(), lead.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    // The leader cleans (each node its own worktrees: see
                    // `clean_idle_worktrees`); another node waits its turn.
                    if !*lead.borrow() {
                        tokio::time::sleep(CLEANUP_EVERY).await;
                        continue;
                    }
                    let since = crate::metered::now().minus(idle);
                    match p.clean_idle_worktrees(since).await {
                        Ok(pass) if !pass.cleaned.is_empty() => tracing::info!(
                            worktrees = pass.cleaned.len(),
                            freed_bytes = pass.freed_bytes(),
                            "removed build outputs of idle worktrees"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cleaning idle worktrees failed"),
                    }
                    tokio::time::sleep(CLEANUP_EVERY).await;
                }
            }));
        }
        // The level-triggered ticker: gates moved by other processes (the CLI),
        // leases freed, restarts; every 25th pass the reconciler.
        {
            let (p, s) = (pipeline.clone(), supervisor.clone());
            let every = cfg.poll_interval().max(Duration::from_millis(200));
            tasks.push(tokio::spawn(async move {
                for n in 0u64.. {
                    tokio::time::sleep(every).await;
                    if let Err(e) = p.tick_all().await {
                        tracing::warn!(error = %e, "tick failed");
                    }
                    metrics::counter!("orch_ticker_passes_total").increment(1);
                    crate::passes::pass();
                    // The reconciler lists the tracker once per cycle for
                    // the whole cluster: the leader's job.
                    if n % 25 == 0 && *lead.borrow() {
                        reconcile(&p, reconciler.as_deref()).await;
                        // People's answers to agents' questions, left as
                        // comments on the tracker items.
                        match p.answers_from_tracker().await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(answered = n, "answers read from the tracker"),
                            Err(e) => tracing::warn!(error = %e, "reading answers from the tracker failed"),
                        }
                    }
                    s.wake();
                }
            }));
        }
        Engine {
            pipeline,
            supervisor,
            tasks,
            store,
            node: worker_name,
        }
    }

    /// This node's name among the engines sharing the store (the worker
    /// name its runs carry).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Stop claiming and ticking; running agents keep running (re-adopted
    /// later). A leader resigns, so another node leads at its next
    /// heartbeat rather than after the lease.
    pub async fn shutdown(self) {
        self.supervisor.shutdown();
        for t in self.tasks {
            t.abort();
        }
        if let Err(e) = self.store.resign(&self.node).await {
            tracing::warn!(error = %e, "resigning the leader lease failed; another node leads once it expires");
        }
    }
}

/// How often the configuration files are looked at for edits.
const CONFIG_LOOK_EVERY: Duration = Duration::from_secs(1);

/// Reloads the configuration when its files change (looked at every
/// second: an editor's rename or a bind-mounted file is seen as surely as
/// an in-place write) and at once on SIGHUP.
async fn follow_config_edits(live: Arc<LiveConfig>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP cannot reload the configuration; edits are still seen within a second");
            None
        }
    };
    loop {
        let hangup = async {
            match hup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let forced = tokio::select! {
            _ = hangup => true,
            _ = tokio::time::sleep(CONFIG_LOOK_EVERY) => false,
        };
        let l = live.clone();
        // Reading and checking the files is blocking work.
        let _ = tokio::task::spawn_blocking(move || {
            if l.changed() || forced {
                let _ = l.reload();
            }
        })
        .await;
    }
}

/// One reconcile pass: the tracker's listing (Plane or GitHub Issues: one
/// listing per project per cycle, R-43), or the builtin tracker's own.
async fn reconcile(p: &Pipeline, reconciler: Option<&dyn TrackerReconciler>) {
    match reconciler {
        Some(r) => {
            let st = r.run_once().await;
            if st.repaired > 0 || st.errors > 0 {
                tracing::info!(
                    repaired = st.repaired,
                    errors = st.errors,
                    calls = st.api_calls,
                    "reconciled with the tracker"
                );
            }
        }
        None => match p.reconcile_once().await {
            Ok(r) if r.repaired > 0 => tracing::info!(
                repaired = r.repaired,
                skipped_terminal = r.skipped_terminal,
                "reconciled"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reconcile failed"),
        },
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
