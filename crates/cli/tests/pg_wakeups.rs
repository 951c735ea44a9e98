//! Wake-ups without polling, through the binary on PostgreSQL: `orch serve`
//! polls only every ten minutes, and a task added by another process (the
//! CLI writing the store directly) still has its analyst run at once, woken
//! by the store's queue signals (LISTEN/NOTIFY). Needs `ORCH_TEST_PG_URL`
//! (skipped with a note without it; a failure under CI).

use orch_store::testing::{PgScratch, pg_url};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
/// Far below the poll and the ticker (ten minutes): only a signal is this quick.
const DEADLINE: Duration = Duration::from_secs(60);

fn orch(dir: &Path, args: &[&str]) -> Output {
    Command::new(ORCH)
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run orch")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = orch(dir, args);
    assert!(
        out.status.success(),
        "orch {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_added_by_another_process_runs_without_waiting_for_the_poll() {
    let Some(base) = pg_url() else { return };
    let scratch = PgScratch::create(&base).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    ok(tmp.path(), &["quickstart", "--auto", dir.to_str().unwrap()]);
    let toml = std::fs::read_to_string(dir.join("orch.toml")).unwrap();
    assert!(toml.contains("poll_ms = 200"), "{toml}");
    let toml = toml.replace("poll_ms = 200", "poll_ms = 600000");
    std::fs::write(
        dir.join("orch.toml"),
        format!("{toml}\n[store]\nurl = \"{}\"\n", scratch.url()),
    )
    .unwrap();
    // Published by the engine started below once it runs (and listens for
    // signals); none may be left from the quickstart.
    let control = dir.join(".orch/serve.control");
    let _ = std::fs::remove_file(&control);
    let _serve = Serve(
        Command::new(ORCH)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let end = Instant::now() + DEADLINE;
    while !control.exists() {
        assert!(Instant::now() < end, "orch serve never started");
        // Before its control file the engine has no API to signal on.
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(
        &dir,
        &[
            "task", "add", "--repo", "demo", "--title", "Woken", "--id", "DEMO-9",
        ],
    );
    let added = Instant::now();
    // `orch task wait` waits on the engine's change signal (its own
    // commits: the ticker here passes every ten minutes), no polling.
    let waited = orch(
        &dir,
        &[
            "task",
            "wait",
            "DEMO-9",
            "--stage",
            "awaiting_approval",
            "--timeout",
            &DEADLINE.as_secs().to_string(),
        ],
    );
    if !waited.status.success() {
        let v: Value =
            serde_json::from_str(&ok(&dir, &["task", "show", "DEMO-9", "--json"])).unwrap();
        panic!(
            "the analyst never ran before the poll: {}\n{:#}",
            String::from_utf8_lossy(&waited.stderr),
            v["events"]
        );
    }
    eprintln!("task added → analysed in {:?}", added.elapsed());
}
