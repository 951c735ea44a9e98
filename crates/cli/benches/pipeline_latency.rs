//! Pipeline latency through a real `orch serve` (issue 4 benchmarks):
//!
//! - event → agent process started: `POST /api/tasks/{id}/approve` sent →
//!   the developer's process is running (its first instruction stamps the
//!   wall clock). The task's worktree is already there (the analyst made it).
//!   Target p99 < 20 ms.
//! - cancel_task end to end: `POST /api/tasks/{id}/stop` sent → the task is
//!   `cancelled` and the agent and its child are gone.
//!
//! Each sample is one work item: created over the API, analysed by the
//! example analyst, approved (measured), then stopped (measured).
//!
//! With `--pg URL` (issue 11) the same runs across two nodes sharing a
//! PostgreSQL store (a fresh schema of that database): node `events` takes
//! every request and is drained, so node `agents` claims and runs every
//! agent. The approval reaches it through the store's queue signal, and so
//! does the STOP.
//!
//! Run: `cargo bench -p orch-cli --bench pipeline_latency [-- SAMPLES] [--pg URL]`

use hdrhistogram::Histogram;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const TOKEN: &str = "bench-token";

fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or_default())
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// Gone or a zombie (its monitor has not reaped it yet).
fn gone(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

/// Polls `f` every `every`. The bench shares the 2 cores with the server and
/// the agents, so it must not spin: the start latency is read from the
/// agent's own stamp, whatever the poll; the cancel is timed by the poll, so
/// that one polls finer.
fn wait_until(what: &str, limit: Duration, every: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(every);
    }
}

/// The server dies with the bench, also when a sample panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn setup(tmp: &Path) -> std::path::PathBuf {
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
    let starts = dir.join("starts");
    std::fs::create_dir_all(&starts).unwrap();
    // The developer stamps the wall clock first, then starts a child (as an
    // agent starts tools) and waits; the stamp file appears atomically.
    let developer = format!(
        "command = [\"bash\", \"-c\", \"t=$EPOCHREALTIME; sleep 1000 & echo \\\"$t $$ $!\\\" > {s}/$ORCH_TASK_ID.tmp; mv {s}/$ORCH_TASK_ID.tmp {s}/$ORCH_TASK_ID; wait\"]",
        s = starts.display()
    );
    let cfg_path = dir.join("orch.toml");
    let cfg = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("command = [\"examples/agents/developer.sh\"]", &developer)
        // The API and the supervisor, not the poll, must carry the event.
        .replace("poll_ms = 200", "poll_ms = 5000");
    assert!(cfg.contains("EPOCHREALTIME"));
    std::fs::write(&cfg_path, cfg).unwrap();
    dir
}

/// The log's human format may colour field names.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// `orch serve` in `dir` (as node `node`), its address and its log.
fn serve(
    dir: &Path,
    node: &str,
) -> (
    KillOnDrop,
    String,
    std::io::Lines<BufReader<std::process::ChildStderr>>,
) {
    let mut serve = KillOnDrop(
        Command::new(ORCH)
            .args(["serve", "--listen", "127.0.0.1:0", "--node", node])
            .current_dir(dir)
            .env("ORCH_API_TOKEN", TOKEN)
            .env("ORCH_MACHINE_ID", node)
            .env("RUST_LOG", "warn,orch_engine::supervisor=info")
            .env_remove("ORCH_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("serve"),
    );
    let mut lines = BufReader::new(serve.0.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    (serve, addr, lines)
}

/// Two nodes on a fresh schema of `url`: `dir` is node `events`' folder
/// (the quickstart's), the other gets one of its own, as another machine
/// would. Returns what keeps the schema alive.
fn two_nodes(dir: &Path, url: &str) -> (orch_store::testing::PgScratch, std::path::PathBuf) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let scratch = rt.block_on(orch_store::testing::PgScratch::create(url));
    let cfg_path = dir.join("orch.toml");
    // Heartbeats each second: the drain below is followed at once.
    let cfg = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("poll_ms = 5000", "poll_ms = 5000\nheartbeat_secs = 1");
    let cfg = format!("{cfg}\n[store]\nurl = \"{}\"\n", scratch.url());
    std::fs::write(&cfg_path, &cfg).unwrap();
    let other = dir.parent().unwrap().join("agents-node");
    std::fs::create_dir_all(&other).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(dir.join("examples"))
        .arg(&other)
        .status()
        .unwrap();
    assert!(copied.success());
    let remote = dir.join("remotes/demo.git");
    let cfg = cfg.replace(
        "remote = \"remotes/demo.git\"",
        &format!("remote = \"{}\"", remote.display()),
    );
    std::fs::write(other.join("orch.toml"), cfg).unwrap();
    (scratch, other)
}

/// Across nodes, each sample's latency split at the store's stamps (ms):
/// approval sent → developer job queued (events node), → claimed (agents
/// node), → agent started.
fn phases(url: &str, stamps: &[(i64, u128, u128)]) -> [Histogram<u64>; 3] {
    use sqlx::Row;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = rt.block_on(async {
        let db = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(
            "SELECT j.task_id, j.created_at, min(r.started_at) AS claimed
             FROM jobs j JOIN runs r ON r.job_id = j.id
             WHERE j.agent = 'developer' GROUP BY j.id",
        )
        .fetch_all(&db)
        .await
        .unwrap()
    });
    let mut h = [(); 3].map(|_| Histogram::<u64>::new(3).unwrap());
    for (id, t0, started) in stamps {
        let Some(r) = rows.iter().find(|r| r.get::<i64, _>("task_id") == *id) else {
            continue;
        };
        let queued = r.get::<i64, _>("created_at") as u128 * 1000;
        let claimed = r.get::<i64, _>("claimed") as u128 * 1000;
        h[0].record(queued.saturating_sub(*t0) as u64).unwrap();
        h[1].record(claimed.saturating_sub(queued) as u64).unwrap();
        h[2].record(started.saturating_sub(claimed) as u64).unwrap();
    }
    h
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let samples: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100);
    let pg = args
        .iter()
        .position(|a| a == "--pg")
        .map(|i| args.get(i + 1).expect("--pg URL").clone());
    let tmp = tempfile::tempdir().unwrap();
    let dir = setup(tmp.path());
    let nodes = pg.as_deref().map(|url| two_nodes(&dir, url));
    let (events_node, addr, events_log) = serve(&dir, "events");
    // Across nodes: the events node claims nothing, the other runs it all.
    let agents_node = nodes.as_ref().map(|(_, other)| {
        let out = Command::new(ORCH)
            .args(["node", "drain", "events"])
            .current_dir(&dir)
            .env_remove("ORCH_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_until(
            "the events node to drain",
            Duration::from_secs(30),
            Duration::from_millis(100),
            || {
                let out = Command::new(ORCH)
                    .args(["node", "list", "--json"])
                    .current_dir(&dir)
                    .env_remove("ORCH_CONFIG")
                    .output()
                    .unwrap();
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
                v["nodes"].as_array().is_some_and(|n| {
                    n.iter()
                        .any(|n| n["name"] == "events" && n["state"] == "drained")
                })
            },
        );
        serve(other, "agents")
    });
    let (mut serve, lines) = match agents_node {
        Some((s, _, l)) => {
            // The events node's log must be drained too.
            std::thread::spawn(move || events_log.map_while(Result::ok).for_each(drop));
            (vec![events_node, s], l)
        }
        None => (vec![events_node], events_log),
    };
    // Keep draining the server's log so it never blocks on a full pipe; the
    // supervisor's "agent started" lines split orch's part of the latency.
    let parts = std::sync::Arc::new(std::sync::Mutex::new((
        Histogram::<u64>::new(3).unwrap(),
        Histogram::<u64>::new(3).unwrap(),
    )));
    {
        let parts = parts.clone();
        std::thread::spawn(move || {
            for raw in lines.map_while(Result::ok) {
                let line = strip_ansi(&raw);
                let field = |name: &str| {
                    line.split(&format!("{name}=")).nth(1).and_then(|v| {
                        v.trim_start_matches('"')
                            .split(|c: char| c == '"' || c.is_whitespace())
                            .next()
                            .and_then(|n| n.parse::<f64>().ok())
                    })
                };
                // The developer's starts are the measured ones.
                if !line.contains("agent=developer") {
                    continue;
                }
                if let (Some(p), Some(l)) = (field("prepare_ms"), field("launch_ms")) {
                    let mut h = parts.lock().unwrap();
                    h.0.record((p * 1000.0) as u64).ok();
                    h.1.record((l * 1000.0) as u64).ok();
                }
            }
        });
    }

    let mut start = Histogram::<u64>::new(3).unwrap();
    let mut cancel = Histogram::<u64>::new(3).unwrap();
    // Each sample's task, approval sent and agent started (µs since the
    // epoch): across nodes, the store's stamps split the latency by node.
    let mut stamps: Vec<(i64, u128, u128)> = Vec::new();
    for i in 0..samples {
        let (code, created) = http(
            &addr,
            "POST",
            "/api/tasks",
            &format!("{{\"repo\":\"demo\",\"title\":\"sample {i}\"}}"),
        );
        assert!(code == 200 || code == 201, "create: {code} {created}");
        let id = created["result"]["task"]
            .as_i64()
            .unwrap_or_else(|| panic!("no task id in {created}"));
        let task_path = format!("/api/tasks/{id}");
        wait_until(
            "analysis",
            Duration::from_secs(60),
            Duration::from_millis(20),
            || http(&addr, "GET", &task_path, "").1["task"]["stage"] == "awaiting_approval",
        );
        let stamp = dir.join("starts").join(id.to_string());

        let t0 = now_us();
        let (code, r) = http(&addr, "POST", &format!("{task_path}/approve"), "{}");
        assert_eq!(code, 200, "approve: {r}");
        wait_until(
            "the developer",
            Duration::from_secs(30),
            Duration::from_millis(5),
            || stamp.exists(),
        );
        let text = std::fs::read_to_string(&stamp).unwrap();
        let mut f = text.split_whitespace();
        let t: f64 = f.next().unwrap().parse().unwrap();
        let (pid, child) = (f.next().unwrap().to_owned(), f.next().unwrap().to_owned());
        let started = (t * 1e6) as u128;
        start.record(started.saturating_sub(t0) as u64).unwrap();
        stamps.push((id, t0, started));

        let t1 = Instant::now();
        let (code, r) = http(&addr, "POST", &format!("{task_path}/stop"), "{}");
        assert_eq!(code, 200, "stop: {r}");
        wait_until(
            "the cancel",
            Duration::from_secs(30),
            Duration::from_millis(1),
            || {
                gone(&pid)
                    && gone(&child)
                    && http(&addr, "GET", &task_path, "").1["task"]["stage"] == "cancelled"
            },
        );
        cancel.record(t1.elapsed().as_micros() as u64).unwrap();
        if (i + 1) % 20 == 0 {
            eprintln!("{} samples", i + 1);
        }
    }
    serve.clear();
    let by_node = nodes
        .as_ref()
        .map(|(scratch, _)| phases(scratch.url(), &stamps));
    match &pg {
        Some(_) => println!(
            "pipeline latency across two nodes on PostgreSQL (events to one, agents on the other), {samples} samples"
        ),
        None => println!("pipeline latency through orch serve, {samples} samples"),
    }
    println!(
        "event → agent started: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 20 ms)",
        pct(&start, 0.5),
        pct(&start, 0.99),
        start.max() as f64 / 1000.0
    );
    {
        let h = parts.lock().unwrap();
        println!(
            "  of which orch prepares the developer (claim → command ready): p50 {:.2} ms, p99 {:.2} ms; launches (→ monitor running): p50 {:.2} ms, p99 {:.2} ms",
            pct(&h.0, 0.5),
            pct(&h.0, 0.99),
            pct(&h.1, 0.5),
            pct(&h.1, 0.99)
        );
    }
    if let Some([enqueue, claim, run]) = &by_node {
        println!(
            "  by node (the store's ms stamps): the events node queues the developer p50 {:.2} ms, p99 {:.2} ms; \
             the agents node claims it p50 {:.2} ms, p99 {:.2} ms; and starts it p50 {:.2} ms, p99 {:.2} ms",
            pct(enqueue, 0.5),
            pct(enqueue, 0.99),
            pct(claim, 0.5),
            pct(claim, 0.99),
            pct(run, 0.5),
            pct(run, 0.99)
        );
    }
    println!(
        "cancel_task end to end: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&cancel, 0.5),
        pct(&cancel, 0.99),
        cancel.max() as f64 / 1000.0
    );
}
