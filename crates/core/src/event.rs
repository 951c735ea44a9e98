//! What a line of a task's log records: its kind.
//!
//! Kinds are stored and shown as stable snake_case names (`merged`,
//! `cancel_requested`, …), but inside orch they are this enum: the engine
//! counts rejections, finds the last retry or merge failure and decides on
//! them, and a misspelt string would steer silently where a variant cannot.

use crate::ParseError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        /// The kind of a task event. See the module docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventKind {
            $( $(#[$doc])* $variant, )*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            /// The stored name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( EventKind::$variant => $name, )*
                }
            }
        }
    };
}

event_kinds! {
    /// The task was made (from a work item, the CLI or the API).
    Created = "created",
    /// A stage move with no more particular kind.
    StageChanged = "stage_changed",
    /// An agent's job was queued.
    Queued = "queued",
    /// An agent started.
    Started = "started",
    /// A parked task was resumed by a person.
    Resumed = "resumed",
    /// A run was launched again (after a crash or a lost worker).
    Relaunched = "relaunched",
    /// The analysis is done; the plan waits for a person.
    Analysed = "analysed",
    /// A person approved the plan.
    Approved = "approved",
    /// A person rejected the plan: back to analysis (counted against
    /// `max_rejections`).
    Rejected = "rejected",
    /// The developer finished.
    Developed = "developed",
    /// The reviewer approved.
    ReviewApproved = "review_approved",
    /// The reviewer asked for changes: back to development (counted against
    /// the review rounds).
    ChangesRequested = "changes_requested",
    /// A required CI check of the reviewed head failed: back to development
    /// (counted against `review.max_ci_rounds`).
    CiFailed = "ci_failed",
    /// The merge gate waits for required CI checks (said once per wait).
    CiPending = "ci_pending",
    /// The merge gate waits for a person's approving review on the pull
    /// request (`review.human_approval = "required"`; said once per wait).
    ApprovalPending = "approval_pending",
    /// The task's pull request was opened (early, as a draft) on the forge.
    PrOpened = "pr_opened",
    /// A person retried a failed task; counts restart after it.
    Retried = "retried",
    /// A failed attempt waits before the next.
    Backoff = "backoff",
    /// The attempt failed; the task failed.
    Failed = "failed",
    /// Parked for a person (R-8a).
    NeedsAttention = "needs_attention",
    /// An agent asked a person a question (its `ask_person` tool, a denied
    /// permission, Codex's `request_user_input`): parked until answered.
    AgentQuestion = "agent_question",
    /// A person answered the agent's question: its session resumes.
    Answered = "answered",
    /// A progress note an agent posted through its `orch mcp` tools.
    AgentNote = "agent_note",
    /// A note for people; nothing moved.
    Comment = "comment",
    /// A STOP was asked for while a critical step runs: deferred.
    CancelRequested = "cancel_requested",
    /// The task was stopped (STOP).
    Cancelled = "cancelled",
    /// Part of a STOP's clean-up could not be done (it says which).
    CancelProblem = "cancel_problem",
    /// The task's work was saved to an archive ref before its worktree went.
    Archived = "archived",
    /// Part of a fresh start's clean-up of the old task failed (it says which).
    FreshStartProblem = "fresh_start_problem",
    /// Its item runs again as a new task; this one keeps its history.
    Retired = "retired",
    /// A task this one depends on moved (re-pointed, retired or ended).
    DependencyMoved = "dependency_moved",
    /// The repo's merge lease was taken.
    LeaseAcquired = "lease_acquired",
    /// The repo's merge lease was given back.
    LeaseReleased = "lease_released",
    /// An interrupted merge is being finished.
    MergeResumed = "merge_resumed",
    /// The merge marker was written: the merge is under way.
    MergeInitiated = "merge_initiated",
    /// Merged on the forge.
    Merged = "merged",
    /// A merge attempt failed for good: counted against the merge attempts.
    MergeFailed = "merge_failed",
    /// A merge attempt failed and will be tried again.
    MergeRetry = "merge_retry",
    /// Pushing the branch failed.
    PushFailed = "push_failed",
    /// Committing what an agent left uncommitted failed: the work stays in
    /// the worktree, and the next handover (or the merge gate) tries again.
    CommitFailed = "commit_failed",
    /// Deploy phase A is done; phase B waits for a person (said once).
    AwaitingConfirmDeploy = "awaiting_confirm_deploy",
    /// Deploy phase B (the deploy run) was queued.
    DeployStarted = "deploy_started",
    /// Deployed.
    Deployed = "deployed",
    /// Done (with no deploy step configured).
    Done = "done",
    /// Start-up found a lock a killed process left in a worktree and removed it.
    StaleLockRemoved = "stale_lock_removed",
    /// Start-up undid a merge a killed process left half done.
    MergeUndone = "merge_undone",
    /// Start-up finished a checkout a killed process left half done.
    CheckoutFinished = "checkout_finished",
    /// Ignored build outputs of an idle worktree were removed (disk care).
    BuildOutputsRemoved = "build_outputs_removed",
    /// A forge call failed.
    ForgeError = "forge_error",
    /// A tracker call failed (reading, or queueing a write).
    TrackerError = "tracker_error",
    /// A write to the tracker was given up after its last attempt.
    TrackerWriteFailed = "tracker_write_failed",
    /// The tracker moved the item to a state orch has no role for.
    UnmappedState = "unmapped_state",
    /// A `[[notify]]` delivery was given up.
    NotifyFailed = "notify_failed",
    /// Some of the run's output lines were too long to parse whole.
    OutputTruncated = "output_truncated",
    /// A sandboxed agent asked orch's egress proxy for a host that is not
    /// on its kind's allowlist; the proxy refused it.
    EgressRefused = "egress_refused",
    /// The forge says the pull request was merged.
    PrMerged = "pr_merged",
    /// The forge says the pull request was closed without merging.
    PrClosed = "pr_closed",
    /// A kind this build does not know (written by another version of
    /// orch); the event's message still says what happened.
    Unrecognised = "unrecognised",
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseError {
                kind: "event kind",
                value: s.to_owned(),
                expected: "a kind of EventKind::ALL",
            })
    }
}

impl EventKind {
    /// The kind a stored name stands for; `Unrecognised` for a name this
    /// build does not know, so a log written by another version still reads.
    pub fn from_stored(s: &str) -> EventKind {
        s.parse().unwrap_or(EventKind::Unrecognised)
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(EventKind::from_stored(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_stored_name() {
        let mut names = std::collections::HashSet::new();
        for &k in EventKind::ALL {
            assert!(names.insert(k.as_str()), "{k:?}: name used twice");
            assert_eq!(EventKind::from_stored(k.as_str()), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), k);
            assert!(
                k.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{k:?}"
            );
        }
    }

    #[test]
    fn a_name_of_another_version_reads_as_unrecognised() {
        assert_eq!(
            EventKind::from_stored("shiny_new_kind"),
            EventKind::Unrecognised
        );
        assert!("shiny_new_kind".parse::<EventKind>().is_err());
    }
}
