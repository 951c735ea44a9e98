//! The pipeline's decisions (R-1…R-8a) as pure functions of a task's view.
//!
//! ```text
//! gate (person)  ──▶ on_gate(view, gate)  ──▶ effects
//! tick (a run ended, a restart, a timer) ──▶ on_tick(view) ──▶ effects
//! ```
//!
//! `on_tick` is level-triggered: it looks at the task's stage and the jobs
//! created since the task entered that stage, and says what is due. A run
//! report that was lost in a crash is therefore never lost work: the next tick
//! sees the finished job and takes the same step. Every effect that moves a
//! task names the stage it expects the task to be in, so a step taken twice
//! (two ticks racing) fails the second time instead of repeating.
//!
//! STOP is not decided here but in [`crate::cancel`]: it has its own result
//! notes and its critical-window rule.

use crate::job::{AgentKind, JobStatus};
use crate::stage::Stage;
use serde::{Deserialize, Serialize};

/// A person's decision at a gate, from the tracker, the CLI or the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// "To Analyse": start the pipeline, or resume a parked task.
    Start,
    Approve,
    Reject,
    ConfirmDeploy,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Start => "start",
            Gate::Approve => "approve",
            Gate::Reject => "reject",
            Gate::ConfirmDeploy => "confirm_deploy",
        }
    }
}

/// The two phases of a deploy (R-7): `prepare` is reversible, `run` is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployPhase {
    Prepare,
    Run,
}

/// What the reviewer decided, as read from its final message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReviewOutcome {
    Approve,
    ChangesRequested(Vec<String>),
    /// No verdict could be read: never a silent approve.
    Unreadable(String),
}

/// The newest job created since the task entered its current stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageJob {
    pub agent: AgentKind,
    pub status: JobStatus,
    pub phase: Option<DeployPhase>,
    /// For a succeeded reviewer job.
    pub review: Option<ReviewOutcome>,
    pub last_error: Option<String>,
}

/// Everything the decisions look at, gathered by the engine from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub stage: Stage,
    /// A queued or running job exists.
    pub has_active_job: bool,
    pub stage_job: Option<StageJob>,
    /// The stage a parked task (`needs_attention`) came from.
    pub parked_from: Option<Stage>,
    /// Rejections at the analysis gate so far.
    pub rejections: u32,
    /// Reviews that asked for changes so far.
    pub review_rounds: u32,
    pub holds_lease: bool,
    pub merge_initiated: bool,
    pub deploy_initiated: bool,
    /// STOP arrived during a critical window and waits for it to end.
    pub cancel_requested: bool,
    /// Whether the task is in a critical window now (see `cancel`).
    pub in_critical_window: bool,
}

impl TaskView {
    /// A fresh view of a task in `stage` with nothing going on.
    pub fn idle(stage: Stage) -> TaskView {
        TaskView {
            stage,
            has_active_job: false,
            stage_job: None,
            parked_from: None,
            rejections: 0,
            review_rounds: 0,
            holds_lease: false,
            merge_initiated: false,
            deploy_initiated: false,
            cancel_requested: false,
            in_critical_window: false,
        }
    }
}

/// The repo's deploy stage, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployPolicy {
    pub has_prepare: bool,
    /// Run phase B without waiting for Confirm Deploy.
    pub auto: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelinePolicy {
    pub max_review_rounds: u32,
    pub max_rejection_rounds: u32,
    pub deploy: Option<DeployPolicy>,
}

impl Default for PipelinePolicy {
    fn default() -> Self {
        PipelinePolicy {
            max_review_rounds: 3,
            max_rejection_rounds: 3,
            deploy: None,
        }
    }
}

/// A job to queue, with the input its prompt needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    pub agent: AgentKind,
    pub phase: Option<DeployPhase>,
    /// The person's comment at the gate (approval or rejection).
    pub gate_comment: Option<String>,
    /// The reviewer's comments for a changes-requested round.
    pub reviewer_comments: Vec<String>,
}

impl JobSpec {
    pub fn new(agent: AgentKind) -> JobSpec {
        JobSpec {
            agent,
            phase: None,
            gate_comment: None,
            reviewer_comments: Vec::new(),
        }
    }

    fn with_comment(mut self, c: Option<&str>) -> JobSpec {
        self.gate_comment = c.map(str::to_owned);
        self
    }

    fn deploy(phase: DeployPhase) -> JobSpec {
        JobSpec {
            phase: Some(phase),
            ..JobSpec::new(AgentKind::Deployer)
        }
    }
}

/// What the engine must do. Effects are carried out in order; the first that
/// fails stops the rest (the next tick picks up from the state it left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Move from the view's stage to `to` (or stay, when `to` is the same
    /// stage), log `kind`/`why`, and queue `job` — all in one transaction.
    Step {
        to: Stage,
        kind: &'static str,
        why: String,
        job: Option<JobSpec>,
    },
    /// A note on the tracker item and in the task's log; nothing moves.
    Comment(String),
    /// Take the repo's merge lease (the engine re-ticks when it gets it).
    AcquireLease,
    /// The merger's verify passed: push, then merge the verified head under an
    /// INITIATED marker, then go on to deploy or done.
    Merge,
    /// An INITIATED merge marker exists: finish that merge or prove it done.
    ResumeMerge,
    /// Write the INITIATED deploy marker, then queue phase B.
    StartDeployRun,
    /// Phase B succeeded: health check, complete the marker, release the
    /// lease, `done`, apply a deferred cancel.
    FinishDeploy,
    /// Phase B failed: abandon the marker and park the task for a person.
    DeployFailed(String),
    /// A STOP that waited for a critical window: apply it now (force).
    ApplyDeferredCancel,
    ReleaseLease,
    /// Park the task in `needs_attention` for a person (R-8a).
    Park(String),
}

/// The agent that works in a stage, if any.
pub fn stage_agent(stage: Stage) -> Option<AgentKind> {
    match stage {
        Stage::Analysis => Some(AgentKind::Analyst),
        Stage::Development => Some(AgentKind::Developer),
        Stage::Review => Some(AgentKind::Reviewer),
        Stage::Merge => Some(AgentKind::Merger),
        Stage::Deploy => Some(AgentKind::Deployer),
        _ => None,
    }
}

fn step(to: Stage, kind: &'static str, why: impl Into<String>, job: Option<JobSpec>) -> Effect {
    Effect::Step {
        to,
        kind,
        why: why.into(),
        job,
    }
}

/// A person's gate decision (R-3, R-7, R-8, R-8a).
pub fn on_gate(
    view: &TaskView,
    gate: Gate,
    comment: Option<&str>,
    policy: &PipelinePolicy,
) -> Vec<Effect> {
    let effects = gate_effects(view, gate, comment, policy);
    let queues = effects
        .iter()
        .any(|e| matches!(e, Effect::Step { job: Some(_), .. }));
    if queues && view.has_active_job {
        // One job per task: a gate never queues beside a running agent.
        return vec![Effect::Comment(format!(
            "{} is not applied: an agent of this task is still queued or running; try again when it ends, or STOP the task.",
            gate.as_str()
        ))];
    }
    effects
}

fn gate_effects(
    view: &TaskView,
    gate: Gate,
    comment: Option<&str>,
    policy: &PipelinePolicy,
) -> Vec<Effect> {
    let stage = view.stage;
    if stage.is_terminal() {
        return vec![Effect::Comment(format!(
            "The task is {stage}; {} changes nothing.",
            gate.as_str()
        ))];
    }
    match (gate, stage) {
        (Gate::Start | Gate::Approve, Stage::NeedsAttention) => resume(view, comment),
        // R-8 / TC-11: an idle analysis is relaunched; a busy one is left alone.
        (Gate::Start, Stage::Analysis) if !view.has_active_job => vec![step(
            Stage::Analysis,
            "relaunched",
            "To Analyse on an idle analysis: the analyst runs again",
            Some(JobSpec::new(AgentKind::Analyst).with_comment(comment)),
        )],
        // R-8 / TC-10: the relaunch hole is closed mid-pipeline.
        (Gate::Start, _) => vec![Effect::Comment(format!(
            "The task is already in {stage}; To Analyse starts nothing. STOP it first to start afresh."
        ))],
        (Gate::Approve, Stage::AwaitingApproval) => vec![step(
            Stage::Development,
            "approved",
            comment.unwrap_or("analysis approved"),
            Some(JobSpec::new(AgentKind::Developer).with_comment(comment)),
        )],
        (Gate::Reject, Stage::AwaitingApproval) => {
            if view.rejections + 1 > policy.max_rejection_rounds {
                vec![step(
                    Stage::Failed,
                    "rejected",
                    format!(
                        "analysis rejected {} times (the limit is {}): the task failed",
                        view.rejections + 1,
                        policy.max_rejection_rounds
                    ),
                    None,
                )]
            } else {
                vec![step(
                    Stage::Analysis,
                    "rejected",
                    comment.unwrap_or("analysis rejected"),
                    Some(JobSpec::new(AgentKind::Analyst).with_comment(comment)),
                )]
            }
        }
        (Gate::ConfirmDeploy, Stage::Deploy) => {
            if deploy_prepared(view, policy) && !view.deploy_initiated && !view.has_active_job {
                vec![Effect::StartDeployRun]
            } else {
                vec![Effect::Comment(
                    "Confirm Deploy: the deploy is not waiting for confirmation (still preparing, or already running)."
                        .into(),
                )]
            }
        }
        (g, _) => vec![Effect::Comment(format!(
            "The task is in {stage}; {} does not apply there.",
            g.as_str()
        ))],
    }
}

/// Start/Approve on a parked task: back to the stage it came from, with that
/// stage's agent queued again where the stage has one that a tick would not
/// queue by itself.
fn resume(view: &TaskView, comment: Option<&str>) -> Vec<Effect> {
    let to = view.parked_from.unwrap_or(Stage::Analysis);
    let to = if to.is_terminal() || to == Stage::NeedsAttention {
        Stage::Analysis
    } else {
        to
    };
    let job = match to {
        Stage::Analysis | Stage::Development | Stage::Review => {
            stage_agent(to).map(|a| JobSpec::new(a).with_comment(comment))
        }
        // Merge and deploy need the lease first; the tick queues their jobs.
        _ => None,
    };
    vec![step(
        to,
        "resumed",
        comment.unwrap_or("resumed by a person"),
        job,
    )]
}

fn deploy_prepared(view: &TaskView, policy: &PipelinePolicy) -> bool {
    let Some(d) = policy.deploy else { return false };
    match &view.stage_job {
        Some(j) => {
            j.agent == AgentKind::Deployer
                && j.phase == Some(DeployPhase::Prepare)
                && j.status == JobStatus::Succeeded
        }
        None => !d.has_prepare,
    }
}

/// What is due for the task now (level-triggered; see the module docs).
pub fn on_tick(view: &TaskView, policy: &PipelinePolicy) -> Vec<Effect> {
    let stage = view.stage;
    if stage.is_terminal() {
        return Vec::new();
    }
    if view.cancel_requested && !view.in_critical_window {
        return vec![Effect::ApplyDeferredCancel];
    }
    if view.has_active_job {
        return Vec::new();
    }
    let job = view.stage_job.as_ref();
    let failed = |j: &StageJob| {
        format!(
            "the {} gave up: {}",
            j.agent,
            j.last_error.as_deref().unwrap_or("no attempts left")
        )
    };
    match stage {
        Stage::AwaitingApproval => Vec::new(),
        Stage::NeedsAttention => {
            if view.holds_lease && !view.merge_initiated && !view.deploy_initiated {
                vec![Effect::ReleaseLease]
            } else {
                Vec::new()
            }
        }
        Stage::Analysis | Stage::Development | Stage::Review => {
            let agent = stage_agent(stage).expect("work stages have an agent");
            match job.filter(|j| j.agent == agent) {
                Some(j) if j.status == JobStatus::Succeeded => finished_work(view, j, policy),
                Some(j) if j.status == JobStatus::Failed => vec![Effect::Park(failed(j))],
                // Cancelled only by a STOP (the task is then terminal) or a
                // deferred STOP; nothing to do either way.
                Some(j) if j.status == JobStatus::Cancelled => Vec::new(),
                _ => vec![step(
                    stage,
                    "queued",
                    format!("{agent} queued"),
                    Some(JobSpec::new(agent)),
                )],
            }
        }
        Stage::Merge => {
            if view.merge_initiated {
                return vec![Effect::ResumeMerge];
            }
            if !view.holds_lease {
                return vec![Effect::AcquireLease];
            }
            match job.filter(|j| j.agent == AgentKind::Merger) {
                Some(j) if j.status == JobStatus::Succeeded => vec![Effect::Merge],
                Some(j) if j.status == JobStatus::Failed => vec![Effect::Park(failed(j))],
                Some(j) if j.status == JobStatus::Cancelled => Vec::new(),
                _ => vec![step(
                    Stage::Merge,
                    "queued",
                    "merge lease held: verifying the branch",
                    Some(JobSpec::new(AgentKind::Merger)),
                )],
            }
        }
        Stage::Deploy => deploy_tick(view, policy),
        Stage::Done | Stage::Cancelled | Stage::Failed => Vec::new(),
    }
}

fn deploy_tick(view: &TaskView, policy: &PipelinePolicy) -> Vec<Effect> {
    let job = view
        .stage_job
        .as_ref()
        .filter(|j| j.agent == AgentKind::Deployer);
    // Phase B ended: finish it, whether or not its marker is still INITIATED
    // (the finalizer completes the marker before it moves the task, and a
    // crash may fall in between; phase A must never run again then).
    if let Some(j) = job.filter(|j| j.phase == Some(DeployPhase::Run)) {
        return match j.status {
            JobStatus::Succeeded => vec![Effect::FinishDeploy],
            JobStatus::Failed => vec![Effect::DeployFailed(
                j.last_error
                    .clone()
                    .unwrap_or_else(|| "deploy failed".into()),
            )],
            _ => Vec::new(),
        };
    }
    if view.deploy_initiated {
        // The marker was written but the crash came before phase B was queued.
        return vec![step(
            Stage::Deploy,
            "queued",
            "deploy phase B queued",
            Some(JobSpec::deploy(DeployPhase::Run)),
        )];
    }
    if !view.holds_lease {
        return vec![Effect::AcquireLease];
    }
    let Some(d) = policy.deploy else {
        // The repo's deploy was removed from the config meanwhile: nothing to run.
        return vec![step(Stage::Done, "done", "no deploy configured", None)];
    };
    match job {
        Some(j) if j.phase == Some(DeployPhase::Prepare) => match j.status {
            JobStatus::Succeeded if d.auto => vec![Effect::StartDeployRun],
            // Parked until Confirm Deploy (D7: this is NOT a critical window).
            JobStatus::Succeeded => Vec::new(),
            JobStatus::Failed => vec![Effect::Park(format!(
                "deploy phase A failed: {}",
                j.last_error.as_deref().unwrap_or("no attempts left")
            ))],
            _ => Vec::new(),
        },
        _ if !d.has_prepare => {
            if d.auto {
                vec![Effect::StartDeployRun]
            } else {
                Vec::new()
            }
        }
        _ => vec![step(
            Stage::Deploy,
            "queued",
            "deploy phase A queued",
            Some(JobSpec::deploy(DeployPhase::Prepare)),
        )],
    }
}

/// The stage's agent succeeded: the next step of the pipeline.
fn finished_work(view: &TaskView, j: &StageJob, policy: &PipelinePolicy) -> Vec<Effect> {
    match view.stage {
        Stage::Analysis => vec![step(
            Stage::AwaitingApproval,
            "analysed",
            "analysis ready: approve or reject it",
            None,
        )],
        Stage::Development => vec![step(
            Stage::Review,
            "developed",
            "development done: review queued",
            Some(JobSpec::new(AgentKind::Reviewer)),
        )],
        Stage::Review => match &j.review {
            Some(ReviewOutcome::Approve) => vec![step(
                Stage::Merge,
                "review_approved",
                "the reviewer approved: on to the merge gate",
                None,
            )],
            Some(ReviewOutcome::ChangesRequested(comments)) => {
                let round = view.review_rounds + 1;
                if round >= policy.max_review_rounds.max(1) {
                    vec![step(
                        Stage::Failed,
                        "changes_requested",
                        format!(
                            "the reviewer asked for changes {round} times (the limit is {}): the task failed",
                            policy.max_review_rounds
                        ),
                        None,
                    )]
                } else {
                    let mut spec = JobSpec::new(AgentKind::Developer);
                    spec.reviewer_comments = comments.clone();
                    vec![step(
                        Stage::Development,
                        "changes_requested",
                        format!("review round {round}: changes requested"),
                        Some(spec),
                    )]
                }
            }
            Some(ReviewOutcome::Unreadable(why)) => {
                vec![Effect::Park(format!(
                    "the reviewer gave no readable verdict: {why}"
                ))]
            }
            None => vec![Effect::Park("the reviewer gave no verdict".into())],
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(agent: AgentKind) -> StageJob {
        StageJob {
            agent,
            status: JobStatus::Succeeded,
            phase: None,
            review: None,
            last_error: None,
        }
    }

    fn policy() -> PipelinePolicy {
        PipelinePolicy::default()
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
                kind: "rejected",
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
        v.review_rounds = 2;
        assert!(matches!(
            &on_tick(&v, &policy())[..],
            [Effect::Step {
                to: Stage::Failed,
                ..
            }]
        ));
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
            Just(Gate::ConfirmDeploy)
        ]
    }

    prop_compose! {
        fn any_view()(stage in any_stage(), active in any::<bool>(), job in proptest::option::of((any_agent(), any_status(), any::<bool>(), 0u8..4)),
                      parked in proptest::option::of(any_stage()), rej in 0u32..5, rev in 0u32..5,
                      lease in any::<bool>(), mi in any::<bool>(), di in any::<bool>(), cr in any::<bool>(), cw in any::<bool>()) -> TaskView {
            TaskView {
                stage,
                has_active_job: active,
                stage_job: job.map(|(agent, status, run, r)| StageJob {
                    agent, status,
                    phase: (agent == AgentKind::Deployer).then_some(if run { DeployPhase::Run } else { DeployPhase::Prepare }),
                    review: match r { 0 => None, 1 => Some(ReviewOutcome::Approve), 2 => Some(ReviewOutcome::ChangesRequested(vec!["x".into()])), _ => Some(ReviewOutcome::Unreadable("?".into())) },
                    last_error: None,
                }),
                parked_from: parked, rejections: rej, review_rounds: rev, holds_lease: lease,
                merge_initiated: mi, deploy_initiated: di, cancel_requested: cr, in_critical_window: cw,
            }
        }
    }

    fn check_effects(view: &TaskView, effects: &[Effect]) -> Result<(), TestCaseError> {
        let mut queued = 0;
        for e in effects {
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
        // Terminal stages absorb every event.
        if view.stage.is_terminal() {
            prop_assert!(
                effects.iter().all(|e| matches!(e, Effect::Comment(_))),
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
            let p = PipelinePolicy { deploy: Some(DeployPolicy { has_prepare: true, auto: true }), ..policy() };
            check_effects(&view, &on_tick(&view, &p))?;
        }

        /// Drive random gates and ticks through a simulated task: stages stay
        /// legal and the task never holds two active jobs.
        #[test]
        fn random_event_sequences_stay_legal(events in proptest::collection::vec((0u8..6, any::<bool>()), 1..60)) {
            let p = PipelinePolicy { deploy: Some(DeployPolicy { has_prepare: true, auto: false }), ..policy() };
            let mut v = TaskView::idle(Stage::Analysis);
            v.has_active_job = true;
            v.stage_job = Some(StageJob { agent: AgentKind::Analyst, status: JobStatus::Queued, phase: None, review: None, last_error: None });
            for (ev, ok) in events {
                let effects = match ev {
                    0 => on_gate(&v, Gate::Start, None, &p),
                    1 => on_gate(&v, Gate::Approve, None, &p),
                    2 => on_gate(&v, Gate::Reject, Some("no"), &p),
                    3 => on_gate(&v, Gate::ConfirmDeploy, None, &p),
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
                    _ => on_tick(&v, &p),
                };
                check_effects(&v, &effects)?;
                // Apply the effects the way the engine does.
                for e in effects {
                    match e {
                        Effect::Step { to, kind, job, .. } => {
                            if to != v.stage {
                                if to == Stage::NeedsAttention { v.parked_from = Some(v.stage); }
                                v.stage = to;
                                v.stage_job = None;
                            }
                            if kind == "rejected" { v.rejections += 1; }
                            if kind == "changes_requested" { v.review_rounds += 1; }
                            if let Some(j) = job {
                                v.has_active_job = true;
                                v.stage_job = Some(StageJob { agent: j.agent, status: JobStatus::Queued, phase: j.phase, review: None, last_error: None });
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
                            v.stage_job = Some(StageJob { agent: AgentKind::Deployer, status: JobStatus::Queued, phase: Some(DeployPhase::Run), review: None, last_error: None });
                        }
                        Effect::FinishDeploy => { v.stage = Stage::Done; v.holds_lease = false; v.deploy_initiated = false; }
                        Effect::DeployFailed(_) => { v.deploy_initiated = false; v.parked_from = Some(v.stage); v.stage = Stage::NeedsAttention; v.stage_job = None; }
                        Effect::ApplyDeferredCancel => { v.stage = Stage::Cancelled; }
                        Effect::Comment(_) => {}
                    }
                }
                prop_assert!(Stage::ALL.contains(&v.stage));
            }
        }
    }
}
