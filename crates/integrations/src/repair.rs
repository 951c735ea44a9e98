//! The reconciler's rule (R-43, TC-12): given the state an item is in on the
//! tracker and the stage of its live task, is there a gate the pipeline has
//! not acted on? (`repair_due`, pure), and the replay of one listed item
//! through the pipeline (`reconcile_item`). Shared by every tracker's
//! reconciler, which only lists.

use crate::reconcile_loop::ReconcileStats;
use orch_config::{StateRole, TrackerStates};
use orch_core::Stage;
use orch_engine::pipeline::Pipeline;

/// Reconcile one listed item whose state on the tracker is `state`: a live
/// task in a terminal stage is skipped (TC-12); a gate the pipeline missed
/// is replayed (`on_item_state`, as the reconciler). Counted in `st`.
/// `false` when the cycle's watermark must stay: the store failed, or the
/// replay met an outage (the item is read again next cycle). A refusal that
/// retrying will not change is logged once and does not make every cycle
/// re-read everything.
pub(crate) async fn reconcile_item(
    pipeline: &Pipeline,
    item: &str,
    state: &str,
    st: &mut ReconcileStats,
) -> bool {
    let states = &pipeline.config().tracker.states;
    let task = match pipeline.store().find_live_task_by_tracker_id(item).await {
        Ok(t) => t,
        Err(e) => {
            st.errors += 1;
            tracing::warn!(error = %e, "reconcile: store lookup failed");
            return false;
        }
    };
    if task.as_ref().is_some_and(|t| t.stage.is_terminal()) {
        st.skipped_terminal += 1;
        return true;
    }
    if repair_due(state, task.as_ref().map(|t| t.stage), states) != Repair::Replay {
        return true;
    }
    match pipeline
        .on_item_state(item, state, None, "reconciler")
        .await
    {
        Ok(r) => {
            st.repaired += 1;
            tracing::info!(item, state, routed = ?r, "reconcile: repaired a missed state change");
            true
        }
        Err(e) => {
            st.errors += 1;
            tracing::warn!(item, error = %e, "reconcile: applying the state failed; retried next cycle");
            !e.is_transient()
        }
    }
}

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
