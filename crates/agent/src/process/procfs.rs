//! Reading `/proc`: one process's stat line, the table of all processes, and the
//! identity check (pid + start ticks) that keeps a reused pid from ever being
//! mistaken for the process that was recorded.

use std::collections::{HashMap, HashSet};
use std::io;

/// The fields of `/proc/<pid>/stat` that process control needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// The command name as the kernel shows it (may contain spaces and `)`).
    pub comm: String,
    /// One-letter state: `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
    pub state: char,
    pub ppid: i32,
    pub pgid: i32,
    pub sid: i32,
    /// CPU time in user and kernel mode, in clock ticks (fields 14 and 15).
    pub utime: u64,
    pub stime: u64,
    /// Start time in clock ticks after boot (field 22). With the pid it names one
    /// process for the life of the machine.
    pub start_ticks: u64,
    /// Resident set size in pages (field 24).
    pub rss_pages: i64,
}

impl ProcStat {
    /// A zombie or dead process has finished; it only waits to be reaped.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the content of `/proc/<pid>/stat`.
///
/// The command name is wrapped in parentheses but may itself contain spaces and
/// parentheses, so the fields after it are located from the *last* `)`.
pub fn parse_stat(content: &str) -> Option<ProcStat> {
    let open = content.find('(')?;
    let close = content.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = content[..open].trim().parse().ok()?;
    let comm = content[open + 1..close].to_owned();
    let rest: Vec<&str> = content[close + 1..].split_whitespace().collect();
    // `rest[0]` is field 3 (state), so field N sits at index N - 3.
    let field = |n: usize| rest.get(n - 3).copied();
    let state = field(3)?.chars().next()?;
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid: field(4)?.parse().ok()?,
        pgid: field(5)?.parse().ok()?,
        sid: field(6)?.parse().ok()?,
        utime: field(14)?.parse().ok()?,
        stime: field(15)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
        rss_pages: field(24)?.parse().ok()?,
    })
}

/// Reads `/proc/<pid>/stat`; `Ok(None)` when there is no such process.
pub fn read_stat(pid: i32) -> io::Result<Option<ProcStat>> {
    if pid <= 0 {
        return Ok(None);
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => parse_stat(&s).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unparsable /proc/{pid}/stat: {s:?}"),
            )
        }),
        // ESRCH shows up when the process exits between open and read.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The start ticks of a live process, for recording its identity.
pub fn start_ticks(pid: i32) -> io::Result<Option<u64>> {
    Ok(read_stat(pid)?.map(|s| s.start_ticks))
}

/// One process, named so that a reused pid cannot pass for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub start_ticks: u64,
}

/// What `/proc` says about a recorded process now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Same pid, same start ticks, still running.
    Alive,
    /// Same process, but it has exited and waits to be reaped.
    Zombie,
    /// No process with that pid.
    Gone,
    /// The pid now belongs to another process (started at `current_ticks`).
    Reused { current_ticks: u64 },
}

impl ProcId {
    pub fn of(stat: &ProcStat) -> ProcId {
        ProcId {
            pid: stat.pid,
            start_ticks: stat.start_ticks,
        }
    }

    /// Compares the recorded identity with what `/proc` shows now. A read error
    /// other than "no such process" counts as gone: there is nothing safe to do
    /// with a process one cannot inspect.
    ///
    /// A record naming pid 0 or 1 is damaged (no agent, monitor or sandbox
    /// init ever holds either as seen from here) and counts as gone: with
    /// init's real start ticks it would pass the check, and its "group" is
    /// `kill(-1)`, every process on the machine.
    pub fn identity(&self) -> Identity {
        if self.pid <= 1 {
            return Identity::Gone;
        }
        match read_stat(self.pid) {
            Ok(Some(s)) if s.start_ticks != self.start_ticks => Identity::Reused {
                current_ticks: s.start_ticks,
            },
            Ok(Some(s)) if s.is_finished() => Identity::Zombie,
            Ok(Some(_)) => Identity::Alive,
            Ok(None) | Err(_) => Identity::Gone,
        }
    }

    pub fn is_alive(&self) -> bool {
        self.identity() == Identity::Alive
    }
}

/// A snapshot of every process on the machine, keyed by pid.
#[derive(Debug, Default)]
pub struct ProcTable {
    pub procs: HashMap<i32, ProcStat>,
}

impl ProcTable {
    /// Reads `/proc`. Processes that exit during the scan are skipped.
    pub fn scan() -> io::Result<ProcTable> {
        let mut procs = HashMap::new();
        for entry in std::fs::read_dir("/proc")? {
            let entry = entry?;
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            // A process that vanished or cannot be parsed is not ours to act on.
            if let Ok(Some(stat)) = read_stat(pid) {
                procs.insert(pid, stat);
            }
        }
        Ok(ProcTable { procs })
    }

    /// Every living descendant of `root` (not `root` itself), following ppid links.
    /// Zombies are left out: they have exited and no signal reaches them.
    pub fn descendants(&self, root: i32) -> Vec<ProcId> {
        let mut children: HashMap<i32, Vec<&ProcStat>> = HashMap::new();
        for p in self.procs.values() {
            children.entry(p.ppid).or_default().push(p);
        }
        let mut out = Vec::new();
        let mut seen = HashSet::from([root]);
        let mut stack = vec![root];
        while let Some(pid) = stack.pop() {
            for child in children.get(&pid).into_iter().flatten() {
                // Guard against a cycle should the table be inconsistent (a pid
                // reused during the scan).
                if !seen.insert(child.pid) {
                    continue;
                }
                stack.push(child.pid);
                if !child.is_finished() {
                    out.push(ProcId::of(child));
                }
            }
        }
        out
    }

    /// Every living member of session `sid`.
    pub fn session_members(&self, sid: i32) -> Vec<ProcId> {
        self.procs
            .values()
            .filter(|p| p.sid == sid && !p.is_finished())
            .map(ProcId::of)
            .collect()
    }

    pub fn get(&self, pid: i32) -> Option<&ProcStat> {
        self.procs.get(&pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A damaged record naming init (with init's real start ticks, so the
    /// identity check alone passes) or pid 0 is never alive, hence never
    /// signalled: init's "group" is `kill(-1)`, every process here.
    #[test]
    fn a_record_of_pid_0_or_1_is_never_alive_so_never_signalled() {
        use crate::process::signal::{SignalOutcome, signal_group, signal_process};
        use nix::sys::signal::Signal;
        let init = ProcId::of(&read_stat(1).unwrap().expect("pid 1 is there"));
        assert_eq!(init.identity(), Identity::Gone);
        // SIGCONT harms nobody: before, this one reached every process.
        assert_ne!(signal_group(&init, Signal::SIGCONT), SignalOutcome::Sent);
        assert_ne!(signal_process(&init, Signal::SIGCONT), SignalOutcome::Sent);
        let zero = ProcId {
            pid: 0,
            start_ticks: 0,
        };
        assert_eq!(zero.identity(), Identity::Gone);
        assert_ne!(signal_group(&zero, Signal::SIGCONT), SignalOutcome::Sent);
    }

    const LINE: &str = "8143 (cat) R 8140 8140 6805 0 -1 4194304 99 0 0 0 7 3 0 0 20 0 1 0 43962 3133440 393 18446744073709551615 1 2 3";

    #[test]
    fn parses_plain_stat_line() {
        let s = parse_stat(LINE).expect("parses");
        assert_eq!(s.pid, 8143);
        assert_eq!(s.comm, "cat");
        assert_eq!(s.state, 'R');
        assert_eq!((s.ppid, s.pgid, s.sid), (8140, 8140, 6805));
        assert_eq!((s.utime, s.stime), (7, 3));
        assert_eq!(s.start_ticks, 43962);
        assert_eq!(s.rss_pages, 393);
    }

    #[test]
    fn comm_with_spaces_and_parens_does_not_shift_fields() {
        let line = LINE.replace("(cat)", "(a) b (c) R 1 2 3)");
        let s = parse_stat(&line).expect("parses");
        assert_eq!(s.comm, "a) b (c) R 1 2 3");
        assert_eq!(s.ppid, 8140);
        assert_eq!(s.start_ticks, 43962);
    }

    #[test]
    fn truncated_line_is_rejected() {
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat(") 12 ("), None);
    }

    #[test]
    fn own_process_is_alive_and_other_ticks_are_reuse() {
        let me = std::process::id() as i32;
        let ticks = start_ticks(me).expect("read").expect("exists");
        let id = ProcId {
            pid: me,
            start_ticks: ticks,
        };
        assert_eq!(id.identity(), Identity::Alive);
        let stale = ProcId {
            pid: me,
            start_ticks: ticks + 1,
        };
        assert_eq!(
            stale.identity(),
            Identity::Reused {
                current_ticks: ticks
            }
        );
    }

    #[test]
    fn table_finds_own_process() {
        let t = ProcTable::scan().expect("scan");
        assert!(t.get(std::process::id() as i32).is_some());
    }
}
