//! Orchestrator overhead with many live agents (issue: 100 agents × 20 lines/s
//! for 30 s; targets: < 3 % of one core and < 80 MB RSS for the orchestrator).
//!
//! The supervisor runs in this process with its production tick and heartbeat;
//! each agent is a small Python loop printing Claude-style stream-json lines,
//! run under the real `orch monitor`. Measured: this process's CPU time (user +
//! system, from /proc/self/stat) over the window, and its peak RSS.
//!
//! Run: `cargo bench -p orch-cli --bench agent_load [-- AGENTS SECONDS]`

use orch_agent::adapters::AdapterKind;
use orch_agent::process::{CgroupMode, MonitorCommand, StopPolicy, Timeouts};
use orch_core::{AgentKind, Job, NewJob, NewTask, Stage, Task, Timestamp, WorkerId};
use orch_engine::supervisor::{
    AgentEnv, Budget, PreparedRun, RunPreparer, Supervisor, SupervisorConfig,
};
use orch_store::{SqliteOptions, SqliteStore, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Each agent chats for the window plus this slack, so that all of them are
/// alive for the whole measured window (they start over a few seconds).
const SLACK_SECONDS: u64 = 20;

struct Chatty {
    seconds: u64,
}

#[async_trait::async_trait]
impl RunPreparer for Chatty {
    async fn prepare(&self, _t: &Task, _j: &Job, run_dir: &Path) -> Result<PreparedRun, String> {
        let lines = (self.seconds + SLACK_SECONDS) * 20;
        let code = format!(
            "import sys, time\n\
             line = '{{\"type\":\"assistant\",\"message\":{{\"id\":\"m\",\"model\":\"claude-sonnet-4-5\",\"role\":\"assistant\",\"content\":[{{\"type\":\"text\",\"text\":\"working on it\"}}],\"usage\":{{\"input_tokens\":10,\"output_tokens\":1}}}},\"session_id\":\"s\"}}'\n\
             for i in range({lines}):\n    print(line, flush=True)\n    time.sleep(0.05)\n"
        );
        Ok(PreparedRun {
            sandbox: None,
            limits: Default::default(),
            previous_total: None,
            cwd: run_dir.to_path_buf(),
            argv: vec!["python3".into(), "-c".into(), code],
            env: Default::default(),
            adapter: AdapterKind::ClaudeCode,
            timeouts: Timeouts {
                wall: Some(Duration::from_secs(600)),
                idle: Some(Duration::from_secs(120)),
            },
        })
    }
}

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm field: state is f[0]; utime is field 14 → f[11], stime f[12].
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let agents = args.first().copied().unwrap_or(100) as usize;
    let seconds = args.get(1).copied().unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path().join("orch.db"), SqliteOptions::default()).await.expect("open");
        store.migrate().await.expect("migrate");
        let store: Arc<dyn Store> = Arc::new(store);
        for i in 0..agents {
            let mut t = NewTask::new("load", format!("agent {i}"));
            t.stage = Stage::Development;
            let t = store.create_task(t, "bench").await.expect("task");
            store.enqueue(NewJob::new(t.id, AgentKind::Developer, "load", Timestamp(0))).await.expect("job");
        }
        let cfg = SupervisorConfig {
            worker: WorkerId("bench".into()),
            runs_dir: dir.path().join("runs"),
            lease: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            poll: Duration::from_millis(500),
            // As `orch serve` sets it.
            tick: Duration::from_secs(1),
            limits: Default::default(),
            gates: Default::default(),
            retry: Default::default(),
            stop: StopPolicy::with_grace(Duration::from_secs(2)),
            budget: Budget::default(),
            env: AgentEnv { allow: vec!["PATH".into()], set: Default::default() },
            monitor: MonitorCommand { program: env!("CARGO_BIN_EXE_orch").into(), args_prefix: vec!["monitor".into()] },
            cgroup: CgroupMode::Auto,
        };
        let (sup, mut rx) = Supervisor::new(store.clone(), Arc::new(Chatty { seconds }), cfg);
        let started = sup.dispatch_once().await;
        assert_eq!(started, agents);
        // Let every agent start, then measure a window inside the agents' lifetime.
        let deadline = Instant::now() + Duration::from_secs(30);
        while sup.active_runs().len() < agents && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let window = Duration::from_secs(seconds.max(1));
        let (t0, c0) = (Instant::now(), cpu_ticks());
        let mut peak = 0;
        // The fewest agents alive at any sample: the load really was there.
        let mut watched = sup.active_runs().len();
        while t0.elapsed() < window {
            tokio::time::sleep(Duration::from_millis(500)).await;
            peak = peak.max(rss_kb("VmRSS:"));
            watched = watched.min(sup.active_runs().len());
        }
        let (elapsed, ticks) = (t0.elapsed().as_secs_f64(), cpu_ticks() - c0);
        let hz = 100.0; // USER_HZ on Linux
        let cpu_pct = ticks as f64 / hz / elapsed * 100.0;
        let mut done = 0;
        while done < agents {
            match tokio::time::timeout(Duration::from_secs(60), rx.recv()).await {
                Ok(Some(_)) => done += 1,
                _ => break,
            }
        }
        println!("agent load: {agents} agents × 20 lines/s, window {elapsed:.1} s, at least {watched} alive and watched throughout");
        println!("orchestrator CPU: {cpu_pct:.2} % of one core (target < 3 %)");
        println!("orchestrator RSS: peak {:.1} MB (target < 80 MB); VmHWM {:.1} MB", peak as f64 / 1024.0, rss_kb("VmHWM:") as f64 / 1024.0);
        println!("runs finished: {done}/{agents}");
    });
}
