//! Observability of a real `orch serve` running the example pipeline:
//! `/metrics` parses as Prometheus text and its counters move when agents
//! run, and the configured secret (the API token) shows up nowhere — not in
//! the server's logs (at debug level, both formats), not in any API answer
//! or dashboard asset, not in the agents' run files.

mod common;

use common::http::{body, counter, http, status};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const SECRET: &str = "s3cret-Token-9f8e7d6c5b4a-do-not-log";

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn orch(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(ORCH)
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .env("ORCH_API_TOKEN", SECRET)
        .stdin(Stdio::null())
        .output()
        .expect("run orch")
}

fn auth() -> String {
    format!("Authorization: Bearer {SECRET}")
}

fn get_json(addr: SocketAddr, path: &str, seen: &mut String) -> Value {
    let a = http(addr, "GET", path, &[&auth()], "");
    seen.push_str(&a);
    assert_eq!(status(&a), 200, "{path}: {a}");
    serde_json::from_str(&body(&a)).unwrap()
}

fn scrape(addr: SocketAddr, seen: &mut String) -> prometheus_parse::Scrape {
    let a = http(addr, "GET", "/metrics", &[&auth()], "");
    seen.push_str(&a);
    assert_eq!(status(&a), 200, "{a}");
    let text = body(&a);
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}): {text}"))
}

/// How many observations a histogram holds (its `+Inf` bucket), over all labels.
fn observations(s: &prometheus_parse::Scrape, name: &str) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .map(|x| match &x.value {
            prometheus_parse::Value::Histogram(b) => b.iter().map(|h| h.count).fold(0.0, f64::max),
            _ => 0.0,
        })
        .sum()
}

/// Observations of a histogram above `limit` seconds (a bucket bound), over
/// all its label sets.
fn observations_over(s: &prometheus_parse::Scrape, name: &str, limit: f64) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .map(|x| match &x.value {
            prometheus_parse::Value::Histogram(b) => {
                let all = b.iter().map(|h| h.count).fold(0.0, f64::max);
                let under = b
                    .iter()
                    .find(|h| h.less_than == limit)
                    .map_or(0.0, |h| h.count);
                all - under
            }
            _ => 0.0,
        })
        .sum()
}

fn start_serve(dir: &Path, log: &Path, format: &str) -> (Serve, SocketAddr) {
    let child = Command::new(ORCH)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .env("ORCH_API_TOKEN", SECRET)
        .env("RUST_LOG", "debug")
        .args(["--log-format", format])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let serve = Serve(child);
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(rest) = text.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().unwrap().parse().unwrap();
            return (serve, addr);
        }
        assert!(Instant::now() < end, "orch serve did not start: {text}");
        // Not listening yet: no API to signal on.
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_stage(addr: SocketAddr, key: &str, stage: &str, seen: &mut String) {
    let end = Instant::now() + Duration::from_secs(180);
    let mut signal = common::wait::Signal::at(&common::http::Api { addr, auth: auth() });
    loop {
        signal.mark();
        let v = get_json(addr, &format!("/api/tasks/{key}"), seen);
        if v["task"]["stage"] == stage {
            return;
        }
        assert!(
            Instant::now() < end,
            "{key} never reached {stage}: {:#}",
            v["events"]
        );
        signal.next(end.saturating_duration_since(Instant::now()));
    }
}

/// Every file under `dir`, as text (lossy), with its path.
fn files(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((
                p.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
}

#[test]
fn metrics_move_with_a_pipeline_and_the_secret_never_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    // DEMO-1 goes through every gate in the quickstart's own process.
    let out = orch(tmp.path(), &["quickstart", "--auto", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    // The API answers and every piece of the dashboard, concatenated.
    let mut seen = String::new();

    let human_log = tmp.path().join("serve-human.log");
    let (serve, addr) = start_serve(&dir, &human_log, "human");
    let before = scrape(addr, &mut seen);
    assert_eq!(counter(&before, "orch_runs_started_total", None), 0.0);
    assert!(
        before
            .samples
            .iter()
            .any(|s| s.metric == "orch_webhook_deliveries_total"),
        "the webhook counter exists before any delivery"
    );

    // A second work item, through this server's engine.
    let created = http(
        addr,
        "POST",
        "/api/tasks",
        &[&auth()],
        "{\"repo\": \"demo\", \"title\": \"Observe me\", \"key\": \"DEMO-2\"}",
    );
    seen.push_str(&created);
    assert_eq!(status(&created), 201, "{created}");
    wait_stage(addr, "DEMO-2", "awaiting_approval", &mut seen);
    let a = http(
        addr,
        "POST",
        "/api/tasks/DEMO-2/approve",
        &[&auth()],
        "{\"comment\": \"go\"}",
    );
    seen.push_str(&a);
    assert_eq!(status(&a), 200, "{a}");
    wait_stage(addr, "DEMO-2", "done", &mut seen);

    let after = scrape(addr, &mut seen);
    for agent in ["analyst", "developer", "reviewer"] {
        let started = counter(&after, "orch_runs_started_total", Some(("agent", agent)));
        assert!(started >= 1.0, "{agent} runs started: {started}");
    }
    let finished = counter(
        &after,
        "orch_runs_finished_total",
        Some(("outcome", "succeeded")),
    );
    assert!(finished >= 3.0, "developer, reviewer twice, …: {finished}");
    assert!(observations(&after, "orch_run_duration_seconds") >= 3.0);
    assert!(observations(&after, "orch_claim_latency_seconds") >= 3.0);
    // Counted from when each job became due (its queueing, or its backoff's
    // end), not from `run_after = 0`, the epoch: every claim here is prompt.
    assert_eq!(
        observations_over(&after, "orch_claim_latency_seconds", 60.0),
        0.0,
        "claims that waited more than a minute"
    );
    let done = after
        .samples
        .iter()
        .find(|s| s.metric == "orch_tasks" && s.labels.get("stage") == Some("done"))
        .map(|s| s.value.clone());
    assert_eq!(done, Some(prometheus_parse::Value::Gauge(2.0)));

    // A STOP is timed.
    let created = http(
        addr,
        "POST",
        "/api/tasks",
        &[&auth()],
        "{\"repo\": \"demo\", \"title\": \"Stop me\", \"key\": \"DEMO-9\"}",
    );
    seen.push_str(&created);
    assert_eq!(status(&created), 201, "{created}");
    let stop = http(addr, "POST", "/api/tasks/DEMO-9/stop", &[&auth()], "");
    seen.push_str(&stop);
    assert_eq!(status(&stop), 200, "{stop}");
    let stopped = scrape(addr, &mut seen);
    assert!(observations(&stopped, "orch_stop_latency_seconds") >= 1.0);

    // Everything a browser or client can read, refusals included.
    for path in [
        "/",
        "/assets/app.js",
        "/assets/app.css",
        "/api/board",
        "/api/session",
        "/queue",
        "/api/tasks",
        "/api/tasks/DEMO-2",
        "/api/tasks/DEMO-2/logs",
        "/api/tasks/DEMO-2/diff",
        "/api/tasks/DEMO-2/artefacts",
        "/healthz",
    ] {
        let a = http(addr, "GET", path, &[&auth()], "");
        assert!(status(&a) < 500, "{path}: {a}");
        seen.push_str(&a);
    }
    let login = http(
        addr,
        "POST",
        "/login",
        &[],
        &format!("{{\"token\": \"{SECRET}\"}}"),
    );
    assert_eq!(status(&login), 200, "{login}");
    seen.push_str(&login);
    for (headers, path) in [
        (vec!["Authorization: Bearer wrong"], "/api/tasks"),
        (vec![], "/api/tasks"),
    ] {
        let a = http(addr, "GET", path, &headers, "");
        assert_eq!(status(&a), 401);
        seen.push_str(&a);
    }
    drop(serve);

    // The JSON log format too.
    let json_log = tmp.path().join("serve-json.log");
    let (serve, addr) = start_serve(&dir, &json_log, "json");
    get_json(addr, "/api/tasks/DEMO-1", &mut seen);
    drop(serve);

    assert!(seen.contains("DEMO-2"), "the answers were read");
    assert!(!seen.contains(SECRET), "the token is in an API answer");
    // Lines of a run's work carry its task and run (the `run` span).
    let human = std::fs::read_to_string(&human_log).unwrap();
    assert!(
        human.lines().any(|l| l.contains("run{task=")
            && l.contains(" run=")
            && !l.contains("agent started")),
        "no log line of a run's work names its task and run"
    );
    // `--log-format json`: one JSON object per line (the banner aside).
    let json = std::fs::read_to_string(&json_log).unwrap();
    let mut objects = 0;
    for l in json.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(l).expect("a JSON log line");
        objects += 1;
    }
    assert!(objects > 0, "{json}");
    for log in [&human_log, &json_log] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            text.contains("DEBUG") || text.contains("\"DEBUG\""),
            "{text}"
        );
        assert!(!text.contains(SECRET), "the token is in {}", log.display());
    }
    let mut run_files = Vec::new();
    files(&dir.join(".orch"), &mut run_files);
    assert!(run_files.len() > 5, "the runs left their files");
    for (path, text) in run_files {
        assert!(!text.contains(SECRET), "the token is in {path}");
    }
}

/// A log that cannot be written does not stop orch (Symphony SPEC §17.6,
/// "logging sink failures do not crash orchestration"): `orch serve` with
/// its stderr on a full device (`/dev/full`, every write fails with ENOSPC)
/// takes a task through every gate. Before, its first line of output
/// panicked (`eprintln!`, then tracing's own report of the failed write).
#[test]
fn a_log_that_cannot_be_written_does_not_stop_the_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    let out = orch(tmp.path(), &["quickstart", "--auto", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let child = Command::new(ORCH)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env_remove("ORCH_CONFIG")
        .env("ORCH_API_TOKEN", SECRET)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(full)
        .spawn()
        .unwrap();
    let mut serve = Serve(child);
    // Its address, from the control file the CLI uses (stderr says nothing).
    let control = dir.join(".orch/serve.control");
    let end = Instant::now() + Duration::from_secs(60);
    let addr: SocketAddr = loop {
        if let Ok(text) = std::fs::read_to_string(&control)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            break v["url"]
                .as_str()
                .unwrap()
                .trim_start_matches("http://")
                .parse()
                .unwrap();
        }
        assert!(
            serve.0.try_wait().unwrap().is_none(),
            "orch serve died with its stderr on /dev/full"
        );
        assert!(Instant::now() < end, "orch serve never listened");
        // Not listening yet: no API to signal on.
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut seen = String::new();
    let created = http(
        addr,
        "POST",
        "/api/tasks",
        &[&auth()],
        "{\"repo\": \"demo\", \"title\": \"Quietly\", \"key\": \"DEMO-2\"}",
    );
    assert_eq!(status(&created), 201, "{created}");
    wait_stage(addr, "DEMO-2", "awaiting_approval", &mut seen);
    let a = http(
        addr,
        "POST",
        "/api/tasks/DEMO-2/approve",
        &[&auth()],
        "{\"comment\": \"go\"}",
    );
    assert_eq!(status(&a), 200, "{a}");
    wait_stage(addr, "DEMO-2", "done", &mut seen);
    assert!(
        serve.0.try_wait().unwrap().is_none(),
        "orch serve still runs"
    );
    // And it shuts down cleanly on SIGTERM: exit status 0 (Symphony §17.7).
    let _ = Command::new("kill")
        .args(["-TERM", &serve.0.id().to_string()])
        .status();
    let exit = serve.0.wait().unwrap();
    assert!(exit.success(), "orch serve's exit after SIGTERM: {exit:?}");
}
