//! Validation of everything that reaches git's argv as a ref or object id, and
//! the mapping of a branch name to a worktree folder name.
//!
//! The rules are those of `git check-ref-format --branch`, made stricter where
//! that costs nothing (printable ASCII only, a length limit, no `refs/` prefix, no
//! component ending in `.`), so every name accepted here is accepted by git — a
//! property test checks that against the real binary. Checking in Rust rather than
//! asking git keeps validation synchronous, total and free of process spawns, and
//! it also rules out option injection (`-x`) and path traversal (`..`).

use crate::error::RefError;

/// Longest branch name orch accepts; `feature/<id:64>-<slug:40>` fits easily.
pub const MAX_BRANCH_LEN: usize = 160;

/// Longest folder name we create: below the common 255-byte file name limit.
const MAX_FOLDER_LEN: usize = 240;

/// Check a branch name (the part after `refs/heads/`).
pub fn validate_branch_name(name: &str) -> Result<(), RefError> {
    let err = |why| {
        Err(RefError {
            what: "branch name",
            value: name.to_owned(),
            why,
        })
    };
    if name.is_empty() {
        return err("must not be empty");
    }
    if name.len() > MAX_BRANCH_LEN {
        return err("is too long (at most 160 characters)");
    }
    if let Some(c) = name.chars().find(|c| !c.is_ascii() || c.is_ascii_control()) {
        return if c.is_ascii_control() {
            err("must not contain control characters")
        } else {
            err("must contain printable ASCII only")
        };
    }
    if name
        .chars()
        .any(|c| matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return err("must not contain spaces or any of ~ ^ : ? * [ \\");
    }
    if name.starts_with('-') {
        return err("must not start with '-'");
    }
    if name.starts_with('/') || name.ends_with('/') {
        return err("must not start or end with '/'");
    }
    if name.contains("//") {
        return err("must not contain '//'");
    }
    if name.contains("..") {
        return err("must not contain '..'");
    }
    if name.contains("@{") {
        return err("must not contain '@{'");
    }
    if name == "@" || name == "HEAD" {
        return err("must not be '@' or 'HEAD'");
    }
    if name.starts_with("refs/") {
        return err("must be a short branch name, not start with 'refs/'");
    }
    for component in name.split('/') {
        if component.starts_with('.') {
            return err("no '/'-separated component may start with '.'");
        }
        if component.ends_with('.') {
            return err("no '/'-separated component may end with '.'");
        }
        if component.ends_with(".lock") {
            return err("no '/'-separated component may end with '.lock'");
        }
    }
    Ok(())
}

/// Check a full object id (SHA-1 or SHA-256 hex), e.g. an expected base commit.
pub fn validate_sha(sha: &str) -> Result<(), RefError> {
    if (sha.len() == 40 || sha.len() == 64) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(RefError {
            what: "commit id",
            value: sha.to_owned(),
            why: "must be a full 40- or 64-digit hex object id",
        })
    }
}

/// The folder name of a branch's worktree: `feature/X-1-fix` → `feature+X-1-fix`.
///
/// Flat (one folder per branch, no nesting) and injective: `/` becomes `+`, and
/// the only other characters that could collide, `+` and `%`, are percent-encoded,
/// as is anything outside `[A-Za-z0-9._-]`. The caller has validated the branch.
pub fn folder_name(branch: &str) -> Result<String, RefError> {
    let mut out = String::with_capacity(branch.len());
    for b in branch.bytes() {
        match b {
            b'/' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    if out.len() > MAX_FOLDER_LEN {
        return Err(RefError {
            what: "branch name",
            value: branch.to_owned(),
            why: "is too long to name a worktree folder",
        });
    }
    Ok(out)
}

/// `refs/heads/<branch>`.
pub(crate) fn local_ref(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

/// `refs/remotes/origin/<branch>`: the mirror's copy of the remote branch.
pub(crate) fn remote_ref(branch: &str) -> String {
    format!("refs/remotes/origin/{branch}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_branches() {
        for ok in [
            "main",
            "master",
            "feature/ORCH-1-fix-the-login",
            "restore/ORCH-1-3",
            "release/1.2",
            "a_b-c.d",
            "x@y",
            "100%",
        ] {
            assert_eq!(validate_branch_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_branches() {
        for bad in [
            "",
            "-x",
            "--upload-pack=evil",
            "/x",
            "x/",
            "a//b",
            "a..b",
            "../etc/passwd",
            "a/../b",
            ".hidden",
            "a/.b",
            "a.lock",
            "a.lock/b",
            "a.",
            "a./b",
            "a b",
            "a\tb",
            "a\nb",
            "a\u{7f}",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "a@{1}",
            "@",
            "HEAD",
            "refs/heads/x",
            "caf\u{e9}",
        ] {
            assert!(validate_branch_name(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(validate_branch_name(&"a".repeat(MAX_BRANCH_LEN + 1)).is_err());
    }

    #[test]
    fn sha_validation() {
        assert!(validate_sha(&"a".repeat(40)).is_ok());
        assert!(validate_sha(&"0".repeat(64)).is_ok());
        for bad in ["", "abc", "-", &"g".repeat(40), &"a".repeat(41)] {
            assert!(validate_sha(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn folder_names_are_flat_and_injective() {
        assert_eq!(
            folder_name("feature/X-1-fix").as_deref(),
            Ok("feature+X-1-fix")
        );
        assert_eq!(folder_name("a+b").as_deref(), Ok("a%2Bb"));
        assert_eq!(folder_name("a%b").as_deref(), Ok("a%25b"));
        assert_ne!(folder_name("a/b"), folder_name("a+b"));
        assert!(folder_name(&"+".repeat(100)).is_err());
    }

    fn git_accepts(name: &str) -> bool {
        std::process::Command::new("git")
            .args(["check-ref-format", "--branch", name])
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    #[test]
    fn git_agrees_with_the_fixed_examples() {
        assert!(git_accepts("feature/ORCH-1-fix"), "git must be on PATH");
        for bad in ["-x", "a..b", "a b", "a.lock", "a@{1}", "/x", "x/", "a//b"] {
            assert!(!git_accepts(bad), "{bad}");
        }
    }

    /// Names built from the characters the rules are about, so a good share of
    /// cases is accepted and the interesting boundaries are actually reached.
    fn ref_like() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9/._@{}~^:?*\\[\\\\ -]{1,16}",
            "[a-z]{1,6}(/[a-z.]{1,6}){0,3}",
            "[a-zA-Z0-9_-]{1,8}(/[a-zA-Z0-9_.-]{1,8}){0,3}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn validation_is_total_and_never_looser_than_git(name in ref_like()) {
            if validate_branch_name(&name).is_ok() {
                prop_assert!(git_accepts(&name), "accepted {name:?} but git refuses it");
                let folder = folder_name(&name);
                prop_assert!(folder.is_ok());
                let folder = folder.unwrap_or_default();
                prop_assert!(!folder.contains('/') && folder != "." && folder != "..");
            }
        }
    }
}
