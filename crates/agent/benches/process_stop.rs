//! Process-control benchmarks (not timed tests; run by hand):
//!
//! ```text
//! cargo bench -p orch-agent --bench process_stop            # (a) STOP latency
//! cargo bench -p orch-agent --bench process_stop -- load    # (b) monitor overhead
//! cargo bench -p orch-agent --bench process_stop -- sandbox # (c) sandbox costs
//! ```
//!
//! (a) launches an agent that exits on the first signal, 200 times per cgroup
//! mode, and measures `stop` from its call until the monitor and every process
//! of the run are gone (target: p99 < 50 ms).
//!
//! (b) runs 100 agents at once, each printing 20 lines/s for 30 s, and reports
//! the monitors' CPU time and resident memory (the orchestrator side is not
//! part of it). Override with `load AGENTS SECONDS`.
//!
//! (c) 200 starts each without and with `[sandbox] mode = "namespaces"`:
//! launch → `monitor.json` written (the agent has exec'd), polled every
//! 100 µs, p50/p99 and the sandbox's extra (target < 15 ms); then STOP →
//! tree gone for sandboxed runs (target p99 < 50 ms).

use hdrhistogram::Histogram;
use orch_agent::process::sandbox::{SandboxSpec, defaults};
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
    launch_in(root, name, script, cgroup, None)
}

/// The sandbox a run of the bench gets: its work folder and script.
fn sandbox_for(root: &Path, script: &Path) -> SandboxSpec {
    let mut readonly: Vec<PathBuf> = defaults::TOOLCHAIN.iter().map(PathBuf::from).collect();
    readonly.push(script.to_owned());
    SandboxSpec {
        writable: vec![root.join("work")],
        readonly,
        hidden: defaults::HIDDEN.iter().map(PathBuf::from).collect(),
        home: Some(root.join("home")),
        egress: Default::default(),
    }
}

fn launch_in(
    root: &Path,
    name: &str,
    script: &Path,
    cgroup: CgroupMode,
    sandbox: Option<SandboxSpec>,
) -> RunHandle {
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
        sandbox,
        limits: Default::default(),
    })
    .expect("launch")
}

fn quantiles(hist: &Histogram<u64>) -> (f64, f64) {
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    (ms(0.5), ms(0.99))
}

/// Start latency (launch → the agent exec'd) without and with the sandbox,
/// then the sandboxed runs' STOP latency.
fn sandbox_costs(runs: usize) {
    let root = tempfile::tempdir().expect("tempdir");
    let script = root.path().join("agent.sh");
    write_script(&script, "/bin/sh", "exec sleep 1000");
    let mut starts = Vec::new();
    let mut stop_hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for sandboxed in [false, true] {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
        for i in 0..runs {
            let name = format!("run-{sandboxed}-{i}");
            let sandbox = sandboxed.then(|| sandbox_for(root.path(), &script));
            let t0 = Instant::now();
            let handle = launch_in(root.path(), &name, &script, CgroupMode::Auto, sandbox);
            let started = handle.run_dir.join("monitor.json");
            while !started.exists() {
                assert!(t0.elapsed() < DEADLINE, "{name} never started");
                std::thread::sleep(Duration::from_micros(100));
            }
            hist.record(u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX))
                .expect("record");
            let t1 = Instant::now();
            let report = stop(&handle, &StopPolicy::default(), "bench").expect("stop");
            assert!(report.all_gone, "{report:#?}");
            if sandboxed {
                stop_hist
                    .record(u64::try_from(t1.elapsed().as_micros()).unwrap_or(u64::MAX))
                    .expect("record");
            }
        }
        let (p50, p99) = quantiles(&hist);
        println!(
            "start latency, sandbox {}, {runs} runs: p50 {p50:.2} ms  p99 {p99:.2} ms",
            if sandboxed { "namespaces" } else { "off" }
        );
        starts.push((p50, p99));
    }
    let ((p50_off, p99_off), (p50_ns, p99_ns)) = (starts[0], starts[1]);
    println!(
        "sandbox extra start latency: p50 {:.2} ms  p99 {:.2} ms",
        p50_ns - p50_off,
        p99_ns - p99_off
    );
    let (p50, p99) = quantiles(&stop_hist);
    println!("stop latency, sandboxed, {runs} runs: p50 {p50:.2} ms  p99 {p99:.2} ms");
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
        Some("sandbox") => sandbox_costs(200),
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
