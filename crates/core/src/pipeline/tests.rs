//! Tests of the pipeline's decisions: examples per stage and gate, and
//! property tests over random event sequences.

use super::*;
use proptest::prelude::*;

fn done(agent: AgentKind) -> StageJob {
    StageJob {
        agent,
        status: JobStatus::Succeeded,
        phase: None,
        review: None,
        last_error: None,
        attempts: 1,
        budget_spent: false,
    }
}

fn policy() -> PipelinePolicy {
    PipelinePolicy::default()
}

#[test]
fn only_the_moves_that_finish_an_agents_work_hand_it_over() {
    assert_eq!(
        hands_over(Stage::Development, Stage::Review),
        Some(AgentKind::Developer)
    );
    assert_eq!(
        hands_over(Stage::Analysis, Stage::AwaitingApproval),
        Some(AgentKind::Analyst)
    );
    // Staying, parking or going back pushes nothing.
    for (from, to) in [
        (Stage::Development, Stage::Development),
        (Stage::Development, Stage::NeedsAttention),
        (Stage::Review, Stage::Development),
        (Stage::Merge, Stage::Deploy),
    ] {
        assert_eq!(hands_over(from, to), None, "{from} -> {to}");
    }
}

#[test]
fn analysis_done_waits_for_approval() {
    let mut v = TaskView::idle(Stage::Analysis);
    v.stage_job = Some(done(AgentKind::Analyst));
    let e = on_tick(&v, &policy());
    assert!(matches!(
        &e[..],
        [Effect::Step {
            to: Stage::AwaitingApproval,
            job: None,
            ..
        }]
    ));
    let v = TaskView::idle(Stage::AwaitingApproval);
    assert!(on_tick(&v, &policy()).is_empty());
}

#[test]
fn approve_and_reject() {
    let v = TaskView::idle(Stage::AwaitingApproval);
    let e = on_gate(&v, Gate::Approve, Some("go"), &policy());
    match &e[..] {
        [
            Effect::Step {
                to: Stage::Development,
                job: Some(j),
                ..
            },
        ] => {
            assert_eq!(j.agent, AgentKind::Developer);
            assert_eq!(j.gate_comment.as_deref(), Some("go"));
        }
        other => panic!("{other:?}"),
    }
    let e = on_gate(&v, Gate::Reject, Some("more detail"), &policy());
    assert!(matches!(
        &e[..],
        [Effect::Step {
            to: Stage::Analysis,
            kind: EventKind::Rejected,
            job: Some(_),
            ..
        }]
    ));
    let mut v = v;
    v.rejections = 3;
    let e = on_gate(&v, Gate::Reject, None, &policy());
    assert!(matches!(
        &e[..],
        [Effect::Step {
            to: Stage::Failed,
            ..
        }]
    ));
}

#[test]
fn review_loop_is_bounded() {
    let mut v = TaskView::idle(Stage::Review);
    let mut j = done(AgentKind::Reviewer);
    j.review = Some(ReviewOutcome::ChangesRequested(vec!["tests".into()]));
    v.stage_job = Some(j);
    let e = on_tick(&v, &policy());
    match &e[..] {
        [
            Effect::Step {
                to: Stage::Development,
                job: Some(s),
                ..
            },
        ] => {
            assert_eq!(s.reviewer_comments, vec!["tests".to_string()])
        }
        other => panic!("{other:?}"),
    }
    v.review_rounds = 3;
    assert!(matches!(
        &on_tick(&v, &policy())[..],
        [Effect::Step {
            to: Stage::Failed,
            ..
        }]
    ));
}

/// `max_review_rounds` (3): changes requested "more often than this" fail
/// the task, so the 3rd request still goes back to the developer and only
/// the 4th fails (the docs' and the example's words).
#[test]
fn review_fails_only_when_changes_are_requested_more_often_than_the_limit() {
    let mut v = TaskView::idle(Stage::Review);
    let mut j = done(AgentKind::Reviewer);
    j.review = Some(ReviewOutcome::ChangesRequested(vec!["again".into()]));
    v.stage_job = Some(j);
    for earlier in 0..3 {
        v.review_rounds = earlier;
        assert!(
            matches!(
                &on_tick(&v, &policy())[..],
                [Effect::Step {
                    to: Stage::Development,
                    ..
                }]
            ),
            "request {} of at most 3 goes back to the developer",
            earlier + 1
        );
    }
    v.review_rounds = 3;
    match &on_tick(&v, &policy())[..] {
        [
            Effect::Step {
                to: Stage::Failed,
                why,
                ..
            },
        ] => assert!(why.contains("4 times (the limit is 3)"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A limit of 1: one round of changes, the second request fails.
    let one = PipelinePolicy {
        max_review_rounds: 1,
        ..policy()
    };
    v.review_rounds = 0;
    assert!(matches!(
        &on_tick(&v, &one)[..],
        [Effect::Step {
            to: Stage::Development,
            ..
        }]
    ));
    v.review_rounds = 1;
    assert!(matches!(
        &on_tick(&v, &one)[..],
        [Effect::Step {
            to: Stage::Failed,
            ..
        }]
    ));
}

#[test]
fn start_on_a_done_or_failed_task_starts_its_item_afresh() {
    for stage in [Stage::Done, Stage::Failed] {
        let v = TaskView::idle(stage);
        assert_eq!(
            on_gate(&v, Gate::Start, None, &policy()),
            vec![Effect::StartAfresh],
            "{stage}"
        );
        // Once a newer task holds the item, the old one starts nothing.
        let mut released = TaskView::idle(stage);
        released.keys_released = true;
        assert!(matches!(
            &on_gate(&released, Gate::Start, None, &policy())[..],
            [Effect::Comment(c)] if c.contains("newer task")
        ));
    }
    // A cancelled task's item starts afresh through the item (its keys are
    // free already); the task itself stays cancelled.
    let mut cancelled = TaskView::idle(Stage::Cancelled);
    cancelled.keys_released = true;
    assert!(matches!(
        &on_gate(&cancelled, Gate::Start, None, &policy())[..],
        [Effect::Comment(_)]
    ));
}

#[test]
fn retry_reopens_a_failed_task_at_the_stage_it_failed_in() {
    let mut v = TaskView::idle(Stage::Failed);
    v.failed_from = Some(Stage::Review);
    match &on_gate(&v, Gate::Retry, Some("one more go"), &policy())[..] {
        [
            Effect::Reopen {
                to: Stage::Review,
                why,
                job: Some(job),
            },
        ] => {
            assert_eq!(job.agent, AgentKind::Reviewer);
            assert_eq!(job.gate_comment.as_deref(), Some("one more go"));
            assert_eq!(why, "one more go");
        }
        other => panic!("{other:?}"),
    }
    // Failed at the approval gate (too many rejections): waits for a person again.
    v.failed_from = Some(Stage::AwaitingApproval);
    assert!(matches!(
        &on_gate(&v, Gate::Retry, None, &policy())[..],
        [Effect::Reopen {
            to: Stage::AwaitingApproval,
            job: None,
            ..
        }]
    ));
    // A retired failed task (its item runs as a newer task) is not reopened.
    v.keys_released = true;
    assert!(matches!(
        &on_gate(&v, Gate::Retry, None, &policy())[..],
        [Effect::Comment(_)]
    ));
}

#[test]
fn an_answer_resumes_the_session_that_asked_in_the_stage_it_asked_in() {
    let mut v = TaskView::idle(Stage::NeedsAttention);
    v.parked_from = Some(Stage::Development);
    v.question = Some(PendingQuestion {
        text: "Which port?".into(),
        session_id: Some("sess-1".into()),
    });
    match &on_gate(&v, Gate::Answer, Some("8080"), &policy())[..] {
        [
            Effect::Step {
                to: Stage::Development,
                kind: EventKind::Answered,
                job: Some(job),
                ..
            },
        ] => {
            assert_eq!(job.agent, AgentKind::Developer);
            assert_eq!(job.resume_session.as_deref(), Some("sess-1"));
            assert_eq!(job.gate_comment.as_deref(), Some("8080"));
        }
        e => panic!("{e:?}"),
    }
    // Without a session the stage's agent starts afresh with the answer.
    v.question.as_mut().unwrap().session_id = None;
    match &on_gate(&v, Gate::Answer, Some("8080"), &policy())[..] {
        [Effect::Step { job: Some(job), .. }] => {
            assert_eq!(job.resume_session, None);
            assert_eq!(job.gate_comment.as_deref(), Some("8080"));
        }
        e => panic!("{e:?}"),
    }
    // No text: nothing resumes.
    let e = on_gate(&v, Gate::Answer, None, &policy());
    assert!(matches!(&e[..], [Effect::Comment(_)]), "{e:?}");
}

#[test]
fn answer_is_refused_without_a_waiting_question() {
    let mut parked = TaskView::idle(Stage::NeedsAttention);
    parked.parked_from = Some(Stage::Development);
    for v in [parked, TaskView::idle(Stage::Development)] {
        let e = on_gate(&v, Gate::Answer, Some("yes"), &policy());
        assert!(
            matches!(&e[..], [Effect::Comment(_)]),
            "{:?}: {e:?}",
            v.stage
        );
    }
}

#[test]
fn retry_resumes_a_parked_task_and_refuses_elsewhere() {
    let mut v = TaskView::idle(Stage::NeedsAttention);
    v.parked_from = Some(Stage::Development);
    assert!(matches!(
        &on_gate(&v, Gate::Retry, None, &policy())[..],
        [Effect::Step {
            to: Stage::Development,
            job: Some(_),
            ..
        }]
    ));
    for stage in [
        Stage::Analysis,
        Stage::Review,
        Stage::Done,
        Stage::Cancelled,
    ] {
        let e = on_gate(&TaskView::idle(stage), Gate::Retry, None, &policy());
        assert!(matches!(&e[..], [Effect::Comment(_)]), "{stage}: {e:?}");
    }
}

#[test]
fn a_dead_dependency_parks_the_task_naming_it() {
    let dead = |stage| DeadDependency {
        task: TaskId(4),
        key: "DEMO-4".into(),
        stage,
    };
    for (dep, words) in [
        (Stage::Failed, "failed"),
        (Stage::Cancelled, "was cancelled"),
    ] {
        // Its analyst is queued, held back by the dependency gate.
        let mut v = TaskView::idle(Stage::Analysis);
        v.has_active_job = true;
        v.dead_dependencies = vec![dead(dep)];
        match &on_tick(&v, &policy())[..] {
            [Effect::Park(why)] => {
                assert!(why.contains(&format!("task 4 (DEMO-4) {words}")), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
    let mut v = TaskView::idle(Stage::Development);
    v.dead_dependencies = vec![dead(Stage::Failed)];
    // A running agent finishes first; a parked task stays parked; without
    // the dependency feature nothing waits on dependencies.
    v.has_active_job = true;
    v.has_running_job = true;
    assert!(on_tick(&v, &policy()).is_empty());
    v.has_running_job = false;
    v.has_active_job = false;
    let off = PipelinePolicy {
        task_deps: false,
        ..policy()
    };
    assert!(!matches!(&on_tick(&v, &off)[..], [Effect::Park(_)]));
    v.stage = Stage::NeedsAttention;
    assert!(on_tick(&v, &policy()).is_empty());
}

#[test]
fn unreadable_verdict_parks_never_approves() {
    let mut v = TaskView::idle(Stage::Review);
    let mut j = done(AgentKind::Reviewer);
    j.review = Some(ReviewOutcome::Unreadable("no verdict".into()));
    v.stage_job = Some(j);
    assert!(matches!(&on_tick(&v, &policy())[..], [Effect::Park(_)]));
}

#[test]
fn tc10_start_mid_pipeline_starts_nothing() {
    for stage in [
        Stage::Development,
        Stage::Review,
        Stage::Merge,
        Stage::Deploy,
        Stage::AwaitingApproval,
    ] {
        let e = on_gate(&TaskView::idle(stage), Gate::Start, None, &policy());
        assert!(matches!(&e[..], [Effect::Comment(_)]), "{stage}: {e:?}");
    }
}

#[test]
fn tc11_start_on_idle_analysis_relaunches_the_analyst() {
    let e = on_gate(
        &TaskView::idle(Stage::Analysis),
        Gate::Start,
        None,
        &policy(),
    );
    match &e[..] {
        [
            Effect::Step {
                to: Stage::Analysis,
                job: Some(j),
                ..
            },
        ] => assert_eq!(j.agent, AgentKind::Analyst),
        other => panic!("{other:?}"),
    }
    let mut busy = TaskView::idle(Stage::Analysis);
    busy.has_active_job = true;
    assert!(matches!(
        &on_gate(&busy, Gate::Start, None, &policy())[..],
        [Effect::Comment(_)]
    ));
}

#[test]
fn merge_needs_the_lease_then_verifies_then_merges() {
    let mut v = TaskView::idle(Stage::Merge);
    assert_eq!(on_tick(&v, &policy()), vec![Effect::AcquireLease]);
    v.holds_lease = true;
    assert!(matches!(
        &on_tick(&v, &policy())[..],
        [Effect::Step {
            job: Some(JobSpec {
                agent: AgentKind::Merger,
                ..
            }),
            ..
        }]
    ));
    v.stage_job = Some(done(AgentKind::Merger));
    assert_eq!(on_tick(&v, &policy()), vec![Effect::Merge]);
    v.merge_initiated = true;
    assert_eq!(on_tick(&v, &policy()), vec![Effect::ResumeMerge]);
}

#[test]
fn deploy_waits_for_confirmation_unless_auto() {
    let p = PipelinePolicy {
        deploy: Some(DeployPolicy {
            has_prepare: true,
            auto: false,
        }),
        ..policy()
    };
    let mut v = TaskView::idle(Stage::Deploy);
    v.holds_lease = true;
    assert!(matches!(
        &on_tick(&v, &p)[..],
        [Effect::Step {
            job: Some(JobSpec {
                phase: Some(DeployPhase::Prepare),
                ..
            }),
            ..
        }]
    ));
    let mut prepared = done(AgentKind::Deployer);
    prepared.phase = Some(DeployPhase::Prepare);
    v.stage_job = Some(prepared);
    assert_eq!(
        on_tick(&v, &p),
        vec![Effect::AskConfirmDeploy],
        "phase A done: ask a person, once"
    );
    v.confirm_deploy_asked = true;
    assert!(on_tick(&v, &p).is_empty(), "parked until Confirm Deploy");
    assert_eq!(
        on_gate(&v, Gate::ConfirmDeploy, None, &p),
        vec![Effect::StartDeployRun]
    );
    let auto = PipelinePolicy {
        deploy: Some(DeployPolicy {
            has_prepare: true,
            auto: true,
        }),
        ..policy()
    };
    assert_eq!(on_tick(&v, &auto), vec![Effect::StartDeployRun]);
    v.deploy_initiated = true;
    let mut ran = done(AgentKind::Deployer);
    ran.phase = Some(DeployPhase::Run);
    v.stage_job = Some(ran.clone());
    assert_eq!(on_tick(&v, &p), vec![Effect::FinishDeploy]);
    // A crash between the finalizer's marker completion and its step: the
    // marker is no longer INITIATED, yet phase B ran; finish, never re-prepare.
    v.deploy_initiated = false;
    assert_eq!(on_tick(&v, &p), vec![Effect::FinishDeploy]);
    ran.status = JobStatus::Failed;
    v.stage_job = Some(ran);
    assert!(matches!(&on_tick(&v, &p)[..], [Effect::DeployFailed(_)]));
}

#[test]
fn a_deferred_cancel_waits_for_the_window_to_close() {
    let mut v = TaskView::idle(Stage::Deploy);
    v.cancel_requested = true;
    v.in_critical_window = true;
    v.has_active_job = true;
    assert!(on_tick(&v, &policy()).is_empty());
    v.in_critical_window = false;
    v.has_active_job = false;
    assert_eq!(on_tick(&v, &policy()), vec![Effect::ApplyDeferredCancel]);
}

#[test]
fn resume_goes_back_where_it_was_parked() {
    let mut v = TaskView::idle(Stage::NeedsAttention);
    v.parked_from = Some(Stage::Development);
    match &on_gate(&v, Gate::Approve, None, &policy())[..] {
        [
            Effect::Step {
                to: Stage::Development,
                job: Some(j),
                ..
            },
        ] => assert_eq!(j.agent, AgentKind::Developer),
        other => panic!("{other:?}"),
    }
    v.parked_from = Some(Stage::Merge);
    assert!(matches!(
        &on_gate(&v, Gate::Start, None, &policy())[..],
        [Effect::Step {
            to: Stage::Merge,
            job: None,
            ..
        }]
    ));
}

fn any_stage() -> impl Strategy<Value = Stage> {
    (0usize..Stage::ALL.len()).prop_map(|i| Stage::ALL[i])
}
fn any_agent() -> impl Strategy<Value = AgentKind> {
    (0usize..AgentKind::ALL.len()).prop_map(|i| AgentKind::ALL[i])
}
fn any_status() -> impl Strategy<Value = JobStatus> {
    (0usize..JobStatus::ALL.len()).prop_map(|i| JobStatus::ALL[i])
}
fn any_gate() -> impl Strategy<Value = Gate> {
    prop_oneof![
        Just(Gate::Start),
        Just(Gate::Approve),
        Just(Gate::Reject),
        Just(Gate::ConfirmDeploy),
        Just(Gate::Retry),
        Just(Gate::Answer)
    ]
}

prop_compose! {
    fn any_view()(stage in any_stage(), active in any::<bool>(), job in proptest::option::of((any_agent(), any_status(), any::<bool>(), 0u8..4)),
                  parked in proptest::option::of(any_stage()), rej in 0u32..5, rev in 0u32..5,
                  lease in any::<bool>(), mi in any::<bool>(), di in any::<bool>(), cr in any::<bool>(), cw in any::<bool>(),
                  running in any::<bool>(), failed_from in proptest::option::of(any_stage()), released in any::<bool>(),
                  dead in proptest::option::of(prop_oneof![Just(Stage::Failed), Just(Stage::Cancelled)]),
                  ci in proptest::option::of(0u8..3), ci_rounds in 0u32..5) -> TaskView {
        TaskView {
            stage,
            has_active_job: active || running,
            has_running_job: running,
            failed_from,
            keys_released: released,
            dead_dependencies: dead.map(|stage| DeadDependency { task: TaskId(9), key: "DEMO-9".into(), stage }).into_iter().collect(),
            stage_job: job.map(|(agent, status, run, r)| StageJob {
                agent, status,
                phase: (agent == AgentKind::Deployer).then_some(if run { DeployPhase::Run } else { DeployPhase::Prepare }),
                review: match r { 0 => None, 1 => Some(ReviewOutcome::Approve), 2 => Some(ReviewOutcome::ChangesRequested(vec!["x".into()])), _ => Some(ReviewOutcome::Unreadable("?".into())) },
                last_error: None,
                attempts: 1,
                budget_spent: false,
            }),
            parked_from: parked, rejections: rej, review_rounds: rev, holds_lease: lease,
            merge_initiated: mi, deploy_initiated: di, cancel_requested: cr, in_critical_window: cw,
            confirm_deploy_asked: false,
            question: None,
            ci: ci.map(|c| match c {
                0 => CiVerdict::Passed,
                1 => CiVerdict::Pending { waiting: vec!["test (running)".into()] },
                _ => CiVerdict::Failed(vec![failed_check("test")]),
            }),
            ci_rounds,
            ci_wait_noted: ci_rounds % 2 == 1,
            people: None,
            approval_wait_noted: false,
        }
    }
}

fn check_effects(view: &TaskView, effects: &[Effect]) -> Result<(), TestCaseError> {
    let mut queued = 0;
    for e in effects {
        if let Effect::Reopen { to, job, .. } = e {
            // Only a failed task is reopened, and only into the pipeline.
            prop_assert!(view.stage.can_retry_to(*to), "{} -> {}", view.stage, to);
            prop_assert!(!view.keys_released, "a released task is never reopened");
            if job.is_some() {
                queued += 1;
                prop_assert!(!view.has_active_job);
            }
        }
        if let Effect::Step { to, job, .. } = e {
            // No event sequence reaches an illegal stage.
            prop_assert!(
                *to == view.stage || view.stage.can_transition_to(*to),
                "{} -> {}",
                view.stage,
                to
            );
            if job.is_some() {
                queued += 1;
                // At most one active job per task.
                prop_assert!(
                    !view.has_active_job,
                    "a job queued beside an active one: {view:?} {e:?}"
                );
                prop_assert!(!to.is_terminal());
            }
        }
    }
    prop_assert!(queued <= 1);
    // Confirm Deploy is asked for in deploy, and once per visit.
    if effects.contains(&Effect::AskConfirmDeploy) {
        prop_assert!(
            view.stage == Stage::Deploy && !view.confirm_deploy_asked,
            "{view:?}"
        );
    }
    // Terminal stages absorb every event: only a person's retry reopens a
    // failed task, and a fresh start makes a new task (this one stays).
    if view.stage.is_terminal() {
        prop_assert!(
            effects.iter().all(|e| match e {
                Effect::Comment(_) => true,
                Effect::StartAfresh => view.stage != Stage::Cancelled && !view.keys_released,
                Effect::Reopen { .. } => view.stage == Stage::Failed,
                _ => false,
            }),
            "{effects:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn ticks_and_gates_keep_the_invariants(view in any_view(), gate in any_gate()) {
        check_effects(&view, &on_tick(&view, &policy()))?;
        check_effects(&view, &on_gate(&view, gate, Some("c"), &policy()))?;
        // A dead dependency never lets a tick queue work.
        if !view.dead_dependencies.is_empty() {
            for e in on_tick(&view, &policy()) {
                prop_assert!(!matches!(e, Effect::Step { job: Some(_), .. }), "{view:?}: {e:?}");
            }
        }
        let p = PipelinePolicy { deploy: Some(DeployPolicy { has_prepare: true, auto: true }), ..policy() };
        check_effects(&view, &on_tick(&view, &p))?;
    }

    /// Drive random gates and ticks through a simulated task: stages stay
    /// legal and the task never holds two active jobs.
    #[test]
    fn random_event_sequences_stay_legal(events in proptest::collection::vec((0u8..7, any::<bool>()), 1..60)) {
        let p = PipelinePolicy { deploy: Some(DeployPolicy { has_prepare: true, auto: false }), ..policy() };
        let mut v = TaskView::idle(Stage::Analysis);
        v.has_active_job = true;
        v.stage_job = Some(StageJob { agent: AgentKind::Analyst, status: JobStatus::Queued, phase: None, review: None, last_error: None, attempts: 1, budget_spent: false });
        for (ev, ok) in events {
            // Through the one entry point the engine uses.
            let dp = crate::decide::Policy { pipeline: p, ..Default::default() };
            let decide = |v: &TaskView, c: crate::decide::Command<'_>| {
                crate::decide::decide(v, &c, &dp).pipeline_effects().expect("gates and ticks decide pipeline effects")
            };
            let gate = |v: &TaskView, gate, comment| decide(v, crate::decide::Command::Gate { gate, comment });
            let effects = match ev {
                0 => gate(&v, Gate::Start, None),
                1 => gate(&v, Gate::Approve, None),
                2 => gate(&v, Gate::Reject, Some("no")),
                3 => gate(&v, Gate::ConfirmDeploy, None),
                6 => gate(&v, Gate::Retry, None),
                4 => {
                    // The active job finishes.
                    if let Some(j) = v.stage_job.as_mut().filter(|_| v.has_active_job) {
                        j.status = if ok { JobStatus::Succeeded } else { JobStatus::Failed };
                        if j.agent == AgentKind::Reviewer && ok {
                            j.review = Some(if v.review_rounds == 0 { ReviewOutcome::ChangesRequested(vec![]) } else { ReviewOutcome::Approve });
                        }
                        v.has_active_job = false;
                    }
                    Vec::new()
                }
                _ => decide(&v, crate::decide::Command::Tick),
            };
            check_effects(&v, &effects)?;
            // Apply the effects the way the engine does.
            for e in effects {
                match e {
                    Effect::Step { to, kind, job, .. } => {
                        if to != v.stage {
                            if to == Stage::NeedsAttention { v.parked_from = Some(v.stage); }
                            if to == Stage::Failed { v.failed_from = Some(v.stage); }
                            v.stage = to;
                            v.stage_job = None;
                            v.confirm_deploy_asked = false;
                        }
                        if kind == EventKind::Rejected { v.rejections += 1; }
                        if kind == EventKind::ChangesRequested { v.review_rounds += 1; }
                        if let Some(j) = job {
                            v.has_active_job = true;
                            v.stage_job = Some(StageJob { agent: j.agent, status: JobStatus::Queued, phase: j.phase, review: None, last_error: None, attempts: 1, budget_spent: false });
                        }
                    }
                    Effect::Park(_) => { v.parked_from = Some(v.stage); v.stage = Stage::NeedsAttention; v.stage_job = None; }
                    Effect::AcquireLease => v.holds_lease = true,
                    Effect::ReleaseLease => v.holds_lease = false,
                    Effect::Merge | Effect::ResumeMerge => {
                        v.merge_initiated = false;
                        v.stage = Stage::Deploy;
                        v.stage_job = None;
                    }
                    Effect::StartDeployRun => {
                        v.deploy_initiated = true;
                        v.has_active_job = true;
                        v.stage_job = Some(StageJob { agent: AgentKind::Deployer, status: JobStatus::Queued, phase: Some(DeployPhase::Run), review: None, last_error: None, attempts: 1, budget_spent: false });
                    }
                    Effect::FinishDeploy => { v.stage = Stage::Done; v.holds_lease = false; v.deploy_initiated = false; }
                    Effect::DeployFailed(_) => { v.deploy_initiated = false; v.parked_from = Some(v.stage); v.stage = Stage::NeedsAttention; v.stage_job = None; }
                    Effect::ApplyDeferredCancel => { v.stage = Stage::Cancelled; }
                    Effect::Comment(_) | Effect::ReportFailedVerify(_) => {}
                    Effect::Begin { job } => {
                        if let Some(j) = job {
                            v.has_active_job = true;
                            v.stage_job = Some(StageJob { agent: j.agent, status: JobStatus::Queued, phase: j.phase, review: None, last_error: None, attempts: 1, budget_spent: false });
                        }
                    }
                    Effect::AskConfirmDeploy => v.confirm_deploy_asked = true,
                    // The old task stays as it is; follow the new one.
                    Effect::StartAfresh => {
                        v = TaskView::idle(Stage::Analysis);
                        v.has_active_job = true;
                        v.stage_job = Some(StageJob { agent: AgentKind::Analyst, status: JobStatus::Queued, phase: None, review: None, last_error: None, attempts: 1, budget_spent: false });
                    }
                    Effect::Reopen { to, job, .. } => {
                        v.stage = to;
                        v.stage_job = None;
                        v.rejections = 0;
                        v.review_rounds = 0;
                        if let Some(j) = job {
                            v.has_active_job = true;
                            v.stage_job = Some(StageJob { agent: j.agent, status: JobStatus::Queued, phase: j.phase, review: None, last_error: None, attempts: 1, budget_spent: false });
                        }
                    }
                }
            }
            prop_assert!(Stage::ALL.contains(&v.stage));
        }
    }
}

fn failed_check(name: &str) -> crate::ci::Check {
    crate::ci::Check {
        name: name.into(),
        state: crate::ci::CheckState::Failure,
        conclusion: "failure".into(),
        detail: "assertion failed: login works".into(),
        url: None,
    }
}

/// Issue 16: the merge gate looks at the required checks before it takes
/// the lease: pending waits (said once), passed goes on, failed sends the
/// work back with the failure, and past `max_ci_rounds` it parks.
#[test]
fn the_merge_gate_waits_for_required_checks_and_sends_failures_back() {
    let mut v = TaskView::idle(Stage::Merge);
    v.ci = Some(CiVerdict::Pending {
        waiting: vec!["test (not reported yet)".into()],
    });
    match &on_tick(&v, &policy())[..] {
        [
            Effect::Step {
                to: Stage::Merge,
                kind: EventKind::CiPending,
                why,
                job: None,
            },
        ] => assert!(why.contains("test (not reported yet)"), "{why}"),
        other => panic!("{other:?}"),
    }
    v.ci_wait_noted = true;
    assert!(on_tick(&v, &policy()).is_empty(), "said once, then quiet");

    v.ci = Some(CiVerdict::Passed);
    assert_eq!(on_tick(&v, &policy()), vec![Effect::AcquireLease]);

    v.ci = Some(CiVerdict::Failed(vec![failed_check("ci / test")]));
    match &on_tick(&v, &policy())[..] {
        [
            Effect::Step {
                to: Stage::Development,
                kind: EventKind::CiFailed,
                job: Some(j),
                ..
            },
        ] => {
            assert_eq!(j.agent, AgentKind::Developer);
            assert_eq!(j.ci_failures.len(), 1);
            assert!(j.ci_failures[0].contains("assertion failed: login works"));
        }
        other => panic!("{other:?}"),
    }
    let bounded = PipelinePolicy {
        max_ci_rounds: 1,
        ..policy()
    };
    v.ci_rounds = 1;
    match &on_tick(&v, &bounded)[..] {
        [Effect::Park(why)] => {
            assert!(why.contains("max_ci_rounds = 1"), "{why}");
            assert!(why.contains("assertion failed: login works"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // With the lease held (or no required checks) the gate is past CI.
    v.holds_lease = true;
    assert!(matches!(
        &on_tick(&v, &bounded)[..],
        [Effect::Step {
            job: Some(JobSpec {
                agent: AgentKind::Merger,
                ..
            }),
            ..
        }]
    ));
}

fn person(verdict: crate::people::ReviewVerdict) -> crate::people::PersonReview {
    crate::people::PersonReview {
        author: "ann".into(),
        verdict,
        body: "please handle the empty password".into(),
        commit: "head".into(),
        comments: vec![crate::people::ReviewComment {
            path: "src/login.rs".into(),
            line: Some(12),
            body: "here".into(),
        }],
    }
}

/// Issue 16 point 3: a person's change request on the head goes back to the
/// developer with the review's comments (a review round; past the bound it
/// parks); `required` waits for a person's approval; `enough` lets it
/// override the reviewer agent's change request.
#[test]
fn people_on_the_pull_request_steer_the_merge_gate_and_the_review() {
    use crate::people::{HumanApproval, PeopleSay, ReviewVerdict};
    let mut v = TaskView::idle(Stage::Merge);
    v.people = Some(PeopleSay {
        changes: Some(person(ReviewVerdict::ChangesRequested)),
        approved_by: None,
    });
    v.ci = Some(CiVerdict::Pending { waiting: vec![] });
    match &on_tick(&v, &policy())[..] {
        [
            Effect::Step {
                to: Stage::Development,
                kind: EventKind::ChangesRequested,
                job: Some(j),
                why,
            },
        ] => {
            assert!(why.contains("ann asked for changes"), "{why}");
            assert_eq!(
                j.reviewer_comments,
                vec![
                    "ann (review on the pull request): please handle the empty password".to_owned(),
                    "ann on src/login.rs:12: here".to_owned()
                ]
            );
        }
        other => panic!("{other:?}"),
    }
    v.review_rounds = 3;
    assert!(
        matches!(&on_tick(&v, &policy())[..], [Effect::Park(why)] if why.contains("max_review_rounds = 3"))
    );

    // Required: no approval yet waits (said once); an approval lets it go.
    let required = PipelinePolicy {
        human_approval: HumanApproval::Required,
        ..policy()
    };
    v.people = Some(PeopleSay::default());
    v.ci = None;
    assert!(matches!(
        &on_tick(&v, &required)[..],
        [Effect::Step {
            kind: EventKind::ApprovalPending,
            to: Stage::Merge,
            job: None,
            ..
        }]
    ));
    v.approval_wait_noted = true;
    assert!(on_tick(&v, &required).is_empty());
    v.people = Some(PeopleSay {
        changes: None,
        approved_by: Some("ann".into()),
    });
    assert_eq!(on_tick(&v, &required), vec![Effect::AcquireLease]);
    assert_eq!(on_tick(&v, &policy()), vec![Effect::AcquireLease]);

    // Enough: the person's approval wins over the reviewer agent's request.
    let enough = PipelinePolicy {
        human_approval: HumanApproval::Enough,
        ..policy()
    };
    let mut r = TaskView::idle(Stage::Review);
    r.stage_job = Some(StageJob {
        review: Some(ReviewOutcome::ChangesRequested(vec!["x".into()])),
        ..done(AgentKind::Reviewer)
    });
    r.people = v.people.clone();
    assert!(matches!(
        &on_tick(&r, &enough)[..],
        [Effect::Step {
            to: Stage::Merge,
            kind: EventKind::ReviewApproved,
            ..
        }]
    ));
    assert!(matches!(
        &on_tick(&r, &policy())[..],
        [Effect::Step {
            to: Stage::Development,
            kind: EventKind::ChangesRequested,
            ..
        }]
    ));
}
