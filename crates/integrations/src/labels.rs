//! Gate and stage states carried as issue labels, shared by the issue
//! trackers whose states are labels (GitHub Issues, Gitea/Forgejo issues):
//! which label is the state, the `<repo>-<number>` item ids, and how orch's
//! comments are told from a person's.

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

/// The marker that ends an orch comment (with its dedupe key, if any).
pub fn comment_marker(dedupe_key: Option<&str>) -> String {
    match dedupe_key {
        Some(k) => format!("{ORCH_MARKER}:{k} -->"),
        None => format!("{ORCH_MARKER} -->"),
    }
}

/// An orch comment as posted: its body, then its marker.
pub fn marked_comment(body: &str, dedupe_key: Option<&str>) -> String {
    format!("{body}\n\n{}", comment_marker(dedupe_key))
}

/// The start of the whole second `since` falls in: these trackers keep
/// comment times in whole seconds, so a comment in the second orch asked
/// counts.
pub fn whole_second(since: orch_core::Timestamp) -> i64 {
    since.millis() - since.millis().rem_euclid(1000)
}

/// The newest person's comment (one without orch's marker) created at or
/// after `second`, from `(body, created_at)` pairs. The trackers' `since`
/// filters on the update time, so the creation time is checked here: an old
/// comment edited after orch asked is not a new reason.
pub fn newest_person_comment(
    comments: impl IntoIterator<Item = (String, Option<String>)>,
    second: i64,
) -> Option<String> {
    comments
        .into_iter()
        .filter(|(body, _)| !body.contains(ORCH_MARKER))
        .filter_map(|(body, created_at)| {
            let at = created_at
                .as_deref()
                .and_then(crate::timestamps::parse_millis)?;
            (at >= second).then_some((at, body))
        })
        .max_by_key(|(at, _)| *at)
        .map(|(_, body)| body)
}

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
