//! Disk care's decisions (issue 12): how a worktree's size reads, when it is
//! over `limits.worktree_mb`, and which ignored paths count as build outputs
//! (`cleanup.build_output_globs`). The walk that measures and the removal
//! that frees live in `orch-git`; whether a path is ignored is git's answer.

use serde::{Deserialize, Serialize};

/// Bytes in a mebibyte: `worktree_mb` and every figure shown are MiB, as
/// `du -m` counts them.
pub const MIB: u64 = 1024 * 1024;

/// What a capped walk of a worktree found: the bytes its files take on disk,
/// and whether the walk saw everything. A walk stopped at its cap knows only
/// a lower bound, and says so ("≥ N MB").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorktreeSize {
    pub bytes: u64,
    /// `false`: the walk stopped at its cap; the true size is at least `bytes`.
    pub complete: bool,
}

impl WorktreeSize {
    /// The size in whole MiB, rounded up (a few bytes read "1 MB", not "0 MB").
    pub fn mb(self) -> u64 {
        self.bytes.div_ceil(MIB)
    }

    /// `Some(why)` when the worktree holds more than `limit_mb`: the park's
    /// reason, in plain words with the figure and the key to change.
    pub fn over_limit(self, limit_mb: Option<u64>) -> Option<String> {
        let limit = limit_mb?;
        if self.bytes <= limit.saturating_mul(MIB) {
            return None;
        }
        Some(format!(
            "its worktree takes {self} on disk, over limits.worktree_mb = {limit} MB; free space in it \
             (`orch gc --apply` removes ignored build outputs of idle worktrees) or raise the limit, then resume"
        ))
    }
}

impl std::fmt::Display for WorktreeSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.complete {
            f.write_str("≥ ")?;
        }
        write!(f, "{} MB", self.mb())
    }
}

/// A glob of `cleanup.build_output_globs` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("build output glob {glob:?} {why}")]
pub struct GlobError {
    pub glob: String,
    pub why: &'static str,
}

/// One build-output glob. Its syntax is a small part of gitignore's:
/// - `name/` matches a directory called `name` at any depth; `name` (no
///   slash) matches a file or directory of that name at any depth;
/// - `a/b/` (a slash inside) is anchored at the worktree's root;
/// - `*` matches any run of characters within one path segment, `?` one.
///
/// Nothing else (`**`, classes, `..`, absolute paths, `.git`): a glob decides
/// what orch deletes, so it must be obvious what it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputGlob {
    segments: Vec<String>,
    dir_only: bool,
    anchored: bool,
}

impl OutputGlob {
    pub fn parse(glob: &str) -> Result<OutputGlob, GlobError> {
        let err = |why| GlobError {
            glob: glob.to_owned(),
            why,
        };
        if glob.starts_with('/') {
            return Err(err("is absolute; write it relative to the worktree"));
        }
        let dir_only = glob.ends_with('/');
        let body = glob.strip_suffix('/').unwrap_or(glob);
        if body.is_empty() {
            return Err(err("is empty"));
        }
        if body.contains("**") || body.contains(['[', ']', '\\', '!']) {
            return Err(err(
                "uses syntax orch does not support here (only `*` and `?`)",
            ));
        }
        let segments: Vec<String> = body.split('/').map(str::to_owned).collect();
        for s in &segments {
            if s.is_empty() || s == "." || s == ".." {
                return Err(err("has an empty, `.` or `..` segment"));
            }
            if crate::wildcard::matches(s, ".git") {
                return Err(err("could match .git, which orch never removes"));
            }
            if s.chars().all(|c| c == '*') {
                return Err(err(
                    "matches every name; name the build output (e.g. \"target/\")",
                ));
            }
        }
        Ok(OutputGlob {
            anchored: segments.len() > 1,
            segments,
            dir_only,
        })
    }

    /// Whether a path as git lists it (relative, `/`-separated, a directory
    /// ending in `/`) is, or lies inside, what this glob names.
    pub fn matches(&self, path: &str) -> bool {
        let is_dir = path.ends_with('/');
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let n = self.segments.len();
        // The segment at `end` (exclusive) is the matched entry; an ancestor
        // is a directory, the last segment is one only if git said so.
        let entry_ok = |end: usize| !self.dir_only || end < parts.len() || is_dir;
        if self.anchored {
            return parts.len() >= n
                && self
                    .segments
                    .iter()
                    .zip(&parts)
                    .all(|(g, p)| crate::wildcard::matches(g, p))
                && entry_ok(n);
        }
        parts
            .iter()
            .enumerate()
            .any(|(i, p)| crate::wildcard::matches(&self.segments[0], p) && entry_ok(i + 1))
    }
}

impl std::fmt::Display for OutputGlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segments.join("/"))?;
        if self.dir_only {
            f.write_str("/")?;
        }
        Ok(())
    }
}

/// Whether any of `globs` matches `path` (see [`OutputGlob::matches`]).
pub fn is_build_output(globs: &[OutputGlob], path: &str) -> bool {
    globs.iter().any(|g| g.matches(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> OutputGlob {
        OutputGlob::parse(s).unwrap()
    }

    #[test]
    fn sizes_read_in_whole_mb_and_say_when_capped() {
        let s = WorktreeSize {
            bytes: 5 * MIB + 1,
            complete: true,
        };
        assert_eq!(s.to_string(), "6 MB");
        let capped = WorktreeSize {
            bytes: 100 * MIB,
            complete: false,
        };
        assert_eq!(capped.to_string(), "≥ 100 MB");
        assert_eq!(s.over_limit(None), None);
        assert_eq!(s.over_limit(Some(6)), None);
        let why = s.over_limit(Some(5)).unwrap();
        assert!(
            why.contains("6 MB") && why.contains("limits.worktree_mb = 5 MB"),
            "{why}"
        );
    }

    #[test]
    fn directory_globs_match_at_any_depth_and_inside() {
        let t = g("target/");
        assert!(t.matches("target/"));
        assert!(t.matches("crates/a/target/"));
        assert!(t.matches("target/debug/"));
        assert!(t.matches("target/debug/x.o"));
        // A file called target is not a directory.
        assert!(!t.matches("target"));
        assert!(!t.matches("targets/"));
        assert!(!t.matches("src/"));
        let any = g("*.pyc");
        assert!(any.matches("a/b.pyc") && any.matches("b.pyc"));
        assert!(!any.matches("b.py"));
    }

    #[test]
    fn globs_with_a_slash_are_anchored() {
        let b = g("web/dist/");
        assert!(b.matches("web/dist/"));
        assert!(b.matches("web/dist/app.js"));
        assert!(!b.matches("other/web/dist/"));
        assert!(!b.matches("web/"));
    }

    #[test]
    fn wildcards() {
        assert!(crate::wildcard::matches(
            "cmake-build-*",
            "cmake-build-debug"
        ));
        assert!(crate::wildcard::matches("?ist", "dist"));
        assert!(crate::wildcard::matches("a*b*c", "axxbyyc"));
        assert!(!crate::wildcard::matches("a*b*c", "axxbyy"));
        assert!(crate::wildcard::matches("*", ""));
    }

    #[test]
    fn refuses_globs_that_are_not_obvious() {
        for bad in [
            "",
            "/",
            "/target/",
            "../x/",
            "a//b",
            "**/target",
            "*",
            "*/",
            ".git/",
            ".gi?",
            "[ab]",
            "!keep",
        ] {
            assert!(OutputGlob::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(g("node_modules/").to_string(), "node_modules/");
    }
}
