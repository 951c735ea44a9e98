//! A cgroup v2 per run, where the machine allows one.
//!
//! Everything the agent starts stays in its cgroup, whatever session or process
//! group it moves to and whoever its parent becomes, so `cgroup.kill` ends the
//! whole tree at once and `cgroup.procs` lists it even after the monitor died.
//! The cgroup holds the agent only: the monitor stays outside so that it
//! survives the kill and records the exit.
//!
//! Anything that does not work (no cgroup2 mount, read-only `/sys/fs/cgroup`,
//! no permission to move processes) makes [`RunCgroup::create`] return `None`,
//! and process control relies on the `/proc` walk alone.

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Every run cgroup's directory name starts with this, which is also how `stop`
/// recognises a path it may act on.
pub const NAME_PREFIX: &str = "orch-run-";

/// The directory of one run's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCgroup {
    pub dir: PathBuf,
}

/// Undoes the octal escapes (`\040` for a space) of `/proc/self/mountinfo`.
fn unescape_mount_path(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match octal {
            Some(v) => {
                out.push(v);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup2 mount as (root inside the hierarchy, mount point), from the text of
/// `/proc/self/mountinfo`.
fn find_v2_mount(mountinfo: &str) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let fields: Vec<&str> = left.split_whitespace().collect();
        let root = unescape_mount_path(fields.get(3)?);
        let mount_point = PathBuf::from(unescape_mount_path(fields.get(4)?));
        Some((root, mount_point))
    })
}

/// This process's cgroup v2 path, from the text of `/proc/self/cgroup`.
fn find_own_v2_path(proc_cgroup: &str) -> Option<String> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
}

/// Keeps a run id usable as one path component: letters, digits, `-` and `_`.
pub(crate) fn sanitize(run_id: &str) -> String {
    run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect()
}

impl RunCgroup {
    /// Creates a cgroup for the run beside this process's own cgroup (as its
    /// child), or returns `None` when the machine does not allow it.
    pub fn create(run_id: &str) -> Option<RunCgroup> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let (root, mount) = find_v2_mount(&mountinfo)?;
        let own = find_own_v2_path(&std::fs::read_to_string("/proc/self/cgroup").ok()?)?;
        // The mount may show only a subtree of the hierarchy; our path must lie in it.
        let rel = own
            .strip_prefix(root.trim_end_matches('/'))
            .filter(|r| r.is_empty() || r.starts_with('/'))?;
        let parent = mount.join(rel.trim_start_matches('/'));
        let dir = parent.join(format!(
            "{NAME_PREFIX}{}-{}",
            sanitize(run_id),
            std::process::id()
        ));
        std::fs::create_dir(&dir).ok()?;
        let cg = RunCgroup { dir };
        if !cg.dir.join("cgroup.procs").exists() {
            cg.remove();
            return None;
        }
        Some(cg)
    }

    /// A path recorded in `monitor.json`, accepted only if it names a run cgroup
    /// (so a damaged or forged record cannot make `stop` kill another cgroup).
    pub fn from_recorded(dir: &Path) -> Option<RunCgroup> {
        let name = dir.file_name()?.to_str()?;
        if !name.starts_with(NAME_PREFIX) || !dir.is_absolute() {
            return None;
        }
        dir.join("cgroup.procs").exists().then(|| RunCgroup {
            dir: dir.to_owned(),
        })
    }

    /// The cgroup's directory as an fd, for `clone3(CLONE_INTO_CGROUP)`.
    pub fn open_dir(&self) -> io::Result<OwnedFd> {
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&self.dir)?;
        Ok(OwnedFd::from(f))
    }

    /// Opens `cgroup.procs` for [`join_from_child`], before forking.
    pub fn open_procs(&self) -> io::Result<OwnedFd> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.procs"))?;
        Ok(OwnedFd::from(f))
    }

    /// The pids in the cgroup (and, for a cgroup without children, that is all of
    /// the run's processes).
    pub fn procs(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs everything in the cgroup. Kernels before 5.14 have no
    /// `cgroup.kill`; then the caller's per-process SIGKILL does the work.
    pub fn kill(&self) -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join("cgroup.kill"))?;
        f.write_all(b"1")
    }

    /// True when no process is left in the cgroup.
    pub fn is_empty(&self) -> bool {
        self.procs().is_empty()
    }

    /// Removes the (empty) cgroup; a populated one stays, and that is fine.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is `fd`.
/// Meant for `pre_exec`: it only calls `write(2)`, which is async-signal-safe.
pub fn join_from_child(fd: &OwnedFd) -> io::Result<()> {
    // Writing "0" moves the writing process itself.
    // SAFETY: writes one byte from a static buffer to an fd we own.
    let rc = unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// For tests and diagnostics: the v2 cgroup path of a process.
pub fn cgroup_of(pid: i32) -> Option<String> {
    find_own_v2_path(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_mount_in_hybrid_layout() {
        let mi = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_v2_mount(mi),
            Some(("/".to_owned(), PathBuf::from("/sys/fs/cgroup/unified")))
        );
        assert_eq!(find_v2_mount("1 2 0:1 / / rw - ext4 /dev/sda rw\n"), None);
    }

    #[test]
    fn mount_point_escapes_are_decoded() {
        let mi = "41 31 0:38 /sub /mnt/c\\040g rw shared:1 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_v2_mount(mi),
            Some(("/sub".to_owned(), PathBuf::from("/mnt/c g")))
        );
    }

    #[test]
    fn own_path_comes_from_the_unified_line() {
        let pc = "9:name=systemd:/\n4:memory:/x\n0::/system.slice/orch.service\n";
        assert_eq!(
            find_own_v2_path(pc),
            Some("/system.slice/orch.service".to_owned())
        );
        assert_eq!(find_own_v2_path("4:memory:/x\n"), None);
    }

    #[test]
    fn run_ids_become_one_path_component() {
        assert_eq!(sanitize("run/../1 x"), "run____1_x");
    }

    #[test]
    fn recorded_paths_must_name_a_run_cgroup() {
        assert_eq!(RunCgroup::from_recorded(Path::new("/sys/fs/cgroup")), None);
        assert_eq!(
            RunCgroup::from_recorded(Path::new("relative/orch-run-x")),
            None
        );
    }
}
