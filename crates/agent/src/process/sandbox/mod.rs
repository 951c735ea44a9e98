//! A sandbox per run (issue 12): the agent runs in new mount, PID, IPC, UTS
//! and network namespaces, sees only the paths its run needs, holds no
//! capabilities, and is fenced by Landlock where the kernel has it.
//!
//! Built directly on `clone3` and `mount(2)` rather than on bubblewrap: the
//! monitor already starts the agent with `clone3`, the set-up is a few dozen
//! system calls, and orch needs no extra program installed (nor its setuid
//! variant on machines without unprivileged user namespaces).
//!
//! ```text
//! monitor (host namespaces, subreaper, owns the cgroup)
//!   └─ sandbox init (pid 1 of a new PID namespace; builds the mounts,
//!      │             pivots into them, reaps, reports the agent's status)
//!      └─ agent (no capabilities, no_new_privs, Landlock)
//! ```
//!
//! What the agent sees (everything else of the host is absent):
//!
//! - `writable` paths read-write at their host paths (its worktree, the
//!   worktree's admin dir in the mirror);
//! - `readonly` paths read-only (the toolchain, the mirror's objects);
//! - `hidden` paths replaced by an empty file or folder (secrets under `/etc`);
//! - an empty `HOME` (a tmpfs), a private `/tmp`, its own `/proc` and a
//!   `/dev` with only `null`, `zero`, `full`, `random`, `urandom` and `tty`.
//!
//! The monitor, the logs, `exit.json` and STOP work as without a sandbox: the
//! monitor stays outside, the agent's output goes through the same pipes, the
//! init forwards nothing (the monitor signals the agent's process group,
//! which the init shares) and reports the agent's wait status on a pipe; when
//! the init dies every process of the namespace dies with it.

pub mod egress;
mod init;
mod mounts;
mod probe;
pub(crate) mod spawn;
pub(crate) mod start;

pub use probe::{Support, probe};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The file in the run folder that carries a run's [`SandboxSpec`] to the monitor.
pub const SANDBOX_JSON: &str = "sandbox.json";

/// What one run's sandbox lets the agent see.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Bound read-write at the same path (the agent's cwd must be among them
    /// or below one of them).
    pub writable: Vec<PathBuf>,
    /// Bound read-only at the same path; missing ones are skipped. A symbolic
    /// link (`/bin` → `usr/bin`) is recreated as a link.
    pub readonly: Vec<PathBuf>,
    /// Masked inside the read-only paths: an empty folder or an empty file.
    pub hidden: Vec<PathBuf>,
    /// An empty, writable, private folder at this path (the agent's `HOME`).
    pub home: Option<PathBuf>,
    /// The hosts orch's proxy admits ([`egress`]); nothing else is reachable.
    #[serde(default)]
    pub egress: egress::Allowlist,
}

/// Sandbox-wide defaults: the toolchain and the secrets under it.
pub mod defaults {
    /// Read-only toolchain paths when the configuration names none.
    pub const TOOLCHAIN: &[&str] = &[
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
    ];
    /// Files under the toolchain paths an agent never needs and must not read.
    pub const HIDDEN: &[&str] = &[
        "/etc/shadow",
        "/etc/shadow-",
        "/etc/gshadow",
        "/etc/gshadow-",
        "/etc/sudoers",
        "/etc/sudoers.d",
        "/etc/ssh",
        "/etc/ssl/private",
    ];
}
