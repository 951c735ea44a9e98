//! Starting a sandboxed agent: `clone3` with the new namespaces (and into
//! the run's cgroup when there is one); the child becomes the sandbox's init
//! ([`super::init`]).

use super::SandboxSpec;
use super::init::{self, InitArgs};
use crate::process::clone_spawn::{CLONE_INTO_CGROUP, CloneArgs, pipe};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

pub(crate) struct SandboxSpawn<'a> {
    pub spec: &'a SandboxSpec,
    /// An empty folder on the host that becomes the sandbox's root.
    pub root: &'a Path,
    pub argv: &'a [OsString],
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub cwd: Option<&'a Path>,
    pub cgroup_dir: Option<&'a OwnedFd>,
    pub stray_grace: Duration,
    /// Create the network namespace here; `false` when the calling thread
    /// already is in the run's own one (see [`super::egress`]).
    pub new_netns: bool,
    /// `cgroup.procs` of the run's limit cgroups (v1), joined by the init.
    pub join: &'a [std::os::fd::RawFd],
}

pub(crate) struct SandboxSpawned {
    /// The init's pid (the agent's process group has the same id).
    pub pid: i32,
    pub stdout: File,
    pub stderr: File,
    /// Yields the agent's raw wait status once the init has exited.
    pub result: File,
    /// Held open by the monitor for the run's life (see `InitArgs::life_fd`).
    pub life: OwnedFd,
}

/// The namespaces every sandbox gets; a new user namespace is added when
/// orch does not run as root.
pub(crate) const NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWNET) as u64;

/// The flags and id mapping for this process's user.
pub(crate) fn namespace_flags() -> (u64, Option<(u32, u32)>) {
    // SAFETY: plain getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 {
        (NAMESPACES, None)
    } else {
        (NAMESPACES | libc::CLONE_NEWUSER as u64, Some((uid, gid)))
    }
}

fn clone3(flags: u64, cgroup: Option<&OwnedFd>) -> io::Result<i32> {
    let mut args = CloneArgs {
        flags: flags | cgroup.map_or(0, |_| CLONE_INTO_CGROUP),
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |c| c.as_raw_fd() as u64),
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM forks this process; `args` outlives the call.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(pid as i32)
    }
}

/// Starts the init, which starts the agent; returns once the agent has
/// exec'd (or with why it could not).
pub(crate) fn spawn(s: &SandboxSpawn) -> io::Result<SandboxSpawned> {
    let devnull = File::open("/dev/null")?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (status_r, status_w) = pipe()?;
    let (result_r, result_w) = pipe()?;
    let (life_r, life_w) = pipe()?;
    let (mut flags, map_ids) = namespace_flags();
    if !s.new_netns {
        flags &= !(libc::CLONE_NEWNET as u64);
    }
    let pid = match clone3(flags, s.cgroup_dir) {
        Ok(p) => p,
        // A cgroup the kernel will not start a child in (e.g. a v1 one):
        // the run goes without it, as the unsandboxed path does.
        Err(_) if s.cgroup_dir.is_some() => clone3(flags, None)?,
        Err(e) => return Err(e),
    };
    if pid == 0 {
        // The child: this fork is of a single-threaded monitor (see init).
        drop((out_r, err_r, status_r, result_r, life_w));
        init::run(InitArgs {
            spec: s.spec,
            root: s.root,
            argv: s.argv,
            env: s.env,
            cwd: s.cwd,
            stray_grace: s.stray_grace,
            map_ids,
            null_fd: devnull.as_raw_fd(),
            out_fd: out_w.as_raw_fd(),
            err_fd: err_w.as_raw_fd(),
            status_fd: status_w.as_raw_fd(),
            result_fd: result_w.as_raw_fd(),
            life_fd: life_r.as_raw_fd(),
            join: s.join,
        });
    }
    drop((out_w, err_w, status_w, result_w, life_r, devnull));
    // Empty at EOF when the agent exec'd; else an errno and words.
    let mut report = Vec::new();
    File::from(status_r).read_to_end(&mut report)?;
    if report.len() >= 4 {
        // The init reported and exited (or will once its agent is reaped).
        // SAFETY: reaps our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        let errno = i32::from_ne_bytes([report[0], report[1], report[2], report[3]]);
        let kind = io::Error::from_raw_os_error(errno).kind();
        return Err(io::Error::new(
            kind,
            String::from_utf8_lossy(&report[4..]).into_owned(),
        ));
    }
    Ok(SandboxSpawned {
        pid,
        stdout: File::from(out_r),
        stderr: File::from(err_r),
        result: File::from(result_r),
        life: life_w,
    })
}

/// The agent's raw wait status, as the init reported it before exiting;
/// `None` when the init was killed first (then its own status stands).
pub(crate) fn read_result(result: &mut File) -> Option<i32> {
    let mut buf = [0u8; 4];
    result.read_exact(&mut buf).ok()?;
    Some(i32::from_ne_bytes(buf))
}
