//! Every decision about a task, in one place: [`decide`]. The task's owner
//! (`engine/src/pipeline/owner.rs`) reads the task's [`TaskView`], hands it
//! with the [`Command`] it is applying and the repo's [`Policy`] to
//! `decide`, and carries out the [`Effect`]s it gets back, in their order.
//! The engine decides nothing itself; the decisions of each kind of
//! command live in their own modules and are reached only through here:
//!
//! | command | decided by |
//! |---|---|
//! | `Begin` (intake) | [`on_begin`] |
//! | `Gate` (a person) | [`pipeline::on_gate`] |
//! | `Tick` (timer, start-up, any run's end) | [`pipeline::on_tick`] |
//! | `Stop` (STOP, a deferred STOP) | [`cancel::decide_stop`] |
//! | `RunEnded` (the supervisor's report) | [`run_end::on_run_ended`] |
//! | `PullRequestClosed` (the forge) | [`on_pull_request_closed`] |
//!
//! A command for a task that does not exist is decided by
//! [`without_task`].

use crate::cancel::{self, CancelCause, CancelNote, StopFacts, StopStep};
use crate::disk::WorktreeSize;
use crate::job::AgentKind;
use crate::pipeline::{self, Gate, JobSpec, PipelinePolicy, TaskView};
use crate::run_end::{self, JobEndKind, RunEndFacts, RunEndStep};
use crate::stage::Stage;

/// An input that can change a task, as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// A task just created by intake: its first move.
    Begin,
    /// A person's decision at a gate.
    Gate {
        gate: Gate,
        comment: Option<&'a str>,
    },
    /// What is due now (level-triggered).
    Tick,
    /// STOP (`CancelCause::Stop`) or a deferred STOP applied by the
    /// finalizer of the step that deferred it.
    Stop { cause: CancelCause },
    /// A run of the task ended.
    RunEnded(RunEnd<'a>),
    /// The forge says the pull request was closed by someone else.
    PullRequestClosed { why: &'a str },
}

/// A run's end as the supervisor reports it, with its worktree measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEnd<'a> {
    pub end: JobEndKind,
    pub agent: AgentKind,
    /// The worktree measured after the run (none for a cancelled one).
    pub size: Option<WorktreeSize>,
    /// The question the agent asked a person, if it asked one.
    pub question: Option<&'a str>,
    /// Why the run failed, as reported.
    pub error: Option<&'a str>,
}

/// The settings the decisions follow, for the task's repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub pipeline: PipelinePolicy,
    /// STOP's kill switch is on and the task's repo is in its scope.
    pub stop_applies: bool,
    /// `limits.worktree_mb`.
    pub worktree_limit_mb: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            pipeline: PipelinePolicy::default(),
            stop_applies: true,
            worktree_limit_mb: None,
        }
    }
}

/// One thing for the engine to do. Each kind of command has its own kind
/// of step, because each is carried out with its own rules on failure: a
/// pipeline effect stops the rest when it fails (the next tick picks up);
/// a cancel's step that fails is logged on the task and the reset goes on;
/// a step after a run's end is logged and the next one runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Pipeline(pipeline::Effect),
    Stop(StopStep),
    AfterRun(RunEndStep),
}

/// What a STOP answers its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopVerdict {
    pub note: CancelNote,
    /// The task is (or will be) stopped, or already was.
    pub ok: bool,
    pub deferred: bool,
}

/// What a command calls for: the effects in order and, for a STOP, the
/// answer to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub effects: Vec<Effect>,
    pub stop: Option<StopVerdict>,
}

impl Decision {
    fn of(effects: impl IntoIterator<Item = Effect>) -> Decision {
        Decision {
            effects: effects.into_iter().collect(),
            stop: None,
        }
    }

    fn pipeline(effects: Vec<pipeline::Effect>) -> Decision {
        Decision::of(effects.into_iter().map(Effect::Pipeline))
    }

    fn stop(plan: cancel::StopPlan) -> Decision {
        Decision {
            effects: plan.steps.into_iter().map(Effect::Stop).collect(),
            stop: Some(StopVerdict {
                note: plan.note,
                ok: plan.ok,
                deferred: plan.deferred,
            }),
        }
    }

    /// The pipeline effects, when the decision is made of nothing else.
    pub fn pipeline_effects(&self) -> Option<Vec<pipeline::Effect>> {
        self.effects
            .iter()
            .map(|e| match e {
                Effect::Pipeline(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }
}

/// What `command` calls for, for the task seen as `view`.
pub fn decide(view: &TaskView, command: &Command<'_>, policy: &Policy) -> Decision {
    match command {
        Command::Begin => Decision::pipeline(on_begin(view)),
        Command::Gate { gate, comment } => Decision::pipeline(with_forge_reports(
            view,
            pipeline::on_gate(view, *gate, *comment, &policy.pipeline),
        )),
        Command::Tick => Decision::pipeline(with_forge_reports(
            view,
            pipeline::on_tick(view, &policy.pipeline),
        )),
        Command::Stop { cause } => Decision::stop(cancel::decide_stop(
            &StopFacts {
                stage: Some(view.stage),
                in_scope: policy.stop_applies,
                in_critical_window: view.in_critical_window,
                cancel_requested: view.cancel_requested,
            },
            *cause,
        )),
        Command::RunEnded(r) => Decision::of(
            run_end::on_run_ended(&RunEndFacts {
                stage: view.stage,
                end: r.end,
                agent: r.agent,
                size: r.size,
                worktree_limit_mb: policy.worktree_limit_mb,
                question: r.question,
                error: r.error,
            })
            .into_iter()
            .map(Effect::AfterRun),
        ),
        Command::PullRequestClosed { why } => Decision::pipeline(on_pull_request_closed(view, why)),
    }
}

/// A command for a task that does not exist: a STOP answers `no-task`
/// (TC-01); anything else does nothing.
pub fn without_task(command: &Command<'_>) -> Decision {
    match command {
        Command::Stop { cause } => Decision::stop(cancel::decide_stop(
            &StopFacts {
                stage: None,
                in_scope: false,
                in_critical_window: false,
                cancel_requested: false,
            },
            *cause,
        )),
        _ => Decision::of([]),
    }
}

/// The text a new task's start logs and tells the tracker.
pub const STARTED: &str = "To Analyse: the analyst is queued";

/// A new task's first move: the analyst is queued, unless a tick came
/// first (another node, or this one woken by the task's creation) and
/// queued it already: then the start is only logged, so the task keeps one
/// active job.
pub fn on_begin(view: &TaskView) -> Vec<pipeline::Effect> {
    vec![pipeline::Effect::Begin {
        job: (!view.has_active_job).then(|| JobSpec::new(AgentKind::Analyst)),
    }]
}

/// The pull request was closed by someone else: a live task parks for a
/// person, with the forge's words; an ended one is left as it is.
pub fn on_pull_request_closed(view: &TaskView, why: &str) -> Vec<pipeline::Effect> {
    if view.stage.is_terminal() {
        return Vec::new();
    }
    vec![pipeline::Effect::Park(why.to_owned())]
}

/// The merge gate gave up (verify failed, the base would not merge, CI or
/// people parked it): the forge shows why on the branch's head before the
/// task parks.
fn with_forge_reports(view: &TaskView, effects: Vec<pipeline::Effect>) -> Vec<pipeline::Effect> {
    if view.stage != Stage::Merge {
        return effects;
    }
    let mut out = Vec::with_capacity(effects.len() + 1);
    for e in effects {
        if let pipeline::Effect::Park(why) = &e {
            out.push(pipeline::Effect::ReportFailedVerify(why.clone()));
        }
        out.push(e);
    }
    out
}

#[cfg(test)]
mod tests;
