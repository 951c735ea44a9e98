//! The task's stage machine: which stages exist and which moves between them are legal.
//!
//! ```text
//! analysis → awaiting_approval → development → review → merge → deploy → done
//!     ↑______________| (rejected)      ↑__________| (changes requested)
//! any non-terminal → needs_attention → (resume) · any non-terminal → cancelled | failed
//! failed → (a person's retry) the stage it failed in
//! ```

use crate::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Analysis,
    AwaitingApproval,
    Development,
    Review,
    Merge,
    Deploy,
    NeedsAttention,
    Done,
    Cancelled,
    Failed,
}

impl Stage {
    pub const ALL: [Stage; 10] = [
        Stage::Analysis,
        Stage::AwaitingApproval,
        Stage::Development,
        Stage::Review,
        Stage::Merge,
        Stage::Deploy,
        Stage::NeedsAttention,
        Stage::Done,
        Stage::Cancelled,
        Stage::Failed,
    ];

    /// The stages a task passes on its way to `done`, in order.
    pub const PIPELINE: [Stage; 7] = [
        Stage::Analysis,
        Stage::AwaitingApproval,
        Stage::Development,
        Stage::Review,
        Stage::Merge,
        Stage::Deploy,
        Stage::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Analysis => "analysis",
            Stage::AwaitingApproval => "awaiting_approval",
            Stage::Development => "development",
            Stage::Review => "review",
            Stage::Merge => "merge",
            Stage::Deploy => "deploy",
            Stage::NeedsAttention => "needs_attention",
            Stage::Done => "done",
            Stage::Cancelled => "cancelled",
            Stage::Failed => "failed",
        }
    }

    /// Terminal stages absorb every event: nothing moves a task out of them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Stage::Done | Stage::Cancelled | Stage::Failed)
    }

    /// Whether `self → to` is a legal move. Staying put is not a transition.
    pub fn can_transition_to(self, to: Stage) -> bool {
        use Stage::*;
        if self.is_terminal() || self == to {
            return false;
        }
        // Any live task may be parked for a person, stopped, or given up on.
        if matches!(to, NeedsAttention | Cancelled | Failed) {
            return true;
        }
        match self {
            Analysis => matches!(to, AwaitingApproval),
            // Rejected → the analyst again; Approved → development.
            AwaitingApproval => matches!(to, Analysis | Development),
            Development => matches!(to, Review),
            // Changes requested → development; approved → merge.
            Review => matches!(to, Development | Merge),
            // Verify failed or conflict → back to development; merged → deploy or done.
            Merge => matches!(to, Development | Deploy | Done),
            Deploy => matches!(to, Done),
            // A person resumes a parked task at any live pipeline stage.
            NeedsAttention => matches!(
                to,
                Analysis | AwaitingApproval | Development | Review | Merge | Deploy
            ),
            Done | Cancelled | Failed => false,
        }
    }

    /// Whether a person's retry may take a `failed` task back to `to`: a
    /// stage of the pipeline before `done`. This is not an event's move
    /// (terminal stages still absorb every event): only `orch task retry`
    /// (the store's `reopen`) takes it.
    pub fn can_retry_to(self, to: Stage) -> bool {
        self == Stage::Failed
            && matches!(
                to,
                Stage::Analysis
                    | Stage::AwaitingApproval
                    | Stage::Development
                    | Stage::Review
                    | Stage::Merge
                    | Stage::Deploy
            )
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| ParseError {
                kind: "stage",
                value: s.to_owned(),
                expected: "analysis, awaiting_approval, development, review, merge, deploy, needs_attention, done, cancelled, failed",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(s.as_str().parse::<Stage>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("bogus".parse::<Stage>().is_err());
    }

    #[test]
    fn happy_path_is_legal() {
        for w in Stage::PIPELINE.windows(2) {
            assert!(w[0].can_transition_to(w[1]), "{} -> {}", w[0], w[1]);
        }
    }

    #[test]
    fn loops_are_legal() {
        assert!(Stage::AwaitingApproval.can_transition_to(Stage::Analysis));
        assert!(Stage::Review.can_transition_to(Stage::Development));
    }

    #[test]
    fn no_skipping_gates() {
        assert!(!Stage::Analysis.can_transition_to(Stage::Development));
        assert!(!Stage::Development.can_transition_to(Stage::Merge));
        assert!(!Stage::Review.can_transition_to(Stage::Done));
    }

    #[test]
    fn only_a_failed_task_is_retried_and_only_into_the_pipeline() {
        for to in Stage::ALL {
            let live = !to.is_terminal() && to != Stage::NeedsAttention;
            assert_eq!(Stage::Failed.can_retry_to(to), live, "failed -> {to}");
            for from in [Stage::Done, Stage::Cancelled, Stage::NeedsAttention] {
                assert!(!from.can_retry_to(to), "{from} -> {to}");
            }
        }
    }

    proptest! {
        #[test]
        fn terminal_stages_absorb(from in 0usize..10, to in 0usize..10) {
            let (from, to) = (Stage::ALL[from], Stage::ALL[to]);
            if from.is_terminal() {
                prop_assert!(!from.can_transition_to(to));
            }
            if !from.is_terminal() && from != to && matches!(to, Stage::Cancelled | Stage::Failed) {
                prop_assert!(from.can_transition_to(to));
            }
        }
    }
}
