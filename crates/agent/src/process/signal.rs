//! Sending a signal to a recorded process, never to whoever holds its pid now.
//!
//! The process is pinned with a pidfd first, then its start ticks are compared
//! with the recorded ones, then the signal goes through the pidfd: a pid reused
//! between the check and the send cannot receive it. Kernels without pidfds
//! (before 5.3) fall back to check-then-`kill`, which leaves a window of
//! microseconds that would need a full pid wrap-around to matter.

use super::procfs::{Identity, ProcId};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use std::os::fd::{FromRawFd, OwnedFd};

/// What happened to one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalOutcome {
    Sent,
    /// The process had already exited (or is a zombie); nothing was sent.
    Gone,
    /// The pid belongs to another process now; nothing was sent.
    Reused,
}

fn pidfd_open(pid: i32) -> Result<OwnedFd, nix::errno::Errno> {
    // SAFETY: pidfd_open takes (pid_t, unsigned int) and returns a new fd or -1;
    // no memory is passed to the kernel.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if fd < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: the syscall succeeded, so `fd` is a fresh descriptor nobody else owns.
    // It fits in an i32 because the kernel hands out fds as ints.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_send_signal(fd: &OwnedFd, sig: Signal) -> Result<(), nix::errno::Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: (pidfd, sig, siginfo = NULL, flags = 0) is the documented "behave
    // like kill()" form; the fd is borrowed and outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if rc < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

fn classify(id: &ProcId) -> Option<SignalOutcome> {
    match id.identity() {
        Identity::Alive => None,
        Identity::Zombie | Identity::Gone => Some(SignalOutcome::Gone),
        Identity::Reused { .. } => Some(SignalOutcome::Reused),
    }
}

/// Signals exactly the recorded process.
pub fn signal_process(id: &ProcId, sig: Signal) -> SignalOutcome {
    match pidfd_open(id.pid) {
        Ok(fd) => {
            // The pidfd refers to whoever held the pid when it was opened. If the
            // recorded process still holds it now, that is the same process (it
            // started before the pidfd was opened), so the send below reaches it
            // or, should it exit meanwhile, nobody.
            if let Some(outcome) = classify(id) {
                return outcome;
            }
            match pidfd_send_signal(&fd, sig) {
                Ok(()) => SignalOutcome::Sent,
                Err(_) => SignalOutcome::Gone,
            }
        }
        Err(nix::errno::Errno::ESRCH) => SignalOutcome::Gone,
        Err(_) => {
            if let Some(outcome) = classify(id) {
                return outcome;
            }
            match kill(Pid::from_raw(id.pid), sig) {
                Ok(()) => SignalOutcome::Sent,
                Err(_) => SignalOutcome::Gone,
            }
        }
    }
}

/// Signals the process group led by `leader`, after checking that the leader is
/// still the recorded process. A group id cannot be reused while the group has
/// members, and the leader being alive at the check proves it has one; the
/// group would have to empty and its id be recycled in the microseconds before
/// `killpg` for the signal to stray.
pub fn signal_group(leader: &ProcId, sig: Signal) -> SignalOutcome {
    if let Some(outcome) = classify(leader) {
        return outcome;
    }
    match killpg(Pid::from_raw(leader.pid), sig) {
        Ok(()) => SignalOutcome::Sent,
        Err(_) => SignalOutcome::Gone,
    }
}
