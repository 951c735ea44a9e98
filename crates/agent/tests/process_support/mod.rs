//! Helpers shared by the process-control tests: runs of small `#!/bin/sh`
//! agents in temp folders, cleaned up on drop whatever the test did.

#![allow(dead_code)] // each test file uses a different subset

use orch_agent::process::limits::ResourceLimits;
use orch_agent::process::sandbox::SandboxSpec;
use orch_agent::process::{
    CgroupMode, LaunchSpec, MonitorCommand, ProcId, RunHandle, StopPolicy, is_alive, launch, stop,
};
use orch_core::RunId;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Generous: CI is a busy 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub fn monitor_command() -> MonitorCommand {
    MonitorCommand {
        program: PathBuf::from(env!("CARGO_BIN_EXE_orch-monitor")),
        args_prefix: Vec::new(),
    }
}

/// Polls `f` until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

pub fn write_script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The identity of a live process, for checking later that it is gone.
pub fn proc_id(pid: i32) -> ProcId {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process exists");
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    let ticks = after
        .split_whitespace()
        .nth(19)
        .expect("field 22")
        .parse()
        .expect("ticks");
    ProcId {
        pid,
        start_ticks: ticks,
    }
}

/// One field of /proc/<pid>/stat (1-based numbering as in proc(5)), for
/// checking sessions and parents.
pub fn stat_field(pid: i32, n: usize) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process exists");
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    after
        .split_whitespace()
        .nth(n - 3)
        .expect("field")
        .parse()
        .expect("number")
}

/// A launched agent run in its own temp folder. Dropping it stops the run with
/// no grace and SIGKILLs every process registered with [`TestRun::track`].
pub struct TestRun {
    pub handle: RunHandle,
    pub root: tempfile::TempDir,
    tracked: Vec<ProcId>,
}

impl TestRun {
    /// Launches `body` as a `/bin/sh` agent; its cwd is `<root>/work`, where
    /// helper scripts written with [`TestRun::helper`] before launch also live.
    pub fn launch(body: &str, cgroup: CgroupMode) -> TestRun {
        Self::launch_with(body, cgroup, BTreeMap::new(), |_| {})
    }

    pub fn launch_with(
        body: &str,
        cgroup: CgroupMode,
        extra_env: BTreeMap<String, String>,
        prepare: impl FnOnce(&Path),
    ) -> TestRun {
        Self::launch_in(body, cgroup, extra_env, prepare, |_| None)
    }

    /// Like [`TestRun::launch_with`]; `sandbox` gets the temp root and says
    /// how to sandbox the run. A sandboxed agent's script lives in its cwd
    /// (the only place of the temp root it can see).
    pub fn launch_in(
        body: &str,
        cgroup: CgroupMode,
        extra_env: BTreeMap<String, String>,
        prepare: impl FnOnce(&Path),
        sandbox: impl FnOnce(&Path) -> Option<SandboxSpec>,
    ) -> TestRun {
        Self::launch_limited(
            body,
            cgroup,
            extra_env,
            prepare,
            sandbox,
            Default::default(),
        )
    }

    /// Like [`TestRun::launch_in`], with resource limits.
    pub fn launch_limited(
        body: &str,
        cgroup: CgroupMode,
        extra_env: BTreeMap<String, String>,
        prepare: impl FnOnce(&Path),
        sandbox: impl FnOnce(&Path) -> Option<SandboxSpec>,
        limits: ResourceLimits,
    ) -> TestRun {
        let root = tempfile::tempdir().expect("tempdir");
        let work = root.path().join("work");
        std::fs::create_dir(&work).expect("mkdir work");
        // Records "pid start-ticks" (its comm has no spaces, so awk's field 22 is
        // right) and becomes a long sleep; the file appears whole (mv).
        write_script(
            &work.join("escape.sh"),
            "echo \"$$ $(awk '{print $22}' /proc/$$/stat)\" > \"$1.tmp\"\n\
             mv \"$1.tmp\" \"$1\"\n\
             exec sleep 1000",
        );
        prepare(&work);
        let sandbox = sandbox(root.path());
        let agent = if sandbox.is_some() {
            work.join("agent.sh")
        } else {
            root.path().join("agent.sh")
        };
        write_script(&agent, body);
        let mut env = BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
        env.extend(extra_env);
        let handle = launch(LaunchSpec {
            run_id: RunId::from("run-test"),
            run_dir: root.path().join("run"),
            cwd: work,
            argv: vec![agent.into_os_string()],
            env,
            monitor: monitor_command(),
            cgroup,
            sandbox,
            limits,
        })
        .expect("launch");
        TestRun {
            handle,
            root,
            tracked: Vec::new(),
        }
    }

    pub fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    pub fn run_dir(&self) -> &Path {
        &self.handle.run_dir
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(self.run_dir().join("output.log")).unwrap_or_default()
    }

    /// Waits for the agent to print `line` on stdout.
    pub fn wait_output(&self, line: &str) {
        assert!(
            wait_for(DEADLINE, || self.output().lines().any(|l| l == line)),
            "agent never printed {line:?}; output: {:?}",
            self.output()
        );
    }

    /// Waits for a pid file the agent writes into its cwd and tracks that process.
    pub fn wait_pid_file(&mut self, name: &str) -> ProcId {
        let path = self.work().join(name);
        let mut content = String::new();
        assert!(
            wait_for(DEADLINE, || {
                content = std::fs::read_to_string(&path).unwrap_or_default();
                content.ends_with('\n')
            }),
            "{name} never written"
        );
        // "pid" (the process is alive, read its ticks) or "pid ticks".
        let mut fields = content
            .split_whitespace()
            .map(|f| f.parse::<u64>().expect("number"));
        let pid = i32::try_from(fields.next().expect("pid")).expect("pid fits");
        let id = match fields.next() {
            Some(start_ticks) => ProcId { pid, start_ticks },
            None => proc_id(pid),
        };
        self.tracked.push(id);
        id
    }

    pub fn track(&mut self, id: ProcId) {
        self.tracked.push(id);
    }
}

impl Drop for TestRun {
    fn drop(&mut self) {
        if is_alive(&self.handle) {
            let policy = StopPolicy {
                grace_int: Duration::ZERO,
                grace_term: Duration::ZERO,
                kill_wait: Duration::from_secs(5),
            };
            let _ = stop(&self.handle, &policy, "test cleanup");
        }
        for id in &self.tracked {
            if id.is_alive() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(id.pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A plain child process killed and reaped on drop.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asserts that none of `ids` is alive right now (a zombie or a reused pid
/// counts as gone).
pub fn assert_gone(ids: &[ProcId]) {
    for id in ids {
        assert!(!id.is_alive(), "process {} survived", id.pid);
    }
}

/// Whether this machine lets us create a cgroup v2 (as the monitor would).
pub fn cgroups_available() -> bool {
    match orch_agent::process::cgroup::RunCgroup::create("probe") {
        Some(cg) => {
            cg.remove();
            true
        }
        None => false,
    }
}
