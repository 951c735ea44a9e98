//! Gathers a task's [`TaskView`] from the store: the facts the core's
//! pipeline and cancel decisions are made from.

use orch_agent::adapters::{ReviewDecision, parse_verdict};
use orch_core::EventKind;
use orch_core::cancel::{WindowFacts, in_critical_window};
use orch_core::pipeline::{
    DeadDependency, DeployPhase, JobSpec, PendingQuestion, ReviewOutcome, StageJob, TaskView,
};
use orch_core::{Job, JobStatus, Stage, Task, TaskEvent};
use orch_store::{MarkerStep, Store, StoreResult};

/// The payload a pipeline job carries (its [`JobSpec`]), read back.
pub fn job_spec(job: &Job) -> Option<JobSpec> {
    serde_json::from_value(job.payload.clone()).ok()
}

pub fn job_phase(job: &Job) -> Option<DeployPhase> {
    job_spec(job).and_then(|s| s.phase)
}

/// The task's events since a person's last retry: the rounds that failed a
/// task count afresh after it.
fn since_retry(events: &[TaskEvent]) -> &[TaskEvent] {
    events
        .iter()
        .rposition(|e| e.kind == EventKind::Retried)
        .map_or(events, |i| &events[i..])
}

/// The review and CI rounds a task has been through (since a retry): what
/// the decisions count against their limits, and what a prompt tells the
/// agent. From the events alone, so a run's preparation reads only those.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rounds {
    pub review: u32,
    pub ci: u32,
}

impl Rounds {
    pub(crate) fn of(events: &[TaskEvent]) -> Rounds {
        let since = since_retry(events);
        let count = |kind: EventKind| since.iter().filter(|e| e.kind == kind).count() as u32;
        Rounds {
            review: count(EventKind::ChangesRequested),
            ci: count(EventKind::CiFailed),
        }
    }
}

pub async fn task_view(store: &dyn Store, task: &Task) -> StoreResult<TaskView> {
    // Read at once: on PostgreSQL each is a round trip, and this view is
    // read before every step and every run.
    let (jobs, events, markers, lease, dependencies) = tokio::try_join!(
        store.jobs_for_task(task.id),
        store.events(task.id),
        store.initiated_markers(Some(task.id)),
        store.merge_lease(&task.repo),
        store.dependencies(task.id),
    )?;

    // When the task entered its current stage: jobs older than that belong to
    // an earlier visit of the stage (e.g. before a park) and decide nothing.
    let entered = events
        .iter()
        .rev()
        .find(|e| e.to_stage == Some(task.stage) && e.from_stage != e.to_stage)
        .map(|e| e.at)
        .unwrap_or(task.created_at);
    let stage_job = match jobs.iter().rev().find(|j| j.created_at >= entered) {
        Some(j) => Some(stage_job(store, j).await?),
        None => None,
    };
    let mut dead_dependencies = Vec::new();
    for on in dependencies {
        if let Some(dep) = store.get_task(on).await?
            && matches!(dep.stage, Stage::Failed | Stage::Cancelled)
        {
            dead_dependencies.push(DeadDependency {
                task: dep.id,
                key: dep.original_work_item_id().to_owned(),
                stage: dep.stage,
            });
        }
    }
    let rounds = Rounds::of(&events);
    let facts = WindowFacts {
        initiated_marker: !markers.is_empty(),
        holds_merge_lease: lease.as_ref().is_some_and(|l| l.holder_task == task.id),
        running_serial_actor: jobs
            .iter()
            .any(|j| j.status == JobStatus::Running && j.agent.is_serial()),
    };
    Ok(TaskView {
        stage: task.stage,
        has_active_job: jobs
            .iter()
            .any(|j| matches!(j.status, JobStatus::Queued | JobStatus::Running)),
        has_running_job: jobs.iter().any(|j| j.status == JobStatus::Running),
        stage_job,
        parked_from: events
            .iter()
            .rev()
            .find(|e| e.to_stage == Some(Stage::NeedsAttention))
            .and_then(|e| e.from_stage),
        failed_from: events
            .iter()
            .rev()
            .find(|e| e.to_stage == Some(Stage::Failed))
            .and_then(|e| e.from_stage),
        keys_released: orch_core::keys::is_tombstoned(&task.work_item_id),
        dead_dependencies,
        rejections: since_retry(&events)
            .iter()
            .filter(|e| e.kind == EventKind::Rejected)
            .count() as u32,
        review_rounds: rounds.review,
        holds_lease: facts.holds_merge_lease,
        merge_initiated: markers.iter().any(|m| m.step == MarkerStep::Merge),
        deploy_initiated: markers.iter().any(|m| m.step == MarkerStep::Deploy),
        cancel_requested: task.cancel_requested_at.is_some(),
        in_critical_window: in_critical_window(facts),
        confirm_deploy_asked: asked_since_entry(
            &events,
            task.stage,
            EventKind::AwaitingConfirmDeploy,
        ),
        question: pending_question(store, task, &events).await?,
        // Read from the forge by the pipeline when the merge gate needs it
        // (`Pipeline::ci_verdict`): the store does not hold CI results.
        ci: None,
        ci_rounds: rounds.ci,
        ci_wait_noted: asked_since_entry(&events, task.stage, EventKind::CiPending),
        // Read from the forge with `ci`.
        people: None,
        approval_wait_noted: asked_since_entry(&events, task.stage, EventKind::ApprovalPending),
    })
}

/// The agent's question a parked task waits on: the park itself was the
/// question (an `agent_question` event moving it to needs_attention), and
/// the session to resume is that of the task's newest run that named one
/// (parking stops the task's agents, so no later run exists).
async fn pending_question(
    store: &dyn Store,
    task: &Task,
    events: &[orch_core::TaskEvent],
) -> StoreResult<Option<PendingQuestion>> {
    if task.stage != Stage::NeedsAttention {
        return Ok(None);
    }
    let Some(park) = events
        .iter()
        .rev()
        .find(|e| e.to_stage == Some(Stage::NeedsAttention))
        .filter(|e| e.kind == EventKind::AgentQuestion)
    else {
        return Ok(None);
    };
    let runs = store.runs_for_task(task.id).await?;
    let session_id = runs
        .iter()
        .max_by_key(|r| r.started_at)
        .and_then(|r| r.session_id.clone());
    Ok(Some(PendingQuestion {
        text: park.message.clone(),
        session_id,
    }))
}

/// When orch last asked a person for the decision the task waits on: the
/// Confirm Deploy request in deploy, else the moment the task entered its
/// stage (the analysis ready for approval, a park). A person's comment after
/// it is their reason for the gate they move the item to.
pub fn asked_at(events: &[orch_core::TaskEvent], task: &Task) -> orch_core::Timestamp {
    let entered = events
        .iter()
        .rposition(|e| e.to_stage == Some(task.stage) && e.from_stage != e.to_stage);
    let from = entered.unwrap_or(0);
    if task.stage == Stage::Deploy
        && let Some(e) = events[from..]
            .iter()
            .rev()
            .find(|e| e.kind == EventKind::AwaitingConfirmDeploy)
    {
        return e.at;
    }
    entered.map_or(task.created_at, |i| events[i].at)
}

/// Whether an event of `kind` was logged since the task last entered `stage`.
fn asked_since_entry(events: &[orch_core::TaskEvent], stage: Stage, kind: EventKind) -> bool {
    let entry = events
        .iter()
        .rposition(|e| e.to_stage == Some(stage) && e.from_stage != e.to_stage)
        .unwrap_or(0);
    events[entry..].iter().any(|e| e.kind == kind)
}

async fn stage_job(store: &dyn Store, j: &Job) -> StoreResult<StageJob> {
    let review = if j.agent == orch_core::AgentKind::Reviewer && j.status == JobStatus::Succeeded {
        let runs = store.runs_for_task(j.task_id).await?;
        let text = runs
            .iter()
            .filter(|r| r.job_id == j.id)
            .max_by_key(|r| r.attempt)
            .and_then(|r| r.final_text.clone());
        Some(match text {
            None => ReviewOutcome::Unreadable("the reviewer's run left no final message".into()),
            Some(t) => match parse_verdict(&t) {
                Ok(v) => match v.decision {
                    ReviewDecision::Approve => ReviewOutcome::Approve,
                    ReviewDecision::ChangesRequested => ReviewOutcome::ChangesRequested(v.comments),
                },
                Err(e) => ReviewOutcome::Unreadable(e.to_string()),
            },
        })
    } else {
        None
    };
    // A job that failed for good on the task's budget parks with the
    // budget's own words; only then are its runs read.
    let budget_spent = j.status == JobStatus::Failed
        && store
            .runs_for_task(j.task_id)
            .await?
            .iter()
            .filter(|r| r.job_id == j.id)
            .max_by_key(|r| r.attempt)
            .is_some_and(|r| r.outcome == Some(orch_core::RunOutcome::BudgetExceeded));
    Ok(StageJob {
        agent: j.agent,
        status: j.status,
        phase: job_phase(j),
        review,
        last_error: j.last_error.clone(),
        attempts: j.attempts,
        budget_spent,
    })
}

#[cfg(test)]
mod tests {
    use super::Rounds;
    use orch_core::{EventKind, TaskEvent, TaskId, Timestamp};

    fn ev(kind: EventKind) -> TaskEvent {
        TaskEvent {
            id: 0,
            task_id: TaskId(1),
            at: Timestamp(0),
            actor: "test".into(),
            kind,
            from_stage: None,
            to_stage: None,
            message: String::new(),
        }
    }

    #[test]
    fn rounds_count_changes_and_ci_failures_since_the_last_retry() {
        use EventKind::*;
        assert_eq!(Rounds::of(&[]), Rounds { review: 0, ci: 0 });
        let before_retry = [ChangesRequested, CiFailed, CiFailed, Retried];
        let after = [ChangesRequested, CiFailed, ChangesRequested, Merged];
        let events: Vec<_> = before_retry.iter().chain(&after).map(|k| ev(*k)).collect();
        assert_eq!(Rounds::of(&events), Rounds { review: 2, ci: 1 });
        assert_eq!(
            Rounds::of(&events[..3]),
            Rounds { review: 1, ci: 2 },
            "no retry: every round counts"
        );
    }
}
