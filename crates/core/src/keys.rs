//! Validation and derivation of the human-facing keys: repo names, work item ids,
//! branch names, and the tombstones a cancel writes over a task's tracker keys.
//!
//! Keys end up in paths, git ref names and SQL/JSON lookups, so they are checked
//! strictly at the edge instead of escaped everywhere.

use crate::ids::TaskId;

/// Why a key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {why}")]
pub struct KeyError {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

fn check_simple(what: &'static str, value: &str, max: usize) -> Result<(), KeyError> {
    let err = |why| {
        Err(KeyError {
            what,
            value: value.to_owned(),
            why,
        })
    };
    if value.is_empty() {
        return err("must not be empty");
    }
    if value.len() > max {
        return err("is too long");
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return err("must start with a letter or digit");
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return err("may contain only letters, digits, '-', '_' and '.'");
    }
    if value.contains("..") || value.ends_with('.') || value.ends_with(".lock") {
        return err("must not contain '..' or end with '.' or '.lock'");
    }
    Ok(())
}

/// A repository name as configured: it names a folder and is part of SQL/JSON lookups.
pub fn validate_repo_name(name: &str) -> Result<(), KeyError> {
    check_simple("repo name", name, 64)
}

/// A work item key such as `ORCH-090`: it becomes part of a branch name and a docs path.
pub fn validate_work_item_id(id: &str) -> Result<(), KeyError> {
    check_simple("work item id", id, 64)
}

/// Lowercase ASCII slug of a title for branch names: `Fix the login!` → `fix-the-login`.
pub fn slug(title: &str, max_len: usize) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
            if out.len() >= max_len {
                break;
            }
        } else {
            dash = true;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "task".to_owned()
    } else {
        out
    }
}

/// `feature/<work_item_id>-<slug>`, the branch every stage of a task works on.
pub fn branch_name(work_item_id: &str, title: &str) -> String {
    format!("feature/{}-{}", work_item_id, slug(title, 40))
}

/// The suffix a cancel writes (TC-13).
const CANCELLED: &str = "#cancelled-";
/// The suffix written when a done or failed task's item starts afresh.
const RETIRED: &str = "#retired-";

/// The key a cancelled task keeps: unique again, yet the original stays readable.
pub fn tombstone(key: &str, task: TaskId) -> String {
    suffixed(key, CANCELLED, task)
}

/// The key a done or failed task keeps once its item started afresh as a new
/// task (To Analyse again): released like a cancel's, and marked as such.
pub fn retire(key: &str, task: TaskId) -> String {
    suffixed(key, RETIRED, task)
}

fn suffixed(key: &str, suffix: &str, task: TaskId) -> String {
    if is_tombstoned(key) {
        key.to_owned()
    } else {
        format!("{key}{suffix}{task}")
    }
}

/// Whether the key was released (by a cancel or a fresh start of its item).
pub fn is_tombstoned(key: &str) -> bool {
    key.contains(CANCELLED) || key.contains(RETIRED)
}

/// The key before any tombstone suffix.
pub fn original_key(key: &str) -> &str {
    [CANCELLED, RETIRED]
        .iter()
        .filter_map(|t| key.find(t))
        .min()
        .map_or(key, |at| &key[..at])
}

/// The start of a work item key minted for `repo` (`<PREFIX>-<n>`): the
/// repo's name upper-cased, anything but ASCII letters and digits as `-`
/// (repo names may hold `_` and `.`, keys may not).
pub fn repo_key_prefix(repo: &str) -> String {
    repo.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys() {
        assert!(validate_work_item_id("ORCH-090").is_ok());
        for bad in ["", "../x", "a/b", "-x", "a..b", "x.lock", "a b", "a#b"] {
            assert!(validate_work_item_id(bad).is_err(), "{bad}");
        }
        assert!(validate_repo_name("demo").is_ok());
    }

    #[test]
    fn branch() {
        assert_eq!(
            branch_name("ORCH-1", "Fix the login!"),
            "feature/ORCH-1-fix-the-login"
        );
        assert_eq!(branch_name("X-2", "!!!"), "feature/X-2-task");
    }

    #[test]
    fn tombstones_round_trip() {
        let t = tombstone("PL-110", TaskId(7));
        assert_eq!(t, "PL-110#cancelled-7");
        assert_eq!(original_key(&t), "PL-110");
        assert_eq!(
            tombstone(&t, TaskId(9)),
            t,
            "tombstoning twice keeps the first"
        );
    }

    #[test]
    fn retired_keys_round_trip() {
        let r = retire("PL-110", TaskId(7));
        assert_eq!(r, "PL-110#retired-7");
        assert!(is_tombstoned(&r));
        assert_eq!(original_key(&r), "PL-110");
        assert_eq!(retire(&r, TaskId(9)), r);
        assert_eq!(tombstone(&r, TaskId(9)), r, "a released key stays as it is");
        assert!(!is_tombstoned("PL-110"));
        assert_eq!(original_key("PL-110"), "PL-110");
    }

    proptest! {
        #[test]
        fn slug_is_ref_safe(title in ".{0,80}") {
            let s = slug(&title, 40);
            prop_assert!(!s.is_empty() && s.len() <= 40);
            prop_assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            prop_assert!(!s.starts_with('-') && !s.ends_with('-'));
        }
    }
}
