//! A sandboxed agent (issue 12): real namespaces, real mounts, real
//! processes. Skipped, with a note, where the machine cannot create the
//! namespaces (`orch doctor` says the same).

mod process_support;

use orch_agent::process::sandbox::egress::{Allowlist, read_refusals};
use orch_agent::process::sandbox::{self, SandboxSpec, defaults};
use orch_agent::process::{
    CgroupMode, RunState, StopPolicy, read_exit, stop, wait_exit, wait_started,
};
use process_support::{DEADLINE, TestRun, wait_for};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn supported() -> bool {
    match sandbox::probe().namespaces {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIP: this machine cannot sandbox: {why}");
            false
        }
    }
}

/// The sandbox orch gives a run: the worktree (`work`) read-write, the
/// toolchain read-only, an empty home at `<root>/home`.
fn spec_for(root: &Path) -> SandboxSpec {
    SandboxSpec {
        writable: vec![root.join("work")],
        readonly: defaults::TOOLCHAIN.iter().map(PathBuf::from).collect(),
        hidden: defaults::HIDDEN.iter().map(PathBuf::from).collect(),
        home: Some(root.join("home")),
        egress: Default::default(),
    }
}

/// Prints `<name>: read` or `<name>: denied` for each file.
const PROBE: &str = "probe() { if cat \"$2\" >/dev/null 2>&1; then echo \"$1: read\"; else echo \"$1: denied\"; fi; }";

fn launch(body: &str, plant: impl FnOnce(&Path)) -> TestRun {
    TestRun::launch_in(
        &format!("{PROBE}\n{body}"),
        CgroupMode::Auto,
        BTreeMap::new(),
        |_| {},
        |root| {
            plant(root);
            Some(spec_for(root))
        },
    )
}

fn finish(run: &TestRun) -> orch_agent::process::ExitRecord {
    match wait_exit(&run.handle, DEADLINE) {
        RunState::Exited(rec) => rec,
        other => panic!("run did not end: {other:?}"),
    }
}

/// Plants, beside the worktree, what the agent must not read: another
/// task's worktree, orch's database and a file in the host's home.
fn plant(root: &Path) {
    let other = root.join("other-task");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("secret.rs"), "other task").unwrap();
    let data = root.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("orch.db"), "SQLite format 3").unwrap();
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("planted"), "host secret").unwrap();
    std::fs::write(root.join("work/own.txt"), "mine").unwrap();
}

fn lines(output: &str) -> Vec<&str> {
    output.lines().collect()
}

#[test]
fn a_sandboxed_agent_reads_no_other_worktree_no_database_and_no_home_file() {
    if !supported() {
        return;
    }
    // The worktree's parent is the temp root, at the same path inside.
    let run = launch(
        "R=$(dirname \"$PWD\")\n\
         probe other \"$R/other-task/secret.rs\"\n\
         probe db \"$R/data/orch.db\"\n\
         probe home \"$HOME/planted\"\n\
         echo \"shadow bytes: $(cat /etc/shadow 2>/dev/null | wc -c)\"\n\
         probe own ./own.txt\n\
         echo fresh > ./made.txt && echo 'worktree: written'\n\
         echo x > /tmp/t && echo 'tmp: written'\n\
         touch /usr/orch-sandbox-test 2>/dev/null && echo 'usr: written' || echo 'usr: denied'\n\
         echo \"home entries: $(ls -A \"$HOME\" | wc -l)\"\n\
         echo \"root: $(ls / | tr '\\n' ' ')\"\n\
         echo \"pid: $$\"",
        plant,
    );
    let rec = finish(&run);
    assert_eq!(rec.spawn_error, None, "{rec:?}");
    assert_eq!(rec.exit_code, Some(0), "{rec:?}");
    let out = run.output();
    // Each planted file is really there on the host.
    let root = run.root.path();
    for p in ["other-task/secret.rs", "data/orch.db", "home/planted"] {
        assert!(root.join(p).is_file(), "{p} missing on the host");
    }
    if let Ok(m) = std::fs::metadata("/etc/shadow") {
        assert!(m.len() > 0);
    }
    // `/` holds only the toolchain, /tmp (the worktree's parent here), /proc
    // and /dev: no /root, /home, /srv, /var or /work of the host.
    let root_line = lines(&out)
        .into_iter()
        .find_map(|l| l.strip_prefix("root: "))
        .unwrap_or_else(|| panic!("no listing of /: {out}"));
    let shown: Vec<&str> = root_line.split_whitespace().collect();
    for entry in &shown {
        assert!(
            [
                "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt", "proc", "sbin",
                "tmp", "usr"
            ]
            .contains(entry),
            "/{entry} is visible in the sandbox: {shown:?}"
        );
    }
    assert!(
        shown.contains(&"usr") && shown.contains(&"tmp"),
        "{shown:?}"
    );
    assert_eq!(
        lines(&out)
            .into_iter()
            .filter(|l| !l.starts_with("root: "))
            .collect::<Vec<_>>(),
        vec![
            "other: denied",
            "db: denied",
            "home: denied",
            // Masked by an empty file (the host's is not empty).
            "shadow bytes: 0",
            "own: read",
            "worktree: written",
            "tmp: written",
            "usr: denied",
            "home entries: 0",
            // The agent is the first process of its own PID namespace after
            // the init.
            "pid: 2",
        ],
        "stderr: {}",
        std::fs::read_to_string(run.run_dir().join("stderr.log")).unwrap_or_default()
    );
    // The worktree write reached the host; /tmp was private.
    assert_eq!(
        std::fs::read_to_string(run.work().join("made.txt")).unwrap(),
        "fresh\n"
    );
    assert!(!Path::new("/usr/orch-sandbox-test").exists());
}

#[test]
fn a_sandboxed_agents_exit_status_is_recorded_as_without_a_sandbox() {
    if !supported() {
        return;
    }
    let run = launch("exit 3", |_| {});
    let rec = finish(&run);
    assert_eq!((rec.exit_code, rec.signal), (Some(3), None), "{rec:?}");

    let run = launch("kill -TERM $$", |_| {});
    let rec = finish(&run);
    assert_eq!((rec.exit_code, rec.signal), (None, Some(15)), "{rec:?}");
}

#[test]
fn a_sandboxed_program_that_does_not_exist_is_a_spawn_error() {
    if !supported() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("work")).unwrap();
    let handle = orch_agent::process::launch(orch_agent::process::LaunchSpec {
        run_id: orch_core::RunId::from("run-missing"),
        run_dir: root.path().join("run"),
        cwd: root.path().join("work"),
        argv: vec!["no-such-agent-xyz".into()],
        env: BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]),
        monitor: process_support::monitor_command(),
        cgroup: CgroupMode::Auto,
        sandbox: Some(spec_for(root.path())),
        limits: Default::default(),
    })
    .expect("launch");
    let RunState::Exited(rec) = wait_exit(&handle, DEADLINE) else {
        panic!("run did not end");
    };
    assert!(
        rec.spawn_error
            .as_deref()
            .is_some_and(|e| e.contains("No such file")),
        "{rec:?}"
    );
}

/// Host pids of the processes in the same PID namespace as `pid`.
fn namespace_members(ns: &Path) -> Vec<i32> {
    let Ok(target) = std::fs::read_link(ns) else {
        return Vec::new();
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|t| t == target))
        .collect()
}

#[test]
fn stop_of_a_sandboxed_setsid_escapee_leaves_nothing() {
    if !supported() {
        return;
    }
    let run = launch(
        "setsid sh -c 'sleep 1000' &\n\
         ( setsid sleep 1000 & )\n\
         echo started\n\
         exec sleep 1000",
        |_| {},
    );
    run.wait_output("started");
    let info = wait_started(&run.handle, DEADLINE).expect("monitor.json");
    // The namespace's identity, to tell its processes from reused pids.
    let ns_link = std::fs::read_link(format!("/proc/{}/ns/pid", info.agent_pid)).unwrap();
    let own_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert_ne!(ns_link, own_ns, "the agent shares the test's PID namespace");
    let ns_of_init = PathBuf::from(format!("/proc/{}/ns/pid", info.agent_pid));
    assert!(
        wait_for(DEADLINE, || namespace_members(&ns_of_init).len() >= 4),
        "init, agent and two escapees expected: {:?}",
        namespace_members(&ns_of_init)
    );
    let members = namespace_members(&ns_of_init);
    let policy = StopPolicy {
        grace_int: Duration::from_millis(200),
        grace_term: Duration::from_millis(200),
        kill_wait: Duration::from_secs(5),
    };
    stop(&run.handle, &policy, "test").expect("stop");
    // Gone, or the pid reused by a process of another namespace.
    let gone =
        |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).map_or(true, |l| l != ns_link);
    for pid in members {
        assert!(
            wait_for(DEADLINE, || gone(pid)),
            "process {pid} of the sandbox survived the stop"
        );
    }
    let rec = read_exit(run.run_dir()).expect("exit.json after stop");
    assert!(rec.signal.is_some() || rec.exit_code.is_some(), "{rec:?}");
}

#[test]
fn landlock_fences_the_agent_where_the_kernel_has_it() {
    if !supported() {
        return;
    }
    let Some(abi) = sandbox::probe().landlock_abi else {
        eprintln!("SKIP: this kernel has no Landlock");
        return;
    };
    eprintln!("Landlock ABI {abi}");
    // The mounts allow writing one's own /proc/self/comm; Landlock (which
    // grants /proc read-only) does not.
    let run = launch(
        "echo renamed > /proc/self/comm 2>/dev/null && echo 'comm: written' || echo 'comm: denied'",
        |_| {},
    );
    finish(&run);
    assert_eq!(run.output(), "comm: denied\n");
}

/// A one-answer-per-connection HTTP server on a free loopback port; counts
/// the connections it accepted.
fn http_server(body: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

#[test]
fn a_sandboxed_agent_reaches_only_allowed_hosts_through_the_proxy() {
    if !supported() || !Path::new("/usr/bin/curl").exists() {
        eprintln!("SKIP: needs the namespaces and /usr/bin/curl");
        return;
    }
    let (allowed, allowed_hits) = http_server("allowed\n");
    let (denied, denied_hits) = http_server("denied\n");
    let env = BTreeMap::from([
        ("ALLOWED".to_owned(), allowed.to_string()),
        ("DENIED".to_owned(), denied.to_string()),
    ]);
    let run = TestRun::launch_in(
        "c() { curl -sS --max-time 5 \"$@\" 2>/dev/null; }\n\
         c --noproxy '*' \"http://127.0.0.1:$ALLOWED/\" || echo 'direct: refused'\n\
         c -p -x \"$HTTPS_PROXY\" \"http://127.0.0.1:$ALLOWED/\" || echo 'allowed: refused'\n\
         c -p -x \"$HTTPS_PROXY\" \"http://127.0.0.1:$DENIED/\" || echo 'denied: refused'\n\
         c \"http://127.0.0.1:$ALLOWED/plain\" || echo 'plain allowed: refused'\n\
         c \"http://127.0.0.1:$DENIED/plain\" | grep -q allowlist && echo 'plain denied: refused'",
        CgroupMode::Auto,
        env,
        |_| {},
        |root| {
            let mut spec = spec_for(root);
            spec.egress = Allowlist(vec![format!("127.0.0.1:{allowed}")]);
            Some(spec)
        },
    );
    let rec = finish(&run);
    assert_eq!(rec.exit_code, Some(0), "{rec:?}");
    assert_eq!(
        lines(&run.output()),
        // curl without -p sends plain HTTP to $http_proxy in absolute form.
        vec![
            "direct: refused",
            "allowed",
            "denied: refused",
            "allowed",
            "plain denied: refused"
        ],
        "stderr: {}",
        std::fs::read_to_string(run.run_dir().join("stderr.log")).unwrap_or_default()
    );
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 2);
    assert_eq!(denied_hits.load(Ordering::SeqCst), 0);
    let refused = read_refusals(run.run_dir());
    assert_eq!(refused.len(), 2, "{refused:?}");
    for r in &refused {
        assert_eq!(r.target, format!("127.0.0.1:{denied}"));
        assert!(r.why.contains("allowlist"), "{refused:?}");
    }
}

/// As a user other than root the sandbox lives in a user namespace of its
/// own (ids mapped to themselves). Run as `nobody` through `setpriv`, when
/// the test runs as root and the machine allows unprivileged user
/// namespaces.
#[test]
fn an_unprivileged_monitor_sandboxes_through_a_user_namespace() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: a plain getter.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("SKIP: needs root (to become nobody) and /usr/bin/setpriv");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for d in ["work", "home", "run"] {
        std::fs::create_dir(r.join(d)).unwrap();
    }
    std::fs::write(r.join("secret"), "root's").unwrap();
    std::fs::write(
        r.join("work/agent.sh"),
        "#!/bin/sh\necho \"uid: $(id -u) pid: $$\"\n\
         cat ../secret 2>/dev/null || echo 'secret: denied'\n\
         echo x > made.txt && echo 'worktree: written'\n",
    )
    .unwrap();
    let monitor = r.join("orch-monitor");
    std::fs::copy(env!("CARGO_BIN_EXE_orch-monitor"), &monitor).unwrap();
    let spec = SandboxSpec {
        writable: vec![r.join("work")],
        ..spec_for(r)
    };
    std::fs::write(r.join("sandbox.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    for entry in walk(r) {
        let mode = if entry.is_dir() || entry.ends_with("agent.sh") || entry == monitor {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&entry, Some(65534), Some(65534)).unwrap();
    }
    // The secret stays root's: outside the sandbox nobody could not read it
    // either, so make it world-readable to see the sandbox hide it.
    std::fs::set_permissions(r.join("secret"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let status = std::process::Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&monitor)
        .arg("--run-dir")
        .arg(r.join("run"))
        .arg("--cwd")
        .arg(r.join("work"))
        .arg("--sandbox")
        .arg(r.join("sandbox.json"))
        .arg("--")
        .arg(r.join("work/agent.sh"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let rec = read_exit(&r.join("run")).expect("exit.json");
    if let Some(e) = rec.spawn_error.as_deref()
        && (e.contains("uid") || e.contains("Operation not permitted"))
    {
        eprintln!("SKIP: no unprivileged user namespaces here: {e}");
        return;
    }
    assert_eq!(
        (rec.exit_code, &rec.spawn_error),
        (Some(0), &None),
        "{rec:?}"
    );
    let out = std::fs::read_to_string(r.join("run/output.log")).unwrap();
    assert_eq!(
        out,
        "uid: 65534 pid: 2\nsecret: denied\nworktree: written\n",
        "{}",
        std::fs::read_to_string(r.join("run/monitor.log")).unwrap_or_default()
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
