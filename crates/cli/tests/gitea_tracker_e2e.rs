//! End to end with Gitea/Forgejo as both tracker and forge: the `orch`
//! binary (`orch serve`) against the in-process fake Gitea (its issues,
//! labels and comments built from Gitea's swagger; its pull requests over a
//! real bare repository). A person's label on an issue arrives as Gitea's
//! signed `issue_label` delivery on the real webhook route over loopback.
//!
//! An issue labelled To Analyse runs to Awaiting Approval; labelled Approved
//! it runs to a merged pull request and Done, each stage shown as the
//! issue's state label, with orch's comments. A delivery with a bad
//! signature is refused with 401 and changes nothing; a replay is a no-op.

use orch_integrations::fakes::FakeGitea;
use orch_integrations::signature::sign;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const TOKEN: &str = "gitea-e2e-token";
const SECRET: &str = "gitea-e2e-secret";
const DEADLINE: Duration = Duration::from_secs(180);

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@localhost"])
        .args(["-c", "commit.gpgsign=false"])
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

/// orch's calls to the fake are on loopback: never through a proxy.
fn no_proxy(c: &mut Command) -> &mut Command {
    c.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        c.env_remove(var);
    }
    c
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
    gitea: FakeGitea,
    serve: Option<Serve>,
}

impl World {
    async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_path_buf();
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
        let agents = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents");
        std::fs::create_dir_all(d.join("examples/agents")).unwrap();
        for a in ["common.sh", "analyst.sh", "developer.sh", "reviewer.sh"] {
            std::fs::copy(agents.join(a), d.join("examples/agents").join(a)).unwrap();
        }
        let gitea = FakeGitea::start("acme/demo", TOKEN, &bare).await;
        let agent = |k: &str| {
            format!(
                "[agents.{k}]\ncommand = [\"examples/agents/{k}.sh\"]\ntimeout_secs = 300\nidle_timeout_secs = 120\n"
            )
        };
        // Tracker and forge are one Gitea account: one client, one budget.
        let toml = format!(
            "data_dir = \".orch\"\n[queue]\npoll_ms = 200\nmax_attempts = 2\n[queue.retry]\nbase_secs = 1\ncap_secs = 5\n\
             [agent_env]\nset = {{ ORCH_EXAMPLE_DELAY = \"0\" }}\n\
             [[repos]]\nname = \"demo\"\nremote = \"remotes/demo.git\"\nverify = [\"sh\", \"scripts/verify.sh\"]\n\
             {}{}{}[agents.merger]\ntimeout_secs = 300\n\
             [tracker]\nkind = \"gitea\"\n[tracker.gitea]\nbase_url = \"{uri}\"\nrepos = [\"acme/demo\"]\n\
             [forge]\nkind = \"gitea\"\n[forge.gitea]\nbase_url = \"{uri}\"\n[forge.gitea.repos]\ndemo = \"acme/demo\"\n",
            agent("analyst"),
            agent("developer"),
            agent("reviewer"),
            uri = gitea.uri(),
        );
        std::fs::write(d.join("orch.toml"), toml).unwrap();
        World {
            tmp,
            gitea,
            serve: None,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn start(&mut self) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = self.dir().join("serve.log");
        let child = no_proxy(&mut Command::new(ORCH))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(self.dir())
            .env_remove("ORCH_CONFIG")
            .env("ORCH_GITEA_TOKEN", TOKEN)
            .env("ORCH_GITEA_WEBHOOK_SECRET", SECRET)
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

    /// Post a Gitea `issue_label` delivery with this signature; the status.
    fn deliver_signed(&self, body: &[u8], sig: &str, delivery: &str) -> u16 {
        let port = self.serve.as_ref().unwrap().port;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let head = format!(
            "POST /webhooks/gitea HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             X-Gitea-Event: issues\r\nX-Gitea-Event-Type: issue_label\r\nX-Gitea-Delivery: {delivery}\r\n\
             X-Gitea-Signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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

    fn deliver(&self, body: &[u8], delivery: &str) -> u16 {
        self.deliver_signed(body, &sign(SECRET.as_bytes(), body), delivery)
    }

    fn show(&self, task: &str) -> Option<Value> {
        let out = Command::new(ORCH)
            .args(["task", "show", task, "--json"])
            .current_dir(self.dir())
            .env_remove("ORCH_CONFIG")
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    async fn wait_label(&self, issue: u64, label: &str) {
        let end = Instant::now() + DEADLINE;
        while !self.gitea.labels_of(issue).iter().any(|l| l == label) {
            assert!(
                Instant::now() < end,
                "issue {issue} never got the label {label:?} (it has {:?}); task: {:#?}\nlog:\n{}",
                self.gitea.labels_of(issue),
                self.show(&format!("demo-{issue}"))
                    .map(|v| v["events"].clone()),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
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
async fn a_gitea_issue_runs_from_to_analyse_to_a_merged_pull_request_and_done() {
    let mut w = World::new().await;
    w.gitea.add_issue(7, "Add a greeting", &["bug"]);
    w.start();

    let to_analyse = w.gitea.person_labels(7, "To Analyse");
    // A bad signature: 401, and nothing happens (no task, no call to Gitea).
    let calls = w.gitea.requests().len();
    assert_eq!(w.deliver_signed(&to_analyse, &"0".repeat(64), "d-bad"), 401);
    let mut tampered = to_analyse.clone();
    tampered.extend_from_slice(b"\n");
    assert_eq!(
        w.deliver_signed(&tampered, &sign(SECRET.as_bytes(), &to_analyse), "d-bad2"),
        401
    );
    assert!(w.show("demo-7").is_none(), "a refused delivery made a task");
    assert_eq!(
        w.gitea.requests().len(),
        calls,
        "a refused delivery called Gitea"
    );

    assert_eq!(w.deliver(&to_analyse, "d-1"), 202);
    assert_eq!(w.deliver(&to_analyse, "d-1"), 200, "the replay is a no-op");
    w.wait_label(7, "Awaiting Approval").await;
    let labels = w.gitea.labels_of(7);
    assert!(
        labels.contains(&"bug".to_string()) && !labels.contains(&"To Analyse".to_string()),
        "the gate label was replaced by orch's, the person's kept: {labels:?}"
    );

    let approved = w.gitea.person_labels(7, "Approved");
    assert_eq!(w.deliver(&approved, "d-2"), 202);
    assert_eq!(w.deliver(&approved, "d-2"), 200, "the replay is a no-op");
    w.wait_label(7, "Done").await;

    let end = Instant::now() + DEADLINE;
    let v = loop {
        if let Some(v) = w.show("demo-7")
            && v["task"]["stage"] == "done"
        {
            break v;
        }
        assert!(
            Instant::now() < end,
            "never done: {:#?}\n{}",
            w.show("demo-7"),
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(events(&v, "merged"), 1, "merged exactly once");
    assert_eq!(events(&v, "cancelled"), 0);
    assert_eq!(events(&v, "started"), 1, "the replay started nothing");
    let prs = w.gitea.prs();
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert!(
        prs[0].merged && prs[0].head.starts_with("feature/demo-7-"),
        "{prs:?}"
    );
    let bare = w.dir().join("remotes/demo.git");
    assert!(git(&bare, &["show", "main:work/demo-7.md"]).contains("Tests: added"));
    // One state label at the end, the person's other label kept.
    let labels = w.gitea.labels_of(7);
    let states: Vec<&String> = labels
        .iter()
        .filter(|l| orch_config::TrackerStates::default().key_of(l).is_some())
        .collect();
    assert_eq!(states, ["Done"], "{labels:?}");
    assert!(labels.contains(&"bug".to_string()));
    // orch's comments, each marked as orch's.
    let comments = w.gitea.comments_of(7);
    assert!(
        comments.iter().any(|c| c.contains("started the analysis")),
        "{comments:?}"
    );
    assert!(
        comments.iter().any(|c| c.contains("merged")),
        "{comments:?}"
    );
    assert!(
        comments.iter().all(|c| c.contains("<!-- orch")),
        "{comments:?}"
    );
}
