//! The sandbox's file system, built by the init inside its new mount
//! namespace: a tmpfs root holding only the run's paths, then `pivot_root`
//! into it. Everything here runs in the forked init of a single-threaded
//! monitor (no other thread exists at that point), so it may allocate.

use super::SandboxSpec;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

fn c(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let src = src.map(c).transpose()?;
    let dst_c = c(dst)?;
    let fstype = fstype.map(|f| CString::new(f).expect("no NUL"));
    let data = data.map(|d| CString::new(d).expect("no NUL"));
    // SAFETY: every pointer is a valid C string or null, alive for the call.
    let rc = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            dst_c.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    check(rc).map_err(|e| io::Error::new(e.kind(), format!("mounting {}: {e}", dst.display())))
}

/// `root` joined with the absolute `path` (its `..` and `.` refused).
fn inside(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut out = root.to_path_buf();
    for comp in path.components() {
        match comp {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("sandbox path {} is not absolute and plain", path.display()),
                ));
            }
        }
    }
    Ok(out)
}

/// Makes `dst` (a folder, or an empty file when `src` is not a folder) to
/// mount on.
fn mount_point(src_is_dir: bool, dst: &Path) -> io::Result<()> {
    if src_is_dir {
        std::fs::create_dir_all(dst)
    } else {
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dst)
            .map(drop)
    }
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

/// Makes the mount at `dst` and every mount below it read-only (a plain
/// remount would leave the submounts, such as a container's bind-mounted
/// `/etc/resolv.conf`, writable).
fn make_readonly(dst: &Path) -> io::Result<()> {
    let dst_c = c(dst)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: a valid path and a properly sized struct, alive for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            dst_c.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Before Linux 5.12: the top mount at least (Landlock covers the rest).
    mount(
        None,
        dst,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
}

fn bind(src: &Path, dst: &Path, readonly: bool) -> io::Result<()> {
    mount_point(src.is_dir(), dst)?;
    mount(Some(src), dst, None, libc::MS_BIND | libc::MS_REC, None)?;
    if readonly {
        make_readonly(dst)?;
    }
    Ok(())
}

const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Builds the sandbox's tree under `root` (an empty folder that exists on
/// the host) and makes it the root of this mount namespace.
pub(crate) fn enter(spec: &SandboxSpec, root: &Path) -> io::Result<()> {
    // Nothing mounted from here on may reach the host's namespace.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    mount(
        Some(Path::new("tmpfs")),
        root,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755"),
    )?;
    // /tmp and HOME first: a worktree below /tmp is bound into them after.
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    mount(
        Some(Path::new("tmpfs")),
        &tmp,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777"),
    )?;
    if let Some(home) = &spec.home {
        let dst = inside(root, home)?;
        std::fs::create_dir_all(&dst)?;
        mount(
            Some(Path::new("tmpfs")),
            &dst,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some("mode=0700"),
        )?;
    }
    for src in &spec.readonly {
        let Ok(meta) = std::fs::symlink_metadata(src) else {
            continue;
        };
        let dst = inside(root, src)?;
        // Already visible through an earlier entry (`/bin/sh` after `/bin`).
        if std::fs::symlink_metadata(&dst).is_ok() || dst.exists() {
            continue;
        }
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(src)?;
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::os::unix::fs::symlink(target, &dst)?;
        } else {
            bind(src, &dst, true)?;
        }
    }
    for src in &spec.hidden {
        let Ok(meta) = std::fs::symlink_metadata(src) else {
            continue;
        };
        let dst = inside(root, src)?;
        if !dst.exists() {
            continue;
        }
        if meta.is_dir() {
            mount(
                Some(Path::new("tmpfs")),
                &dst,
                Some("tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_RDONLY,
                Some("mode=0755"),
            )?;
        } else {
            mount(
                Some(Path::new("/dev/null")),
                &dst,
                None,
                libc::MS_BIND,
                None,
            )?;
        }
    }
    for src in &spec.writable {
        bind(src, &inside(root, src)?, false)?;
    }

    let proc = root.join("proc");
    std::fs::create_dir_all(&proc)?;
    mount(
        Some(Path::new("proc")),
        &proc,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        None,
    )?;
    // As docker does: the kernel's knobs read-only, the magic SysRq key gone.
    bind(&proc.join("sys"), &proc.join("sys"), true)?;
    let sysrq = proc.join("sysrq-trigger");
    if sysrq.exists() {
        mount(
            Some(Path::new("/dev/null")),
            &sysrq,
            None,
            libc::MS_BIND,
            None,
        )?;
    }

    let dev = root.join("dev");
    std::fs::create_dir_all(&dev)?;
    mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=0755"),
    )?;
    for name in DEVICES {
        let src = Path::new("/dev").join(name);
        if src.exists() {
            let dst = dev.join(name);
            mount_point(false, &dst)?;
            mount(Some(&src), &dst, None, libc::MS_BIND, None)?;
        }
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(name))?;
    }
    let shm = dev.join("shm");
    std::fs::create_dir_all(&shm)?;
    mount(
        Some(Path::new("tmpfs")),
        &shm,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=1777"),
    )?;

    pivot(root)?;
    // The root's own tmpfs read-only: the agent writes only where it may.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
        None,
    )
}

/// `pivot_root(".", ".")` and a lazy unmount of the old root: the host's
/// tree is then unreachable from this namespace.
fn pivot(root: &Path) -> io::Result<()> {
    std::env::set_current_dir(root)?;
    let dot = CString::new(".").expect("no NUL");
    // SAFETY: valid C strings; the raw syscall has no libc wrapper.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } as i32)?;
    // SAFETY: a valid C string.
    check(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })?;
    std::env::set_current_dir("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_inside_the_root_refuse_parent_components() {
        assert_eq!(
            inside(Path::new("/r"), Path::new("/a/b")).unwrap(),
            PathBuf::from("/r/a/b")
        );
        assert!(inside(Path::new("/r"), Path::new("/a/../etc")).is_err());
    }
}
