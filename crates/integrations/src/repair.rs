//! The reconciler's pure rule (R-43, TC-12): given the state an item is in on
//! the tracker and the stage of its live task, is there a gate the pipeline
//! has not acted on? Shared by every tracker's reconciler.

use orch_config::{StateRole, TrackerStates};
use orch_core::Stage;

/// What the reconciler should replay for an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// Nothing is missing (or the task is terminal: skipped, TC-12).
    Nothing,
    /// Replay the item's state through `on_item_state`.
    Replay,
}

/// `task`: the stage of the live task holding the item, `None` if there is none.
pub fn repair_due(state: &str, task: Option<Stage>, s: &TrackerStates) -> Repair {
    // State names follow the one rule (`orch_config::same_state`): trimmed,
    // case-insensitive, as routing, doctor and the trackers' writes compare.
    let role = s.role_of(state);
    let due = match task {
        // Terminal tasks are never touched by the reconciler (TC-12).
        Some(stage) if stage.is_terminal() => false,
        // A start webhook was lost: the item waits in To Analyse with no task.
        None => role == Some(StateRole::ToAnalyse),
        Some(stage) => match role {
            Some(StateRole::Stop) => true,
            Some(StateRole::Approved | StateRole::Rejected) => stage == Stage::AwaitingApproval,
            Some(StateRole::ConfirmDeploy) => stage == Stage::Deploy,
            _ => false,
        },
    };
    if due { Repair::Replay } else { Repair::Nothing }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_only_gates_the_pipeline_missed() {
        let s = TrackerStates::default();
        use Repair::*;
        assert_eq!(repair_due("To Analyse", None, &s), Replay);
        assert_eq!(
            repair_due("Approved", None, &s),
            Nothing,
            "no task to approve"
        );
        assert_eq!(
            repair_due("To Analyse", Some(Stage::Analysis), &s),
            Nothing,
            "already started"
        );
        assert_eq!(
            repair_due("Approved", Some(Stage::AwaitingApproval), &s),
            Replay
        );
        assert_eq!(
            repair_due("Rejected", Some(Stage::AwaitingApproval), &s),
            Replay
        );
        assert_eq!(
            repair_due("Approved", Some(Stage::Development), &s),
            Nothing,
            "already acted on"
        );
        assert_eq!(
            repair_due("Confirm Deploy", Some(Stage::Deploy), &s),
            Replay
        );
        assert_eq!(repair_due("STOP", Some(Stage::Review), &s), Replay);
        for t in [Stage::Done, Stage::Cancelled, Stage::Failed] {
            assert_eq!(
                repair_due("STOP", Some(t), &s),
                Nothing,
                "TC-12: terminal skipped"
            );
            assert_eq!(repair_due("Approved", Some(t), &s), Nothing);
        }
        assert_eq!(
            repair_due("Development", Some(Stage::Development), &s),
            Nothing
        );
    }

    /// Issue 15: a tracker whose states differ from the config only in case
    /// or spaces is repaired like one that matches exactly.
    #[test]
    fn state_names_differing_in_case_or_spaces_are_repaired() {
        let s = TrackerStates::default();
        use Repair::*;
        assert_eq!(repair_due("to analyse", None, &s), Replay);
        assert_eq!(repair_due(" Stop ", Some(Stage::Development), &s), Replay);
        assert_eq!(
            repair_due("APPROVED", Some(Stage::AwaitingApproval), &s),
            Replay
        );
        assert_eq!(
            repair_due("confirm deploy", Some(Stage::Deploy), &s),
            Replay
        );
        assert_eq!(repair_due("In Progress", Some(Stage::Review), &s), Nothing);
    }
}
