//! An agent's big output through a real `orch serve` (issue 15, point 11).
//!
//! The analyst is a Claude Code (stream-json) agent that prints one 50 MiB
//! line and then 200,000 ordinary lines (`crates/cli/tests/flood`). Measured:
//!
//! - `orch serve`'s peak RSS (VmHWM from /proc) before and after; target
//!   < 64 MiB;
//! - the agent's exit (the monitor's `exit.json`) → the run recorded (the
//!   run's `finished_at` in the store); target < 2 s;
//! - the longest gap between two lease renewals of the running job (the
//!   watcher's heartbeat, every `heartbeat_secs` = 1 s here) while the output
//!   is read;
//! - a STOP (`POST /api/tasks/{id}/stop`) sent while an agent floods without
//!   end → its run recorded as cancelled; target: within the STOP graces
//!   (2 s + 2 s here).
//!
//! Run: `cargo bench -p orch-cli --bench output_flood [-- BIG_MIB LINES]`

#[path = "../tests/flood/mod.rs"]
mod flood;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const TOKEN: &str = "bench-token";

/// How long the bench waits for the server (an answer, a run recorded)
/// before it reports that it did not come: the code before issue 15 never
/// answered a STOP during a flood.
const PATIENCE: Duration = Duration::from_secs(180);

fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).ok();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut resp = String::new();
    if s.read_to_string(&mut resp).is_err() {
        return (0, serde_json::Value::Null);
    }
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or_default())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The server dies with the bench, also when it panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Kills what is left of the runs under a folder (the monitor and the
/// flood, which outlive a killed server by design), when the bench ends.
struct Leftovers(PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        let needle = self.0.display().to_string();
        let me = std::process::id() as i32;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if pid != me && String::from_utf8_lossy(&cmd).contains(&needle) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

fn setup(tmp: &Path, big_mib: u64, lines: u64) -> PathBuf {
    let dir = tmp.join("bench");
    let out = Command::new(ORCH)
        .args(["quickstart", "--auto", dir.to_str().unwrap()])
        .env_remove("ORCH_CONFIG")
        .output()
        .expect("quickstart");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = flood::install(&dir);
    let mode = format!("@{}", dir.join("mode").display());
    let analyst = flood::analyst(&script, big_mib, lines, &mode, &dir.join("flooding"));
    let cfg_path = dir.join("orch.toml");
    let cfg = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("command = [\"examples/agents/analyst.sh\"]", &analyst)
        // Frequent heartbeats, so a watcher that stops renewing shows.
        .replace(
            "poll_ms = 200",
            "poll_ms = 200\nheartbeat_secs = 1\nlease_secs = 10",
        );
    assert!(cfg.contains("flood.py") && cfg.contains("heartbeat_secs = 1"));
    std::fs::write(&cfg_path, cfg).unwrap();
    dir
}

fn create(addr: &str, title: &str) -> i64 {
    let (code, created) = http(
        addr,
        "POST",
        "/api/tasks",
        &format!("{{\"repo\":\"demo\",\"title\":\"{title}\"}}"),
    );
    assert!(code == 200 || code == 201, "create: {code} {created}");
    created["result"]["task"]
        .as_i64()
        .unwrap_or_else(|| panic!("no task id in {created}"))
}

/// What the polls of one running analyst saw.
struct Watched {
    run: serde_json::Value,
    /// Longest time between two lease renewals seen, in ms.
    max_renewal_gap: i64,
    renewals: usize,
}

/// Polls the task until its analyst run is recorded, noting each renewal of
/// the job's lease (a new `lease_expires_at` = a heartbeat); `None` if it is
/// not recorded within `limit`.
fn watch(addr: &str, id: i64, limit: Duration) -> Option<Watched> {
    let end = Instant::now() + limit;
    let mut last_lease: Option<i64> = None;
    let mut max_gap = 0;
    let mut renewals = 0;
    loop {
        let (_, v) = http(addr, "GET", &format!("/api/tasks/{id}"), "");
        let job = v["jobs"]
            .as_array()
            .and_then(|j| j.iter().find(|j| j["agent"] == "analyst").cloned());
        if let Some(lease) = job.as_ref().and_then(|j| j["lease_expires_at"].as_i64()) {
            if let Some(prev) = last_lease
                && lease != prev
            {
                max_gap = max_gap.max(lease - prev);
                renewals += 1;
            }
            last_lease = Some(lease);
        }
        let run = v["runs"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["agent"] == "analyst").cloned());
        if let Some(run) = run
            && !run["finished_at"].is_null()
        {
            return Some(Watched {
                run,
                max_renewal_gap: max_gap,
                renewals,
            });
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let big_mib = args.first().copied().unwrap_or(50);
    let lines = args.get(1).copied().unwrap_or(200_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = setup(tmp.path(), big_mib, lines);
    let _leftovers = Leftovers(dir.clone());
    let mut serve = KillOnDrop(
        Command::new(ORCH)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(&dir)
            .env("ORCH_API_TOKEN", TOKEN)
            .env("RUST_LOG", "warn,orch_engine::supervisor=info")
            .env_remove("ORCH_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve"),
    );
    let pid = serve.0.id();
    let mut log = BufReader::new(serve.0.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = log.next().expect("serve exited").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in log.map_while(Result::ok) {});
    std::thread::sleep(Duration::from_millis(500));
    let idle = status_kib(pid, "VmRSS:");

    println!(
        "output flood through orch serve: one {big_mib} MiB line, then {lines} stream-json lines"
    );
    println!("  orch serve RSS when idle: {:.1} MiB", mib(idle));

    // 1. The flood ends and the agent exits.
    std::fs::write(dir.join("mode"), "exit").unwrap();
    let id = create(&addr, "flood then exit");
    let w = watch(&addr, id, Duration::from_secs(3600)).expect("run 1 recorded");
    let log_path = PathBuf::from(w.run["log_path"].as_str().expect("log path"));
    let exit: serde_json::Value = serde_json::from_slice(
        &std::fs::read(log_path.parent().unwrap().join("exit.json")).expect("exit.json"),
    )
    .expect("exit record");
    let exited = exit["finished_at"].as_i64().expect("exit time");
    let recorded = w.run["finished_at"].as_i64().expect("finish time");
    let log_bytes = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    println!(
        "  run 1: outcome {}, log {:.1} MiB, exit → recorded {} ms (target < 2000 ms); lease renewed {} times, longest gap {} ms (heartbeat every 1000 ms)",
        w.run["outcome"],
        log_bytes as f64 / 1048576.0,
        recorded - exited,
        w.renewals,
        w.max_renewal_gap
    );
    println!(
        "  orch serve peak RSS (VmHWM) after run 1: {:.1} MiB (target < 64 MiB)",
        mib(status_kib(pid, "VmHWM:"))
    );

    // 2. A flood without end, stopped while it floods.
    std::fs::write(dir.join("mode"), "forever").unwrap();
    let marker = dir.join("flooding");
    let _ = std::fs::remove_file(&marker);
    let id2 = create(&addr, "flood until stopped");
    let end = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        assert!(Instant::now() < end, "the second flood never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stop_sent = now_ms();
    let (code, r) = http(&addr, "POST", &format!("/api/tasks/{id2}/stop"), "{}");
    if code != 200 {
        println!(
            "  run 2 (STOP during the flood): STOP not answered within {} s ({code} {r}); orch serve RSS now {:.1} MiB, peak {:.1} MiB",
            PATIENCE.as_secs(),
            mib(status_kib(pid, "VmRSS:")),
            mib(status_kib(pid, "VmHWM:"))
        );
        return;
    }
    let stop_answered = now_ms();
    let Some(w2) = watch(&addr, id2, PATIENCE) else {
        println!(
            "  run 2 (STOP during the flood): STOP answered in {} ms, run not recorded within {} s; orch serve peak RSS {:.1} MiB",
            stop_answered - stop_sent,
            PATIENCE.as_secs(),
            mib(status_kib(pid, "VmHWM:"))
        );
        return;
    };
    let stop_recorded = w2.run["finished_at"].as_i64().expect("finish time");
    let log2_bytes = w2.run["log_path"]
        .as_str()
        .and_then(|p| std::fs::metadata(p).ok())
        .map_or(0, |m| m.len());
    println!(
        "  run 2 (STOP during the flood): outcome {}, log {:.1} MiB when stopped, STOP answered in {} ms, STOP → run recorded {} ms (graces 2 s + 2 s); lease renewed {} times, longest gap {} ms",
        w2.run["outcome"],
        log2_bytes as f64 / 1048576.0,
        stop_answered - stop_sent,
        stop_recorded - stop_sent,
        w2.renewals,
        w2.max_renewal_gap
    );
    println!(
        "  orch serve peak RSS (VmHWM) after run 2: {:.1} MiB (target < 64 MiB)",
        mib(status_kib(pid, "VmHWM:"))
    );
    drop(serve);
}
