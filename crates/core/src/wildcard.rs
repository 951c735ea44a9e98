//! The one wildcard syntax orch reads in names: `*` (any run of
//! characters, none too) and `?` (one character); everything else is
//! literal. Build-output globs use it within one path segment, required CI
//! checks on a whole check name (Gitea's branch protection writes its
//! required status contexts this way).

/// Whether `name` matches `glob` whole.
pub fn matches(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni) = (0, 0);
    // The last `*` seen and where in `name` it started matching.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ni));
            gi += 1;
        } else if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        assert!(matches("ci / *", "ci / test (pull_request)"));
        assert!(matches("*", ""));
        assert!(matches("t?st", "test"));
        assert!(!matches("t?st", "toast"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        // A star in the name is matched by the glob's star like any other.
        assert!(matches("a*", "a*b"));
        assert!(matches("*b", "*b"));
    }
}
