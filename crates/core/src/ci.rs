//! What the forge's CI says about a task's head, and what the merge gate
//! makes of it (issue 16, SPEC ): a required check that failed sends
//! the work back to the developer with the failure, one still pending holds
//! the merge, and all of them passed lets the merge go on.
//!
//! The checks are read from the forge (commit statuses, check runs) when the
//! gate decides, not remembered from webhooks: a webhook only makes the gate
//! look again sooner, so a lost delivery delays nothing for longer than the
//! engine's periodic tick.

use serde::{Deserialize, Serialize};

/// Where a check stands, mapped from the forge's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Queued or running, or a status still `pending`.
    Pending,
    Success,
    /// Anything that is not a pass: failure, error, cancelled, timed out, …
    Failure,
}

/// One check of a commit as the forge reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// The status context or check-run name (`ci / test (pull_request)`).
    pub name: String,
    pub state: CheckState,
    /// The forge's own word for the result (`failure`, `timed_out`, …).
    pub conclusion: String,
    /// The forge's description or summary, and the tail of its log where the
    /// forge offers one; may be empty.
    pub detail: String,
    /// Where a person reads the whole result.
    pub url: Option<String>,
}

/// The required checks of one head, decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiVerdict {
    /// Every required check passed.
    Passed,
    /// Some required checks have not reported a result yet (named), or the
    /// forge could not be asked (said why): the merge waits.
    Pending { waiting: Vec<String> },
    /// Required checks failed: back to development with these.
    Failed(Vec<Check>),
}

/// The verdict on `required` checks from what the forge reported for the
/// head. A required entry is a check name or a wildcard pattern of names
/// ([`crate::wildcard`]: Gitea's branch protection lists its required
/// status contexts so); every reported check it matches must pass, and one
/// it matches none of has not reported yet. A forge may report one name
/// several times (a re-run): the newest report wins, and the caller lists
/// newest first. A failure decides even while other checks still run: the
/// developer can start on it at once.
pub fn verdict(required: &[String], reported: &[Check]) -> CiVerdict {
    let mut newest: Vec<&Check> = Vec::new();
    for c in reported {
        if !newest.iter().any(|n| n.name == c.name) {
            newest.push(c);
        }
    }
    let mut failed: Vec<Check> = Vec::new();
    let mut waiting = Vec::new();
    for pattern in required {
        let matched: Vec<&&Check> = newest
            .iter()
            .filter(|c| c.name == *pattern || crate::wildcard::matches(pattern, &c.name))
            .collect();
        if matched.is_empty() {
            waiting.push(format!("{pattern} (not reported yet)"));
        }
        for c in matched {
            match c.state {
                CheckState::Failure => {
                    if !failed.iter().any(|f| f.name == c.name) {
                        failed.push((*c).clone());
                    }
                }
                CheckState::Success => {}
                CheckState::Pending => {
                    let w = format!("{} (running)", c.name);
                    if !waiting.contains(&w) {
                        waiting.push(w);
                    }
                }
            }
        }
    }
    if !failed.is_empty() {
        CiVerdict::Failed(failed)
    } else if !waiting.is_empty() {
        CiVerdict::Pending { waiting }
    } else {
        CiVerdict::Passed
    }
}

/// The required checks of a head: those the repo's config names, and those
/// the forge's protection of the base branch requires, each once.
pub fn required(configured: &[String], protected: &[String]) -> Vec<String> {
    let mut all: Vec<String> = configured.to_vec();
    for p in protected {
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    all
}

/// The most of one check's detail that reaches the developer's prompt: the
/// end of a log says what failed; the whole log is behind its link.
pub const CHECK_DETAIL_MAX: usize = 8 * 1024;

/// A failed check as the developer reads it: name, conclusion, link, and
/// the tail of its detail.
pub fn failure_text(c: &Check) -> String {
    let mut text = format!("CI check `{}` concluded `{}`", c.name, c.conclusion);
    if let Some(url) = &c.url {
        text.push_str(&format!(" (details: {url})"));
    }
    let detail = c.detail.trim();
    if !detail.is_empty() {
        text.push_str(":\n");
        text.push_str(tail(detail, CHECK_DETAIL_MAX));
    }
    text
}

/// The last `max` bytes of `s`, cut on a character boundary (the end of a
/// log says what failed).
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, state: CheckState) -> Check {
        Check {
            name: name.into(),
            state,
            conclusion: format!("{state:?}").to_lowercase(),
            detail: String::new(),
            url: None,
        }
    }

    #[test]
    fn all_required_passed_is_a_pass_and_others_do_not_matter() {
        let req = vec!["test".to_owned()];
        let got = verdict(
            &req,
            &[
                check("test", CheckState::Success),
                check("lint", CheckState::Failure),
            ],
        );
        assert_eq!(got, CiVerdict::Passed);
        assert_eq!(verdict(&[], &[]), CiVerdict::Passed);
    }

    #[test]
    fn a_missing_or_running_check_waits_and_a_failure_decides_at_once() {
        let req = vec!["test".to_owned(), "build".to_owned()];
        let got = verdict(&req, &[check("test", CheckState::Pending)]);
        assert_eq!(
            got,
            CiVerdict::Pending {
                waiting: vec!["test (running)".into(), "build (not reported yet)".into()]
            }
        );
        let got = verdict(&req, &[check("build", CheckState::Failure)]);
        assert!(matches!(got, CiVerdict::Failed(ref f) if f.len() == 1 && f[0].name == "build"));
    }

    #[test]
    fn the_newest_report_of_a_name_wins() {
        let req = vec!["test".to_owned()];
        let got = verdict(
            &req,
            &[
                check("test", CheckState::Success),
                check("test", CheckState::Failure),
            ],
        );
        assert_eq!(got, CiVerdict::Passed);
    }

    #[test]
    fn a_pattern_requires_every_check_it_matches_and_at_least_one() {
        let req = vec!["ci / *".to_owned()];
        assert_eq!(
            verdict(&req, &[check("lint", CheckState::Success)]),
            CiVerdict::Pending {
                waiting: vec!["ci / * (not reported yet)".into()]
            }
        );
        let got = verdict(
            &req,
            &[
                check("ci / build", CheckState::Success),
                check("ci / test", CheckState::Pending),
            ],
        );
        assert_eq!(
            got,
            CiVerdict::Pending {
                waiting: vec!["ci / test (running)".into()]
            }
        );
        let got = verdict(
            &req,
            &[
                check("ci / build", CheckState::Success),
                check("ci / test", CheckState::Failure),
                check("ci / test", CheckState::Success),
            ],
        );
        assert!(
            matches!(got, CiVerdict::Failed(ref f) if f.len() == 1 && f[0].name == "ci / test")
        );
        let both = vec!["ci / *".to_owned(), "ci / test".to_owned()];
        let got = verdict(&both, &[check("ci / test", CheckState::Failure)]);
        assert!(
            matches!(got, CiVerdict::Failed(ref f) if f.len() == 1),
            "a check two entries require fails once: {got:?}"
        );
        assert_eq!(
            verdict(&req, &[check("ci / build", CheckState::Success)]),
            CiVerdict::Passed
        );
    }

    #[test]
    fn the_config_and_the_forges_protection_are_both_required() {
        let got = required(
            &["ci / test".into(), "lint".into()],
            &["lint".into(), "ci / *".into()],
        );
        assert_eq!(got, ["ci / test", "lint", "ci / *"]);
    }

    #[test]
    fn a_failure_text_names_the_check_and_keeps_the_end_of_a_long_log() {
        let mut c = check("ci / test", CheckState::Failure);
        c.url = Some("http://ci/run/1".into());
        c.detail = format!("{}\nassertion failed: login works", "x".repeat(20_000));
        let text = failure_text(&c);
        assert!(
            text.starts_with(
                "CI check `ci / test` concluded `failure` (details: http://ci/run/1):\n"
            )
        );
        assert!(text.ends_with("assertion failed: login works"));
        assert!(text.len() < CHECK_DETAIL_MAX + 200);
    }
}
