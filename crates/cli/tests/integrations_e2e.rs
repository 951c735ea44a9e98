//! End to end with Plane and Gitea: the `orch` binary (`orch serve`) against
//! the in-process fakes of both (wiremock over models built from the reference
//! payloads; Gitea's over a real bare repository). Webhooks are signed and
//! posted to the real routes over loopback.
//!
//! - a Plane item moved to To Analyse runs the pipeline to a merged Gitea pull
//!   request and Done on Plane, with comments, through 429 and 500 storms;
//! - STOP from Plane cancels a running task (TC-01 through the webhook route);
//! - webhooks lost on purpose are repaired by the reconciler.

use orch_integrations::fakes::{FakeGitea, FakePlane};
use orch_integrations::signature::sign;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const PLANE_KEY: &str = "plane_api_e2e";
const PLANE_SECRET: &str = "plane_wh_e2e_secret";
const GITEA_TOKEN: &str = "gitea-e2e-token";
const PROJECT: &str = "59e3be42-87ec-4950-99a3-ae639cf2b089";
const DEADLINE: Duration = Duration::from_secs(180);

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@localhost",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Serve {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

struct World {
    tmp: tempfile::TempDir,
    plane: FakePlane,
    gitea: FakeGitea,
    serve: Option<Serve>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl World {
    async fn new(agent_delay: u32) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
        // The repository behind the fake Gitea: a bare remote with main.
        let bare = d.join("remotes/demo.git");
        std::fs::create_dir_all(&bare).unwrap();
        git(&bare, &["init", "--quiet", "--bare", "-b", "main"]);
        let seed = d.join("seed");
        std::fs::create_dir_all(seed.join("scripts")).unwrap();
        git(&seed, &["init", "--quiet", "-b", "main"]);
        std::fs::write(seed.join("README.md"), "# demo\n").unwrap();
        std::fs::write(
            seed.join("scripts/verify.sh"),
            "#!/bin/sh\necho verify: ok\n",
        )
        .unwrap();
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "--quiet", "-m", "initial commit"]);
        git(&seed, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
        // The example agents.
        let agents = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents");
        std::fs::create_dir_all(d.join("examples/agents")).unwrap();
        for a in ["common.sh", "analyst.sh", "developer.sh", "reviewer.sh"] {
            std::fs::copy(agents.join(a), d.join("examples/agents").join(a)).unwrap();
        }
        let plane = FakePlane::start("acme", PLANE_KEY).await;
        let mut states: Vec<String> = orch_config::TrackerStates::default()
            .entries()
            .iter()
            .map(|(_, n)| n.to_string())
            .collect();
        states.push("Backlog".into());
        let refs: Vec<&str> = states.iter().map(String::as_str).collect();
        plane.add_project(PROJECT, &refs);
        let gitea = FakeGitea::start("acme/demo", GITEA_TOKEN, &bare).await;
        let agent = |k: &str| {
            format!(
                "[agents.{k}]\ncommand = [\"examples/agents/{k}.sh\"]\ntimeout_secs = 300\nidle_timeout_secs = 120\n"
            )
        };
        let toml = format!(
            "data_dir = \".orch\"\n[queue]\npoll_ms = 200\nmax_attempts = 2\n[queue.retry]\nbase_secs = 1\ncap_secs = 5\n[stop]\ngrace_int_secs = 2\ngrace_term_secs = 2\n\
             [agent_env]\nset = {{ ORCH_EXAMPLE_DELAY = \"{agent_delay}\" }}\n\
             [[repos]]\nname = \"demo\"\nremote = \"remotes/demo.git\"\nverify = [\"sh\", \"scripts/verify.sh\"]\n\
             {}{}{}[agents.merger]\ntimeout_secs = 300\n\
             [tracker]\nkind = \"plane\"\n[tracker.plane]\nbase_url = \"{}\"\nworkspace = \"acme\"\nproject_ids = [\"{PROJECT}\"]\n\
             [forge]\nkind = \"gitea\"\n[forge.gitea]\nbase_url = \"{}\"\n[forge.gitea.repos]\ndemo = \"acme/demo\"\n",
            agent("analyst"),
            agent("developer"),
            agent("reviewer"),
            plane.uri(),
            gitea.uri(),
        );
        std::fs::write(d.join("orch.toml"), toml).unwrap();
        World {
            tmp,
            plane,
            gitea,
            serve: None,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn start(&mut self) {
        let port = free_port();
        let log = self.dir().join("serve.log");
        let child = Command::new(ORCH)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(self.dir())
            .env_remove("ORCH_CONFIG")
            .env("ORCH_PLANE_API_KEY", PLANE_KEY)
            .env("ORCH_PLANE_WEBHOOK_SECRET", PLANE_SECRET)
            .env("ORCH_GITEA_TOKEN", GITEA_TOKEN)
            .env("ORCH_GITEA_WEBHOOK_SECRET", "gitea-secret")
            .env("ORCH_API_TOKEN", "api-token")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < end,
                "orch serve did not listen: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.serve = Some(Serve { child, port, log });
    }

    fn log(&self) -> String {
        self.serve
            .as_ref()
            .map(|s| std::fs::read_to_string(&s.log).unwrap_or_default())
            .unwrap_or_default()
    }

    /// Post a signed Plane delivery to orch's webhook route.
    fn deliver(&self, body: &[u8]) -> u16 {
        let port = self.serve.as_ref().unwrap().port;
        let sig = sign(PLANE_SECRET.as_bytes(), body);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let head = format!(
            "POST /webhooks/plane HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Plane-Event: issue\r\nX-Plane-Delivery: {}\r\nX-Plane-Signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            uuid_ish(),
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    fn show(&self, item: &str) -> Option<Value> {
        let out = Command::new(ORCH)
            .args(["task", "show", item, "--json"])
            .current_dir(self.dir())
            .env_remove("ORCH_CONFIG")
            .env("ORCH_PLANE_API_KEY", PLANE_KEY)
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    async fn wait_plane_state(&self, item: &str, state: &str) {
        let end = Instant::now() + DEADLINE;
        while self.plane.item_state(item) != state {
            assert!(
                Instant::now() < end,
                "the item never reached {state:?} on Plane (it is {:?}); task: {:#?}\nlog:\n{}",
                self.plane.item_state(item),
                self.show(item).map(|v| v["events"].clone()),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_stage(&self, item: &str, stage: &str) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = self.show(item)
                && v["task"]["stage"] == stage
            {
                return v;
            }
            assert!(
                Instant::now() < end,
                "task of {item} never reached {stage}: {:#?}\nlog:\n{}",
                self.show(item),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn uuid_ish() -> String {
    format!(
        "{:x}",
        Instant::now().elapsed().as_nanos() ^ std::process::id() as u128
    )
}

fn events(v: &Value, kind: &str) -> usize {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plane_item_runs_to_a_merged_gitea_pull_request_and_done_through_storms() {
    let mut w = World::new(0).await;
    w.start();
    let item = w.plane.add_item(PROJECT, "Add a greeting", "Backlog");
    assert_eq!(w.deliver(&w.plane.move_item(&item, "To Analyse")), 202);
    w.wait_plane_state(&item, "Awaiting Approval").await;
    // A person approves; Plane then rate-limits orch for a while and Gitea has an outage.
    let approve = w.plane.move_item(&item, "Approved");
    assert_eq!(w.deliver(&approve), 202);
    assert_eq!(w.deliver(&approve), 200, "the replay is a no-op");
    w.plane.fail_next(429, 5);
    // Ten 500s: the status call and the first try of the merge step fail
    // (4 attempts each); the tick retries the step, which then lands.
    w.gitea.fail_next(500, 10);
    w.wait_plane_state(&item, "Done").await;
    let v = w.wait_stage(&item, "done").await;
    assert_eq!(events(&v, "merged"), 1, "merged exactly once");
    assert_eq!(events(&v, "cancelled"), 0);
    // The merge went through a Gitea pull request of the task's branch.
    let prs = w.gitea.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert!(
        prs[0].merged && prs[0].head.starts_with(&format!("feature/{item}")),
        "{prs:?}"
    );
    let bare = w.dir().join("remotes/demo.git");
    let file = git(&bare, &["show", &format!("main:work/{item}.md")]);
    assert!(file.contains("Tests: added"), "{file}");
    // The storm ate the commit status (the first Gitea call of the merge):
    // noted on the task, and the merge went on regardless.
    let forge_errors: Vec<&Value> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "forge_error")
        .collect();
    assert!(
        forge_errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("commit status")),
        "{forge_errors:?}"
    );
    // The merge step's own failure is on the log once, and the tick retried it.
    let retried: Vec<_> = forge_errors
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .contains("the step is retried")
        })
        .collect();
    assert_eq!(retried.len(), 1, "{forge_errors:?}");
    // The branch is gone; main is not.
    assert!(git(&bare, &["branch", "--list", "feature/*"]).is_empty());
    // Comments on the item, each once.
    let comments = w.plane.comments(&item);
    assert!(
        comments.iter().any(|c| c.contains("started the analysis")),
        "{comments:?}"
    );
    assert!(
        comments.iter().any(|c| c.contains("merged")),
        "{comments:?}"
    );
    // The storms happened and were waited out.
    let reqs = w.plane.requests();
    assert!(reqs.len() > 10, "{}", reqs.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tc01_stop_from_plane_cancels_a_running_task_through_the_webhook_route() {
    // Agents take 30 s, so the STOP lands while the analyst runs.
    let mut w = World::new(30).await;
    w.start();
    let item = w.plane.add_item(PROJECT, "Long analysis", "Backlog");
    assert_eq!(w.deliver(&w.plane.move_item(&item, "To Analyse")), 202);
    // Wait until the analyst's process is recorded (pid and start time).
    let end = Instant::now() + DEADLINE;
    let (task_id, pid) = loop {
        let v = w.show(&item);
        let run = v
            .as_ref()
            .and_then(|v| v["runs"].as_array().and_then(|r| r.first().cloned()));
        if let (Some(v), Some(pid)) = (&v, run.as_ref().and_then(|r| r["pid"].as_i64())) {
            break (v["task"]["id"].to_string(), pid);
        }
        assert!(
            Instant::now() < end,
            "the analyst never started: {v:#?}\n{}",
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let started = Instant::now();
    assert_eq!(w.deliver(&w.plane.move_item(&item, "STOP")), 202);
    // After the cancel the item's key is tombstoned (TC-13): look up by task id.
    let v = w.wait_stage(&task_id, "cancelled").await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancelled without waiting for the 30 s agent: {:?}",
        started.elapsed()
    );
    assert_eq!(events(&v, "merged"), 0);
    // The agent's process is gone (SIGINT to its group, then TERM, then KILL).
    let alive = |pid: i64| {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    let end = Instant::now() + Duration::from_secs(15);
    while alive(pid) {
        assert!(
            Instant::now() < end,
            "the analyst (pid {pid}) survived the STOP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.wait_plane_state(&item, "Cancelled").await;
    // A later STOP delivery for the same item is harmless.
    assert_eq!(w.deliver(&w.plane.move_item(&item, "Backlog")), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_webhooks_are_repaired_by_the_reconciler() {
    let mut w = World::new(0).await;
    w.start();
    let item = w.plane.add_item(PROJECT, "Nobody told orch", "Backlog");
    // Moved in Plane, but the delivery never arrives.
    let _lost = w.plane.move_item(&item, "To Analyse");
    w.wait_plane_state(&item, "Awaiting Approval").await;
    let _lost = w.plane.move_item(&item, "Approved");
    w.wait_plane_state(&item, "Done").await;
    let v = w.wait_stage(&item, "done").await;
    assert_eq!(events(&v, "merged"), 1);
    assert!(
        w.log().contains("reconciled with the tracker"),
        "{}",
        w.log()
    );
    // Without a storm, the verified head gets orch's commit status on Gitea.
    let prs = w.gitea.prs();
    let statuses = w.gitea.m().statuses.clone();
    assert!(
        statuses
            .iter()
            .any(|(sha, state, ctx)| sha == &prs[0].head_sha
                && state == "success"
                && ctx == "orch/verify"),
        "{statuses:?}"
    );
}

fn doctor(w: &World, with_key: bool) -> (i32, Vec<Value>) {
    let mut c = Command::new(ORCH);
    c.args(["doctor", "--json"])
        .current_dir(w.dir())
        .env_remove("ORCH_CONFIG")
        .env("ORCH_PLANE_WEBHOOK_SECRET", PLANE_SECRET)
        .env("ORCH_GITEA_TOKEN", GITEA_TOKEN)
        .env("ORCH_GITEA_WEBHOOK_SECRET", "gitea-secret");
    if with_key {
        c.env("ORCH_PLANE_API_KEY", PLANE_KEY);
    } else {
        c.env_remove("ORCH_PLANE_API_KEY");
    }
    let out = c.output().unwrap();
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), checks)
}

fn failures(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["level"] == "fail")
        .map(|c| c["message"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_each_provider_and_says_what_to_fix() {
    let w = World::new(0).await;
    let (code, checks) = doctor(&w, true);
    assert_eq!((code, failures(&checks)), (0, vec![]), "{checks:#?}");
    assert!(
        checks.iter().any(|c| c["subject"] == "forge.gitea"
            && c["message"].as_str().unwrap().contains("acme/demo"))
    );
    // A state missing in the Plane project is named, with its key.
    w.plane
        .model
        .lock()
        .unwrap()
        .states
        .get_mut(PROJECT)
        .unwrap()
        .retain(|s| s.1 != "Confirm Deploy");
    let (code, checks) = doctor(&w, true);
    assert_eq!(code, 1);
    let f = failures(&checks);
    assert!(
        f.len() == 1 && f[0].contains("\"Confirm Deploy\" (confirm_deploy)"),
        "{f:?}"
    );
    // No API key: the variable to set is named.
    let (code, checks) = doctor(&w, false);
    assert_eq!(code, 1);
    assert!(
        failures(&checks)
            .iter()
            .any(|m| m.contains("ORCH_PLANE_API_KEY is not set")),
        "{checks:#?}"
    );
}

/// A verify that fails at the merge gate: the task parks for a person and
/// Gitea shows a failed `orch/verify` status on the branch's pushed head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verify_parks_the_task_and_shows_on_gitea() {
    let mut w = World::new(0).await;
    let cfg_path = w.dir().join("orch.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap().replace(
        "verify = [\"sh\", \"scripts/verify.sh\"]",
        "verify = [\"sh\", \"-c\", \"echo 'verify: 2 tests failed'; exit 1\"]",
    );
    std::fs::write(&cfg_path, cfg).unwrap();
    w.start();
    let item = w.plane.add_item(PROJECT, "Break the build", "Backlog");
    assert_eq!(w.deliver(&w.plane.move_item(&item, "To Analyse")), 202);
    w.wait_plane_state(&item, "Awaiting Approval").await;
    assert_eq!(w.deliver(&w.plane.move_item(&item, "Approved")), 202);
    let v = w.wait_stage(&item, "needs_attention").await;
    assert_eq!(events(&v, "merged"), 0, "nothing merged");
    let branch = v["task"]["branch"].as_str().unwrap().to_owned();
    // The task parks first; the push and the status follow the run report.
    let bare = w.dir().join("remotes/demo.git");
    let end = Instant::now() + DEADLINE;
    loop {
        let head = git(&bare, &["rev-parse", &format!("refs/heads/{branch}")]);
        let statuses = w.gitea.m().statuses.clone();
        if statuses.iter().any(|(sha, state, ctx)| {
            sha == head.trim() && state == "failure" && ctx == "orch/verify"
        }) {
            break;
        }
        assert!(
            Instant::now() < end,
            "no failed orch/verify status on {}: {statuses:?}",
            head.trim()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(w.gitea.prs().iter().all(|p| !p.merged));
}
