//! `[limits]` (disk care of the task worktrees, and each run's memory, CPU
//! and process limits) and `[cleanup]` (issue 12).

use orch_core::disk::OutputGlob;
use serde::{Deserialize, Serialize};

/// `[limits]`: per-task resource limits that are not the budget's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskLimitsConfig {
    /// A task whose worktree takes more than this many MB (MiB) after a run
    /// parks for a person. Absent (the default): no limit. orch cannot know
    /// what a repo's normal size is (a Rust build's `target/` reaches tens
    /// of GB), and a wrong guess would park healthy work; sizes are measured
    /// and shown either way.
    pub worktree_mb: Option<u64>,
    /// Memory (and swap) of one run's whole process tree, in MiB; at the
    /// limit the kernel kills in the run and the attempt fails saying so.
    pub memory_mb: Option<u64>,
    /// CPU time of one run in percent of one CPU (200 = two CPUs).
    pub cpu_percent: Option<u32>,
    /// Processes and threads of one run at once (a fork bomb stops here).
    pub pids: Option<u32>,
}

/// `[cleanup]`: removing ignored build outputs of idle worktrees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CleanupConfig {
    /// A worktree whose task has had no run for this long (and has none
    /// queued or running) loses its ignored build outputs. 0: never
    /// automatically (`orch gc --apply` still does it).
    pub cleanup_after_hours: u64,
    /// What counts as a build output (`orch_core::disk::OutputGlob`). Only a
    /// path git itself ignores AND one of these matches is removed; tracked
    /// files and untracked files git does not ignore never are.
    pub build_output_globs: Vec<String>,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            cleanup_after_hours: 24,
            build_output_globs: [
                "target/",
                "node_modules/",
                "__pycache__/",
                ".pytest_cache/",
                ".mypy_cache/",
                ".gradle/",
                ".next/",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }
    }
}

impl CleanupConfig {
    /// The parsed globs; a glob that does not parse is left out (validation
    /// refuses such a file before orch uses it).
    pub fn output_globs(&self) -> Vec<OutputGlob> {
        self.build_output_globs
            .iter()
            .filter_map(|g| OutputGlob::parse(g).ok())
            .collect()
    }

    /// How long a worktree must be idle before its build outputs go; `None`:
    /// never automatically.
    pub fn idle_after(&self) -> Option<std::time::Duration> {
        (self.cleanup_after_hours > 0)
            .then(|| std::time::Duration::from_secs(self.cleanup_after_hours.saturating_mul(3600)))
    }
}

/// The problems of both sections, as (key, what) pairs for `validate`.
pub(crate) fn check_disk_sections(
    limits: &DiskLimitsConfig,
    cleanup: &CleanupConfig,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (key, zero) in [
        ("worktree_mb", limits.worktree_mb == Some(0)),
        ("memory_mb", limits.memory_mb == Some(0)),
        ("cpu_percent", limits.cpu_percent == Some(0)),
        ("pids", limits.pids == Some(0)),
    ] {
        if zero {
            out.push((
                format!("limits.{key}"),
                "must be greater than 0; remove the key for no limit".to_owned(),
            ));
        }
    }
    // An hour count that overflows a timestamp is surely a typo.
    if cleanup.cleanup_after_hours > 24 * 365 * 100 {
        out.push((
            "cleanup.cleanup_after_hours".to_owned(),
            format!(
                "{} hours is over a century; use 0 to never clean automatically",
                cleanup.cleanup_after_hours
            ),
        ));
    }
    for (i, g) in cleanup.build_output_globs.iter().enumerate() {
        if let Err(e) = OutputGlob::parse(g) {
            out.push((format!("cleanup.build_output_globs[{i}]"), e.to_string()));
        }
    }
    out
}
