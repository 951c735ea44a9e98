//! The site of the end-to-end tests against a fake tracker or forge: a
//! bare repository `remotes/demo.git` with a seed commit, the example
//! agents, the config that runs them fast, and `orch serve` on a known
//! loopback port (the fake's deliveries are posted to its webhook routes).
//! `crate::world::World` drives it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `git args` in `dir` as a made-up person (a seed commit needs one).
pub fn git_as_person(dir: &Path, args: &[&str]) -> String {
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

/// orch's calls to the fakes are on loopback: never through a proxy.
pub fn no_proxy(c: &mut Command) -> &mut Command {
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

/// `d/remotes/demo.git` with one commit (a README and a verify script that
/// passes), and the example agents under `d/examples/agents`; the bare
/// repository's path.
pub fn seed_demo(d: &Path) -> PathBuf {
    let bare = d.join("remotes/demo.git");
    std::fs::create_dir_all(&bare).unwrap();
    git_as_person(&bare, &["init", "--quiet", "--bare", "-b", "main"]);
    let seed = d.join("seed");
    std::fs::create_dir_all(seed.join("scripts")).unwrap();
    git_as_person(&seed, &["init", "--quiet", "-b", "main"]);
    std::fs::write(seed.join("README.md"), "# demo\n").unwrap();
    std::fs::write(
        seed.join("scripts/verify.sh"),
        "#!/bin/sh\necho verify: ok\n",
    )
    .unwrap();
    git_as_person(&seed, &["add", "-A"]);
    git_as_person(&seed, &["commit", "--quiet", "-m", "initial commit"]);
    git_as_person(&seed, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
    let agents = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/agents");
    std::fs::create_dir_all(d.join("examples/agents")).unwrap();
    for a in ["common.sh", "analyst.sh", "developer.sh", "reviewer.sh"] {
        std::fs::copy(agents.join(a), d.join("examples/agents").join(a)).unwrap();
    }
    bare
}

/// orch.toml without its `[tracker]` and `[forge]`: the repo `demo` over
/// `remotes/demo.git`, the example agents without delays, a fast queue.
pub fn demo_toml() -> String {
    let agent = |k: &str| {
        format!(
            "[agents.{k}]\ncommand = [\"examples/agents/{k}.sh\"]\ntimeout_secs = 300\nidle_timeout_secs = 120\n"
        )
    };
    format!(
        "data_dir = \".orch\"\n[queue]\npoll_ms = 200\nmax_attempts = 2\n[queue.retry]\nbase_secs = 1\ncap_secs = 5\n\
         [agent_env]\nset = {{ ORCH_EXAMPLE_DELAY = \"0\" }}\n\
         [[repos]]\nname = \"demo\"\nremote = \"remotes/demo.git\"\nverify = [\"sh\", \"scripts/verify.sh\"]\n\
         {}{}{}[agents.merger]\ntimeout_secs = 300\n",
        agent("analyst"),
        agent("developer"),
        agent("reviewer"),
    )
}

/// `orch serve` on a free loopback port; dropping it stops it (SIGTERM).
pub struct Listening {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Listening {
    /// Starts `orch serve` in `dir` with `env` and waits until it listens.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Listening {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("serve.log");
        let mut cmd = Command::new(super::binary());
        no_proxy(&mut cmd)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir)
            .env_remove("ORCH_CONFIG")
            .env("ORCH_API_TOKEN", "api-token")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < end,
                "orch serve did not listen: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            // Not listening yet: there is no engine to ask for a signal.
            std::thread::sleep(Duration::from_millis(50));
        }
        Listening { child, port, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// POST a JSON body to `path` with these headers; the status.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// How long a tracker end-to-end test waits for one step of the pipeline
/// (CI is a busy 2-core machine).
pub const DEADLINE: Duration = Duration::from_secs(180);

/// The data folder of one tracker end-to-end test: the demo repository
/// seeded, its config, and once started `orch serve` in it.
pub struct Site {
    tmp: tempfile::TempDir,
    serve: Option<Listening>,
    /// The demo repository's bare remote (a fake forge serves it).
    pub bare: PathBuf,
}

impl Site {
    pub fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let bare = seed_demo(tmp.path());
        Site {
            tmp,
            serve: None,
            bare,
        }
    }

    /// Write `orch.toml`: the demo config, then `integrations` (the test's
    /// `[tracker]` and `[forge]`).
    pub fn configure(&self, integrations: &str) {
        self.write_config(&format!("{}{integrations}", demo_toml()));
    }

    /// Write `orch.toml` as it is given.
    pub fn write_config(&self, toml: &str) {
        std::fs::write(self.dir().join("orch.toml"), toml).unwrap();
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Start `orch serve` with these variables (the tracker's secrets).
    pub fn start(&mut self, env: &[(&str, &str)]) {
        self.serve = Some(Listening::start(self.dir(), env));
    }

    pub fn log(&self) -> String {
        self.serve.as_ref().map(Listening::log).unwrap_or_default()
    }

    /// The loopback port the started server listens on.
    pub fn port(&self) -> u16 {
        self.serve.as_ref().expect("orch serve is started").port
    }

    /// POST a delivery to the started server; the status.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
        self.serve
            .as_ref()
            .expect("orch serve is started")
            .post(path, headers, body)
    }
}

impl Default for Site {
    fn default() -> Site {
        Site::new()
    }
}

/// A team's workflow with orch's states under their default names, orch's
/// Done under the team's own `done`, and one state of the team's own.
pub fn team_states(done: &str) -> Vec<String> {
    let mut states: Vec<String> = orch_config::TrackerStates::default()
        .entries()
        .iter()
        .map(|(_, n)| n.to_string())
        .filter(|n| n != "Done")
        .collect();
    states.extend([done.to_string(), "Backlog".to_string()]);
    states
}

impl Site {
    /// Where every tracker test ends: task `key` (`show --json` in `v`)
    /// merged exactly once and never cancelled, started once (the replays
    /// started nothing), its change on `main` of the remote.
    pub fn assert_merged_once(&self, v: &serde_json::Value, key: &str) {
        let count = |kind: &str| super::count_events(v, kind);
        assert_eq!(count("merged"), 1, "merged exactly once");
        assert_eq!(count("cancelled"), 0);
        assert_eq!(count("started"), 1, "the replay started nothing");
        assert!(
            git_as_person(&self.bare, &["show", &format!("main:work/{key}.md")])
                .contains("Tests: added")
        );
    }
}

/// orch's comments on the item: the analysis start and the merge among
/// them, each marked as orch's.
pub fn assert_orchs_comments(comments: &[String]) {
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
