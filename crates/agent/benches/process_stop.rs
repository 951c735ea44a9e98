//! Process-control benchmarks (not timed tests; run by hand):
//!
//! ```text
//! cargo bench -p orch-agent --bench process_stop            # (a) STOP latency
//! cargo bench -p orch-agent --bench process_stop -- load    # (b) monitor overhead
//! ```
//!
//! (a) launches an agent that exits on the first signal, 200 times per cgroup
//! mode, and measures `stop` from its call until the monitor and every process
//! of the run are gone (target: p99 < 50 ms).
//!
//! (b) runs 100 agents at once, each printing 20 lines/s for 30 s, and reports
//! the monitors' CPU time and resident memory (the orchestrator side is not
//! part of it). Override with `load AGENTS SECONDS`.

use hdrhistogram::Histogram;
use orch_agent::process::{
    CgroupMode, LaunchSpec, MonitorCommand, RunHandle, StopPolicy, launch, procfs, stop,
    wait_started,
};
use orch_core::RunId;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

fn monitor_command() -> MonitorCommand {
    MonitorCommand {
        program: PathBuf::from(env!("CARGO_BIN_EXE_orch-monitor")),
        args_prefix: Vec::new(),
    }
}

fn write_script(path: &Path, interpreter: &str, body: &str) {
    std::fs::write(path, format!("#!{interpreter}\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn launch_agent(root: &Path, name: &str, script: &Path, cgroup: CgroupMode) -> RunHandle {
    let work = root.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    launch(LaunchSpec {
        run_id: RunId::from(name),
        run_dir: root.join(name),
        cwd: work,
        argv: vec![script.as_os_str().to_owned()],
        env: BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]),
        monitor: monitor_command(),
        cgroup,
        sandbox: None,
        limits: Default::default(),
    })
    .expect("launch")
}

fn stop_latency(cgroup: CgroupMode, runs: usize) {
    let root = tempfile::tempdir().expect("tempdir");
    let script = root.path().join("agent.sh");
    // `sleep` dies on SIGINT: an agent that exits on the first signal.
    write_script(&script, "/bin/sh", "exec sleep 1000");
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut escalated = 0;
    for i in 0..runs {
        let handle = launch_agent(root.path(), &format!("run-{i}"), &script, cgroup);
        let info = wait_started(&handle, DEADLINE).expect("agent started");
        let agent = procfs::ProcId {
            pid: info.agent_pid,
            start_ticks: info.agent_start_ticks,
        };
        let t0 = Instant::now();
        let report = stop(&handle, &StopPolicy::default(), "bench").expect("stop");
        let took = t0.elapsed();
        assert!(report.all_gone, "{report:#?}");
        assert!(!agent.is_alive() && !handle.monitor().is_alive());
        if report.signals.len() > 1 {
            escalated += 1;
        }
        hist.record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX))
            .expect("record");
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "stop latency, cgroup {:?}, {} runs: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (escalated beyond SIGINT: {escalated})",
        cgroup,
        hist.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0,
    );
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn monitor_overhead(agents: usize, seconds: u64) {
    let root = tempfile::tempdir().expect("tempdir");
    let script = root.path().join("agent.sh");
    // 20 stream-json-sized lines a second without forking a `sleep` per line:
    // `read -t` on a FIFO nobody writes is bash's built-in sleep.
    write_script(
        &script,
        "/bin/bash",
        &format!(
            "mkfifo idle.$$ && exec 3<>idle.$$ && rm idle.$$\n\
             end=$((SECONDS + {seconds}))\n\
             n=0\n\
             while [ $SECONDS -lt $end ]; do\n\
               n=$((n+1))\n\
               echo \"{{\\\"type\\\":\\\"assistant\\\",\\\"n\\\":$n,\\\"text\\\":\\\"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor\\\"}}\"\n\
               read -t 0.05 -u 3\n\
             done"
        ),
    );
    let handles: Vec<RunHandle> = (0..agents)
        .map(|i| launch_agent(root.path(), &format!("load-{i}"), &script, CgroupMode::Auto))
        .collect();
    for h in &handles {
        wait_started(h, DEADLINE).expect("agent started");
    }
    // SAFETY: sysconf only reads a configuration value.
    let clk_tck = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as f64,
        _ => 100.0,
    };
    let t0 = Instant::now();
    // Sample just before the agents end, while every monitor is still there.
    std::thread::sleep(Duration::from_secs(seconds).saturating_sub(Duration::from_millis(1500)));
    let elapsed = t0.elapsed().as_secs_f64();
    let mut ticks = 0u64;
    let mut rss = Vec::new();
    for h in &handles {
        if let Ok(Some(s)) = procfs::read_stat(h.pid) {
            ticks += s.utime + s.stime;
            rss.push(rss_kib(h.pid));
        }
    }
    let cpu_s = ticks as f64 / clk_tck;
    let lines: usize = handles
        .iter()
        .map(|h| {
            std::fs::read_to_string(h.run_dir.join("output.log"))
                .map(|s| s.lines().count())
                .unwrap_or(0)
        })
        .sum();
    for h in &handles {
        let policy = StopPolicy::with_grace(Duration::from_secs(2));
        let r = stop(h, &policy, "bench done").expect("stop");
        assert!(r.all_gone, "{r:#?}");
    }
    rss.sort_unstable();
    let avg_rss = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64;
    println!(
        "{} agents x {:.1} s at 20 lines/s ({} lines logged): monitors used {:.2} CPU-s in total = {:.3}% of one core per agent; RSS per monitor avg {:.0} KiB, max {} KiB",
        rss.len(),
        elapsed,
        lines,
        cpu_s,
        cpu_s / elapsed / rss.len().max(1) as f64 * 100.0,
        avg_rss,
        rss.last().copied().unwrap_or(0),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; the first other word picks the benchmark.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    match args.first().map(String::as_str) {
        Some("load") => {
            let agents = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
            let seconds = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(30);
            monitor_overhead(agents, seconds);
        }
        _ => {
            stop_latency(CgroupMode::Auto, 200);
            stop_latency(CgroupMode::Off, 200);
        }
    }
}
