use super::*;
use crate::JobStatus;
use crate::cancel::{RESET, StopNotice};
use crate::pipeline::{Effect as P, StageJob};
use crate::run_end::ParkNotice;

fn stop(view: &TaskView, policy: &Policy) -> Decision {
    decide(
        view,
        &Command::Stop {
            cause: CancelCause::Stop,
        },
        policy,
    )
}

#[test]
fn a_stop_is_decided_from_the_view_and_the_policy() {
    let policy = Policy::default();
    let d = stop(&TaskView::idle(Stage::Development), &policy);
    assert_eq!(
        d.stop,
        Some(StopVerdict {
            note: CancelNote::Cancelled,
            ok: true,
            deferred: false
        })
    );
    assert_eq!(
        d.effects,
        RESET.iter().map(|s| Effect::Stop(*s)).collect::<Vec<_>>()
    );

    // The window open: deferred, the tracker told once.
    let merging = TaskView {
        in_critical_window: true,
        ..TaskView::idle(Stage::Merge)
    };
    let d = stop(&merging, &policy);
    assert_eq!(d.stop.unwrap().note, CancelNote::DeferredCriticalWindow);
    assert_eq!(
        d.effects.last(),
        Some(&Effect::Stop(StopStep::Tell(StopNotice::Deferred)))
    );

    // The kill switch off (or the repo out of scope): nothing.
    let off = Policy {
        stop_applies: false,
        ..policy
    };
    let d = stop(&TaskView::idle(Stage::Development), &off);
    assert_eq!(d.stop.unwrap().note, CancelNote::Disabled);
    assert!(d.effects.is_empty());
}

#[test]
fn a_command_for_no_task_does_nothing_and_a_stop_says_so() {
    let d = without_task(&Command::Stop {
        cause: CancelCause::Stop,
    });
    assert_eq!(
        d.stop,
        Some(StopVerdict {
            note: CancelNote::NoTask,
            ok: false,
            deferred: false
        })
    );
    assert!(d.effects.is_empty());
    assert_eq!(without_task(&Command::Tick), Decision::of([]));
}

#[test]
fn begin_queues_the_analyst_unless_a_tick_already_did() {
    let idle = TaskView::idle(Stage::Analysis);
    assert_eq!(
        decide(&idle, &Command::Begin, &Policy::default()).pipeline_effects(),
        Some(vec![P::Begin {
            job: Some(JobSpec::new(AgentKind::Analyst))
        }])
    );
    let queued = TaskView {
        has_active_job: true,
        ..idle
    };
    assert_eq!(
        decide(&queued, &Command::Begin, &Policy::default()).pipeline_effects(),
        Some(vec![P::Begin { job: None }])
    );
}

#[test]
fn a_merge_gate_that_gives_up_shows_it_on_the_forge_first() {
    let failed_merger = TaskView {
        holds_lease: true,
        stage_job: Some(StageJob {
            agent: AgentKind::Merger,
            status: JobStatus::Failed,
            phase: None,
            review: None,
            last_error: Some("verify failed".into()),
        }),
        ..TaskView::idle(Stage::Merge)
    };
    let effects = decide(&failed_merger, &Command::Tick, &Policy::default())
        .pipeline_effects()
        .unwrap();
    assert!(
        matches!(
            effects.as_slice(),
            [P::ReportFailedVerify(a), P::Park(b)] if a == b && a.contains("verify failed")
        ),
        "{effects:?}"
    );
    // A closed pull request parks without a verify report: nothing was
    // verified.
    let closed = decide(
        &TaskView::idle(Stage::Merge),
        &Command::PullRequestClosed { why: "closed" },
        &Policy::default(),
    );
    assert_eq!(
        closed.pipeline_effects(),
        Some(vec![P::Park("closed".into())])
    );
    // An ended task is left as it is.
    let done = decide(
        &TaskView::idle(Stage::Done),
        &Command::PullRequestClosed { why: "closed" },
        &Policy::default(),
    );
    assert!(done.effects.is_empty());
}

#[test]
fn a_run_end_is_decided_with_the_policys_disk_limit() {
    let size = WorktreeSize {
        bytes: 300 * 1024 * 1024,
        complete: true,
    };
    let run = |limit| {
        decide(
            &TaskView::idle(Stage::Development),
            &Command::RunEnded(RunEnd {
                end: JobEndKind::Completed,
                agent: AgentKind::Developer,
                size: Some(size),
                question: None,
                error: None,
            }),
            &Policy {
                worktree_limit_mb: limit,
                ..Policy::default()
            },
        )
        .effects
    };
    assert_eq!(run(None), vec![Effect::AfterRun(RunEndStep::Tick)]);
    assert!(matches!(
        run(Some(100)).as_slice(),
        [
            Effect::AfterRun(RunEndStep::Park(_)),
            Effect::AfterRun(RunEndStep::Tick)
        ]
    ));
    // A question the supervisor parked on reaches the tracker.
    let asked = decide(
        &TaskView::idle(Stage::NeedsAttention),
        &Command::RunEnded(RunEnd {
            end: JobEndKind::GaveUp,
            agent: AgentKind::Developer,
            size: None,
            question: Some("which port?"),
            error: None,
        }),
        &Policy::default(),
    );
    assert_eq!(
        asked.effects,
        vec![
            Effect::AfterRun(RunEndStep::Reflect(ParkNotice::Question(
                "which port?".into()
            ))),
            Effect::AfterRun(RunEndStep::Tick)
        ]
    );
}
