//! Whether this machine, for this user, can run sandboxed agents: asked by
//! `orch doctor` and `orch init`, by really creating the namespaces in a
//! short-lived child.

use super::spawn::namespace_flags;
use std::os::unix::process::CommandExt;

/// What the machine supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// `mode = "namespaces"` works; otherwise why not, in words.
    pub namespaces: Result<(), String>,
    /// The kernel's Landlock ABI version, when it has Landlock.
    pub landlock_abi: Option<u32>,
}

fn landlock_abi() -> Option<u32> {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION with no attribute only
    // returns the ABI version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    u32::try_from(v).ok().filter(|v| *v > 0)
}

/// Starts `/bin/true` (or `true` from `/usr/bin`) in the namespaces a
/// sandbox uses, as this user.
pub fn probe() -> Support {
    let (flags, _) = namespace_flags();
    let program = ["/bin/true", "/usr/bin/true"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("true");
    let mut cmd = std::process::Command::new(program);
    // SAFETY: unshare is a plain system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(flags as libc::c_int) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let namespaces = match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("a probe in new namespaces exited with {s}")),
        Err(e) => Err(format!(
            "creating mount, PID, IPC, UTS and network namespaces{} failed: {e}",
            if flags & libc::CLONE_NEWUSER as u64 != 0 {
                " in a user namespace (orch does not run as root)"
            } else {
                ""
            }
        )),
    };
    Support {
        namespaces,
        landlock_abi: landlock_abi(),
    }
}
