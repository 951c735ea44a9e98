//! Every ORCH-090 case (the original system's STOP suite,
//! `shared/reference/orch-090-stop-status-tests.py.txt`) as a table row at the
//! level of the one pure entry point, `decide::decide` (STOP itself, and the
//! ticks and gates that could relaunch a task), and `retry::after_failure`
//! for the reaper. The binary-level ports of the same cases stay in
//! `crates/cli/tests/stop_tc.rs`; these rows say that the decision is right,
//! those that the engine carries it out.

use orch_core::cancel::{
    CancelCause, CancelNote, RESET, StopNotice, StopStep, WindowFacts, in_critical_window,
};
use orch_core::decide::{Command, Decision, Effect, Policy, StopVerdict, decide, without_task};
use orch_core::pipeline::{Gate, TaskView};
use orch_core::retry::{FailureDecision, RetryPolicy, after_failure};
use orch_core::{Stage, Timestamp};

fn view(stage: Stage) -> TaskView {
    TaskView::idle(stage)
}

fn lease_running() -> WindowFacts {
    WindowFacts {
        holds_merge_lease: true,
        running_serial_actor: true,
        ..WindowFacts::default()
    }
}

/// A task whose window facts are `w`, as the engine's view reads them.
fn with_window(stage: Stage, w: WindowFacts) -> TaskView {
    TaskView {
        holds_lease: w.holds_merge_lease,
        has_running_job: w.running_serial_actor,
        has_active_job: w.running_serial_actor,
        merge_initiated: w.initiated_marker && stage == Stage::Merge,
        deploy_initiated: w.initiated_marker && stage == Stage::Deploy,
        in_critical_window: in_critical_window(w),
        ..view(stage)
    }
}

fn steps(steps: &[StopStep]) -> Vec<Effect> {
    steps.iter().map(|s| Effect::Stop(*s)).collect()
}

fn answer(note: CancelNote, ok: bool, deferred: bool, effects: Vec<Effect>) -> Decision {
    Decision {
        effects,
        stop: Some(StopVerdict { note, ok, deferred }),
    }
}

fn reset() -> Decision {
    answer(CancelNote::Cancelled, true, false, steps(&RESET))
}

fn nothing(note: CancelNote, ok: bool) -> Decision {
    answer(note, ok, false, vec![])
}

fn position(steps: &[Effect], s: StopStep) -> usize {
    steps
        .iter()
        .position(|x| *x == Effect::Stop(s))
        .unwrap_or_else(|| panic!("{s:?} missing from {steps:?}"))
}

#[test]
fn every_stop_case_decides_as_orch_090_says() {
    use CancelCause::{DeferredStop, Stop};
    let deferred_first = answer(
        CancelNote::DeferredCriticalWindow,
        true,
        true,
        steps(&[
            StopStep::CancelQueuedJobs,
            StopStep::RequestCancel,
            StopStep::Tell(StopNotice::Deferred),
        ]),
    );
    let deferred_again = answer(
        CancelNote::DeferredAlreadyPending,
        true,
        true,
        steps(&[StopStep::CancelQueuedJobs]),
    );
    let on = Policy::default();
    let off = Policy {
        stop_applies: false,
        ..on
    };
    let in_window = with_window(Stage::Merge, lease_running());
    let marker = with_window(
        Stage::Deploy,
        WindowFacts {
            initiated_marker: true,
            ..WindowFacts::default()
        },
    );
    let pending = TaskView {
        cancel_requested: true,
        ..in_window.clone()
    };
    let awaiting_confirm = with_window(
        Stage::Deploy,
        WindowFacts {
            holds_merge_lease: true,
            ..WindowFacts::default()
        },
    );
    #[rustfmt::skip]
    let table: Vec<(&str, Option<TaskView>, Policy, CancelCause, Decision)> = vec![
        ("TC-01 an unknown item is a no-op", None, on, Stop, nothing(CancelNote::NoTask, false)),
        ("TC-02 an active agent is stopped", Some(TaskView { has_active_job: true, has_running_job: true, ..view(Stage::Development) }), on, Stop, reset()),
        ("TC-03 jobs are cancelled (queued and running)", Some(view(Stage::Analysis)), on, Stop, reset()),
        ("TC-05 full reset of a task in review", Some(view(Stage::Review)), on, Stop, reset()),
        ("TC-06 the task row survives (cancelled, not deleted)", Some(view(Stage::AwaitingApproval)), on, Stop, reset()),
        ("TC-07 idempotent on a cancelled task", Some(view(Stage::Cancelled)), on, Stop, nothing(CancelNote::AlreadyTerminal(Stage::Cancelled), true)),
        ("TC-07 idempotent on a done task", Some(view(Stage::Done)), on, Stop, nothing(CancelNote::AlreadyTerminal(Stage::Done), true)),
        ("TC-07 idempotent on a missing task", None, on, DeferredStop, nothing(CancelNote::NoTask, false)),
        ("TC-08 kill switch off / repo out of scope is inert", Some(view(Stage::Development)), off, Stop, nothing(CancelNote::Disabled, false)),
        ("TC-08 scope does not hold back an applied deferred STOP", Some(view(Stage::Development)), off, DeferredStop, reset()),
        ("TC-13 end to end: a parked task is reset", Some(view(Stage::NeedsAttention)), on, Stop, reset()),
        ("D7 STOP in a critical window defers", Some(in_window), on, Stop, deferred_first.clone()),
        ("D7 an INITIATED marker is a critical window", Some(marker), on, Stop, deferred_first),
        ("D7 a repeated STOP does not notify again", Some(pending.clone()), on, Stop, deferred_again),
        ("D7 lease held while awaiting Confirm Deploy: full reset", Some(awaiting_confirm), on, Stop, reset()),
        ("D7 the finalizer applies the deferred STOP in full", Some(pending), on, DeferredStop, reset()),
    ];
    for (case, v, policy, cause, want) in table {
        let command = Command::Stop { cause };
        let got = match &v {
            Some(v) => decide(v, &command, &policy),
            None => without_task(&command),
        };
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn the_reset_goes_in_the_order_that_keeps_it_safe() {
    let steps = decide(
        &view(Stage::Development),
        &Command::Stop {
            cause: CancelCause::Stop,
        },
        &Policy::default(),
    )
    .effects;
    let at = |s| position(&steps, s);
    // TC-03: jobs go before the runs, so a run that ends is seen cancelled
    // and its job is never claimed again.
    assert!(at(StopStep::CancelAllJobs) < at(StopStep::StopRuns));
    // The agent is gone before its worktree is taken away.
    assert!(at(StopStep::StopRuns) < at(StopStep::RetireWorktree));
    // TC-05: worktree and branch both go; the lease is freed for the repo.
    assert!(at(StopStep::RetireWorktree) < at(StopStep::DeleteBranch));
    assert!(at(StopStep::DeleteBranch) < at(StopStep::ReleaseMergeLease));
    // The tracker hears of the cancel last, once it is true.
    assert!(at(StopStep::MarkCancelled) < at(StopStep::Tell(StopNotice::Cancelled)));
    assert_eq!(
        steps.last(),
        Some(&Effect::Stop(StopStep::Tell(StopNotice::Cancelled)))
    );
}

#[test]
fn d7_window_detection_and_the_idle_lease() {
    // D7 in_critical_window detection.
    assert!(in_critical_window(lease_running()));
    // D7 lease held, idle (parked awaiting Confirm Deploy): not critical.
    assert!(!in_critical_window(WindowFacts {
        holds_merge_lease: true,
        ..WindowFacts::default()
    }));
    // A running merge without the lease (it has not got it yet) is not
    // past the point of no return either.
    assert!(!in_critical_window(WindowFacts {
        running_serial_actor: true,
        ..WindowFacts::default()
    }));
}

#[test]
fn tc04_the_reaper_never_requeues_a_cancelled_task() {
    let now = Timestamp(1_000_000);
    let policy = RetryPolicy::default();
    // Attempts left would normally mean a retry ...
    assert!(matches!(
        after_failure(1, 2, Stage::Development, now, &policy, 1.0),
        FailureDecision::Retry { .. }
    ));
    // ... but a task cancelled meanwhile ends its job as cancelled.
    for stage in [Stage::Cancelled, Stage::Done, Stage::Failed] {
        assert_eq!(
            after_failure(1, 2, stage, now, &policy, 1.0),
            FailureDecision::Cancel,
            "{stage}"
        );
    }
}

#[test]
fn tc10_tc11_tc12_nothing_relaunches_a_cancelled_task() {
    let policy = Policy::default();
    let cancelled = TaskView {
        keys_released: true,
        ..TaskView::idle(Stage::Cancelled)
    };
    let queues = |d: Decision| {
        d.effects.iter().any(|e| {
            matches!(
                e,
                Effect::Pipeline(orch_core::pipeline::Effect::Step { job: Some(_), .. })
                    | Effect::Pipeline(orch_core::pipeline::Effect::Begin { job: Some(_) })
                    | Effect::Pipeline(orch_core::pipeline::Effect::Reopen { job: Some(_), .. })
            )
        })
    };
    // TC-10/TC-12: a tick (restart, reconcile) of a cancelled task does
    // nothing: no job, no move.
    assert_eq!(decide(&cancelled, &Command::Tick, &policy).effects, vec![]);
    // A late run report of the cancelled task only takes its worktree away
    // (a run prepared while the STOP ran may have made it again).
    let late = decide(
        &cancelled,
        &Command::RunEnded(orch_core::decide::RunEnd {
            end: orch_core::run_end::JobEndKind::Cancelled,
            agent: orch_core::AgentKind::Developer,
            size: None,
            question: None,
            error: None,
        }),
        &policy,
    );
    assert_eq!(
        late.effects,
        vec![
            Effect::AfterRun(orch_core::run_end::RunEndStep::RetireWorktree),
            Effect::AfterRun(orch_core::run_end::RunEndStep::Tick)
        ]
    );
    // TC-11: an idle analysis is relaunched (the analyst resumes) ...
    assert!(queues(decide(
        &TaskView::idle(Stage::Analysis),
        &Command::Tick,
        &policy
    )));
    // ... but no gate brings the cancelled task itself back (Start on its
    // item makes a new task: its keys are released).
    for gate in [
        Gate::Start,
        Gate::Approve,
        Gate::Reject,
        Gate::ConfirmDeploy,
        Gate::Retry,
    ] {
        assert!(
            !queues(decide(
                &cancelled,
                &Command::Gate {
                    gate,
                    comment: None
                },
                &policy
            )),
            "{gate:?} must not queue work for a cancelled task"
        );
    }
}
