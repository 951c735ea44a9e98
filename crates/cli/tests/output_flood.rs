//! An agent's big output through the `orch` binary (issue 15, point 11): the
//! analyst is a Claude Code agent (`tests/flood`) that prints one 50 MiB line
//! and then 200,000 stream-json lines.
//!
//! - Ending on its own, its run is recorded with the outcome its last line
//!   gives, the log keeps the long line whole, and the task says the line was
//!   parsed only in part.
//! - Stopped while it floods, its run ends, is recorded, and leaves nothing
//!   running.
//! - In both, the watcher holds the job's lease (heartbeat every second,
//!   lease 10 s) the whole time it reads the flood: a lapsed lease would let
//!   a reaper take the job from under a live run.
//!
//! The peak RSS and the exit → recorded time are measured by
//! `cargo bench -p orch-cli --bench output_flood`.

mod common;
mod flood;

use common::{Serve, assert_no_orphans, ok, quickstart_project, show};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIG_MIB: u64 = 50;
const LINES: u64 = 200_000;
/// How long a step may take before the test gives up on it: a bound on a
/// hang, not a performance target.
const WAIT: Duration = Duration::from_secs(240);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A quickstart project whose analyst floods in `mode`; returns it and the
/// marker the flood creates once it is under way (mode `forever`).
fn project(tmp: &Path, name: &str, mode: &str) -> (PathBuf, PathBuf) {
    let marker = tmp.join(format!("{name}-flooding"));
    let script = tmp.join(format!("{name}-script"));
    std::fs::create_dir_all(&script).unwrap();
    let script = flood::install(&script);
    let analyst = flood::analyst(&script, BIG_MIB, LINES, mode, &marker);
    let dir = quickstart_project(tmp, name, |c| {
        let c = c
            .replace("command = [\"examples/agents/analyst.sh\"]", &analyst)
            .replace(
                "poll_ms = 200",
                "poll_ms = 200\nheartbeat_secs = 1\nlease_secs = 10",
            );
        assert!(
            c.contains("flood.py") && c.contains("lease_secs = 10"),
            "{c}"
        );
        c
    });
    (dir, marker)
}

fn analyst_run(v: &Value) -> Option<&Value> {
    v["runs"]
        .as_array()?
        .iter()
        .find(|r| r["agent"] == "analyst")
}

/// Follows the task (by key or id) until its analyst run is recorded,
/// checking at every look that a running analyst job's lease has not lapsed.
/// `during` is called at every look while the run is not recorded yet.
fn follow_run(dir: &Path, task: &str, mut during: impl FnMut(&Value)) -> Value {
    let end = Instant::now() + WAIT;
    let mut looks_while_running = 0;
    let mut signal = common::wait::Signal::new(dir);
    loop {
        signal.mark();
        let asked = now_ms();
        if let Some(v) = show(dir, task) {
            for job in v["jobs"].as_array().unwrap() {
                if job["agent"] == "analyst" && job["status"] == "running" {
                    looks_while_running += 1;
                    let lease = job["lease_expires_at"].as_i64().unwrap_or(0);
                    assert!(
                        lease >= asked,
                        "the running job's lease lapsed {} ms before this look: its watcher stopped renewing it\n{job:#}",
                        asked - lease
                    );
                }
            }
            if let Some(run) = analyst_run(&v)
                && !run["finished_at"].is_null()
            {
                assert!(looks_while_running > 0, "the run was never seen running");
                return v;
            }
            during(&v);
        }
        assert!(
            Instant::now() < end,
            "{task}: the analyst run was never recorded"
        );
        signal.next(end.saturating_duration_since(Instant::now()));
    }
}

/// The longest line of the file, in bytes (read in pieces, not whole).
fn longest_line(path: &Path) -> u64 {
    let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(path).unwrap());
    let (mut longest, mut current) = (0u64, 0u64);
    loop {
        let buf = r.fill_buf().unwrap();
        if buf.is_empty() {
            return longest.max(current);
        }
        let n = buf.len();
        for &b in buf {
            if b == b'\n' {
                longest = longest.max(current);
                current = 0;
            } else {
                current += 1;
            }
        }
        r.consume(n);
    }
}

#[test]
fn a_flood_is_recorded_with_its_outcome_and_the_long_line_is_marked() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = project(tmp.path(), "exits", "exit");
    let serve = Serve::start(&dir);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Flood", "--id", "FLOOD-1",
        ],
    );
    let v = follow_run(&dir, "FLOOD-1", |_| {});
    let run = analyst_run(&v).unwrap();
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    // The lines after the long one were parsed: the session and the cost
    // come from the init and result lines.
    assert_eq!(run["session_id"], "flood", "{run:#}");
    assert_eq!(run["final_text"], "flood done", "{run:#}");
    assert!(
        (run["usage"]["cost_usd"].as_f64().unwrap() - 0.01).abs() < 1e-9,
        "{run:#}"
    );

    // The log keeps the long line whole.
    let log = PathBuf::from(run["log_path"].as_str().unwrap());
    assert!(
        longest_line(&log) > BIG_MIB << 20,
        "output.log holds the {BIG_MIB} MiB line whole"
    );
    // The task says that line was parsed only in part.
    let id = v["task"]["id"].to_string();
    let v = common::wait::task(&dir, &id, WAIT, "the analysis moves on", |v| {
        v["task"]["stage"] != "analysis"
    });
    let notes: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "output_truncated")
        .map(|e| e["message"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(notes.len(), 1, "one note for the run: {:#}", v["events"]);
    assert!(
        notes[0].contains("1 output line(s)") && notes[0].contains("output.log"),
        "{}",
        notes[0]
    );
    assert_eq!(v["task"]["stage"], "awaiting_approval", "{:#}", v["task"]);
    assert_no_orphans(&dir, serve.pid(), "after the flood");
}

#[test]
fn a_stop_during_a_flood_ends_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, marker) = project(tmp.path(), "stopped", "forever");
    let serve = Serve::start(&dir);
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Flood", "--id", "FLOOD-2",
        ],
    );
    let mut id = None;
    let v = follow_run(&dir, "FLOOD-2", |v| {
        // Once the flood is under way (the long line and 200,000 lines are
        // out and more keep coming), STOP it: once.
        if id.is_none() && marker.exists() {
            let task = v["task"]["id"].to_string();
            let r: Value =
                serde_json::from_str(&ok(&dir, &["task", "stop", &task, "--json"])).unwrap();
            assert_eq!(r["ok"], true, "{r}");
            assert_eq!(r["stopped"], 1, "the flooding run was stopped: {r}");
            id = Some(task);
        }
    });
    let id = id.expect("the STOP was sent before the run was recorded");
    let run = analyst_run(&v).unwrap();
    // The CLI's STOP ends the processes; the watcher records the run as
    // cancelled (it finds its claim gone) or interrupted (it saw the agent
    // die first). Never as a success, and never left open.
    let outcome = run["outcome"].as_str().unwrap();
    assert!(
        outcome == "cancelled" || outcome == "interrupted",
        "{run:#}"
    );
    let v = show(&dir, &id).unwrap();
    assert_eq!(v["task"]["stage"], "cancelled");
    let log = PathBuf::from(run["log_path"].as_str().unwrap());
    assert!(
        std::fs::metadata(&log).unwrap().len() > (BIG_MIB << 20),
        "the flood was under way when it was stopped"
    );
    assert_no_orphans(&dir, serve.pid(), "after the STOP");
}
