//! How much disk a worktree takes: a `du`-like walk with a cap.
//!
//! The worktree is written by an agent, so the walk trusts nothing in it:
//! it never follows a symbolic link (a link counts as the link itself), never
//! crosses into another file system (a bind mount is not the task's disk),
//! counts a hard-linked file once, and stops at its cap in bytes or entries,
//! answering a lower bound ("≥ N MB") instead of walking on: a tree of
//! millions of files must not hold a worker for minutes.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use orch_core::disk::WorktreeSize;

use crate::error::{GitError, Result};

/// The most entries one walk looks at. A worktree with more has its size
/// reported as a lower bound; a million entries is a few seconds of `lstat`.
pub const MAX_ENTRIES: u64 = 1_000_000;

/// The size on disk (allocated blocks, as `du` counts) of everything under
/// `root`, the root included. With `cap_bytes`, the walk stops once it has
/// counted more than that many bytes. Entries that vanish or cannot be read
/// during the walk are skipped: an agent's tree changes under a walk.
/// Blocking: call it from `spawn_blocking`.
pub fn measure(root: &Path, cap_bytes: Option<u64>) -> Result<WorktreeSize> {
    measure_with(root, cap_bytes, MAX_ENTRIES)
}

pub(crate) fn measure_with(
    root: &Path,
    cap_bytes: Option<u64>,
    max_entries: u64,
) -> Result<WorktreeSize> {
    let top = std::fs::symlink_metadata(root).map_err(|e| GitError::io("measure", root, e))?;
    let device = top.dev();
    let mut seen_links: HashSet<(u64, u64)> = HashSet::new();
    let mut bytes = on_disk(&top);
    let mut entries = 1u64;
    let mut stack: Vec<PathBuf> = Vec::new();
    if top.is_dir() {
        stack.push(root.to_owned());
    }
    let over = |bytes: u64, entries: u64| {
        cap_bytes.is_some_and(|cap| bytes > cap) || entries >= max_entries
    };
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            // `DirEntry::metadata` does not follow symbolic links.
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            entries += 1;
            if meta.nlink() > 1 && !meta.is_dir() && !seen_links.insert((meta.dev(), meta.ino())) {
                continue;
            }
            bytes = bytes.saturating_add(on_disk(&meta));
            if meta.is_dir() && meta.dev() == device {
                stack.push(entry.path());
            }
            if over(bytes, entries) {
                return Ok(WorktreeSize {
                    bytes,
                    complete: false,
                });
            }
        }
    }
    Ok(WorktreeSize {
        bytes,
        complete: true,
    })
}

/// Allocated bytes: a sparse file counts what it occupies, not its length.
fn on_disk(meta: &std::fs::Metadata) -> u64 {
    meta.blocks().saturating_mul(512)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, len: usize) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Not zeros: some file systems store zero blocks sparsely.
        std::fs::write(path, vec![7u8; len]).unwrap();
    }

    #[test]
    fn counts_files_once_and_never_follows_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        write(&outside.join("big"), 4 << 20);
        let root = tmp.path().join("wt");
        write(&root.join("a/file"), 1 << 20);
        std::os::unix::fs::symlink(&outside, root.join("a/link")).unwrap();
        std::fs::hard_link(root.join("a/file"), root.join("hard")).unwrap();
        let s = measure(&root, None).unwrap();
        assert!(s.complete);
        assert!(s.bytes >= 1 << 20, "{s:?}");
        assert!(
            s.bytes < 2 << 20,
            "the link's target or the hard link counted: {s:?}"
        );
    }

    #[test]
    fn stops_at_the_cap_with_a_lower_bound() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..8 {
            write(&tmp.path().join(format!("f{i}")), 1 << 20);
        }
        let s = measure(tmp.path(), Some(2 << 20)).unwrap();
        assert!(!s.complete, "{s:?}");
        assert!(s.bytes > 2 << 20 && s.bytes < 8 << 20, "{s:?}");
        assert!(s.to_string().starts_with("≥ "));
        let by_entries = measure_with(tmp.path(), None, 3).unwrap();
        assert!(!by_entries.complete);
        assert!(measure(tmp.path(), None).unwrap().complete);
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(measure(&tmp.path().join("nope"), None).is_err());
    }
}
