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

use crate::ci::CiVerdict;
use crate::event::EventKind;
use crate::ids::TaskId;
use crate::job::{AgentKind, JobStatus};
use crate::people::{HumanApproval, PeopleSay};
use crate::stage::Stage;
use serde::{Deserialize, Serialize};

/// A person's decision at a gate, from the tracker, the CLI or the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    /// "To Analyse": start the pipeline, resume a parked task, or start a
    /// done or failed task's item afresh as a new task.
    Start,
    Approve,
    Reject,
    ConfirmDeploy,
    /// `orch task retry`: resume a parked or failed task at the stage it
    /// stopped in.
    Retry,
    /// `orch task answer`: a person's answer to the question an agent asked;
    /// the agent's session resumes with it.
    Answer,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Start => "start",
            Gate::Approve => "approve",
            Gate::Reject => "reject",
            Gate::ConfirmDeploy => "confirm_deploy",
            Gate::Retry => "retry",
            Gate::Answer => "answer",
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
    /// The attempts it made (a failed job: all it had, or fewer when its
    /// budget ran out or it asked a person).
    pub attempts: u32,
    /// A failed job whose last run hit the task's budget (R-17): its error
    /// is the park's whole reason.
    pub budget_spent: bool,
}

/// A dependency that can never be done: it failed or was cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadDependency {
    pub task: TaskId,
    /// Its work item key.
    pub key: String,
    pub stage: Stage,
}

/// Everything the decisions look at, gathered by the engine from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    pub stage: Stage,
    /// A queued or running job exists.
    pub has_active_job: bool,
    /// A running job exists (an agent is at work right now).
    pub has_running_job: bool,
    pub stage_job: Option<StageJob>,
    /// The stage a parked task (`needs_attention`) came from.
    pub parked_from: Option<Stage>,
    /// The stage a failed task failed in.
    pub failed_from: Option<Stage>,
    /// The task's tracker keys were released (a cancel, or its item started
    /// afresh as a newer task): it no longer stands for its item.
    pub keys_released: bool,
    /// Dependencies that failed or were cancelled (R-11: a dependent waits
    /// until its dependencies are done, so it would wait forever).
    pub dead_dependencies: Vec<DeadDependency>,
    /// Rejections at the analysis gate so far (since the last retry).
    pub rejections: u32,
    /// Reviews that asked for changes so far (since the last retry).
    pub review_rounds: u32,
    pub holds_lease: bool,
    pub merge_initiated: bool,
    pub deploy_initiated: bool,
    /// STOP arrived during a critical window and waits for it to end.
    pub cancel_requested: bool,
    /// Whether the task is in a critical window now (see `cancel`).
    pub in_critical_window: bool,
    /// Since it entered `deploy`, the task asked for Confirm Deploy.
    pub confirm_deploy_asked: bool,
    /// The task is parked on an agent's question nobody answered yet.
    pub question: Option<PendingQuestion>,
    /// The repo's required CI checks on the task's head, when the merge gate
    /// needs them (in merge, before the lease); `None` when the repo
    /// requires none or the gate is past them.
    pub ci: Option<CiVerdict>,
    /// CI failures that sent the task back so far (since the last retry).
    pub ci_rounds: u32,
    /// Since it entered its stage, the task said it waits for CI.
    pub ci_wait_noted: bool,
    /// What people said on the pull request about the task's head, when a
    /// decision needs it (the merge gate before the lease; a review that
    /// asked for changes under `human_approval = "enough"`).
    pub people: Option<PeopleSay>,
    /// Since it entered its stage, the task said it waits for a person's
    /// approval.
    pub approval_wait_noted: bool,
}

/// An agent's question a parked task waits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingQuestion {
    pub text: String,
    /// The session of the run that asked, when its output named one: the
    /// answer resumes it; without it the stage's agent starts afresh with
    /// the answer in its prompt.
    pub session_id: Option<String>,
}

impl TaskView {
    /// A fresh view of a task in `stage` with nothing going on.
    pub fn idle(stage: Stage) -> TaskView {
        TaskView {
            stage,
            has_active_job: false,
            has_running_job: false,
            stage_job: None,
            parked_from: None,
            failed_from: None,
            keys_released: false,
            dead_dependencies: Vec::new(),
            rejections: 0,
            review_rounds: 0,
            holds_lease: false,
            merge_initiated: false,
            deploy_initiated: false,
            cancel_requested: false,
            in_critical_window: false,
            confirm_deploy_asked: false,
            question: None,
            ci: None,
            ci_rounds: 0,
            ci_wait_noted: false,
            people: None,
            approval_wait_noted: false,
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
    /// Changes requested more often than this fail the task (R-5).
    pub max_review_rounds: u32,
    /// Analysis rejected more often than this fails the task (R-3).
    pub max_rejection_rounds: u32,
    /// Required CI checks failing more often than this park the task for a
    /// person with the last failure (issue 16).
    pub max_ci_rounds: u32,
    /// How a person's approving review on the pull request counts.
    pub human_approval: HumanApproval,
    pub deploy: Option<DeployPolicy>,
    /// `features.task_deps`: dependencies hold a task back (and a dead one
    /// parks it).
    pub task_deps: bool,
}

impl Default for PipelinePolicy {
    fn default() -> Self {
        PipelinePolicy {
            max_review_rounds: 3,
            max_rejection_rounds: 3,
            max_ci_rounds: 3,
            human_approval: HumanApproval::Ignored,
            deploy: None,
            task_deps: true,
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
    /// The failed required CI checks that sent the work back, as the
    /// developer reads them ([`crate::ci::failure_text`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ci_failures: Vec<String>,
    /// Resume this agent session (Claude `session_id`, Codex `thread_id`)
    /// with the person's answer (`gate_comment`) instead of a fresh prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_session: Option<String>,
}

impl JobSpec {
    pub fn new(agent: AgentKind) -> JobSpec {
        JobSpec {
            agent,
            phase: None,
            gate_comment: None,
            reviewer_comments: Vec::new(),
            ci_failures: Vec::new(),
            resume_session: None,
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
        kind: EventKind,
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
    /// The merge gate gave up: the forge shows why on the branch's head.
    ReportFailedVerify(String),
    /// A new task's first move: log its start (and tell the tracker) in
    /// `analysis`, queueing `job` with it when one is given.
    Begin {
        job: Option<JobSpec>,
    },
    /// Deploy phase A is done and phase B waits for a person: say so once, in
    /// the task's log, on the tracker and to the webhooks.
    AskConfirmDeploy,
    /// To Analyse on a done or failed task: its tracker keys are released
    /// (its history stays) and a fresh task starts for its item (R-1).
    StartAfresh,
    /// A person retries a failed task: back to `to` (the stage it failed
    /// in), log `why`, and queue `job` — one transaction, like `Step`.
    Reopen {
        to: Stage,
        why: String,
        job: Option<JobSpec>,
    },
}

/// R-4: an agent commits; orch pushes (and commits its leftovers) when its
/// work is done. A move from `from` to `to` hands over the work of the
/// agent returned: the developer's before the review, the analyst's before
/// approval, so the forge shows what people decide on.
pub fn hands_over(from: Stage, to: Stage) -> Option<AgentKind> {
    match (from, to) {
        (Stage::Development, Stage::Review) => Some(AgentKind::Developer),
        (Stage::Analysis, Stage::AwaitingApproval) => Some(AgentKind::Analyst),
        _ => None,
    }
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

fn step(to: Stage, kind: EventKind, why: impl Into<String>, job: Option<JobSpec>) -> Effect {
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
    let queues = effects.iter().any(|e| {
        matches!(
            e,
            Effect::Step { job: Some(_), .. } | Effect::Reopen { job: Some(_), .. }
        )
    });
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
    match (gate, stage) {
        // A done or failed item runs again as a new task; the old one keeps
        // its history under released keys.
        (Gate::Start, Stage::Done | Stage::Failed) if !view.keys_released => {
            return vec![Effect::StartAfresh];
        }
        (Gate::Retry, Stage::Failed) if !view.keys_released => {
            return retry_failed(view, comment);
        }
        _ => {}
    }
    if stage.is_terminal() {
        let why = if view.keys_released && stage != Stage::Cancelled {
            " (its item was started afresh as a newer task: act on that one)"
        } else {
            ""
        };
        return vec![Effect::Comment(format!(
            "The task is {stage}; {} changes nothing{why}.",
            gate.as_str()
        ))];
    }
    match (gate, stage) {
        (Gate::Answer, Stage::NeedsAttention) if view.question.is_some() => answer(view, comment),
        (Gate::Answer, _) => vec![Effect::Comment(format!(
            "The task is in {stage} with no question of an agent waiting; answer applies only to a task parked on one."
        ))],
        (Gate::Start | Gate::Approve | Gate::Retry, Stage::NeedsAttention) => resume(view, comment),
        (Gate::Retry, _) => vec![Effect::Comment(format!(
            "The task is in {stage}; retry applies only to a parked (needs_attention) or failed task."
        ))],
        // R-8 / TC-11: an idle analysis is relaunched; a busy one is left alone.
        (Gate::Start, Stage::Analysis) if !view.has_active_job => vec![step(
            Stage::Analysis,
            EventKind::Relaunched,
            "To Analyse on an idle analysis: the analyst runs again",
            Some(JobSpec::new(AgentKind::Analyst).with_comment(comment)),
        )],
        // R-8 / TC-10: the relaunch hole is closed mid-pipeline.
        (Gate::Start, _) => vec![Effect::Comment(format!(
            "The task is already in {stage}; To Analyse starts nothing. STOP it first to start afresh."
        ))],
        (Gate::Approve, Stage::AwaitingApproval) => vec![step(
            Stage::Development,
            EventKind::Approved,
            comment.unwrap_or("analysis approved"),
            Some(JobSpec::new(AgentKind::Developer).with_comment(comment)),
        )],
        (Gate::Reject, Stage::AwaitingApproval) => {
            if view.rejections + 1 > policy.max_rejection_rounds {
                vec![step(
                    Stage::Failed,
                    EventKind::Rejected,
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
                    EventKind::Rejected,
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
        EventKind::Resumed,
        comment.unwrap_or("resumed by a person"),
        job,
    )]
}

/// A person's answer to a parked agent's question: back to the stage it
/// asked in, its agent queued to resume the session that asked (R-8a).
fn answer(view: &TaskView, answer: Option<&str>) -> Vec<Effect> {
    let Some(answer) = answer else {
        return vec![Effect::Comment(
            "answer needs the answer's text; nothing was resumed.".to_owned(),
        )];
    };
    let session = view.question.as_ref().and_then(|q| q.session_id.clone());
    let mut effects = resume(view, Some(answer));
    for e in &mut effects {
        if let Effect::Step { kind, job, .. } = e {
            *kind = EventKind::Answered;
            if let Some(job) = job {
                job.resume_session = session.clone();
            }
        }
    }
    effects
}

/// Retry on a failed task: back to the stage it failed in, with that
/// stage's agent queued where a tick would not queue it (as `resume`). The
/// rounds that failed it count afresh from here (the engine counts them
/// since the last `retried` event).
fn retry_failed(view: &TaskView, comment: Option<&str>) -> Vec<Effect> {
    let to = view
        .failed_from
        .filter(|&s| Stage::Failed.can_retry_to(s))
        .unwrap_or(Stage::Analysis);
    let job = match to {
        Stage::Analysis | Stage::Development | Stage::Review => {
            stage_agent(to).map(|a| JobSpec::new(a).with_comment(comment))
        }
        // Awaiting approval waits for a person; merge and deploy need the
        // lease first, and the tick queues their jobs.
        _ => None,
    };
    vec![Effect::Reopen {
        to,
        why: comment.unwrap_or("retried by a person").to_owned(),
        job,
    }]
}

/// Why a task with dead dependencies is parked: each one named.
fn dead_dependencies_reason(dead: &[DeadDependency]) -> String {
    let named: Vec<String> = dead
        .iter()
        .map(|d| {
            let how = if d.stage == Stage::Cancelled {
                "was cancelled"
            } else {
                "failed"
            };
            format!("task {} ({}) {how}", d.task, d.key)
        })
        .collect();
    format!(
        "a dependency can never be done: {}; this task would wait forever. Run that item again (To Analyse) or retry it, then resume this task",
        named.join(", ")
    )
}

/// Waiting for Confirm Deploy: ask once, then wait quietly.
fn ask_confirm_deploy(view: &TaskView) -> Vec<Effect> {
    if view.confirm_deploy_asked {
        Vec::new()
    } else {
        vec![Effect::AskConfirmDeploy]
    }
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
    // R-11 waits for dependencies to be done; one that failed or was
    // cancelled never will be. Park for a person (a running agent finishes
    // first; a queued one is cancelled by the park).
    if policy.task_deps
        && stage != Stage::NeedsAttention
        && !view.has_running_job
        && !view.dead_dependencies.is_empty()
    {
        return vec![Effect::Park(dead_dependencies_reason(
            &view.dead_dependencies,
        ))];
    }
    if view.has_active_job {
        return Vec::new();
    }
    let job = view.stage_job.as_ref();
    let failed = |j: &StageJob| {
        let why = j.last_error.as_deref().unwrap_or("no attempts left");
        match j.attempts {
            _ if j.budget_spent => why.to_owned(),
            0 | 1 => format!("the {} gave up: {why}", j.agent),
            n => format!("the {} gave up after {n} attempts: {why}", j.agent),
        }
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
                    EventKind::Queued,
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
                if let Some(effects) = people_changes(view, policy) {
                    return effects;
                }
                if let Some(effects) = ci_gate(view, policy) {
                    return effects;
                }
                if let Some(effects) = approval_gate(view, policy) {
                    return effects;
                }
                return vec![Effect::AcquireLease];
            }
            match job.filter(|j| j.agent == AgentKind::Merger) {
                Some(j) if j.status == JobStatus::Succeeded => vec![Effect::Merge],
                Some(j) if j.status == JobStatus::Failed => vec![Effect::Park(failed(j))],
                Some(j) if j.status == JobStatus::Cancelled => Vec::new(),
                _ => vec![step(
                    Stage::Merge,
                    EventKind::Queued,
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
            EventKind::Queued,
            "deploy phase B queued",
            Some(JobSpec::deploy(DeployPhase::Run)),
        )];
    }
    if !view.holds_lease {
        return vec![Effect::AcquireLease];
    }
    let Some(d) = policy.deploy else {
        // The repo's deploy was removed from the config meanwhile: nothing to run.
        return vec![step(
            Stage::Done,
            EventKind::Done,
            "no deploy configured",
            None,
        )];
    };
    match job {
        Some(j) if j.phase == Some(DeployPhase::Prepare) => match j.status {
            JobStatus::Succeeded if d.auto => vec![Effect::StartDeployRun],
            // Parked until Confirm Deploy (D7: this is NOT a critical window).
            JobStatus::Succeeded => ask_confirm_deploy(view),
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
                ask_confirm_deploy(view)
            }
        }
        _ => vec![step(
            Stage::Deploy,
            EventKind::Queued,
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
            EventKind::Analysed,
            "analysis ready: approve or reject it",
            None,
        )],
        Stage::Development => vec![step(
            Stage::Review,
            EventKind::Developed,
            "development done: review queued",
            Some(JobSpec::new(AgentKind::Reviewer)),
        )],
        Stage::Review => match &j.review {
            Some(ReviewOutcome::Approve) => vec![step(
                Stage::Merge,
                EventKind::ReviewApproved,
                "the reviewer approved: on to the merge gate",
                None,
            )],
            Some(ReviewOutcome::ChangesRequested(_))
                if policy.human_approval == HumanApproval::Enough
                    && view
                        .people
                        .as_ref()
                        .is_some_and(|p| p.approved_by.is_some() && p.changes.is_none()) =>
            {
                let who = view
                    .people
                    .as_ref()
                    .and_then(|p| p.approved_by.clone())
                    .unwrap_or_default();
                vec![step(
                    Stage::Merge,
                    EventKind::ReviewApproved,
                    format!(
                        "{who} approved the pull request, which is enough (review.human_approval = \"enough\"): on to the merge gate"
                    ),
                    None,
                )]
            }
            Some(ReviewOutcome::ChangesRequested(comments)) => {
                let round = view.review_rounds + 1;
                // "More often than max_review_rounds" fails: the max-th
                // request still goes back to the developer.
                if round > policy.max_review_rounds {
                    vec![step(
                        Stage::Failed,
                        EventKind::ChangesRequested,
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
                        EventKind::ChangesRequested,
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

mod forge_gates;
use forge_gates::{approval_gate, ci_gate, people_changes};

#[cfg(test)]
mod tests;
