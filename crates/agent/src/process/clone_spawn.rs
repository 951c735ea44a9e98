//! Starting the agent directly inside its cgroup with `clone3(CLONE_INTO_CGROUP)`
//! (Linux 5.7+).
//!
//! Why: moving a process into a cgroup after it exists (a write to
//! `cgroup.procs`) waits for an RCU grace period — 10–15 ms per agent start on
//! the machines we measured, most of orch's event → agent latency. A child
//! created inside the cgroup skips the migration (about 1 ms).
//!
//! The child runs only async-signal-safe calls between `clone3` and `execve`;
//! everything it needs (C strings, fds) is made before. Errors before exec come
//! back through a close-on-exec pipe, as `std::process::Command` does. When the
//! kernel or a seccomp filter refuses `clone3` the caller falls back to
//! `Command` (with a join in `pre_exec`).

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// `CLONE_INTO_CGROUP` (include/uapi/linux/sched.h).
pub(crate) const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
pub(crate) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// What to start; the same meaning as the `Command` setup in the monitor.
pub struct SpawnSpec<'a> {
    pub argv: &'a [std::ffi::OsString],
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub cwd: Option<&'a Path>,
    /// The monitor's pid: the child checks its parent is still there after
    /// arming the parent-death signal.
    pub parent_pid: i32,
    /// An `O_DIRECTORY` fd of the run's cgroup.
    pub cgroup_dir: &'a OwnedFd,
    /// `cgroup.procs` of the run's limit cgroups (v1) to join before exec.
    pub join: &'a [RawFd],
}

pub struct Spawned {
    pub pid: i32,
    pub stdout: File,
    pub stderr: File,
}

/// Why the fast path was not taken: `Unsupported` means fall back to `Command`;
/// `Failed` is the agent's own start failure (e.g. no such program).
#[derive(Debug)]
pub enum SpawnError {
    Unsupported(io::Error),
    Failed(io::Error),
}

fn cstr(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub(crate) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The program as `execvp` would find it, using the agent's own PATH (the
/// behaviour of `Command` with a cleared environment). A name with a slash is
/// used as given (resolved against `cwd` by the kernel after the chdir).
pub(crate) fn resolve(
    program: &OsStr,
    env: &std::collections::BTreeMap<String, String>,
) -> PathBuf {
    if program.as_bytes().contains(&b'/') {
        return PathBuf::from(program);
    }
    let path = env
        .get("PATH")
        .map(String::as_str)
        .unwrap_or("/usr/local/bin:/usr/bin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(program);
        let c = match CString::new(candidate.as_os_str().as_bytes()) {
            Ok(c) => c,
            Err(_) => continue,
        };
        // SAFETY: a valid C string; access(2) only reads it.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 && candidate.is_file() {
            return candidate;
        }
    }
    // Not found: execve reports ENOENT, as execvp would.
    PathBuf::from(program)
}

/// Starts the agent inside the cgroup of `spec.cgroup_dir`.
pub fn spawn(spec: &SpawnSpec) -> Result<Spawned, SpawnError> {
    let failed = SpawnError::Failed;
    let (program, _) = spec
        .argv
        .split_first()
        .ok_or_else(|| failed(io::Error::from_raw_os_error(libc::EINVAL)))?;
    let path = cstr(resolve(program, spec.env).as_os_str()).map_err(failed)?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstr(a))
        .collect::<io::Result<_>>()
        .map_err(failed)?;
    let envp: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| cstr(OsStr::new(&format!("{k}={v}"))))
        .collect::<io::Result<_>>()
        .map_err(failed)?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let cwd = spec
        .cwd
        .map(|c| cstr(c.as_os_str()))
        .transpose()
        .map_err(failed)?;

    let io = |e| SpawnError::Unsupported(e);
    let devnull = File::open("/dev/null").map_err(io)?;
    let (out_r, out_w) = pipe().map_err(io)?;
    let (err_r, err_w) = pipe().map_err(io)?;
    let (status_r, status_w) = pipe().map_err(io)?;

    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: spec.cgroup_dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    let (null_fd, out_fd, err_fd, status_fd) = (
        devnull.as_raw_fd(),
        out_w.as_raw_fd(),
        err_w.as_raw_fd(),
        status_w.as_raw_fd(),
    );
    let parent = spec.parent_pid;
    let join = spec.join;
    // SAFETY: clone3 without CLONE_VM forks this process; `args` outlives the call.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        return Err(SpawnError::Unsupported(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: the child of a fork. Only async-signal-safe calls on data
        // prepared above, then execve or _exit; nothing allocates or unwinds.
        unsafe {
            child(
                null_fd,
                out_fd,
                err_fd,
                status_fd,
                parent,
                join,
                cwd.as_ref(),
                &path,
                &argv_ptrs,
                &envp_ptrs,
            )
        }
    }
    let pid = pid as i32;
    drop((out_w, err_w, status_w, devnull));
    // The status pipe closes on a successful exec and carries errno otherwise.
    let mut errno = [0u8; 4];
    let mut status = File::from(status_r);
    let n = loop {
        match status.read(&mut errno) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r,
        }
    };
    match n {
        Ok(0) => Ok(Spawned {
            pid,
            stdout: File::from(out_r),
            stderr: File::from(err_r),
        }),
        Ok(_) => {
            // SAFETY: reaps our own child, which has exited (it wrote and _exit'ed).
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            Err(SpawnError::Failed(io::Error::from_raw_os_error(
                i32::from_ne_bytes(errno),
            )))
        }
        Err(e) => Err(SpawnError::Failed(e)),
    }
}

/// The child's side: the same set-up as the monitor's `Command` path.
#[allow(clippy::too_many_arguments)]
unsafe fn child(
    null_fd: RawFd,
    out_fd: RawFd,
    err_fd: RawFd,
    status_fd: RawFd,
    parent: i32,
    join: &[RawFd],
    cwd: Option<&CString>,
    path: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> ! {
    let fail = |status_fd: RawFd| -> ! {
        // SAFETY: errno location is thread-local and readable; write and _exit
        // are async-signal-safe.
        unsafe {
            let e = *libc::__errno_location();
            let bytes = e.to_ne_bytes();
            libc::write(status_fd, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        }
    };
    // SAFETY (whole block): async-signal-safe syscalls on valid fds and
    // NUL-terminated arrays prepared by the parent before the fork.
    unsafe {
        // The monitor blocks the signals it waits for; a blocked mask survives
        // exec, so clear it, and restore SIGPIPE, which Rust's runtime ignores.
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        if libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) != 0 {
            fail(status_fd);
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // If the monitor dies the agent must not run on unwatched.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            fail(status_fd);
        }
        if libc::getppid() != parent {
            *libc::__errno_location() = libc::ESRCH;
            fail(status_fd);
        }
        // Its own group, so signals to the agent's group never hit the monitor.
        if libc::setpgid(0, 0) != 0 {
            fail(status_fd);
        }
        // Limited before it runs a single instruction of its own.
        for fd in join {
            if libc::write(*fd, b"0".as_ptr().cast(), 1) < 0 {
                fail(status_fd);
            }
        }
        if libc::dup2(null_fd, 0) < 0 || libc::dup2(out_fd, 1) < 0 || libc::dup2(err_fd, 2) < 0 {
            fail(status_fd);
        }
        if let Some(dir) = cwd
            && libc::chdir(dir.as_ptr()) != 0
        {
            fail(status_fd);
        }
        libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        fail(status_fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_through_the_agents_path() {
        let mut env = std::collections::BTreeMap::new();
        env.insert("PATH".to_owned(), "/nonexistent:/bin:/usr/bin".to_owned());
        let sh = resolve(OsStr::new("sh"), &env);
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(resolve(OsStr::new("./x.sh"), &env), PathBuf::from("./x.sh"));
        assert_eq!(
            resolve(OsStr::new("no-such-program-xyz"), &env),
            PathBuf::from("no-such-program-xyz")
        );
    }
}
