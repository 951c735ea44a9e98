use super::*;
use crate::JobStatus;
use crate::cancel::{RESET, StopNotice};
use crate::pipeline::{Effect as P, StageJob};

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
            attempts: 1,
            budget_spent: false,
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
    // A question ends the job and parks the task on it, then the tick.
    let asked = decide(
        &TaskView::idle(Stage::Development),
        &Command::RunEnded(RunEnd {
            end: JobEndKind::Asked,
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
            Effect::AfterRun(RunEndStep::Question {
                question: "which port?".into(),
                park: true
            }),
            Effect::AfterRun(RunEndStep::Tick)
        ]
    );
}

/// A job that gave up is parked by the task's owner, never by the
/// supervisor: the run's end ticks, and the tick parks the stage's failed
/// job saying how many attempts it had and why the last one failed.
#[test]
fn a_job_that_gave_up_is_parked_by_the_tick_with_its_attempts() {
    let ended = decide(
        &TaskView::idle(Stage::Development),
        &Command::RunEnded(RunEnd {
            end: JobEndKind::GaveUp,
            agent: AgentKind::Developer,
            size: None,
            question: None,
            error: Some("exit code 7"),
        }),
        &Policy::default(),
    );
    assert_eq!(ended.effects, vec![Effect::AfterRun(RunEndStep::Tick)]);
    let mut view = TaskView::idle(Stage::Development);
    let failed = |attempts| StageJob {
        agent: AgentKind::Developer,
        status: JobStatus::Failed,
        phase: None,
        review: None,
        last_error: Some("exit code 7".into()),
        attempts,
        budget_spent: false,
    };
    view.stage_job = Some(failed(3));
    assert_eq!(
        decide(&view, &Command::Tick, &Policy::default()).effects,
        vec![Effect::Pipeline(P::Park(
            "the developer gave up after 3 attempts: exit code 7".into()
        ))]
    );
    view.stage_job = Some(failed(1));
    assert_eq!(
        decide(&view, &Command::Tick, &Policy::default()).effects,
        vec![Effect::Pipeline(P::Park(
            "the developer gave up: exit code 7".into()
        ))]
    );
    // The budget's words are the whole reason (they carry the figure).
    view.stage_job = Some(StageJob {
        last_error: Some("token budget exceeded: 1200 > 1000".into()),
        budget_spent: true,
        ..failed(1)
    });
    assert_eq!(
        decide(&view, &Command::Tick, &Policy::default()).effects,
        vec![Effect::Pipeline(P::Park(
            "token budget exceeded: 1200 > 1000".into()
        ))]
    );
}
