//! The test kit of orch's binary-level tests (`crates/cli/tests/*`): running
//! the `orch` binary, a project made by `orch quickstart`, a server under
//! test and the process census that proves nothing was left running; the
//! loopback HTTP client of a running engine (`http`); waits on the engine's
//! change signal instead of sleeps (`wait`); the demo site of the tests
//! against fake trackers and forges (`tracker_world`), and the one `World`
//! of those tests with their domain verbs (`world`).
//!
//! The binary: `env!("CARGO_BIN_EXE_orch")` exists only in orch-cli's own
//! test targets, so a test names it (`use_binary`, `World::new`), or the kit
//! runs the `orch` cargo built beside the running test, which is the same
//! file (`quickstart_hint.rs` checks).

pub mod http;
pub mod tracker_world;
pub mod wait;
pub mod world;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// Names the `orch` binary the kit runs (a test passes
/// `env!("CARGO_BIN_EXE_orch")`); one binary per test process.
pub fn use_binary(path: impl AsRef<Path>) {
    let path = path.as_ref();
    let now = BINARY.get_or_init(|| path.to_path_buf());
    let same = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    assert_eq!(
        same(now),
        same(path),
        "the kit runs one orch binary per test process"
    );
}

/// The `orch` binary the kit runs: the one `use_binary` named, else the one
/// cargo built beside the running test (`target/<profile>/orch`, the file
/// `CARGO_BIN_EXE_orch` names).
pub fn binary() -> &'static Path {
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's executable");
        // target/<profile>/deps/<test>-<hash> → target/<profile>/orch
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .expect("a test runs from target/<profile>/deps");
        let bin = profile.join(format!("orch{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.is_file(),
            "no orch binary at {}: name it with orch_testkit::use_binary(env!(\"CARGO_BIN_EXE_orch\"))",
            bin.display()
        );
        bin
    })
}

pub fn orch(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run orch")
}

/// `orch task add --repo demo --title TITLE --id KEY EXTRA…` (the
/// quickstart's repo); fails the test if it failed.
pub fn add_task(dir: &Path, key: &str, title: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "task", "add", "--repo", "demo", "--title", title, "--id", key,
    ];
    args.extend_from_slice(extra);
    ok(dir, &args)
}

/// Runs `orch args` and returns its stdout; fails the test if it failed.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = orch(dir, args);
    assert!(
        out.status.success(),
        "orch {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `orch task show KEY --json`, or None while the store is briefly busy.
pub fn show(dir: &Path, key: &str) -> Option<Value> {
    let out = orch(dir, &["task", "show", key, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// The message of the task's latest `kind` event (`orch task show --json`),
/// or "" when it has none.
pub fn last_message(v: &Value, kind: &str) -> String {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["kind"] == kind)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

pub fn count_events(v: &Value, kind: &str) -> usize {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

/// The test's folder, kept when the test fails: the servers' logs
/// (`serve-N.log`), the store, the mirror and the worktrees are what tells
/// a failure found after hundreds of iterations apart.
pub struct KeptOnFailure(Option<tempfile::TempDir>);

impl KeptOnFailure {
    pub fn new() -> KeptOnFailure {
        KeptOnFailure(Some(tempfile::tempdir().unwrap()))
    }

    pub fn path(&self) -> &Path {
        self.0
            .as_ref()
            .expect("the folder is there until drop")
            .path()
    }
}

impl Default for KeptOnFailure {
    fn default() -> KeptOnFailure {
        KeptOnFailure::new()
    }
}

impl Drop for KeptOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(tmp) = self.0.take()
        {
            eprintln!("the test's folder is kept at {}", tmp.keep().display());
        }
    }
}

/// A project made by `orch quickstart --auto DIR` (its DEMO-1 is done), with
/// `edit` applied to its orch.toml.
pub fn quickstart_project(tmp: &Path, name: &str, edit: impl FnOnce(String) -> String) -> PathBuf {
    let dir = tmp.join(name);
    ok(tmp, &["quickstart", "--auto", dir.to_str().unwrap()]);
    let cfg_path = dir.join("orch.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, edit(cfg)).unwrap();
    dir
}

/// An `orch serve` under test; dropping it kills it.
pub struct Serve {
    child: Child,
    dir: PathBuf,
    starts: u32,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

impl Serve {
    /// Starts `orch serve` in `dir`; its stderr goes to `dir/serve-N.log`.
    pub fn start(dir: &Path) -> Serve {
        Serve::start_with_env(dir, &[])
    }

    /// As `start`, with extra environment variables (also after restarts).
    pub fn start_with_env(dir: &Path, env: &[(&str, &str)]) -> Serve {
        Serve::start_with(dir, env, &[])
    }

    /// As `start_with_env`, with extra arguments of `orch serve`.
    pub fn start_with(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Serve {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Serve {
            child: spawn_serve(dir, 0, &env, &args),
            dir: dir.to_path_buf(),
            starts: 1,
            env,
            args,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait until the engine listens: it has written `.orch/serve.control`
    /// (the address the CLI's changes go to).
    pub fn wait_listening(&self) -> &Serve {
        let control = self.dir.join(".orch/serve.control");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !control.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "orch serve never listened (no {})",
                control.display()
            );
            // Before its control file the engine has no API to signal on.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self
    }

    /// If the server has exited, starts a new one (what systemd's
    /// `Restart=always` does); says whether it did.
    pub fn restart_if_exited(&mut self) -> bool {
        if self.child.try_wait().ok().flatten().is_none() {
            return false;
        }
        self.child = spawn_serve(&self.dir, self.starts, &self.env, &self.args);
        self.starts += 1;
        true
    }

    /// SIGKILL and reap (a machine that dies; `start_again` brings it back).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a new server after `kill` (the machine is back).
    pub fn start_again(&mut self) {
        self.child = spawn_serve(&self.dir, self.starts, &self.env, &self.args);
        self.starts += 1;
    }

    /// SIGKILL, reap, start a new one: what a crash and a supervisor do.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.start_again();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_serve(dir: &Path, n: u32, env: &[(String, String)], args: &[String]) -> Child {
    let log = std::fs::File::create(dir.join(format!("serve-{n}.log"))).unwrap();
    Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir)
        .env_remove("ORCH_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn orch serve")
}

/// Processes (not zombies) whose command line or working folder is under `dir`.
pub fn processes_under(dir: &Path) -> Vec<(i32, String)> {
    let needle = dir.to_str().unwrap();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        // Whole path components only: another test's folder may have this
        // one's name as a prefix (`/tmp/.tmpAb` and `/tmp/.tmpAbc`), and its
        // processes are not this test's to count or end.
        let inside = format!("{needle}/");
        if cmd.contains(&inside)
            || cmd.split(' ').any(|arg| arg == needle)
            || Path::new(&cwd).starts_with(dir)
        {
            out.push((pid, format!("{cmd} (cwd {cwd})")));
        }
    }
    out
}

/// Waits (up to 15 s) until nothing but the server runs under `dir`.
pub fn assert_no_orphans(dir: &Path, serve: i32, context: &str) {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<_> = processes_under(dir)
            .into_iter()
            .filter(|(p, _)| *p != serve)
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < end,
            "{context}: processes left behind: {left:#?}"
        );
        // Processes ending is the kernel's news, not the engine's: no signal.
        std::thread::sleep(Duration::from_millis(100));
    }
}
