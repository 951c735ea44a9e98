//! Gate and stage states carried as issue labels, shared by the issue
//! trackers whose states are labels (GitHub Issues, Gitea/Forgejo issues):
//! which label is the state, and the `<repo>-<number>` item ids.

use orch_config::{TrackerStates, same_state};

/// Which of an issue's labels is its state. Several state labels (a person
/// added one without removing the old): a gate wins over a stage, and STOP
/// over everything, so a person's decision is never hidden by orch's label.
pub fn state_of(labels: &[String], s: &TrackerStates) -> Option<String> {
    let gates = [
        &s.stop,
        &s.to_analyse,
        &s.approved,
        &s.rejected,
        &s.confirm_deploy,
    ];
    // Labels name states by the one rule (`orch_config::same_state`): a
    // person's "stop" label is the STOP state.
    if let Some(g) = gates
        .iter()
        .find(|g| labels.iter().any(|l| same_state(l, g)))
    {
        return Some((*g).clone());
    }
    s.entries()
        .iter()
        .find(|(_, name)| labels.iter().any(|l| same_state(l, name)))
        .map(|(_, n)| n.to_string())
}

/// `demo-42` → (`demo`, 42).
pub fn parse_item(id: &str) -> Option<(&str, u64)> {
    let (repo, n) = id.rsplit_once('-')?;
    Some((repo, n.parse().ok()?))
}

/// The start of the hidden HTML comment every orch comment on an issue
/// tracker ends with (`<!-- orch -->`, or `<!-- orch:<dedupe key> -->`):
/// neither GitHub nor Gitea has an external id on comments, so the marker
/// tells orch's comments from a person's and carries the dedupe key.
pub const ORCH_MARKER: &str = "<!-- orch";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_labels_and_item_ids() {
        let s = TrackerStates::default();
        let l = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            state_of(&l(&["bug", "Awaiting Approval"]), &s).as_deref(),
            Some("Awaiting Approval")
        );
        assert_eq!(
            state_of(&l(&["Awaiting Approval", "Approved"]), &s).as_deref(),
            Some("Approved"),
            "a person's gate wins"
        );
        assert_eq!(
            state_of(&l(&["Approved", "STOP"]), &s).as_deref(),
            Some("STOP")
        );
        assert_eq!(state_of(&l(&["bug"]), &s), None);
        assert_eq!(parse_item("demo-42"), Some(("demo", 42)));
        assert_eq!(parse_item("my-repo-7"), Some(("my-repo", 7)));
        assert_eq!(parse_item("demo"), None);
        assert_eq!(parse_item("demo-x"), None);
    }
}
