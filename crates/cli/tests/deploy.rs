//! Deploy end to end through `orch serve` and the CLI: phase A, the
//! park until Confirm Deploy, phase B once, the health check; a self-deploy
//! whose phase B restarts orch itself; and one engine per data folder.

mod common;

use common::http::Api;
use common::{Serve, count_events, ok, orch, quickstart_project, wait};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

const KEY: &str = "DEMO-2";
const WAIT: Duration = Duration::from_secs(120);

fn stage(v: &Value) -> &str {
    v["task"]["stage"].as_str().unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The quickstart project with `deploy` as its repo's `[repos.deploy]`.
fn project(tmp: &Path, deploy: &str) -> std::path::PathBuf {
    quickstart_project(tmp, "deploy", |cfg| {
        cfg.replacen(
            "verify = [\"sh\", \"scripts/verify.sh\"]\n",
            &format!("verify = [\"sh\", \"scripts/verify.sh\"]\n\n[repos.deploy]\n{deploy}\n"),
            1,
        )
    })
}

#[test]
fn deploy_parks_until_confirm_deploy_then_runs_once_and_checks_health() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("deploy");
    let (prepared, deployed) = (d.join("prepared.log"), d.join("deployed.log"));
    let dir = project(
        tmp.path(),
        &format!(
            "prepare = [\"sh\", \"-c\", \"echo $ORCH_WORK_ITEM >> {p}\"]\nrun = [\"sh\", \"-c\", \"echo $ORCH_WORK_ITEM >> {r}\"]\nhealth = [\"grep\", \"-q\", \"{KEY}\", \"{r}\"]",
            p = prepared.display(),
            r = deployed.display()
        ),
    );
    let _serve = Serve::start(&dir);
    let api = Api::of(&dir);
    // The engine's ticker passes: where nothing must happen, the test
    // waits for the engine to have looked again, not for a time.
    let ticker = "orch_ticker_passes_total";
    ok(
        &dir,
        &["task", "add", "--repo", "demo", "--title", "x", "--id", KEY],
    );
    wait::task(&dir, KEY, WAIT, "analysis", |v| {
        stage(v) == "awaiting_approval"
    });
    ok(&dir, &["task", "approve", KEY]);
    wait::task(&dir, KEY, WAIT, "phase A", |_| lines(&prepared) == [KEY]);
    // Parked: the merge is done, phase B waits for a person.
    api.wait_for_passes(ticker, 1);
    let v = wait::task(&dir, KEY, WAIT, "parked", |v| stage(v) == "deploy");
    assert_eq!(count_events(&v, "merged"), 1);
    // A person is asked, once (the ticker runs every second meanwhile).
    wait::task(&dir, KEY, WAIT, "the ask", |v| {
        count_events(v, "awaiting_confirm_deploy") == 1
    });
    api.wait_for_passes(ticker, 2);
    assert!(
        lines(&deployed).is_empty(),
        "phase B waits for Confirm Deploy"
    );
    assert_eq!(count_events(&v, "deploy_started"), 0);

    ok(&dir, &["task", "confirm-deploy", KEY]);
    let v = wait::task(&dir, KEY, WAIT, "done", |v| stage(v) == "done");
    assert_eq!(lines(&deployed), [KEY], "phase B ran once");
    assert_eq!(lines(&prepared), [KEY], "phase A ran once");
    assert_eq!(count_events(&v, "deployed"), 1, "{:#}", v["events"]);
    assert_eq!(
        count_events(&v, "awaiting_confirm_deploy"),
        1,
        "asked once: {:#}",
        v["events"]
    );
    // A second Confirm Deploy on a done task is refused and runs nothing.
    let again = orch(
        &dir,
        &["task", "confirm-deploy", &v["task"]["id"].to_string()],
    );
    assert!(!again.status.success());
    api.wait_for_passes(ticker, 1);
    assert_eq!(lines(&deployed), [KEY]);
}

#[test]
fn self_deploy_restarts_orch_and_the_finalizer_completes_the_task() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("deploy");
    let deployed = d.join("deployed.log");
    // Phase B of orch's own repo: restart orch (SIGTERM to the engine named
    // in serve.pid, as `systemctl restart` would), then finish the rollout.
    // No setting marks the repo as orch's own: every phase B survives a restart.
    let dir = project(
        tmp.path(),
        &format!(
            "run = [\"sh\", \"-c\", \"kill -TERM $(cat {pid}); sleep 1; echo $ORCH_WORK_ITEM >> {r}\"]\nauto = true",
            pid = d.join(".orch/serve.pid").display(),
            r = deployed.display()
        ),
    );
    let mut serve = Serve::start(&dir);
    ok(
        &dir,
        &["task", "add", "--repo", "demo", "--title", "x", "--id", KEY],
    );
    wait::task(&dir, KEY, WAIT, "analysis", |v| {
        stage(v) == "awaiting_approval"
    });
    ok(&dir, &["task", "approve", KEY]);
    let end = Instant::now() + WAIT;
    let mut restarts = 0;
    // Each look after a change the engine signalled; while it restarts
    // there is none to ask (`common::wait::Signal`).
    let mut signal = common::wait::Signal::new(&dir);
    let v = loop {
        signal.mark();
        if serve.restart_if_exited() {
            restarts += 1;
        }
        if let Some(v) = common::show(&dir, KEY)
            && stage(&v) == "done"
        {
            break v;
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the self-deploy never finished");
        signal.next(left);
    };
    assert_eq!(restarts, 1, "phase B restarted orch once");
    assert_eq!(
        lines(&deployed),
        [KEY],
        "phase B ran once, across the restart"
    );
    assert_eq!(count_events(&v, "deployed"), 1);
    assert_eq!(count_events(&v, "merged"), 1);
}

#[test]
fn one_engine_per_data_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "one", |c| c);
    let _first = Serve::start(&dir);
    // The first takes the lock at start-up; give it a moment.
    wait::task(
        &dir,
        "DEMO-1",
        WAIT,
        "the first engine holds the lock",
        |_| {
            std::fs::read_to_string(dir.join(".orch/serve.pid"))
                .is_ok_and(|p| p.trim().parse::<u32>().is_ok())
        },
    );
    // It listens (its control file is written after it took the lock).
    Api::of(&dir);
    let second = orch(&dir, &["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another orch engine"), "{err}");
}

/// Seen in CI: `orch task add` run as `orch serve` started asks whether an
/// engine runs by taking the lock shared for an instant, and the starting
/// engine took that for another engine and exited. It now waits a moment
/// for the lock.
#[test]
fn an_engine_starting_while_the_cli_looks_at_the_lock_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = quickstart_project(tmp.path(), "probe", |c| c);
    let pid_file = std::fs::File::open(dir.join(".orch/serve.pid")).unwrap();
    // What `engine_link::engine_runs_on` takes, held across the engine's start.
    let shared =
        nix::fcntl::Flock::lock(pid_file, nix::fcntl::FlockArg::LockSharedNonblock).unwrap();
    let mut serve = Serve::start(&dir);
    // The engine must meet the held lock as it starts; before it listens
    // it has no API to signal on, so the lock is held for a while.
    std::thread::sleep(Duration::from_millis(1000));
    drop(shared);
    Api::of(&dir);
    assert!(
        !serve.restart_if_exited(),
        "the engine exited: {}",
        std::fs::read_to_string(dir.join("serve-0.log")).unwrap_or_default()
    );
}
