//! A run ended (R-4, R-8a, R-21): what the task's owner does about it,
//! decided here from the run's end and the task as the owner sees it. The
//! engine measures the worktree and reads the task, then carries the steps
//! out in order; it decides nothing itself.

use crate::disk::WorktreeSize;
use crate::job::AgentKind;
use crate::stage::Stage;

/// How the run's job ended, as the supervisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEndKind {
    Completed,
    /// A failed attempt; the job waits for its next one.
    Retrying,
    /// No attempts left or the budget spent: the job failed for good. The
    /// supervisor writes no stage; the tick that follows parks the task.
    GaveUp,
    /// The agent asked a person (R-8a). Its job is still the run's: the
    /// task's owner ends it with the question and parks the task on it, in
    /// one command, so no tick in between parks it for another reason.
    Asked,
    /// A STOP cancelled the job, or its claim was lost.
    Cancelled,
}

/// What the decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEndFacts<'a> {
    /// The task's stage now.
    pub stage: Stage,
    pub end: JobEndKind,
    pub agent: AgentKind,
    /// The worktree measured after the run (none for a cancelled one).
    pub size: Option<WorktreeSize>,
    /// `limits.worktree_mb`.
    pub worktree_limit_mb: Option<u64>,
    /// The question the agent asked a person, if it asked one.
    pub question: Option<&'a str>,
    /// Why the run failed, as reported.
    pub error: Option<&'a str>,
}

/// One step after a run's end, in the order the plan lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEndStep {
    /// The task was cancelled: its worktree goes (archived first). A run
    /// prepared while the STOP ran may have made it again.
    RetireWorktree,
    /// The worktree is over its limit: park the task for a person, why.
    Park(String),
    /// The agent asked a person (R-8a): its job ends, given up with the
    /// question; then, when `park`, the task parks on it (the tracker item
    /// gets it quoted with how to answer). A job taken meanwhile (a STOP,
    /// the reaper) parks nothing.
    Question { question: String, park: bool },
    /// Then whatever is due (level-triggered). A job that gave up without
    /// a question is parked here: the tick finds its stage's job failed
    /// (with the forge's report first in the merge stage), the same as
    /// after a restart that lost this report.
    Tick,
}

/// The stages a run's end may park from: not a task already parked or
/// ended.
fn parkable(stage: Stage) -> bool {
    !stage.is_terminal() && stage != Stage::NeedsAttention
}

/// The stages a worktree over its limit parks from. Not the merge or deploy
/// stages: their steps hold the merge lease and may be past the point of no
/// return (a deploy's phase B); the next agent stage's run parks the task
/// instead.
fn parks_over_disk_limit(stage: Stage) -> bool {
    parkable(stage) && !matches!(stage, Stage::Merge | Stage::Deploy)
}

/// What a run's end makes the task's owner do:
/// - a cancelled job: the cancelled task's worktree goes (nothing else of
///   the run counts);
/// - a question: the job ends with it, and a live task parks on it (R-8a);
/// - a worktree over `limits.worktree_mb` (a run that did not give up or
///   ask): the task parks;
/// - then, always, a tick, which parks a task whose stage's job gave up.
pub fn on_run_ended(f: &RunEndFacts<'_>) -> Vec<RunEndStep> {
    let mut steps = Vec::new();
    if f.end == JobEndKind::Cancelled {
        if f.stage == Stage::Cancelled {
            steps.push(RunEndStep::RetireWorktree);
        }
        steps.push(RunEndStep::Tick);
        return steps;
    }
    if f.end == JobEndKind::Asked {
        steps.push(RunEndStep::Question {
            question: f.question.unwrap_or("the agent asked a person").to_owned(),
            park: parkable(f.stage),
        });
    } else if f.end != JobEndKind::GaveUp
        && parks_over_disk_limit(f.stage)
        && let Some(why) = f.size.and_then(|s| s.over_limit(f.worktree_limit_mb))
    {
        steps.push(RunEndStep::Park(why));
    }
    steps.push(RunEndStep::Tick);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobEndKind::*;
    use RunEndStep::*;

    const MIB: u64 = 1024 * 1024;

    fn facts(stage: Stage, end: JobEndKind) -> RunEndFacts<'static> {
        RunEndFacts {
            stage,
            end,
            agent: AgentKind::Developer,
            size: Some(WorktreeSize {
                bytes: 10 * MIB,
                complete: true,
            }),
            worktree_limit_mb: Some(100),
            question: None,
            error: None,
        }
    }

    fn big(mut f: RunEndFacts<'static>) -> RunEndFacts<'static> {
        f.size = Some(WorktreeSize {
            bytes: 500 * MIB,
            complete: true,
        });
        f
    }

    fn parked(steps: &[RunEndStep]) -> bool {
        steps.iter().any(|s| matches!(s, Park(_)))
    }

    #[test]
    fn every_run_end_decides_as_the_pipeline_says() {
        let mut merger = facts(Stage::Merge, GaveUp);
        merger.agent = AgentKind::Merger;
        merger.error = Some("verify failed: 2 tests");
        let mut asked = facts(Stage::Development, Asked);
        asked.question = Some("Which port?");
        let mut asked_late = asked;
        asked_late.stage = Stage::Cancelled;
        let asked_big = big(asked);
        #[rustfmt::skip]
        let cases: Vec<(&str, RunEndFacts<'static>, Vec<RunEndStep>)> = vec![
            ("a completed run ticks", facts(Stage::Development, Completed), vec![Tick]),
            ("a retried run ticks", facts(Stage::Analysis, Retrying), vec![Tick]),
            ("a cancelled task's worktree goes", facts(Stage::Cancelled, Cancelled), vec![RetireWorktree, Tick]),
            ("a fenced run of a live task keeps the worktree", facts(Stage::Development, Cancelled), vec![Tick]),
            ("a cancelled run is never measured against the limit", big(facts(Stage::Cancelled, Cancelled)), vec![RetireWorktree, Tick]),
            ("a give-up is parked by the tick (with the forge's report in merge)", merger, vec![Tick]),
            ("a question ends the job and parks the task on it", asked, vec![Question { question: "Which port?".into(), park: true }, Tick]),
            ("a question over the disk limit parks on the question", asked_big, vec![Question { question: "Which port?".into(), park: true }, Tick]),
            ("a question of a task a STOP ended ends the job, parks nothing", asked_late, vec![Question { question: "Which port?".into(), park: false }, Tick]),
            ("a give-up over the disk limit parks for the give-up, by the tick", big(facts(Stage::Development, GaveUp)), vec![Tick]),
            ("a give-up of a parked task ticks", facts(Stage::NeedsAttention, GaveUp), vec![Tick]),
        ];
        for (name, f, want) in cases {
            assert_eq!(on_run_ended(&f), want, "{name}");
        }
    }

    #[test]
    fn a_worktree_over_its_limit_parks_only_from_an_agent_stage() {
        for stage in [
            Stage::Analysis,
            Stage::Development,
            Stage::Review,
            Stage::AwaitingApproval,
        ] {
            let steps = on_run_ended(&big(facts(stage, Completed)));
            assert!(parked(&steps), "{stage}: {steps:?}");
            assert_eq!(steps.last(), Some(&Tick), "the park comes before the tick");
        }
        for stage in [
            Stage::Merge,
            Stage::Deploy,
            Stage::NeedsAttention,
            Stage::Done,
        ] {
            assert!(
                !parked(&on_run_ended(&big(facts(stage, Completed)))),
                "{stage}"
            );
        }
        let mut unlimited = big(facts(Stage::Development, Completed));
        unlimited.worktree_limit_mb = None;
        assert_eq!(on_run_ended(&unlimited), vec![Tick], "no limit, no park");
        assert!(
            !parked(&on_run_ended(&facts(Stage::Development, Completed))),
            "under the limit"
        );
    }
}
