//! Freeing a worktree's build outputs (issue 12): what git ignores AND a
//! configured glob names (`cleanup.build_output_globs`), nothing else.
//!
//! The worktree was written by an agent, so nothing in it is trusted:
//! - which paths are ignored is git's own answer (`git ls-files --others
//!   --ignored --exclude-standard --directory`), asked through the control
//!   dir like every other call of orch's (`control.rs`): no hook, fsmonitor
//!   or config of the agent's runs. A tracked file is never listed, nor an
//!   untracked one git does not ignore; `--directory` lists a directory
//!   whole only when all it holds is ignored;
//! - a path whose parent is reached through a symbolic link is skipped, and
//!   a symbolic link that is itself a build output is unlinked, never
//!   followed (`remove_dir_all` does not follow links either);
//! - `.git` is never listed by git, and no glob may match it.
//!
//! Stop the task's runs first: a build writing into `target/` while it is
//! removed loses only outputs it rebuilds, but it may fail that build.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use orch_core::disk::{OutputGlob, WorktreeSize, is_build_output};
use serde::Serialize;

use crate::error::{GitError, Result};
use crate::mirror::RepoStore;
use crate::size::measure;

/// One removed build output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedOutput {
    /// As git listed it: relative to the worktree, a directory ending in `/`.
    pub path: String,
    pub size: WorktreeSize,
}

/// What [`RepoStore::clean_build_outputs`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutputCleanup {
    pub removed: Vec<RemovedOutput>,
    /// Ignored paths matching a glob that were left alone, with why (reached
    /// through a symbolic link, an odd name).
    pub skipped: Vec<(String, &'static str)>,
    pub freed_bytes: u64,
}

impl RepoStore {
    /// The ignored build outputs of the worktree of `branch`: what
    /// [`RepoStore::clean_build_outputs`] would remove. Reads only.
    pub async fn build_outputs(
        &self,
        repo: &str,
        branch: &str,
        globs: &[OutputGlob],
    ) -> Result<Vec<String>> {
        let path = self.worktree_path(repo, branch)?;
        if tokio::fs::symlink_metadata(&path).await.is_err() || globs.is_empty() {
            return Ok(Vec::new());
        }
        let mirror = self.existing_mirror(repo)?;
        let args: Vec<OsString> = [
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let at = self.at_worktree(&mirror, &path)?;
        let out = at.output(&args, &[]).await?;
        if !out.success() {
            return Err(at.failure(&args, &out));
        }
        let mut listed: Vec<String> = out
            .stdout
            .split('\0')
            .filter(|p| !p.is_empty() && is_build_output(globs, p))
            .map(str::to_owned)
            .collect();
        // A directory before what lies inside it, so the inside is skipped.
        listed.sort();
        let mut outputs: Vec<String> = Vec::new();
        for p in listed {
            if !outputs
                .iter()
                .any(|done| done.ends_with('/') && p.starts_with(done.as_str()))
            {
                outputs.push(p);
            }
        }
        Ok(outputs)
    }

    /// Remove the ignored build outputs of the worktree of `branch` (see the
    /// module's notes). No worktree: nothing to do.
    pub async fn clean_build_outputs(
        &self,
        repo: &str,
        branch: &str,
        globs: &[OutputGlob],
    ) -> Result<OutputCleanup> {
        let outputs = self.build_outputs(repo, branch, globs).await?;
        if outputs.is_empty() {
            return Ok(OutputCleanup::default());
        }
        let root = self.worktree_path(repo, branch)?;
        let cleanup = tokio::task::spawn_blocking(move || remove_all(&root, outputs))
            .await
            .map_err(|e| GitError::io("clean", PathBuf::new(), std::io::Error::other(e)))??;
        if !cleanup.removed.is_empty() {
            tracing::info!(
                repo,
                branch,
                removed = cleanup.removed.len(),
                freed_bytes = cleanup.freed_bytes,
                "removed ignored build outputs"
            );
        }
        Ok(cleanup)
    }
}

fn remove_all(root: &Path, outputs: Vec<String>) -> Result<OutputCleanup> {
    let mut report = OutputCleanup::default();
    for rel in outputs {
        let Some(target) = inside(root, &rel) else {
            report.skipped.push((rel, "is not a plain relative path"));
            continue;
        };
        if !parents_are_real_dirs(root, &target) {
            report
                .skipped
                .push((rel, "is reached through a symbolic link or is gone"));
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&target) else {
            continue;
        };
        let size = measure(&target, None)?;
        let removed = if meta.is_dir() {
            std::fs::remove_dir_all(&target)
        } else {
            // A file or a symbolic link: the link goes, never its target.
            std::fs::remove_file(&target)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(GitError::io("remove", &target, e)),
        }
        report.freed_bytes = report.freed_bytes.saturating_add(size.bytes);
        report.removed.push(RemovedOutput { path: rel, size });
    }
    Ok(report)
}

/// `root/rel` when `rel` is relative and made of plain names only.
fn inside(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel.trim_end_matches('/'));
    let plain = rel.components().count() > 0
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(n) if n != ".git"));
    plain.then(|| root.join(rel))
}

/// Every directory between `root` and `target` is a directory, not a link.
fn parents_are_real_dirs(root: &Path, target: &Path) -> bool {
    let mut dir = target.parent();
    while let Some(d) = dir {
        if d == root {
            return true;
        }
        match std::fs::symlink_metadata(d) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => return false,
        }
        dir = d.parent();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_inside() {
        let root = Path::new("/w");
        assert_eq!(inside(root, "target/"), Some(PathBuf::from("/w/target")));
        assert_eq!(inside(root, "a/b.o"), Some(PathBuf::from("/w/a/b.o")));
        for bad in ["", "/etc/", "../x", "a/../../x", ".git/", "a/.git"] {
            assert_eq!(inside(root, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_linked_parent_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("wt");
        std::fs::create_dir_all(root.join("real/target")).unwrap();
        std::os::unix::fs::symlink(root.join("real"), root.join("link")).unwrap();
        assert!(parents_are_real_dirs(&root, &root.join("real/target")));
        assert!(!parents_are_real_dirs(&root, &root.join("link/target")));
    }
}
