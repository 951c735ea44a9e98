//! Resource limits of one run (issue 12): memory, CPU share and process
//! count, enforced by cgroups — v2 where the run's cgroup has the
//! controllers, else the cgroup v1 hierarchies that are mounted (a common
//! "hybrid" layout: v1 `memory`, `cpu`, `pids` plus a v2 without
//! controllers).
//!
//! The monitor makes the cgroups and stays outside them; the agent (or the
//! sandbox's init) joins them between fork and exec through `cgroup.procs`
//! fds opened beforehand, so it never runs or forks unlimited.

use super::cgroup::{NAME_PREFIX, RunCgroup};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// `[limits] memory_mb`, `cpu_percent`, `pids`; `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    /// Memory (and swap) of the whole run, in MiB.
    pub memory_mb: Option<u64>,
    /// CPU time per wall time in percent of one CPU (200 = two CPUs).
    pub cpu_percent: Option<u32>,
    /// Processes and threads of the whole run at once.
    pub pids: Option<u32>,
}

impl ResourceLimits {
    pub fn is_empty(&self) -> bool {
        self.memory_mb.is_none() && self.cpu_percent.is_none() && self.pids.is_none()
    }
}

/// A limit the run ran into, as recorded in `exit.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "limit")]
pub enum LimitHit {
    /// The kernel's OOM killer killed a process of the run at its memory limit.
    Memory { limit_mb: u64, oom_kills: u64 },
    /// A fork or clone failed at the process limit.
    Pids { max: u32, refused: u64 },
}

impl LimitHit {
    /// In plain words, for the task's log.
    pub fn describe(&self) -> String {
        match self {
            LimitHit::Memory {
                limit_mb,
                oom_kills,
            } => format!(
                "killed at its memory limit: the run used all of [limits] memory_mb = {limit_mb} MiB and the kernel ended {oom_kills} of its processes"
            ),
            LimitHit::Pids { max, refused } => format!(
                "held at its process limit: {refused} fork(s) refused at [limits] pids = {max}"
            ),
        }
    }
}

/// Which mechanism a controller's files follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// One cgroup directory that carries some of the limits.
#[derive(Debug)]
struct Dir {
    path: PathBuf,
    version: Version,
    /// Made by us (removed at the end); the v2 run cgroup belongs to the
    /// monitor's cgroup handling.
    owned: bool,
}

/// The run's limit cgroups, made before the agent starts.
#[derive(Debug, Default)]
pub struct LimitCgroups {
    limits: ResourceLimits,
    memory: Option<usize>,
    pids: Option<usize>,
    dirs: Vec<Dir>,
}

/// The v1 hierarchy of `controller`: (mount point, root inside the hierarchy).
fn v1_mount(mountinfo: &str, controller: &str) -> Option<(PathBuf, String)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_whitespace();
        if r.next()? != "cgroup" {
            return None;
        }
        let opts = r.nth(1)?;
        if !opts.split(',').any(|o| o == controller) {
            return None;
        }
        let fields: Vec<&str> = left.split_whitespace().collect();
        Some((PathBuf::from(fields.get(4)?), (*fields.get(3)?).to_owned()))
    })
}

/// This process's path in the v1 hierarchy holding `controller`.
fn v1_own_path(proc_cgroup: &str, controller: &str) -> Option<String> {
    proc_cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_owned())
    })
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join(file))
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| io::Error::new(e.kind(), format!("{}/{file}: {e}", dir.display())))
}

/// A counter `key N` from a flat-keyed cgroup file.
fn counter(dir: &Path, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok())?
            })
        })
        .unwrap_or(0)
}

impl LimitCgroups {
    /// Makes the cgroups that carry `limits` for run `name`; `v2` is the
    /// run's own cgroup v2 if it has one. A limit no mechanism can carry is
    /// an error: a configured limit is never silently dropped.
    pub fn create(
        name: &str,
        limits: ResourceLimits,
        v2: Option<&RunCgroup>,
    ) -> io::Result<LimitCgroups> {
        let mut out = LimitCgroups {
            limits,
            ..LimitCgroups::default()
        };
        if limits.is_empty() {
            return Ok(out);
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup")?;
        let v2_has = |ctrl: &str| {
            v2.and_then(|c| std::fs::read_to_string(c.dir.join("cgroup.controllers")).ok())
                .is_some_and(|s| s.split_whitespace().any(|c| c == ctrl))
        };
        let wanted = [
            ("memory", limits.memory_mb.is_some()),
            ("cpu", limits.cpu_percent.is_some()),
            ("pids", limits.pids.is_some()),
        ];
        for (ctrl, want) in wanted {
            if !want {
                continue;
            }
            let index = if v2_has(ctrl) {
                let v2 = v2.expect("checked");
                out.dir_index(&v2.dir, Version::V2, false)
            } else {
                let (mount, root) = v1_mount(&mountinfo, ctrl).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::Unsupported,
                        format!("no cgroup with the {ctrl} controller is mounted"),
                    )
                })?;
                let own = v1_own_path(&proc_cgroup, ctrl).unwrap_or_else(|| "/".into());
                let rel = own
                    .strip_prefix(root.trim_end_matches('/'))
                    .unwrap_or(&own)
                    .trim_start_matches('/');
                let dir = mount.join(rel).join(format!("{NAME_PREFIX}{name}"));
                if out.dirs.iter().all(|d| d.path != dir) {
                    std::fs::create_dir(&dir).or_else(|e| {
                        if e.kind() == io::ErrorKind::AlreadyExists {
                            Ok(())
                        } else {
                            Err(io::Error::new(
                                e.kind(),
                                format!("creating {}: {e}", dir.display()),
                            ))
                        }
                    })?;
                }
                out.dir_index(&dir, Version::V1, true)
            };
            let d = &out.dirs[index];
            let r = out.apply(ctrl, &d.path, d.version);
            if let Err(e) = r {
                out.remove();
                return Err(e);
            }
            match ctrl {
                "memory" => out.memory = Some(index),
                "pids" => out.pids = Some(index),
                _ => {}
            }
        }
        Ok(out)
    }

    fn dir_index(&mut self, path: &Path, version: Version, owned: bool) -> usize {
        if let Some(i) = self.dirs.iter().position(|d| d.path == path) {
            return i;
        }
        self.dirs.push(Dir {
            path: path.to_owned(),
            version,
            owned,
        });
        self.dirs.len() - 1
    }

    fn apply(&self, ctrl: &str, dir: &Path, version: Version) -> io::Result<()> {
        let l = &self.limits;
        match (ctrl, version) {
            ("memory", Version::V2) => {
                let bytes = l.memory_mb.unwrap_or(0) * 1024 * 1024;
                write(dir, "memory.max", &bytes.to_string())?;
                // No swap beyond the limit either.
                let _ = write(dir, "memory.swap.max", "0");
                Ok(())
            }
            ("memory", Version::V1) => {
                let bytes = (l.memory_mb.unwrap_or(0) * 1024 * 1024).to_string();
                write(dir, "memory.limit_in_bytes", &bytes)?;
                // memsw exists only with swap accounting; then it must be at
                // least the memory limit, which it now is.
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    write(dir, "memory.memsw.limit_in_bytes", &bytes)?;
                }
                Ok(())
            }
            ("cpu", Version::V2) => {
                let quota = u64::from(l.cpu_percent.unwrap_or(100)) * 1000;
                write(dir, "cpu.max", &format!("{quota} 100000"))
            }
            ("cpu", Version::V1) => {
                let quota = u64::from(l.cpu_percent.unwrap_or(100)) * 1000;
                write(dir, "cpu.cfs_period_us", "100000")?;
                write(dir, "cpu.cfs_quota_us", &quota.to_string())
            }
            ("pids", _) => write(dir, "pids.max", &l.pids.unwrap_or(0).to_string()),
            _ => Ok(()),
        }
    }

    /// `cgroup.procs` of every v1 cgroup the agent must join (the v2 one it
    /// joins as the run's cgroup), opened for writing before the fork.
    pub fn open_joins(&self) -> io::Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .filter(|d| d.version == Version::V1)
            .map(|d| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(d.path.join("cgroup.procs"))
                    .map(OwnedFd::from)
            })
            .collect()
    }

    /// The limits the run ran into, read once it has ended.
    pub fn hits(&self) -> Vec<LimitHit> {
        let mut out = Vec::new();
        if let (Some(i), Some(limit_mb)) = (self.memory, self.limits.memory_mb) {
            let d = &self.dirs[i];
            let oom_kills = match d.version {
                Version::V1 => counter(&d.path, "memory.oom_control", "oom_kill"),
                Version::V2 => counter(&d.path, "memory.events", "oom_kill"),
            };
            if oom_kills > 0 {
                out.push(LimitHit::Memory {
                    limit_mb,
                    oom_kills,
                });
            }
        }
        if let (Some(i), Some(max)) = (self.pids, self.limits.pids) {
            let refused = counter(&self.dirs[i].path, "pids.events", "max");
            if refused > 0 {
                out.push(LimitHit::Pids { max, refused });
            }
        }
        out
    }

    /// Removes the (empty) cgroups this made.
    pub fn remove(&self) {
        for d in self.dirs.iter().filter(|d| d.owned) {
            let _ = std::fs::remove_dir(&d.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
        33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
        34 31 0:31 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

    #[test]
    fn finds_the_v1_hierarchy_of_each_controller() {
        assert_eq!(
            v1_mount(MOUNTINFO, "memory"),
            Some((PathBuf::from("/sys/fs/cgroup/memory"), "/".to_owned()))
        );
        assert_eq!(
            v1_mount(MOUNTINFO, "cpu").map(|m| m.0),
            Some(PathBuf::from("/sys/fs/cgroup/cpu"))
        );
        assert_eq!(v1_mount(MOUNTINFO, "pids"), None);
    }

    #[test]
    fn own_v1_paths_come_from_the_controllers_line() {
        let pc = "4:memory:/process_api/x\n2:cpu,cpuacct:/\n0::/\n";
        assert_eq!(v1_own_path(pc, "memory").as_deref(), Some("/process_api/x"));
        assert_eq!(v1_own_path(pc, "cpuacct").as_deref(), Some("/"));
        assert_eq!(v1_own_path(pc, "pids"), None);
    }

    #[test]
    fn hits_read_in_plain_words() {
        let m = LimitHit::Memory {
            limit_mb: 64,
            oom_kills: 1,
        };
        assert!(m.describe().contains("memory limit"));
        assert!(m.describe().contains("64 MiB"));
    }
}
