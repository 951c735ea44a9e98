//! Every ORCH-090 case (the original system's STOP suite,
//! `shared/reference/orch-090-stop-status-tests.py.txt`) as a table row at the
//! level of the pure decisions: `cancel::decide_stop` for STOP itself,
//! `pipeline::on_tick` / `on_gate` for what may relaunch a task, and
//! `retry::after_failure` for the reaper. The binary-level ports of the same
//! cases stay in `crates/cli/tests/stop_tc.rs`; these rows say that the
//! decision is right, those that the engine carries it out.

use orch_core::cancel::{
    CancelCause, CancelNote, RESET, StopFacts, StopNotice, StopPlan, StopStep, WindowFacts,
    decide_stop, in_critical_window,
};
use orch_core::pipeline::{Gate, PipelinePolicy, TaskView, on_gate, on_tick};
use orch_core::retry::{FailureDecision, RetryPolicy, after_failure};
use orch_core::{Stage, Timestamp};

fn facts(stage: Option<Stage>) -> StopFacts {
    StopFacts {
        stage,
        in_scope: true,
        window: WindowFacts::default(),
        cancel_requested: false,
    }
}

fn lease_running() -> WindowFacts {
    WindowFacts {
        holds_merge_lease: true,
        running_serial_actor: true,
        ..WindowFacts::default()
    }
}

fn reset() -> StopPlan {
    StopPlan {
        note: CancelNote::Cancelled,
        ok: true,
        deferred: false,
        steps: RESET.to_vec(),
    }
}

fn nothing(note: CancelNote, ok: bool) -> StopPlan {
    StopPlan {
        note,
        ok,
        deferred: false,
        steps: vec![],
    }
}

fn position(steps: &[StopStep], s: StopStep) -> usize {
    steps
        .iter()
        .position(|x| *x == s)
        .unwrap_or_else(|| panic!("{s:?} missing from {steps:?}"))
}

#[test]
fn every_stop_case_decides_as_orch_090_says() {
    use CancelCause::{DeferredStop, Stop};
    let deferred_first = StopPlan {
        note: CancelNote::DeferredCriticalWindow,
        ok: true,
        deferred: true,
        steps: vec![
            StopStep::CancelQueuedJobs,
            StopStep::RequestCancel,
            StopStep::Tell(StopNotice::Deferred),
        ],
    };
    let deferred_again = StopPlan {
        note: CancelNote::DeferredAlreadyPending,
        ok: true,
        deferred: true,
        steps: vec![StopStep::CancelQueuedJobs],
    };
    let out_of_scope = StopFacts {
        in_scope: false,
        ..facts(Some(Stage::Development))
    };
    let in_window = StopFacts {
        window: lease_running(),
        ..facts(Some(Stage::Merge))
    };
    let marker = StopFacts {
        window: WindowFacts {
            initiated_marker: true,
            ..WindowFacts::default()
        },
        ..facts(Some(Stage::Deploy))
    };
    let pending = StopFacts {
        cancel_requested: true,
        ..in_window
    };
    let awaiting_confirm = StopFacts {
        window: WindowFacts {
            holds_merge_lease: true,
            ..WindowFacts::default()
        },
        ..facts(Some(Stage::Deploy))
    };
    #[rustfmt::skip]
    let table: Vec<(&str, StopFacts, CancelCause, StopPlan)> = vec![
        ("TC-01 an unknown item is a no-op", facts(None), Stop, nothing(CancelNote::NoTask, false)),
        ("TC-02 an active agent is stopped", facts(Some(Stage::Development)), Stop, reset()),
        ("TC-03 jobs are cancelled (queued and running)", facts(Some(Stage::Analysis)), Stop, reset()),
        ("TC-05 full reset of a task in review", facts(Some(Stage::Review)), Stop, reset()),
        ("TC-06 the task row survives (cancelled, not deleted)", facts(Some(Stage::AwaitingApproval)), Stop, reset()),
        ("TC-07 idempotent on a cancelled task", facts(Some(Stage::Cancelled)), Stop, nothing(CancelNote::AlreadyTerminal(Stage::Cancelled), true)),
        ("TC-07 idempotent on a done task", facts(Some(Stage::Done)), Stop, nothing(CancelNote::AlreadyTerminal(Stage::Done), true)),
        ("TC-07 idempotent on a missing task", facts(None), DeferredStop, nothing(CancelNote::NoTask, false)),
        ("TC-08 kill switch off / repo out of scope is inert", out_of_scope, Stop, nothing(CancelNote::Disabled, false)),
        ("TC-08 scope does not hold back an applied deferred STOP", out_of_scope, DeferredStop, reset()),
        ("TC-13 end to end: a parked task is reset", facts(Some(Stage::NeedsAttention)), Stop, reset()),
        ("D7 STOP in a critical window defers", in_window, Stop, deferred_first.clone()),
        ("D7 an INITIATED marker is a critical window", marker, Stop, deferred_first),
        ("D7 a repeated STOP does not notify again", pending, Stop, deferred_again),
        ("D7 lease held while awaiting Confirm Deploy: full reset", awaiting_confirm, Stop, reset()),
        ("D7 the finalizer applies the deferred STOP in full", pending, DeferredStop, reset()),
    ];
    for (case, f, cause, want) in table {
        assert_eq!(decide_stop(&f, cause), want, "{case}");
    }
}

#[test]
fn the_reset_goes_in_the_order_that_keeps_it_safe() {
    let steps = decide_stop(&facts(Some(Stage::Development)), CancelCause::Stop).steps;
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
    assert_eq!(steps.last(), Some(&StopStep::Tell(StopNotice::Cancelled)));
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
    let policy = PipelinePolicy::default();
    let cancelled = TaskView {
        keys_released: true,
        ..TaskView::idle(Stage::Cancelled)
    };
    // TC-10/TC-12: a tick (restart, reconcile, a late run report) of a
    // cancelled task does nothing: no job, no move.
    assert_eq!(on_tick(&cancelled, &policy), vec![]);
    // TC-11: an idle analysis is relaunched (the analyst resumes) ...
    let idle_analysis = TaskView::idle(Stage::Analysis);
    assert!(!on_tick(&idle_analysis, &policy).is_empty());
    // ... but the only gate that brings a cancelled item back is Start, and
    // never as the cancelled task itself (its keys are released).
    for gate in [Gate::Approve, Gate::Reject, Gate::ConfirmDeploy] {
        assert!(
            on_gate(&cancelled, gate, None, &policy)
                .iter()
                .all(|e| !matches!(e, orch_core::pipeline::Effect::Step { job: Some(_), .. })),
            "{gate:?} must not queue work for a cancelled task"
        );
    }
}
