//! End to end with GitLab as both tracker and forge: the `orch` binary
//! (`orch serve`) against the in-process fake GitLab (its issues, scoped
//! labels and notes, and its merge requests over a real bare repository,
//! built from GitLab's API description). A person's label on an issue
//! arrives as GitLab's "Issue Hook" (the stored payload's shape) with the
//! `X-Gitlab-Token` on the real webhook route over loopback.
//!
//! An issue labelled `orch::To Analyse` runs to Awaiting Approval; labelled
//! `orch::Approved` it runs to a merged merge request (merged at the
//! verified sha, with `orch/verify` set on it) and Done, each stage shown
//! as the issue's `orch::` label, with orch's notes. A delivery with a bad
//! token is refused with 401 and changes nothing; a replay is a no-op.

use orch_integrations::fakes::FakeGitlab;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const TOKEN: &str = "glpat-e2e-token";
const SECRET: &str = "gitlab-e2e-hook-token";
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
    gitlab: FakeGitlab,
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
        let gitlab = FakeGitlab::start("acme/demo", TOKEN, &bare).await;
        let agent = |k: &str| {
            format!(
                "[agents.{k}]\ncommand = [\"examples/agents/{k}.sh\"]\ntimeout_secs = 300\nidle_timeout_secs = 120\n"
            )
        };
        // Tracker and forge are one GitLab account: one client, one budget.
        let toml = format!(
            "data_dir = \".orch\"\n[queue]\npoll_ms = 200\nmax_attempts = 2\n[queue.retry]\nbase_secs = 1\ncap_secs = 5\n\
             [agent_env]\nset = {{ ORCH_EXAMPLE_DELAY = \"0\" }}\n\
             [[repos]]\nname = \"demo\"\nremote = \"remotes/demo.git\"\nverify = [\"sh\", \"scripts/verify.sh\"]\n\
             {}{}{}[agents.merger]\ntimeout_secs = 300\n\
             [tracker]\nkind = \"gitlab\"\n[tracker.gitlab]\nbase_url = \"{uri}\"\nprojects = [\"acme/demo\"]\n\
             [forge]\nkind = \"gitlab\"\n[forge.gitlab]\nbase_url = \"{uri}\"\n[forge.gitlab.repos]\ndemo = \"acme/demo\"\n",
            agent("analyst"),
            agent("developer"),
            agent("reviewer"),
            uri = gitlab.uri(),
        );
        std::fs::write(d.join("orch.toml"), toml).unwrap();
        World {
            tmp,
            gitlab,
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
            .env("ORCH_GITLAB_TOKEN", TOKEN)
            .env("ORCH_GITLAB_WEBHOOK_SECRET", SECRET)
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

    /// Post an "Issue Hook" with this token and idempotency key; the status.
    fn deliver_with(&self, body: &[u8], token: &str, key: &str) -> u16 {
        let port = self.serve.as_ref().unwrap().port;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let head = format!(
            "POST /webhooks/gitlab HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             X-Gitlab-Event: Issue Hook\r\nIdempotency-Key: {key}\r\n\
             X-Gitlab-Token: {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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

    fn deliver(&self, body: &[u8], key: &str) -> u16 {
        self.deliver_with(body, SECRET, key)
    }

    /// A person changes the issue's labels in GitLab; the "Issue Hook"
    /// GitLab sends for it (the stored payload with this issue's labels).
    fn person_labels(&self, iid: u64, add: &[&str], remove: &[&str]) -> Vec<u8> {
        self.gitlab.person_labels(iid, add, remove);
        let labels = self.gitlab.labels_of(iid);
        let updated =
            orch_integrations::fakes::gitlab::fake_time(self.gitlab.m().issues[&iid].updated);
        let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../integrations/tests/fixtures/gitlab/issue-hook.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        let ls: Vec<Value> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| serde_json::json!({"id": i + 1, "title": l, "type": "ProjectLabel"}))
            .collect();
        v["project"]["path_with_namespace"] = "acme/demo".into();
        v["object_attributes"]["iid"] = iid.into();
        v["object_attributes"]["action"] = "update".into();
        v["object_attributes"]["updated_at"] = updated.into();
        v["labels"] = Value::Array(ls.clone());
        v["changes"]["labels"]["current"] = Value::Array(ls);
        serde_json::to_vec(&v).unwrap()
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
        while !self.gitlab.labels_of(issue).iter().any(|l| l == label) {
            assert!(
                Instant::now() < end,
                "issue {issue} never got the label {label:?} (it has {:?}); task: {:#?}\nlog:\n{}",
                self.gitlab.labels_of(issue),
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
async fn a_gitlab_issue_runs_from_to_analyse_to_a_merged_merge_request_and_done() {
    let mut w = World::new().await;
    w.gitlab.add_issue(7, "Add a greeting", &["bug"]);
    w.start();

    let to_analyse = w.person_labels(7, &["orch::To Analyse"], &[]);
    // A wrong token, a prefix of it, none: 401, and nothing happens (no
    // task, no call to GitLab).
    let calls = w.gitlab.m().requests.len();
    assert_eq!(w.deliver_with(&to_analyse, "wrong", "k-bad"), 401);
    assert_eq!(w.deliver_with(&to_analyse, &SECRET[..6], "k-bad2"), 401);
    assert!(w.show("demo-7").is_none(), "a refused delivery made a task");
    assert_eq!(
        w.gitlab.m().requests.len(),
        calls,
        "a refused delivery called GitLab"
    );

    assert_eq!(w.deliver(&to_analyse, "k-1"), 202);
    assert_eq!(w.deliver(&to_analyse, "k-1"), 200, "the replay is a no-op");
    w.wait_label(7, "orch::Awaiting Approval").await;
    let labels = w.gitlab.labels_of(7);
    assert!(
        labels.contains(&"bug".to_string()) && !labels.contains(&"orch::To Analyse".to_string()),
        "the gate label was replaced by orch's, the person's kept: {labels:?}"
    );

    let approved = w.person_labels(7, &["orch::Approved"], &["orch::Awaiting Approval"]);
    assert_eq!(w.deliver(&approved, "k-2"), 202);
    assert_eq!(w.deliver(&approved, "k-2"), 200, "the replay is a no-op");
    w.wait_label(7, "orch::Done").await;

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
    let (mrs, statuses, merge_sha) = {
        let m = w.gitlab.m();
        let merge_sha = m
            .requests
            .iter()
            .find(|r| r.method == "PUT" && r.path.ends_with("/merge"))
            .and_then(|r| r.body.as_ref()?["sha"].as_str().map(str::to_owned));
        (m.mrs.clone(), m.statuses.clone(), merge_sha)
    };
    assert_eq!(mrs.len(), 1, "{mrs:?}");
    assert!(
        mrs[0].state == "merged" && mrs[0].source.starts_with("feature/demo-7-"),
        "{mrs:?}"
    );
    // Merged at the verified head, which carries orch/verify = success.
    assert_eq!(merge_sha.as_deref(), Some(mrs[0].sha.as_str()));
    assert!(
        statuses
            .iter()
            .any(|(sha, st, name)| *sha == mrs[0].sha && st == "success" && name == "orch/verify"),
        "{statuses:?}"
    );
    let bare = w.dir().join("remotes/demo.git");
    assert!(git(&bare, &["show", "main:work/demo-7.md"]).contains("Tests: added"));
    // One state label at the end, the person's other label kept.
    let labels = w.gitlab.labels_of(7);
    let states: Vec<&String> = labels.iter().filter(|l| l.starts_with("orch::")).collect();
    assert_eq!(states, ["orch::Done"], "{labels:?}");
    assert!(labels.contains(&"bug".to_string()));
    // orch's notes, each marked as orch's.
    let notes = w.gitlab.comments_of(7);
    assert!(
        notes.iter().any(|c| c.contains("started the analysis")),
        "{notes:?}"
    );
    assert!(notes.iter().any(|c| c.contains("merged")), "{notes:?}");
    assert!(notes.iter().all(|c| c.contains("<!-- orch")), "{notes:?}");
}
