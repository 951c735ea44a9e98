//! The merge gate's look at the forge (issue 16): people's change requests
//! and approvals on the pull request, and the repo's required CI checks,
//! decided before the lease is taken.

use super::{Effect, JobSpec, PipelinePolicy, TaskView, step};
use crate::ci::{CiVerdict, failure_text};
use crate::event::EventKind;
use crate::job::AgentKind;
use crate::people::HumanApproval;
use crate::stage::Stage;

/// A person asked for changes on the pull request's head: back to the
/// developer with the review's comments, counted as a review round; past
/// `max_review_rounds` the task parks for a person (they asked; they decide).
pub(super) fn people_changes(view: &TaskView, policy: &PipelinePolicy) -> Option<Vec<Effect>> {
    let review = view.people.as_ref()?.changes.as_ref()?;
    let round = view.review_rounds + 1;
    if round > policy.max_review_rounds {
        return Some(vec![Effect::Park(format!(
            "{} asked for changes on the pull request, and the changes were asked for {round} times (the limit is review.max_review_rounds = {})",
            review.author, policy.max_review_rounds
        ))]);
    }
    let mut spec = JobSpec::new(AgentKind::Developer);
    spec.reviewer_comments = review.as_comments();
    Some(vec![step(
        Stage::Development,
        EventKind::ChangesRequested,
        format!(
            "review round {round}: {} asked for changes on the pull request",
            review.author
        ),
        Some(spec),
    )])
}

/// `human_approval = "required"`: the merge waits for a person's approval
/// of the head (said once).
pub(super) fn approval_gate(view: &TaskView, policy: &PipelinePolicy) -> Option<Vec<Effect>> {
    if policy.human_approval != HumanApproval::Required {
        return None;
    }
    let people = view.people.as_ref()?;
    if people.approved_by.is_some() {
        return None;
    }
    if view.approval_wait_noted {
        return Some(Vec::new());
    }
    Some(vec![step(
        Stage::Merge,
        EventKind::ApprovalPending,
        "the merge waits for a person's approving review on the pull request (review.human_approval = \"required\")",
        None,
    )])
}

/// The merge gate's look at the required CI checks of the reviewed head,
/// before it takes the lease (so a task waiting for CI never holds the
/// repo's merges up): `None` lets the merge go on.
pub(super) fn ci_gate(view: &TaskView, policy: &PipelinePolicy) -> Option<Vec<Effect>> {
    match view.ci.as_ref()? {
        CiVerdict::Passed => None,
        CiVerdict::Pending { .. } if view.ci_wait_noted => Some(Vec::new()),
        CiVerdict::Pending { waiting } => Some(vec![step(
            Stage::Merge,
            EventKind::CiPending,
            format!(
                "the merge waits for required CI checks: {}",
                waiting.join(", ")
            ),
            None,
        )]),
        CiVerdict::Failed(checks) => {
            let round = view.ci_rounds + 1;
            let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
            if round > policy.max_ci_rounds {
                let last: Vec<String> = checks.iter().map(failure_text).collect();
                return Some(vec![Effect::Park(format!(
                    "required CI checks failed {round} times (the limit is review.max_ci_rounds = {}); the last failure:\n{}",
                    policy.max_ci_rounds,
                    last.join("\n\n")
                ))]);
            }
            let mut spec = JobSpec::new(AgentKind::Developer);
            spec.ci_failures = checks.iter().map(failure_text).collect();
            Some(vec![step(
                Stage::Development,
                EventKind::CiFailed,
                format!(
                    "CI round {round}: required check(s) failed ({}): back to the developer",
                    names.join(", ")
                ),
                Some(spec),
            )])
        }
    }
}
