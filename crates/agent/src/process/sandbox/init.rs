//! The sandbox's init (pid 1 of the run's PID namespace) and the agent's last
//! steps before `execve`.
//!
//! Both run in a fork of the monitor taken while the monitor has a single
//! thread (it starts its log copiers only after the agent), so they may
//! allocate and use std like any program.

use super::SandboxSpec;
use super::mounts;
use crate::process::clone_spawn::resolve;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What the init needs; every fd is the monitor's, inherited through the fork.
pub(super) struct InitArgs<'a> {
    pub spec: &'a SandboxSpec,
    pub root: &'a Path,
    pub argv: &'a [OsString],
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub cwd: Option<&'a Path>,
    pub stray_grace: Duration,
    /// Set when the namespaces are owned by a new user namespace (orch does
    /// not run as root): the ids to map to themselves.
    pub map_ids: Option<(u32, u32)>,
    pub null_fd: RawFd,
    pub out_fd: RawFd,
    pub err_fd: RawFd,
    /// Carries an errno when the set-up or the agent's exec fails; closes
    /// (close-on-exec) when the agent runs.
    pub status_fd: RawFd,
    /// Receives the agent's raw wait status before the init exits.
    pub result_fd: RawFd,
    /// The read end of a pipe only the monitor writes: hung up = monitor gone.
    pub life_fd: RawFd,
    /// `cgroup.procs` of the run's limit cgroups (v1): joined first, so the
    /// init and all it starts are limited.
    pub join: &'a [RawFd],
}

fn write_all(fd: RawFd, bytes: &[u8]) {
    // SAFETY: writes from a valid buffer; a short or failed write only loses
    // a diagnostic.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

/// Reports `e` to the monitor (its errno, then words, on the status pipe)
/// and ends the process.
fn fail(a: &InitArgs, what: &str, e: &io::Error) -> ! {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    let mut msg = errno.to_ne_bytes().to_vec();
    msg.extend_from_slice(format!("{what}: {e}").as_bytes());
    write_all(a.status_fd, &msg);
    // SAFETY: ends this process without running the monitor's destructors.
    unsafe { libc::_exit(127) }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Maps `ids` to themselves in the new user namespace (what an unprivileged
/// process may write for itself).
fn map_ids((uid, gid): (u32, u32)) -> io::Result<()> {
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
}

pub(super) fn run(a: InitArgs) -> ! {
    // SAFETY (whole function): plain system calls on fds the monitor passed.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            fail(
                &a,
                "arming the parent-death signal",
                &io::Error::last_os_error(),
            );
        }
        // The monitor may have died before that took effect; its pid is not
        // visible from this PID namespace, but its end of the life pipe is.
        let mut pfd = libc::pollfd {
            fd: a.life_fd,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&mut pfd, 1, 0) != 0 {
            libc::_exit(127);
        }
        libc::close(a.life_fd);
    }
    for fd in a.join {
        // SAFETY: writes one byte to an fd the monitor opened.
        if unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) } < 0 {
            fail(
                &a,
                "joining the run's limit cgroups",
                &io::Error::last_os_error(),
            );
        }
    }
    if let Some(ids) = a.map_ids
        && let Err(e) = map_ids(ids)
    {
        fail(&a, "mapping the user ids", &e);
    }
    // One process group with the agent: the monitor's signals to the group
    // reach the agent (the init keeps them blocked and pending, unhandled).
    // SAFETY: plain system calls.
    if let Err(e) = check(unsafe { libc::setpgid(0, 0) }) {
        fail(&a, "setpgid", &e);
    }
    let host = b"orch-agent";
    // SAFETY: a valid buffer of the given length.
    if let Err(e) = check(unsafe { libc::sethostname(host.as_ptr().cast(), host.len()) }) {
        fail(&a, "sethostname", &e);
    }
    if let Err(e) = mounts::enter(a.spec, a.root) {
        fail(&a, "building the sandbox's file system", &e);
    }
    // SAFETY: dup2 on valid fds.
    let dup = unsafe {
        libc::dup2(a.null_fd, 0) < 0 || libc::dup2(a.out_fd, 1) < 0 || libc::dup2(a.err_fd, 2) < 0
    };
    if dup {
        fail(&a, "redirecting stdio", &io::Error::last_os_error());
    }
    // SAFETY: fork of this single-threaded process.
    let agent = unsafe { libc::fork() };
    if agent < 0 {
        fail(&a, "forking the agent", &io::Error::last_os_error());
    }
    if agent == 0 {
        exec_agent(&a);
    }
    // Only the agent (until its exec) may still report on the status pipe.
    // SAFETY: closes our copy.
    unsafe { libc::close(a.status_fd) };
    let status = reap_until_agent_ends(agent);
    end_strays(a.stray_grace);
    write_all(a.result_fd, &status.to_ne_bytes());
    // SAFETY: ends the init; the kernel kills whatever is left in the namespace.
    unsafe { libc::_exit(0) }
}

fn handled() -> libc::sigset_t {
    // SAFETY: initialises a local sigset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGCHLD, libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Sleeps until a (blocked) signal arrives or `timeout` passes.
fn wait_signal(set: &libc::sigset_t, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(3600) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: valid pointers for the call.
    unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
}

/// Reaps every child (orphans of the namespace come to pid 1) until the
/// agent has ended; returns its raw wait status.
fn reap_until_agent_ends(agent: libc::pid_t) -> i32 {
    let set = handled();
    loop {
        loop {
            let mut status = 0;
            // SAFETY: reaps our children.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid == agent {
                return status;
            }
            if pid <= 0 {
                break;
            }
        }
        // The monitor's stop signals stay pending here, unhandled: the
        // agent got them through the process group.
        wait_signal(&set, Duration::from_secs(1));
    }
}

/// SIGTERM to every process left in the namespace, a grace, then SIGKILL.
fn end_strays(grace: Duration) {
    // kill(-1) from anything but pid 1 of a namespace of its own would
    // signal every process the user may signal on the machine. The clone
    // always makes a new PID namespace; this guards the guarantee anyway.
    // SAFETY: a plain getter.
    if unsafe { libc::getpid() } != 1 {
        return;
    }
    let set = handled();
    // SAFETY: from pid 1, -1 means every other process of the namespace.
    unsafe { libc::kill(-1, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    loop {
        let mut status = 0;
        // SAFETY: reaps our children.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            continue;
        }
        if pid < 0 {
            return; // ECHILD: nobody left.
        }
        let now = Instant::now();
        if now >= deadline {
            // SAFETY: as above.
            unsafe { libc::kill(-1, libc::SIGKILL) };
            return;
        }
        wait_signal(&set, deadline - now);
    }
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// Landlock as a second fence: even a process that found a way around the
/// mounts may touch only the sandbox's paths. Best effort: a kernel without
/// Landlock leaves the mounts as the only fence.
fn landlock(a: &InitArgs) -> Result<(), landlock::RulesetError> {
    use landlock::{
        ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, path_beneath_rules,
    };
    let abi = ABI::V5;
    let read: Vec<&Path> = a.spec.readonly.iter().map(PathBuf::as_path).collect();
    let mut write: Vec<&Path> = a.spec.writable.iter().map(PathBuf::as_path).collect();
    write.extend(a.spec.home.as_deref());
    write.extend([Path::new("/tmp"), Path::new("/dev")]);
    let exists = |p: &&Path| p.exists();
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))?
        .create()?
        .add_rules(path_beneath_rules(
            read.into_iter().chain([Path::new("/proc")]).filter(exists),
            AccessFs::from_read(abi),
        ))?
        .add_rules(path_beneath_rules(
            write.into_iter().filter(exists),
            AccessFs::from_all(abi),
        ))?
        // Listing folders is harmless here: "/" is the sandbox's own root,
        // which holds only what the mounts put there (a host tree reached
        // by some escape would not be beneath it).
        .add_rules(path_beneath_rules([Path::new("/")], AccessFs::ReadDir))?
        .restrict_self()?;
    Ok(())
}

/// No capabilities left, in any set, for this process or what it executes.
fn drop_capabilities() -> io::Result<()> {
    // SAFETY: prctl and capset with valid arguments.
    unsafe {
        for cap in 0..64 {
            // EINVAL past the kernel's last capability: done.
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                break;
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let header = Header {
            version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
            pid: 0,
        };
        let data = [Data {
            effective: 0,
            permitted: 0,
            inheritable: 0,
        }; 2];
        check(libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int)?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
    }
}

fn exec_agent(a: &InitArgs) -> ! {
    // SAFETY: signal-mask and disposition calls on local data.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    if let Some(dir) = a.cwd
        && let Err(e) = std::env::set_current_dir(dir)
    {
        fail(a, &format!("entering {}", dir.display()), &e);
    }
    if let Err(e) = landlock(a) {
        fail(a, "Landlock", &io::Error::other(e.to_string()));
    }
    if let Err(e) = drop_capabilities() {
        fail(a, "dropping capabilities", &e);
    }
    let Some(program) = a.argv.first() else {
        fail(a, "exec", &io::Error::from_raw_os_error(libc::EINVAL));
    };
    let built = (|| -> io::Result<(CString, Vec<CString>, Vec<CString>)> {
        let path = cstr(resolve(program, a.env).as_os_str())?;
        let argv = a.argv.iter().map(|s| cstr(s)).collect::<io::Result<_>>()?;
        let envp = a
            .env
            .iter()
            .map(|(k, v)| cstr(OsStr::new(&format!("{k}={v}"))))
            .collect::<io::Result<_>>()?;
        Ok((path, argv, envp))
    })();
    let (path, argv, envp) = match built {
        Ok(b) => b,
        Err(e) => fail(a, "exec", &e),
    };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NUL-terminated arrays of valid C strings.
    unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    fail(
        a,
        &format!("executing {}", path.to_string_lossy()),
        &io::Error::last_os_error(),
    )
}
