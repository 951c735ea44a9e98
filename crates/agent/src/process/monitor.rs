//! The monitor: a small process (like conmon for containers) that owns one
//! agent's process tree for its whole life.
//!
//! The launcher starts it as the leader of a new session. It makes itself a
//! child subreaper, so processes that escape the agent's group and lose their
//! parent come back to it instead of init; starts the agent (argv, no shell,
//! stdin `/dev/null`, exactly the given environment, its own process group,
//! optionally its own cgroup); copies stdout and stderr into the run folder;
//! forwards SIGINT/SIGTERM/SIGHUP to the agent's group instead of dying; reaps
//! every orphan; and, when the agent has exited, ends whatever it left behind
//! and writes `exit.json`. It holds no pipe to the launcher, so an orchestrator
//! restart does not touch it.
//!
//! It is a plain synchronous program: the main thread waits for signals with
//! `sigtimedwait` (all handled signals stay blocked, so none is lost between
//! checks), and one thread per output pipe copies the logs.

use super::ProcessError;
use super::cgroup::{self, RunCgroup};
use super::clone_spawn;
use super::copier::{self, CopyDone};
use super::limits::LimitCgroups;
use super::monitor_args::MonitorArgs;
use super::procfs::{self, ProcId};
use super::run_dir::{self, ExitRecord, MonitorInfo};
use super::sandbox;
use super::signal::{SignalOutcome, signal_process};
use super::tree::{self, RunRoots};
use nix::sys::signal::{SigHandler, SigSet, Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use orch_core::{RunId, Timestamp};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the monitor waits for the log copiers after the agent's tree is
/// gone. They finish as soon as the last writer of each pipe has exited, so this
/// only matters when some process outside our reach still holds a pipe.
const COPIER_DEADLINE: Duration = Duration::from_secs(2);
/// How long SIGKILLed strays get to disappear before the monitor gives up on them.
const KILL_DEADLINE: Duration = Duration::from_secs(5);

/// Runs the monitor; returns the process exit code: 0 once `exit.json` is
/// written (whatever the agent's own status), 1 when the monitor itself failed.
pub fn run_monitor(args: MonitorArgs) -> i32 {
    // Our own session and process group, away from the orchestrator's: its
    // restart, a terminal's Ctrl-C or a signal to its group never reach us.
    // (It fails only if we already lead a group, i.e. were started that way.)
    let _ = nix::unistd::setsid();
    let run_dir = args.run_dir.clone();
    let run_id = run_id_of(&args);
    let monitor = match Monitor::start(args) {
        Ok(m) => m,
        Err(e) => {
            log(&format!("{e}"));
            // Leave a record so the run reads as "could not start", not "lost".
            let now = run_dir::now();
            let rec = not_started(run_id, now, now, &e);
            return match run_dir::write_json_atomic(&run_dir, run_dir::EXIT_JSON, &rec) {
                Ok(()) => 0,
                Err(_) => 1,
            };
        }
    };
    match monitor.run() {
        Ok(()) => 0,
        Err(e) => {
            log(&format!("{e}"));
            1
        }
    }
}

fn run_id_of(args: &MonitorArgs) -> RunId {
    RunId(args.run_id.clone().unwrap_or_else(|| {
        args.run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }))
}

fn not_started(
    run_id: RunId,
    started_at: Timestamp,
    finished_at: Timestamp,
    why: &ProcessError,
) -> ExitRecord {
    ExitRecord {
        run_id,
        exit_code: None,
        signal: None,
        core_dumped: false,
        started_at,
        finished_at,
        agent_pid: None,
        spawn_error: Some(why.to_string()),
        forwarded_signals: Vec::new(),
        strays_killed: 0,
        limits_hit: Vec::new(),
    }
}

fn log(msg: &str) {
    orch_core::note!(
        "orch-monitor[{}] {}: {msg}",
        std::process::id(),
        run_dir::now()
    );
}

fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// Waits up to `timeout` for one of the (blocked) signals in `set`.
fn wait_signal(set: &SigSet, timeout: Duration) -> Option<Signal> {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Always below 1e9, so it fits any c_long.
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `set` and `ts` are valid for the duration of the call and the
    // siginfo pointer may be null.
    let rc = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    // -1 is a timeout (EAGAIN) or an interruption (EINTR): both mean "no signal".
    if rc < 0 {
        None
    } else {
        Signal::try_from(rc).ok()
    }
}

/// How the agent ended, from `waitpid`.
#[derive(Debug, Clone, Copy)]
struct AgentStatus {
    exit_code: Option<i32>,
    signal: Option<i32>,
    core_dumped: bool,
}

impl AgentStatus {
    /// From a raw `waitpid` status.
    fn from_raw(raw: i32) -> AgentStatus {
        if libc::WIFSIGNALED(raw) {
            AgentStatus {
                exit_code: None,
                signal: Some(libc::WTERMSIG(raw)),
                core_dumped: libc::WCOREDUMP(raw),
            }
        } else {
            AgentStatus {
                exit_code: Some(libc::WEXITSTATUS(raw)),
                signal: None,
                core_dumped: false,
            }
        }
    }
}

/// Reaps every child that has exited; returns the agent's status if it was one.
fn reap_all(agent: i32) -> Option<AgentStatus> {
    let mut agent_status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() == agent => {
                agent_status = Some(AgentStatus {
                    exit_code: Some(code),
                    signal: None,
                    core_dumped: false,
                });
            }
            Ok(WaitStatus::Signaled(pid, sig, core)) if pid.as_raw() == agent => {
                agent_status = Some(AgentStatus {
                    exit_code: None,
                    signal: Some(sig as i32),
                    core_dumped: core,
                });
            }
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            // An orphan or a stray: reaped, nothing to record.
            Ok(_) => {}
        }
    }
    agent_status
}

struct Monitor {
    args: MonitorArgs,
    run_id: RunId,
    me: ProcId,
    started_at: Timestamp,
    signals: SigSet,
}

/// The agent once started.
struct Running {
    child_pid: i32,
    id: ProcId,
    cgroup: Option<RunCgroup>,
    copiers: mpsc::Receiver<CopyDone>,
    /// A sandboxed agent's status pipe and the pipe its init watches.
    sandbox: Option<(File, std::os::fd::OwnedFd)>,
    limits: LimitCgroups,
}

impl Monitor {
    fn start(args: MonitorArgs) -> Result<Monitor, ProcessError> {
        let signals = handled_signals();
        // Block before anything else (and before any thread exists, so threads
        // inherit the mask): a SIGTERM arriving during start-up then waits in the
        // pending set and is forwarded to the agent once it runs.
        signals
            .thread_block()
            .map_err(|e| ProcessError::sys("blocking signals", e))?;
        for s in signals.iter() {
            // An inherited SIG_IGN would discard these signals even while
            // blocked (and SIGCHLD ignored would auto-reap the agent), and the
            // agent must not inherit it either.
            // SAFETY: installing SIG_DFL runs no handler code; the signals are
            // blocked, so no default action fires while we wait for them.
            unsafe { nix::sys::signal::signal(s, SigHandler::SigDfl) }
                .map_err(|e| ProcessError::sys("resetting signal dispositions", e))?;
        }
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| ProcessError::sys("becoming a child subreaper", e))?;
        let me_pid = std::process::id() as i32;
        let me_ticks = procfs::start_ticks(me_pid)
            .ok()
            .flatten()
            .ok_or_else(|| ProcessError::Other("cannot read own /proc/self/stat".into()))?;
        let run_id = run_id_of(&args);
        Ok(Monitor {
            args,
            run_id,
            me: ProcId {
                pid: me_pid,
                start_ticks: me_ticks,
            },
            started_at: run_dir::now(),
            signals,
        })
    }

    fn run(self) -> Result<(), ProcessError> {
        let mut running = match self.spawn_agent() {
            Ok(r) => r,
            Err(e) => {
                // Record the failure where the watcher looks, so the run reads as
                // "could not start" rather than "lost".
                log(&format!("agent not started: {e}"));
                let rec = not_started(self.run_id.clone(), self.started_at, run_dir::now(), &e);
                return run_dir::write_json_atomic(&self.args.run_dir, run_dir::EXIT_JSON, &rec);
            }
        };
        let info = MonitorInfo {
            run_id: self.run_id.clone(),
            monitor_pid: self.me.pid,
            monitor_start_ticks: self.me.start_ticks,
            agent_pid: running.id.pid,
            agent_start_ticks: running.id.start_ticks,
            started_at: self.started_at,
            cgroup: running.cgroup.as_ref().map(|c| c.dir.clone()),
        };
        if let Err(e) = run_dir::write_json_atomic(&self.args.run_dir, run_dir::MONITOR_JSON, &info)
        {
            // The agent runs regardless; without monitor.json a stop still finds
            // it through the monitor's tree.
            log(&format!("{e}"));
        }

        let (mut status, forwarded) = self.supervise(&running);
        if let Some((mut result, _life)) = running.sandbox.take() {
            // The init's own exit says nothing; the agent's status is what counts.
            if let Some(raw) = sandbox::spawn::read_result(&mut result) {
                status = AgentStatus::from_raw(raw);
            }
        }
        let finished_at = run_dir::now();
        let strays = self.end_strays(running.cgroup.as_ref());
        let limits_hit = running.limits.hits();
        self.wait_copiers(&running.copiers);

        let rec = ExitRecord {
            run_id: self.run_id.clone(),
            exit_code: status.exit_code,
            signal: status.signal,
            core_dumped: status.core_dumped,
            started_at: self.started_at,
            finished_at,
            agent_pid: Some(running.id.pid),
            spawn_error: None,
            forwarded_signals: forwarded,
            strays_killed: strays,
            limits_hit,
        };
        run_dir::write_json_atomic(&self.args.run_dir, run_dir::EXIT_JSON, &rec)?;
        if let Some(cg) = &running.cgroup {
            cg.remove();
        }
        running.limits.remove();
        Ok(())
    }

    fn load_env(&self) -> Result<BTreeMap<String, String>, ProcessError> {
        let mut env = BTreeMap::new();
        if let Some(path) = &self.args.env_file {
            let bytes = std::fs::read(path)
                .map_err(|e| ProcessError::io(format!("reading {}", path.display()), e))?;
            // Secrets must not stay on disk longer than needed.
            if let Err(e) = std::fs::remove_file(path) {
                log(&format!("could not delete {}: {e}", path.display()));
            }
            env = serde_json::from_slice(&bytes).map_err(|e| ProcessError::Json {
                path: path.clone(),
                source: e,
            })?;
        }
        env.extend(self.args.env.clone());
        Ok(env)
    }

    fn open_log(&self, name: &str) -> Result<File, ProcessError> {
        let path = self.args.run_dir.join(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ProcessError::io(format!("opening {}", path.display()), e))
    }

    fn spawn_agent(&self) -> Result<Running, ProcessError> {
        let env = self.load_env()?;
        let out_log = self.open_log(run_dir::OUTPUT_LOG)?;
        let err_log = self.open_log(run_dir::STDERR_LOG)?;
        let (program, rest) = self
            .args
            .argv
            .split_first()
            .ok_or(ProcessError::Other("empty agent command".into()))?;

        let mut cgroup = if self.args.cgroup {
            RunCgroup::create(self.run_id.as_str())
        } else {
            None
        };
        let limits = LimitCgroups::create(
            &format!("{}-{}", cgroup::sanitize(self.run_id.as_str()), self.me.pid),
            self.args.limits,
            cgroup.as_ref(),
        )
        .map_err(|e| {
            if let Some(cg) = &cgroup {
                cg.remove();
            }
            ProcessError::io("setting the run's resource limits", e)
        })?;
        let joins = limits.open_joins().map_err(|e| {
            limits.remove();
            ProcessError::io("opening the run's limit cgroups", e)
        })?;
        let join: Vec<std::os::fd::RawFd> = joins.iter().map(|f| f.as_raw_fd()).collect();
        let mut sandbox = None;
        // Fast path: created inside its cgroup, no migration (see clone_spawn).
        let fast = match cgroup.as_ref().map(RunCgroup::open_dir) {
            _ if self.args.sandbox.is_some() => {
                let s = sandbox::start::spawn(&self.args, &env, cgroup.as_ref(), &join)
                    .inspect_err(|_| {
                        if let Some(cg) = &cgroup {
                            cg.remove();
                        }
                        limits.remove();
                    })?;
                sandbox = Some((s.result, s.life));
                Some(clone_spawn::Spawned {
                    pid: s.pid,
                    stdout: s.stdout,
                    stderr: s.stderr,
                })
            }
            Some(Ok(dir)) => {
                let spec = clone_spawn::SpawnSpec {
                    argv: &self.args.argv,
                    env: &env,
                    cwd: self.args.cwd.as_deref(),
                    parent_pid: self.me.pid,
                    cgroup_dir: &dir,
                    join: &join,
                };
                match clone_spawn::spawn(&spec) {
                    Ok(s) => Some(s),
                    Err(clone_spawn::SpawnError::Unsupported(e)) => {
                        log(&format!(
                            "clone3 into the cgroup refused ({e}); joining after fork"
                        ));
                        None
                    }
                    Err(clone_spawn::SpawnError::Failed(e)) => {
                        if let Some(cg) = &cgroup {
                            cg.remove();
                        }
                        limits.remove();
                        return Err(ProcessError::io(
                            format!("starting {:?}", self.args.argv),
                            e,
                        ));
                    }
                }
            }
            _ => None,
        };
        let (child_pid, stdout, stderr): (
            i32,
            Box<dyn std::io::Read + Send>,
            Box<dyn std::io::Read + Send>,
        ) = match fast {
            Some(s) => (s.pid, Box::new(s.stdout), Box::new(s.stderr)),
            None => {
                let mut child = self
                    .spawn_with_command(program, rest, &env, cgroup.as_ref(), &join)
                    .inspect_err(|_| limits.remove())?;
                // `Command` set both up as pipes, so both are present.
                let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take())
                else {
                    return Err(ProcessError::Other("agent pipes missing".into()));
                };
                // The agent is reaped with waitpid(-1) below; the `Child`
                // handle is not needed (dropping it neither waits nor kills).
                (child.id() as i32, Box::new(stdout), Box::new(stderr))
            }
        };
        // Not reaped yet (only this thread reaps), so the stat is there even if
        // the agent already exited.
        let ticks = procfs::start_ticks(child_pid).ok().flatten().unwrap_or(0);
        if let Some(cg) = &cgroup
            && cgroup::cgroup_of(child_pid)
                .is_none_or(|p| !cg.dir.ends_with(p.trim_start_matches('/')))
        {
            log("agent did not join its cgroup; relying on /proc");
            cg.remove();
            cgroup = None;
        }

        let (tx, rx) = mpsc::channel();
        copier::spawn("stdout", stdout, out_log, tx.clone())
            .map_err(|e| ProcessError::io("starting the stdout copier", e))?;
        copier::spawn("stderr", stderr, err_log, tx)
            .map_err(|e| ProcessError::io("starting the stderr copier", e))?;
        Ok(Running {
            child_pid,
            id: ProcId {
                pid: child_pid,
                start_ticks: ticks,
            },
            cgroup,
            copiers: rx,
            sandbox,
            limits,
        })
    }

    /// The portable path: `Command`, joining the cgroup (if any) between fork
    /// and exec.
    fn spawn_with_command(
        &self,
        program: &std::ffi::OsString,
        rest: &[std::ffi::OsString],
        env: &BTreeMap<String, String>,
        cgroup: Option<&RunCgroup>,
        join: &[std::os::fd::RawFd],
    ) -> Result<std::process::Child, ProcessError> {
        let cgroup_fd = cgroup.and_then(|c| c.open_procs().ok());
        let join = join.to_vec();
        let mut cmd = Command::new(program);
        cmd.args(rest)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so signals to the agent's group never hit the monitor.
            .process_group(0);
        if let Some(cwd) = &self.args.cwd {
            cmd.current_dir(cwd);
        }
        let monitor_pid = self.me.pid;
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe calls (sigprocmask, prctl, getppid, write); it
        // allocates nothing (the error values are built from raw OS codes).
        unsafe {
            cmd.pre_exec(move || {
                // The monitor blocks the signals it waits for, and a blocked mask
                // survives exec: unblocked, or the agent would never see a stop.
                SigSet::empty()
                    .thread_set_mask()
                    .map_err(std::io::Error::from)?;
                // If the monitor dies (SIGKILL, OOM) the agent must not run on
                // unwatched with nobody to record its end.
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                // The monitor may have died before the line above took effect.
                if nix::unistd::getppid().as_raw() != monitor_pid {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                if let Some(fd) = &cgroup_fd {
                    // Joining before exec means the agent never runs, and never
                    // forks, outside its cgroup. A failure only loses the cgroup;
                    // the monitor notices below and falls back to /proc.
                    let _ = cgroup::join_from_child(fd);
                }
                // The limits, unlike the tracking cgroup, must hold.
                for fd in &join {
                    // SAFETY: writes one byte to an fd the monitor opened.
                    if libc::write(*fd, b"0".as_ptr().cast(), 1) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        cmd.spawn().map_err(|e| {
            if let Some(cg) = cgroup {
                cg.remove();
            }
            ProcessError::io(format!("starting {:?}", self.args.argv), e)
        })
    }

    /// Waits for the agent to exit, forwarding stop signals to its group and
    /// reaping orphans on the way.
    fn supervise(&self, running: &Running) -> (AgentStatus, Vec<i32>) {
        let mut forwarded = Vec::new();
        loop {
            // The timeout is only a safety net against a lost SIGCHLD; normally
            // the monitor sleeps until a signal arrives.
            if let Some(sig @ (Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP)) =
                wait_signal(&self.signals, Duration::from_secs(1))
            {
                forwarded.push(sig as i32);
                // The agent is our unreaped child, so its pid (= its group id)
                // cannot have been reused.
                if let Err(e) = killpg(Pid::from_raw(running.child_pid), sig) {
                    log(&format!("forwarding {sig}: {e}"));
                }
            }
            if let Some(status) = reap_all(running.child_pid) {
                return (status, forwarded);
            }
        }
    }

    /// Ends whatever the agent left running (SIGTERM, grace, SIGKILL); returns
    /// how many processes that was.
    fn end_strays(&self, cgroup: Option<&RunCgroup>) -> u32 {
        let roots = RunRoots {
            monitor: Some(self.me),
            agent: None,
            sid: Some(self.me.pid),
            not_before_ticks: self.me.start_ticks,
        };
        let discover = || tree::discover(&roots, cgroup).unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        let first = discover();
        if first.is_empty() && cgroup.is_none_or(RunCgroup::is_empty) {
            return 0;
        }
        for p in &first {
            seen.insert(p.pid);
            signal_process(&ProcId::of(p), Signal::SIGTERM);
        }
        let grace_end = Instant::now() + self.args.stray_grace;
        let mut hurry = false;
        while Instant::now() < grace_end && !hurry {
            if let Some(Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP) =
                wait_signal(&self.signals, Duration::from_millis(20))
            {
                // Someone wants the run gone now.
                hurry = true;
            }
            reap_all(0);
            let left = discover();
            seen.extend(left.iter().map(|p| p.pid));
            if left.is_empty() {
                return seen.len() as u32;
            }
        }
        let kill_end = Instant::now() + KILL_DEADLINE;
        loop {
            if let Some(cg) = cgroup {
                let _ = cg.kill();
            }
            let left = discover();
            seen.extend(left.iter().map(|p| p.pid));
            if left.is_empty() || Instant::now() >= kill_end {
                if !left.is_empty() {
                    let pids: Vec<i32> = left.iter().map(|p| p.pid).collect();
                    log(&format!("processes survived SIGKILL: {pids:?}"));
                }
                return seen.len() as u32;
            }
            for p in &left {
                if signal_process(&ProcId::of(p), Signal::SIGKILL) == SignalOutcome::Reused {
                    log(&format!("pid {} was reused; not signalled", p.pid));
                }
            }
            wait_signal(&self.signals, Duration::from_millis(10));
            reap_all(0);
        }
    }

    fn wait_copiers(&self, copiers: &mpsc::Receiver<CopyDone>) {
        let end = Instant::now() + COPIER_DEADLINE;
        for _ in 0..2 {
            match copiers.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(done) => {
                    if let Some(e) = done.error {
                        log(&format!("{} log incomplete: {e}", done.name));
                    }
                }
                Err(_) => {
                    log("an output pipe is still held open; the log may miss its tail");
                    return;
                }
            }
        }
    }
}
