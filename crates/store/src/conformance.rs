//! The conformance suite: behaviour every `Store` implementation must show.
//!
//! Each case is a plain async function over a fresh, migrated store; the
//! `conformance_suite!` macro turns the whole list into `#[tokio::test]`s for one
//! implementation. Cases that port the ORCH-090 suite carry its case name.

use crate::clock::{Clock, ManualClock};
use crate::model::*;
use crate::traits::Store;
use orch_core::EventKind;
use orch_core::gates::{Gates, Limits};
use orch_core::retry::{FailureDecision, RetryPolicy};
use orch_core::run::{RunOutcome, Usage};
use orch_core::{
    AgentKind, EventInput, Job, JobStatus, NewJob, NewTask, RunId, Stage, Task, TaskId, WorkerId,
};
use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

mod disk;
mod event_comments;
mod nodes;
pub use disk::*;
pub use event_comments::*;
pub use nodes::*;

/// A fresh, migrated store, the clock it reads, and whatever keeps it alive
/// (a temp dir, a database name to drop).
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub clock: ManualClock,
    pub guard: Box<dyn Any + Send>,
}

/// What a harness future gives: a harness, or `None` when the case is skipped
/// (an implementation whose server is not configured; see `crate::testing`).
pub trait MaybeHarness {
    fn into_harness(self) -> Option<Harness>;
}

impl MaybeHarness for Harness {
    fn into_harness(self) -> Option<Harness> {
        Some(self)
    }
}

impl MaybeHarness for Option<Harness> {
    fn into_harness(self) -> Option<Harness> {
        self
    }
}

fn cancel_ev() -> EventInput {
    EventInput::new("test", EventKind::Cancelled, "STOP")
}

async fn task(h: &Harness, key: &str, stage: Stage) -> Task {
    let mut new = NewTask::new("demo", format!("task {key}"));
    new.work_item_id = Some(key.to_owned());
    new.tracker_id = Some(format!("PL-{key}"));
    new.stage = stage;
    h.store.create_task(new, "test").await.expect("create task")
}

async fn job(h: &Harness, t: &Task, agent: AgentKind) -> Job {
    let new = NewJob::new(t.id, agent, t.repo.clone(), h.clock.now_ts());
    h.store.enqueue(new).await.expect("enqueue")
}

fn req() -> ClaimRequest {
    ClaimRequest::new("worker-a")
}

fn no_jitter() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(100),
        factor: 2.0,
        jitter: 0.0,
    }
}

trait NowTs {
    fn now_ts(&self) -> orch_core::Timestamp;
}
impl NowTs for ManualClock {
    fn now_ts(&self) -> orch_core::Timestamp {
        crate::clock::Clock::now(self)
    }
}

async fn claim(h: &Harness) -> Option<Job> {
    h.store.claim(&req()).await.expect("claim")
}

async fn status(h: &Harness, j: &Job) -> JobStatus {
    h.store
        .get_job(j.id)
        .await
        .expect("get job")
        .expect("job exists")
        .status
}

/// Mark a job running the way a claim does, for cases that need a particular one running.
async fn claim_exactly(h: &Harness, j: &Job) -> Job {
    let got = claim(h).await.expect("a job to claim");
    assert_eq!(got.id, j.id, "claimed the expected job");
    got
}

// ---------------------------------------------------------------- change signal

/// `Store::changes` rises after each committed write made through the
/// store, not on reads, and not for a write that changed nothing.
pub async fn changes_rise_after_committed_writes(h: Harness) {
    let mut rx = h.store.changes();
    let start = *rx.borrow_and_update();
    let t = task(&h, "SIG-1", Stage::Analysis).await;
    assert!(rx.has_changed().unwrap(), "a created task is signalled");
    let after_create = *rx.borrow_and_update();
    assert!(after_create > start);

    h.store.get_task(t.id).await.unwrap();
    h.store.list_tasks(&TaskFilter::default()).await.unwrap();
    h.store.events(t.id).await.unwrap();
    h.store.job_counts().await.unwrap();
    assert!(!rx.has_changed().unwrap(), "reads are not signalled");

    assert!(!h.store.set_item_state("NO-SUCH", "Done").await.unwrap());
    assert!(
        !rx.has_changed().unwrap(),
        "a write that changed no row is not signalled"
    );

    let j = job(&h, &t, AgentKind::Analyst).await;
    assert!(rx.has_changed().unwrap(), "an enqueue is signalled");
    rx.borrow_and_update();
    let claimed = claim_exactly(&h, &j).await;
    assert!(rx.has_changed().unwrap(), "a claim is signalled");
    rx.borrow_and_update();
    let run = claimed.run_id.clone().unwrap();
    assert!(h.store.complete(j.id, &run).await.unwrap());
    assert!(rx.has_changed().unwrap(), "a completion is signalled");
    rx.borrow_and_update();
    h.store
        .set_stage(
            t.id,
            Stage::AwaitingApproval,
            Some(Stage::Analysis),
            EventInput::new("test", EventKind::StageChanged, "moved"),
        )
        .await
        .unwrap();
    assert!(rx.has_changed().unwrap(), "a stage move is signalled");
    // Every receiver sees the same counter.
    assert_eq!(*h.store.changes().borrow(), *rx.borrow_and_update());
}

// ---------------------------------------------------------------- ORCH-090 ports

/// TC-03: every queued and running job of the task ends `cancelled`; claim skips them.
pub async fn tc03_jobs_cancelled_and_claim_skips(h: Harness) {
    let t = task(&h, "ORCH-320", Stage::Development).await;
    let jr = job(&h, &t, AgentKind::Developer).await;
    claim_exactly(&h, &jr).await;
    let jq = job(&h, &t, AgentKind::Developer).await;
    let n = h.store.cancel_jobs_for_task(t.id, false).await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(status(&h, &jq).await, JobStatus::Cancelled);
    assert_eq!(status(&h, &jr).await, JobStatus::Cancelled);
    assert!(
        claim(&h).await.is_none(),
        "a cancelled job is never claimed"
    );
}

/// TC-03: `only_queued` cancels the queued job and leaves the running actor alone.
pub async fn tc03_cancel_jobs_helper_only_queued(h: Harness) {
    let t = task(&h, "ORCH-321", Stage::Deploy).await;
    let jr = job(&h, &t, AgentKind::Deployer).await;
    claim_exactly(&h, &jr).await;
    let jq = job(&h, &t, AgentKind::Deployer).await;
    let n = h.store.cancel_jobs_for_task(t.id, true).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(status(&h, &jq).await, JobStatus::Cancelled);
    assert_eq!(status(&h, &jr).await, JobStatus::Running);
}

/// TC-04: the reaper does not requeue a job of a terminal (cancelled) task.
pub async fn tc04_reaper_does_not_requeue_terminal_task(h: Harness) {
    let t = task(&h, "ORCH-330", Stage::Development).await;
    let j = job(&h, &t, AgentKind::Developer).await;
    let j = claim_exactly(&h, &j).await;
    assert!(
        j.attempts < j.max_attempts,
        "attempts < max would normally requeue"
    );
    h.store.mark_cancelled(t.id, cancel_ev()).await.unwrap();
    let d = h
        .store
        .reap_unknown_outcome(j.id, j.run_id.as_ref().unwrap(), "dead pid", &no_jitter())
        .await
        .unwrap();
    assert_eq!(d, Some(FailureDecision::Cancel));
    assert_eq!(status(&h, &j).await, JobStatus::Cancelled);
    let run = h
        .store
        .get_run(j.run_id.as_ref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        run.outcome,
        Some(RunOutcome::Unknown),
        "the lost run is recorded as unknown"
    );
}

/// TC-12 (second half): start-up recovery flips only running jobs; cancelled stay cancelled.
pub async fn tc12_requeue_running_does_not_revive_cancelled(h: Harness) {
    let t = task(&h, "ORCH-401", Stage::Development).await;
    let jc = job(&h, &t, AgentKind::Developer).await;
    claim_exactly(&h, &jc).await;
    h.store.cancel_jobs_for_task(t.id, false).await.unwrap();
    assert_eq!(status(&h, &jc).await, JobStatus::Cancelled);

    let other = task(&h, "ORCH-402", Stage::Development).await;
    let jr = job(&h, &other, AgentKind::Developer).await;
    claim_exactly(&h, &jr).await;

    let s = h
        .store
        .requeue_running_jobs(None, &no_jitter())
        .await
        .unwrap();
    assert_eq!(
        s,
        ReapSummary {
            requeued: 1,
            failed: 0,
            cancelled: 0
        }
    );
    assert_eq!(status(&h, &jc).await, JobStatus::Cancelled);
    assert_eq!(status(&h, &jr).await, JobStatus::Queued);
}

/// TC-13 (store part): a cancelled task keeps its row, gets `cancelled_at`, and its
/// tracker keys are tombstoned so the same item can start afresh; the original
/// id stays recoverable.
pub async fn tc13_cancel_tombstones_keys(h: Harness) {
    let t = task(&h, "ORCH-410", Stage::Review).await;
    let c = h.store.mark_cancelled(t.id, cancel_ev()).await.unwrap();
    assert_eq!(c.stage, Stage::Cancelled);
    assert!(c.cancelled_at.is_some());
    assert_eq!(
        c.tracker_id.as_deref(),
        Some(format!("PL-ORCH-410#cancelled-{}", t.id).as_str())
    );
    assert_eq!(c.work_item_id, format!("ORCH-410#cancelled-{}", t.id));
    assert_eq!(c.original_tracker_id(), Some("PL-ORCH-410"));
    assert_eq!(c.original_work_item_id(), "ORCH-410");
    assert!(
        h.store
            .find_live_task_by_tracker_id("PL-ORCH-410")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.store
            .find_live_task_by_work_item("ORCH-410")
            .await
            .unwrap()
            .is_none()
    );
    // Freed: the same item starts afresh.
    let again = task(&h, "ORCH-410", Stage::Analysis).await;
    assert_ne!(again.id, t.id);
    // Cancel is idempotent; the event log says what happened, once.
    h.store.mark_cancelled(t.id, cancel_ev()).await.unwrap();
    let evs = h.store.events(t.id).await.unwrap();
    assert_eq!(
        evs.iter()
            .filter(|e| e.to_stage == Some(Stage::Cancelled))
            .count(),
        1
    );
    // A done task cannot be cancelled.
    let done = task(&h, "ORCH-411", Stage::Done).await;
    assert!(h.store.mark_cancelled(done.id, cancel_ev()).await.is_err());
}

/// TC-14: migrations run twice are a no-op and keep data; a queued job is still claimable.
pub async fn tc14_migrations_idempotent_and_contracts_intact(h: Harness) {
    let t = task(&h, "ORCH-420", Stage::Development).await;
    let j = job(&h, &t, AgentKind::Developer).await;
    h.store.migrate().await.expect("second migrate");
    h.store.migrate().await.expect("third migrate");
    let got = claim(&h).await.expect("still claimable");
    assert_eq!(got.id, j.id);
    let again = h.store.get_task(t.id).await.unwrap().unwrap();
    assert_eq!(again.cancel_requested_at, None);
    assert_eq!(again.cancelled_at, None);
}

/// D7 / AC-6: only the first cancel-request stamp reports `true` (only it notifies).
pub async fn d7_cancel_requested_first_stamp_only(h: Harness) {
    let t = task(&h, "ORCH-435", Stage::Deploy).await;
    let asked = || EventInput::new("test", EventKind::CancelRequested, "STOP deferred");
    assert!(h.store.set_cancel_requested(t.id, asked()).await.unwrap());
    assert!(!h.store.set_cancel_requested(t.id, asked()).await.unwrap());
    let t = h.store.get_task(t.id).await.unwrap().unwrap();
    assert!(t.cancel_requested_at.is_some());
    assert_eq!(
        t.stage,
        Stage::Deploy,
        "a deferred cancel leaves the stage alone"
    );
}

/// D7: the merge lease names its holder; only the holder releases it.
pub async fn d7_merge_lease_holder_and_release(h: Harness) {
    let a = task(&h, "ORCH-432", Stage::Deploy).await;
    let b = task(&h, "ORCH-433", Stage::Merge).await;
    let got = h
        .store
        .acquire_merge_lease("demo", a.id, &a.branch)
        .await
        .unwrap();
    let LeaseAcquire::Acquired { proof } = got else {
        panic!("expected acquired, got {got:?}")
    };
    // The proof names what it was acquired for.
    assert_eq!(
        (proof.repo(), proof.task(), proof.branch()),
        ("demo", a.id, a.branch.as_str())
    );
    assert!(proof.covers("demo", a.id));
    assert!(!proof.covers("other", a.id) && !proof.covers("demo", b.id));
    let epoch = proof.epoch();
    let again = h
        .store
        .acquire_merge_lease("demo", a.id, &a.branch)
        .await
        .unwrap();
    assert!(
        matches!(&again, LeaseAcquire::Acquired { proof: p } if *p == proof),
        "re-acquire by the holder keeps the epoch: {again:?}"
    );
    let other = h
        .store
        .acquire_merge_lease("demo", b.id, &b.branch)
        .await
        .unwrap();
    assert_eq!(
        other,
        LeaseAcquire::HeldBy {
            task: a.id,
            branch: a.branch.clone()
        }
    );
    let holder = h.store.merge_lease("demo").await.unwrap().unwrap();
    assert_eq!(holder.holder_branch, a.branch);
    assert!(
        !h.store.release_merge_lease("demo", b.id).await.unwrap(),
        "only the holder releases"
    );
    assert!(h.store.release_merge_lease("demo", a.id).await.unwrap());
    assert!(h.store.merge_lease("demo").await.unwrap().is_none());
    let next = h
        .store
        .acquire_merge_lease("demo", b.id, &b.branch)
        .await
        .unwrap();
    assert!(
        matches!(&next, LeaseAcquire::Acquired { proof: p }
            if p.epoch() == epoch + 1 && p.covers("demo", b.id) && p.branch() == b.branch),
        "each acquisition bumps the epoch: {next:?}"
    );
}

/// A lease held by a task that became terminal is free: no wedged repo.
pub async fn lease_of_terminal_task_is_free(h: Harness) {
    let a = task(&h, "ORCH-1", Stage::Merge).await;
    let b = task(&h, "ORCH-2", Stage::Merge).await;
    h.store
        .acquire_merge_lease("demo", a.id, &a.branch)
        .await
        .unwrap();
    h.store.mark_cancelled(a.id, cancel_ev()).await.unwrap();
    assert!(h.store.merge_lease("demo").await.unwrap().is_none());
    let got = h
        .store
        .acquire_merge_lease("demo", b.id, &b.branch)
        .await
        .unwrap();
    assert!(matches!(got, LeaseAcquire::Acquired { .. }), "{got:?}");
}

// ---------------------------------------------------------------- queue mechanics

/// Every write about a running job names its run: a stale run changes nothing.
pub async fn run_id_fences_stale_attempts(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::Development).await;
    let j = job(&h, &t, AgentKind::Developer).await;
    let first = claim_exactly(&h, &j).await;
    let stale = first.run_id.clone().unwrap();
    let s = h
        .store
        .reap_unknown_outcome(j.id, &stale, "lost", &no_jitter())
        .await
        .unwrap();
    assert!(matches!(s, Some(FailureDecision::Retry { .. })));
    h.clock.advance(Duration::from_secs(11));
    let second = claim_exactly(&h, &j).await;
    let fresh = second.run_id.clone().unwrap();
    assert_ne!(stale, fresh, "every claim mints a new run id");
    assert_eq!(second.attempts, 2);
    assert!(
        !h.store
            .heartbeat(j.id, &stale, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(!h.store.complete(j.id, &stale).await.unwrap());
    assert_eq!(
        h.store.fail(j.id, &stale, "x", &no_jitter()).await.unwrap(),
        None
    );
    assert!(
        h.store
            .heartbeat(j.id, &fresh, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(h.store.complete(j.id, &fresh).await.unwrap());
    assert_eq!(status(&h, &j).await, JobStatus::Succeeded);
    assert!(
        !h.store.complete(j.id, &fresh).await.unwrap(),
        "completing twice is refused"
    );
}

/// A run that succeeded after its job was taken from it is not a success:
/// each job has at most one successful run, whichever of the reaper, a STOP
/// or the run itself gets there first.
pub async fn a_run_that_succeeds_after_losing_its_job_is_not_counted(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::Development).await;
    let j = job(&h, &t, AgentKind::Developer).await;
    let first = claim_exactly(&h, &j).await;
    let stale = first.run_id.clone().unwrap();
    // Its lease expires and the reaper hands the job on; the run had not ended.
    h.store
        .reap_unknown_outcome(j.id, &stale, "lost", &no_jitter())
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(11));
    let second = claim_exactly(&h, &j).await;
    let fresh = second.run_id.clone().unwrap();
    let done = finish(RunOutcome::Succeeded);
    assert!(h.store.complete_run(j.id, &fresh, &done).await.unwrap());
    assert!(
        !h.store.complete_run(j.id, &stale, &done).await.unwrap(),
        "the stale run does not complete the job"
    );
    let runs = h.store.runs_for_task(t.id).await.unwrap();
    let ok: Vec<_> = runs
        .iter()
        .filter(|r| r.outcome == Some(RunOutcome::Succeeded))
        .map(|r| r.run_id.clone())
        .collect();
    assert_eq!(ok, vec![fresh.clone()], "one successful run: {runs:?}");

    // A job cancelled while its run was ending (no reaper recorded the run):
    // the run's success is recorded as what it is, a fenced end.
    let t2 = task(&h, "ORCH-2", Stage::Development).await;
    let j2 = job(&h, &t2, AgentKind::Developer).await;
    let c = claim_exactly(&h, &j2).await;
    let run = c.run_id.clone().unwrap();
    h.store.cancel_jobs_for_task(t2.id, false).await.unwrap();
    assert!(!h.store.complete_run(j2.id, &run, &done).await.unwrap());
    let r = h.store.get_run(&run).await.unwrap().unwrap();
    assert_eq!(r.outcome, Some(RunOutcome::Cancelled));
    assert_eq!(r.error.as_deref(), Some(FENCED));
    assert!(r.finished_at.is_some());
    assert_eq!(status(&h, &j2).await, JobStatus::Cancelled);
}

/// Failures retry with exponential backoff until max_attempts, then fail for good.
pub async fn fail_backs_off_then_gives_up(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::Development).await;
    let j = job(&h, &t, AgentKind::Developer).await;
    let start = h.clock.now_ts();
    let c1 = claim_exactly(&h, &j).await;
    let d1 = h
        .store
        .fail(j.id, c1.run_id.as_ref().unwrap(), "exit 1", &no_jitter())
        .await
        .unwrap();
    assert_eq!(
        d1,
        Some(FailureDecision::Retry {
            run_after: start.plus(Duration::from_secs(10))
        })
    );
    let after = h.store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Queued);
    assert_eq!(
        after.last_error.as_deref(),
        Some("exit 1"),
        "the reason is kept"
    );
    assert!(
        claim(&h).await.is_none(),
        "not due before the backoff passes"
    );
    h.clock.advance(Duration::from_secs(10));
    let c2 = claim_exactly(&h, &j).await;
    let d2 = h
        .store
        .fail(j.id, c2.run_id.as_ref().unwrap(), "exit 1", &no_jitter())
        .await
        .unwrap();
    let now = h.clock.now_ts();
    assert_eq!(
        d2,
        Some(FailureDecision::Retry {
            run_after: now.plus(Duration::from_secs(20))
        })
    );
    h.clock.advance(Duration::from_secs(20));
    let c3 = claim_exactly(&h, &j).await;
    let d3 = h
        .store
        .fail(j.id, c3.run_id.as_ref().unwrap(), "exit 1", &no_jitter())
        .await
        .unwrap();
    assert_eq!(d3, Some(FailureDecision::GiveUp));
    assert_eq!(status(&h, &j).await, JobStatus::Failed);
}

/// Giving up ends the attempt for good; a job for a missing task is refused.
pub async fn give_up_and_enqueue_checks(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::Development).await;
    let j = job(&h, &t, AgentKind::Developer).await;
    let c = claim_exactly(&h, &j).await;
    let run = c.run_id.clone().unwrap();
    assert!(
        !h.store
            .give_up(j.id, &RunId("stale".into()), "x")
            .await
            .unwrap()
    );
    assert!(
        h.store
            .give_up(j.id, &run, "budget exceeded")
            .await
            .unwrap()
    );
    let after = h.store.get_job(j.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status, after.last_error.as_deref()),
        (JobStatus::Failed, Some("budget exceeded"))
    );
    assert!(!h.store.give_up(j.id, &run, "again").await.unwrap());
    let missing = NewJob::new(TaskId(9999), AgentKind::Developer, "demo", h.clock.now_ts());
    assert!(matches!(
        h.store.enqueue(missing).await,
        Err(crate::StoreError::TaskNotFound(_))
    ));
}

/// A running job whose lease passes without heartbeat is found as expired.
pub async fn expired_leases_are_found(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::Development).await;
    let j = job(&h, &t, AgentKind::Developer).await;
    let c = claim_exactly(&h, &j).await;
    assert!(h.store.expired_jobs().await.unwrap().is_empty());
    h.clock.advance(Duration::from_secs(45));
    assert!(
        h.store
            .heartbeat(j.id, c.run_id.as_ref().unwrap(), Duration::from_secs(60))
            .await
            .unwrap()
    );
    h.clock.advance(Duration::from_secs(45));
    assert!(
        h.store.expired_jobs().await.unwrap().is_empty(),
        "the heartbeat renewed the lease"
    );
    h.clock.advance(Duration::from_secs(16));
    let expired = h.store.expired_jobs().await.unwrap();
    assert_eq!(expired.iter().map(|j| j.id).collect::<Vec<_>>(), vec![j.id]);
}

/// Claim order: priority, then the longest due, then the oldest; future jobs wait.
pub async fn claim_order_and_run_after(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::Development).await;
    let now = h.clock.now_ts();
    let mut later = NewJob::new(
        t.id,
        AgentKind::Developer,
        "demo",
        now.plus(Duration::from_secs(5)),
    );
    later.priority = 100;
    let later = h.store.enqueue(later).await.unwrap();
    let a = job(&h, &t, AgentKind::Developer).await;
    let mut urgent = NewJob::new(t.id, AgentKind::Developer, "demo", now);
    urgent.priority = 5;
    let urgent = h.store.enqueue(urgent).await.unwrap();
    let b = job(&h, &t, AgentKind::Developer).await;
    assert_eq!(claim(&h).await.unwrap().id, urgent.id);
    assert_eq!(claim(&h).await.unwrap().id, a.id);
    assert_eq!(claim(&h).await.unwrap().id, b.id);
    assert!(claim(&h).await.is_none());
    h.clock.advance(Duration::from_secs(5));
    assert_eq!(claim(&h).await.unwrap().id, later.id);
}

/// Jobs of terminal tasks are never claimed, even if left queued.
pub async fn claim_skips_terminal_tasks(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::Development).await;
    job(&h, &t, AgentKind::Developer).await;
    h.store.mark_cancelled(t.id, cancel_ev()).await.unwrap();
    assert!(claim(&h).await.is_none());
}

// ---------------------------------------------------------------- gates

/// A job of a task with an unfinished dependency waits until it is done.
pub async fn gate_dependency_blocks_until_done(h: Harness) {
    let dep = task(&h, "ORCH-1", Stage::Merge).await;
    let mut new = NewTask::new("demo", "dependent");
    new.work_item_id = Some("ORCH-2".into());
    new.depends_on = vec![dep.id];
    let t = h.store.create_task(new, "test").await.unwrap();
    let j = job(&h, &t, AgentKind::Analyst).await;
    assert!(claim(&h).await.is_none(), "blocked by the dependency");
    assert_eq!(
        h.store.waiting_on_dependencies().await.unwrap(),
        vec![(t.id, vec![dep.id])]
    );
    let off = ClaimRequest {
        gates: Gates {
            task_deps: false,
            serial: true,
        },
        ..req()
    };
    let h2 = &h;
    assert!(
        h2.store.claim(&off).await.unwrap().is_some(),
        "the gate can be switched off"
    );
    h.store.cancel_jobs_for_task(t.id, false).await.unwrap();
    let j2 = job(&h, &t, AgentKind::Analyst).await;
    h.store
        .set_stage(
            dep.id,
            Stage::Done,
            Some(Stage::Merge),
            EventInput::new("t", EventKind::StageChanged, ""),
        )
        .await
        .unwrap();
    assert_eq!(
        claim(&h).await.unwrap().id,
        j2.id,
        "claimed once the block lifts"
    );
    assert_ne!(j.id, j2.id);
    assert!(h.store.waiting_on_dependencies().await.unwrap().is_empty());
}

/// Dependencies refuse self-loops and cycles.
pub async fn dependency_cycles_refused(h: Harness) {
    let a = task(&h, "ORCH-1", Stage::Analysis).await;
    let b = task(&h, "ORCH-2", Stage::Analysis).await;
    let c = task(&h, "ORCH-3", Stage::Analysis).await;
    h.store.add_dependency(b.id, a.id).await.unwrap();
    h.store.add_dependency(c.id, b.id).await.unwrap();
    assert!(
        h.store.add_dependency(a.id, c.id).await.is_err(),
        "a → c → b → a is a cycle"
    );
    assert!(h.store.add_dependency(a.id, a.id).await.is_err());
    assert!(h.store.add_dependency(a.id, TaskId(9999)).await.is_err());
    assert_eq!(h.store.dependencies(c.id).await.unwrap(), vec![b.id]);
}

/// Merge/deploy work of another task waits while a task holds the repo's lease.
pub async fn gate_serial_blocks_until_release(h: Harness) {
    let a = task(&h, "ORCH-1", Stage::Deploy).await;
    let b = task(&h, "ORCH-2", Stage::Merge).await;
    h.store
        .acquire_merge_lease("demo", a.id, &a.branch)
        .await
        .unwrap();
    let merge_b = job(&h, &b, AgentKind::Merger).await;
    let dev_b = job(&h, &b, AgentKind::Developer).await;
    assert_eq!(
        claim(&h).await.unwrap().id,
        dev_b.id,
        "non-serial work is not gated"
    );
    assert!(claim(&h).await.is_none(), "b's merge waits for a's lease");
    let deploy_a = job(&h, &a, AgentKind::Deployer).await;
    assert_eq!(
        claim(&h).await.unwrap().id,
        deploy_a.id,
        "the holder's own deploy runs"
    );
    h.store.release_merge_lease("demo", a.id).await.unwrap();
    assert_eq!(
        claim(&h).await.unwrap().id,
        merge_b.id,
        "claimed once the lease is released"
    );
}

async fn limit_case(
    h: Harness,
    limits: Limits,
    first: AgentKind,
    first_repo: &str,
    second: AgentKind,
    second_repo: &str,
) {
    let mut t1 = NewTask::new(first_repo, "one");
    t1.work_item_id = Some("ORCH-1".into());
    let t1 = h.store.create_task(t1, "test").await.unwrap();
    let mut t2 = NewTask::new(second_repo, "two");
    t2.work_item_id = Some("ORCH-2".into());
    let t2 = h.store.create_task(t2, "test").await.unwrap();
    let r = ClaimRequest { limits, ..req() };
    let j1 = h
        .store
        .enqueue(NewJob::new(t1.id, first, first_repo, h.clock.now_ts()))
        .await
        .unwrap();
    let j2 = h
        .store
        .enqueue(NewJob::new(t2.id, second, second_repo, h.clock.now_ts()))
        .await
        .unwrap();
    let c1 = h.store.claim(&r).await.unwrap().expect("first claim");
    assert_eq!(c1.id, j1.id);
    assert!(
        h.store.claim(&r).await.unwrap().is_none(),
        "the limit blocks the second job"
    );
    assert!(
        h.store
            .complete(j1.id, c1.run_id.as_ref().unwrap())
            .await
            .unwrap()
    );
    assert_eq!(
        h.store
            .claim(&r)
            .await
            .unwrap()
            .expect("claimed once the block lifts")
            .id,
        j2.id
    );
}

pub async fn gate_global_limit(h: Harness) {
    let l = Limits {
        global: Some(1),
        ..Limits::default()
    };
    limit_case(
        h,
        l,
        AgentKind::Developer,
        "alpha",
        AgentKind::Reviewer,
        "beta",
    )
    .await;
}

pub async fn gate_repo_limit(h: Harness) {
    let l = Limits {
        per_repo: Some(1),
        per_repo_overrides: [("other".to_string(), 5)].into(),
        ..Limits::default()
    };
    limit_case(
        h,
        l,
        AgentKind::Developer,
        "alpha",
        AgentKind::Reviewer,
        "alpha",
    )
    .await;
}

pub async fn gate_repo_limit_override(h: Harness) {
    let l = Limits {
        per_repo: Some(5),
        per_repo_overrides: [("alpha".to_string(), 1)].into(),
        ..Limits::default()
    };
    limit_case(
        h,
        l,
        AgentKind::Developer,
        "alpha",
        AgentKind::Reviewer,
        "alpha",
    )
    .await;
}

pub async fn gate_agent_limit(h: Harness) {
    let l = Limits {
        per_agent: [(AgentKind::Developer, 1)].into(),
        ..Limits::default()
    };
    limit_case(
        h,
        l,
        AgentKind::Developer,
        "alpha",
        AgentKind::Developer,
        "beta",
    )
    .await;
}

// ---------------------------------------------------------------- tasks, runs, markers

pub async fn task_keys_and_stage_moves(h: Harness) {
    let minted = h
        .store
        .create_task(NewTask::new("demo", "Fix the login!"), "cli")
        .await
        .unwrap();
    assert_eq!(minted.work_item_id, format!("DEMO-{}", minted.id));
    assert_eq!(
        minted.branch,
        format!("feature/DEMO-{}-fix-the-login", minted.id)
    );
    assert_eq!(minted.stage, Stage::Analysis);
    let t = task(&h, "ORCH-7", Stage::Analysis).await;
    let mut dup = NewTask::new("demo", "dup");
    dup.work_item_id = Some("ORCH-7".into());
    assert!(
        h.store.create_task(dup, "cli").await.is_err(),
        "a live work item id is unique"
    );
    let mut dup = NewTask::new("demo", "dup");
    dup.tracker_id = Some("PL-ORCH-7".into());
    assert!(
        h.store.create_task(dup, "cli").await.is_err(),
        "a live tracker id is unique"
    );
    let mut bad = NewTask::new("demo", "bad");
    bad.work_item_id = Some("../etc".into());
    assert!(
        h.store.create_task(bad, "cli").await.is_err(),
        "keys are validated"
    );
    assert!(
        h.store
            .create_task(NewTask::new("a/b", "bad repo"), "cli")
            .await
            .is_err()
    );

    let ev = || EventInput::new("cli", EventKind::StageChanged, "approved");
    assert!(
        h.store
            .set_stage(t.id, Stage::Development, None, ev())
            .await
            .is_err(),
        "no skipping the gate"
    );
    h.store
        .set_stage(t.id, Stage::AwaitingApproval, Some(Stage::Analysis), ev())
        .await
        .unwrap();
    let conflict = h
        .store
        .set_stage(t.id, Stage::Development, Some(Stage::Analysis), ev())
        .await;
    assert!(conflict.is_err(), "expected-stage guard");
    let moved = h
        .store
        .set_stage(
            t.id,
            Stage::Development,
            Some(Stage::AwaitingApproval),
            ev(),
        )
        .await
        .unwrap();
    assert_eq!(moved.stage, Stage::Development);
    let evs = h.store.events(t.id).await.unwrap();
    let kinds: Vec<_> = evs.iter().map(|e| (e.kind.as_str(), e.to_stage)).collect();
    assert_eq!(
        kinds,
        vec![
            ("created", Some(Stage::Analysis)),
            ("stage_changed", Some(Stage::AwaitingApproval)),
            ("stage_changed", Some(Stage::Development))
        ]
    );
    assert_eq!(
        h.store
            .find_live_task_by_work_item("ORCH-7")
            .await
            .unwrap()
            .unwrap()
            .id,
        t.id
    );
    assert_eq!(
        h.store
            .find_live_task_by_tracker_id("PL-ORCH-7")
            .await
            .unwrap()
            .unwrap()
            .id,
        t.id
    );
    let listed = h
        .store
        .list_tasks(&TaskFilter {
            stage: Some(Stage::Development),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|t| t.id).collect::<Vec<_>>(), vec![t.id]);
    let counts = h.store.task_counts_by_stage().await.unwrap();
    assert_eq!(counts.get(&Stage::Development), Some(&1));
    assert_eq!(counts.get(&Stage::Analysis), Some(&1));
}

pub async fn runs_record_process_outcome_and_usage(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::Development).await;
    let j = job(&h, &t, AgentKind::Developer).await;
    let c = claim_exactly(&h, &j).await;
    let run = c.run_id.clone().unwrap();
    let p = RunProcess {
        pid: 4242,
        pgid: 4242,
        proc_start_ticks: 123_456,
        log_path: "/tmp/x.log".into(),
    };
    assert!(h.store.record_run_process(&run, &p).await.unwrap());
    let fin = RunFinish {
        outcome: RunOutcome::Succeeded,
        exit_code: Some(0),
        signal: None,
        usage: Usage {
            input_tokens: 100,
            output_tokens: 20,
            cost_usd: 0.5,
            ..Usage::default()
        },
        session_id: Some("s-1".into()),
        error: None,
        final_text: Some("VERDICT: approve".into()),
    };
    assert!(h.store.finish_run(&run, &fin).await.unwrap());
    assert!(
        !h.store.finish_run(&run, &fin).await.unwrap(),
        "only the first finish counts"
    );
    let r = h.store.get_run(&run).await.unwrap().unwrap();
    assert_eq!(
        (r.pid, r.proc_start_ticks, r.outcome),
        (Some(4242), Some(123_456), Some(RunOutcome::Succeeded))
    );
    assert_eq!(r.worker_id, WorkerId("worker-a".into()));
    assert_eq!(r.attempt, 1);
    assert_eq!(r.final_text.as_deref(), Some("VERDICT: approve"));
    h.store.complete(j.id, &run).await.unwrap();
    let j2 = job(&h, &t, AgentKind::Reviewer).await;
    let c2 = claim_exactly(&h, &j2).await;
    let fin2 = RunFinish {
        usage: Usage {
            input_tokens: 1,
            output_tokens: 2,
            cost_usd: 0.25,
            ..Usage::default()
        },
        ..fin
    };
    h.store
        .finish_run(c2.run_id.as_ref().unwrap(), &fin2)
        .await
        .unwrap();
    let u = h.store.task_usage(t.id).await.unwrap();
    assert_eq!((u.input_tokens, u.output_tokens), (101, 22));
    assert!((u.cost_usd - 0.75).abs() < 1e-9);
    assert_eq!(h.store.runs_for_task(t.id).await.unwrap().len(), 2);
    // Per repo: both runs, the second one only counted "since" its start.
    let before = h
        .store
        .usage_by_repo(orch_core::Timestamp::EPOCH)
        .await
        .unwrap();
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(
        (
            before[0].repo.as_str(),
            before[0].runs,
            before[0].runs_since
        ),
        ("demo", 2, 2)
    );
    assert_eq!(before[0].usage.total_tokens(), 123);
    assert!((before[0].usage.cost_usd - 0.75).abs() < 1e-9);
    let later = h.clock.now().plus(Duration::from_secs(1));
    let after = h.store.usage_by_repo(later).await.unwrap();
    assert_eq!((after[0].runs, after[0].runs_since), (2, 0));
    // Per task: the board's sums, only for tasks from the id asked for.
    let per_task = h.store.usage_by_task(t.id).await.unwrap();
    assert_eq!(per_task.len(), 1, "{per_task:?}");
    assert_eq!(per_task[&t.id].total_tokens(), 123);
    assert!((per_task[&t.id].cost_usd - 0.75).abs() < 1e-9);
    let newer = orch_core::TaskId(t.id.0 + 1);
    assert!(h.store.usage_by_task(newer).await.unwrap().is_empty());
    assert!(
        h.store
            .get_run(&RunId("nope".into()))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn markers_and_deliveries(h: Harness) {
    let t = task(&h, "ORCH-430", Stage::Deploy).await;
    let m = h
        .store
        .write_marker(t.id, "demo", MarkerStep::Deploy, "phase-b")
        .await
        .unwrap();
    assert_eq!(m.state, MarkerState::Initiated);
    assert!(
        h.store
            .write_marker(t.id, "demo", MarkerStep::Deploy, "again")
            .await
            .is_err(),
        "one INITIATED per step"
    );
    let merge = h
        .store
        .write_marker(t.id, "demo", MarkerStep::Merge, "abc123")
        .await
        .unwrap();
    assert_eq!(
        h.store.initiated_markers(Some(t.id)).await.unwrap().len(),
        2
    );
    assert!(
        h.store
            .finish_marker(m.id, MarkerState::Completed)
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .finish_marker(m.id, MarkerState::Completed)
            .await
            .unwrap()
    );
    assert!(
        h.store
            .finish_marker(merge.id, MarkerState::Abandoned)
            .await
            .unwrap()
    );
    assert!(h.store.initiated_markers(None).await.unwrap().is_empty());
    let all: Vec<_> = h
        .store
        .task_markers(t.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.step, m.state, m.detail))
        .collect();
    assert_eq!(
        all,
        [
            (MarkerStep::Deploy, MarkerState::Completed, "phase-b".into()),
            (MarkerStep::Merge, MarkerState::Abandoned, "abc123".into()),
        ],
        "every marker of the task, finished ones too, oldest first"
    );
    h.store
        .write_marker(t.id, "demo", MarkerStep::Deploy, "retry")
        .await
        .expect("a new marker after completion");

    assert!(h.store.record_delivery("plane", "d-1").await.unwrap());
    assert!(
        !h.store.record_delivery("plane", "d-1").await.unwrap(),
        "a replay is recognised"
    );
    assert!(
        h.store.record_delivery("gitea", "d-1").await.unwrap(),
        "ids are per provider"
    );
}

pub async fn tracker_items_and_comments(h: Harness) {
    let item = TrackerItem {
        id: "ITEM-1".into(),
        project: "default".into(),
        title: "Add hello".into(),
        body: "".into(),
        state: "To Analyse".into(),
        labels: vec![],
        created_at: h.clock.now_ts(),
        updated_at: h.clock.now_ts(),
    };
    h.store.create_item(&item).await.unwrap();
    assert!(h.store.create_item(&item).await.is_err());
    assert!(h.store.set_item_state("ITEM-1", "Approved").await.unwrap());
    assert!(!h.store.set_item_state("nope", "Approved").await.unwrap());
    assert!(
        h.store
            .set_item_labels("ITEM-1", &["orch:review".into()])
            .await
            .unwrap()
    );
    let got = h.store.get_item("ITEM-1").await.unwrap().unwrap();
    assert_eq!(
        (got.state.as_str(), got.labels.clone()),
        ("Approved", vec!["orch:review".to_string()])
    );
    assert!(
        h.store
            .add_item_comment("ITEM-1", "orch", "analysis ready", Some("c-1"))
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .add_item_comment("ITEM-1", "orch", "analysis ready", Some("c-1"))
            .await
            .unwrap()
    );
    assert!(
        h.store
            .add_item_comment("ITEM-1", "alice", "looks good", None)
            .await
            .unwrap()
    );
    assert_eq!(h.store.item_comments("ITEM-1").await.unwrap().len(), 2);
    assert_eq!(h.store.list_items(Some("default")).await.unwrap().len(), 1);
}

/// The ids of the notifications due now, in order.
async fn due_ids(h: &Harness) -> Vec<i64> {
    let due = h.store.due_notifications(10).await.unwrap();
    due.iter().map(|d| d.id).collect()
}

/// The notification outbox: due now, de-duplicated by key, retried later
/// or given up, and never sent twice.
pub async fn notifications_outbox(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::AwaitingApproval).await;
    let n = |key: Option<&str>, text: &str| NewNotification {
        sink: "chat".into(),
        task_id: Some(t.id),
        payload: serde_json::json!({ "text": text }),
        dedupe_key: key.map(str::to_owned),
    };
    assert!(
        h.store
            .enqueue_notification(&n(None, "first"))
            .await
            .unwrap()
    );
    assert!(
        h.store
            .enqueue_notification(&n(Some("k"), "second"))
            .await
            .unwrap()
    );
    assert!(
        !h.store
            .enqueue_notification(&n(Some("k"), "again"))
            .await
            .unwrap(),
        "same sink and key: written once"
    );
    let mut other = n(Some("k"), "other sink");
    other.sink = "mail".into();
    other.task_id = None;
    assert!(
        h.store.enqueue_notification(&other).await.unwrap(),
        "keys are per sink"
    );

    let due = h.store.due_notifications(10).await.unwrap();
    let texts: Vec<_> = due.iter().map(|d| d.payload["text"].clone()).collect();
    assert_eq!(texts, ["first", "second", "other sink"], "oldest first");
    assert_eq!((due[0].task_id, due[2].task_id), (Some(t.id), None));
    assert_eq!(
        h.store.due_notifications(1).await.unwrap().len(),
        1,
        "limit"
    );

    // Sent: gone from the outbox, and sent only once.
    assert!(h.store.notification_sent(due[0].id).await.unwrap());
    assert!(!h.store.notification_sent(due[0].id).await.unwrap());
    // A failure with a retry time: not due until then, attempts counted.
    let later = Some(Duration::from_secs(30));
    assert!(
        h.store
            .notification_failed(due[1].id, "status 500", later)
            .await
            .unwrap()
    );
    assert_eq!(due_ids(&h).await, [due[2].id]);
    h.clock.advance(Duration::from_secs(31));
    let again = h.store.due_notifications(10).await.unwrap();
    assert_eq!(
        due_ids(&h).await,
        [due[2].id, due[1].id],
        "by due time: the retried one is due later"
    );
    assert_eq!((again[0].attempts, again[1].attempts), (0, 1));
    // Given up: never due again, and cannot be marked sent afterwards.
    assert!(
        h.store
            .notification_failed(due[1].id, "status 404", None)
            .await
            .unwrap()
    );
    assert!(!h.store.notification_sent(due[1].id).await.unwrap());
    assert!(
        !h.store
            .notification_failed(due[1].id, "again", None)
            .await
            .unwrap()
    );
    assert_eq!(due_ids(&h).await, [due[2].id]);
}

/// The tracker's writes: a task's creation and each stage move write one in
/// their own transaction (the item, `"op": "stage"`, the stage); never
/// handed to the `[[notify]]` sender; listed in the order written, due or
/// not, so a later write to an item can wait for an earlier one that is
/// being retried.
pub async fn tracker_writes_keep_their_order(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::AwaitingApproval).await;
    let moved = h
        .store
        .set_stage(
            t.id,
            Stage::Development,
            Some(Stage::AwaitingApproval),
            EventInput::new("test", EventKind::Approved, "go"),
        )
        .await
        .unwrap();
    let write = |text: &str| NewNotification {
        sink: crate::TRACKER_SINK.into(),
        task_id: Some(t.id),
        payload: serde_json::json!({ "text": text }),
        dedupe_key: None,
    };
    assert!(
        h.store
            .enqueue_notification(&write("comment"))
            .await
            .unwrap()
    );
    let chat = NewNotification {
        sink: "chat".into(),
        ..write("chat")
    };
    assert!(h.store.enqueue_notification(&chat).await.unwrap());
    // Cancelled: the stage write names the item as it was (not tombstoned).
    h.store
        .mark_cancelled(t.id, EventInput::new("test", EventKind::Cancelled, "STOP"))
        .await
        .unwrap();
    let due = h.store.due_notifications(10).await.unwrap();
    assert_eq!(due.len(), 1, "only the chat's: {due:?}");
    assert_eq!(due[0].sink, "chat");
    let pending = h
        .store
        .pending_notifications(crate::TRACKER_SINK, 10)
        .await
        .unwrap();
    let stage = |s: &str| serde_json::json!({ "item": "PL-ORCH-1", "op": "stage", "stage": s });
    let payloads: Vec<_> = pending.iter().map(|p| p.payload.clone()).collect();
    assert_eq!(
        payloads,
        [
            stage("awaiting_approval"),
            stage("development"),
            serde_json::json!({ "text": "comment" }),
            stage("cancelled"),
        ]
    );
    assert_eq!(pending[1].task_id, Some(moved.id));
    // The first is retried later: still listed first, with its due time.
    let later = Some(Duration::from_secs(60));
    assert!(
        h.store
            .notification_failed(pending[0].id, "503", later)
            .await
            .unwrap()
    );
    let again = h
        .store
        .pending_notifications(crate::TRACKER_SINK, 10)
        .await
        .unwrap();
    assert_eq!(again[0].id, pending[0].id, "in the order written");
    assert_eq!(again[0].attempts, 1);
    assert!(again[0].next_at > h.clock.now());
    assert!(h.store.notification_sent(again[1].id).await.unwrap());
    assert_eq!(
        h.store
            .pending_notifications(crate::TRACKER_SINK, 1)
            .await
            .unwrap()
            .len(),
        1,
        "limit"
    );
    let left: Vec<i64> = h
        .store
        .pending_notifications(crate::TRACKER_SINK, 10)
        .await
        .unwrap()
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(
        left,
        [pending[0].id, pending[2].id, pending[3].id],
        "sent ones leave"
    );
    // A task without a tracker item writes none.
    let before = h
        .store
        .pending_notifications(crate::TRACKER_SINK, 100)
        .await
        .unwrap()
        .len();
    let mut bare = NewTask::new("demo", "no item");
    bare.stage = Stage::Analysis;
    let bare = h.store.create_task(bare, "test").await.unwrap();
    h.store
        .set_stage(
            bare.id,
            Stage::AwaitingApproval,
            None,
            EventInput::new("test", EventKind::Analysed, "ready"),
        )
        .await
        .unwrap();
    assert_eq!(
        h.store
            .pending_notifications(crate::TRACKER_SINK, 100)
            .await
            .unwrap()
            .len(),
        before
    );
}

/// An outbox's standing (waiting, retrying, given up), its given-up rows
/// with their last error, and sending a given-up one again.
pub async fn outbox_counts_and_resend(h: Harness) {
    let n = |text: &str| NewNotification {
        sink: "chat".into(),
        task_id: None,
        payload: serde_json::json!({ "text": text }),
        dedupe_key: None,
    };
    for text in ["a", "b", "c", "d"] {
        assert!(h.store.enqueue_notification(&n(text)).await.unwrap());
    }
    let other = NewNotification {
        sink: "mail".into(),
        ..n("x")
    };
    assert!(h.store.enqueue_notification(&other).await.unwrap());
    let due = h.store.due_notifications(10).await.unwrap();
    let chat: Vec<_> = due.iter().filter(|d| d.sink == "chat").collect();
    assert!(h.store.notification_sent(chat[0].id).await.unwrap());
    let later = Some(Duration::from_secs(30));
    assert!(
        h.store
            .notification_failed(chat[1].id, "status 500", later)
            .await
            .unwrap()
    );
    assert!(
        h.store
            .notification_failed(chat[2].id, "status 404", None)
            .await
            .unwrap()
    );
    assert_eq!(
        h.store.outbox_counts("chat").await.unwrap(),
        OutboxCounts {
            waiting: 1,
            retrying: 1,
            given_up: 1
        }
    );
    assert_eq!(
        h.store.outbox_counts("nobody").await.unwrap(),
        OutboxCounts::default()
    );
    let gone = h.store.given_up_notifications("chat", 10).await.unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].id, chat[2].id);
    assert_eq!(gone[0].last_error.as_deref(), Some("status 404"));
    assert!(gone[0].failed_at.is_some());
    // Sent again: due now, attempts afresh; only a given-up one can be.
    assert!(h.store.resend_notification(chat[2].id).await.unwrap());
    assert!(!h.store.resend_notification(chat[2].id).await.unwrap());
    assert!(
        !h.store.resend_notification(chat[0].id).await.unwrap(),
        "sent"
    );
    assert!(!h.store.resend_notification(9_999_999).await.unwrap());
    let again = h.store.due_notifications(10).await.unwrap();
    let back = again
        .iter()
        .find(|d| d.id == chat[2].id)
        .expect("due again");
    assert_eq!((back.attempts, back.failed_at), (0, None));
    assert_eq!(h.store.outbox_counts("chat").await.unwrap().given_up, 0);
}

/// Claimers sharing one store each get distinct jobs; every job is claimed once.
pub async fn concurrent_claims_are_exclusive(h: Harness) {
    let t = task(&h, "ORCH-1", Stage::Development).await;
    for _ in 0..200 {
        job(&h, &t, AgentKind::Developer).await;
    }
    let mut handles = Vec::new();
    for w in 0..4 {
        let store = h.store.clone();
        handles.push(tokio::spawn(async move {
            let r = ClaimRequest::new(format!("w{w}"));
            let mut got = Vec::new();
            while let Some(j) = store.claim(&r).await.expect("claim") {
                store
                    .complete(j.id, j.run_id.as_ref().expect("run id"))
                    .await
                    .expect("complete");
                got.push(j.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for hd in handles {
        all.extend(hd.await.expect("claimer"));
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (200, 200), "every job claimed exactly once");
    assert_eq!(
        h.store
            .job_counts()
            .await
            .unwrap()
            .get(&JobStatus::Succeeded),
        Some(&200)
    );
}

fn finish(outcome: RunOutcome) -> RunFinish {
    RunFinish {
        outcome,
        exit_code: Some(0),
        signal: None,
        usage: Usage::default(),
        session_id: None,
        error: None,
        final_text: None,
    }
}

/// The wall-time budget's figure: agent runs (analyst, developer,
/// reviewer) by duration, the one in progress by its start; the merger's and
/// deployer's runs and a run no job is running any more do not count.
pub async fn agent_wall_time_counts_agent_runs_and_the_one_in_progress(h: Harness) {
    let t = task(&h, "ORCH-30", Stage::Development).await;
    let dev = job(&h, &t, AgentKind::Developer).await;
    let c = claim_exactly(&h, &dev).await;
    let started = h.clock.now_ts();
    h.clock.advance(Duration::from_secs(5));
    let u = h.store.task_usage(t.id).await.unwrap();
    assert_eq!(
        (u.agent_wall_ms, u.agent_running_since),
        (0, Some(started)),
        "the run in progress counts from its start"
    );
    assert_eq!(u.agent_wall_ms_at(h.clock.now_ts()), 5_000);
    let run = c.run_id.clone().unwrap();
    assert!(
        h.store
            .finish_run(&run, &finish(RunOutcome::Succeeded))
            .await
            .unwrap()
    );
    h.store.complete(dev.id, &run).await.unwrap();
    let r = h.store.get_run(&run).await.unwrap().unwrap();
    assert_eq!(r.usage.agent_wall_ms, 5_000, "a run's own figure");
    // A merger's run is not agent work.
    let merger = job(&h, &t, AgentKind::Merger).await;
    let m = claim_exactly(&h, &merger).await;
    h.clock.advance(Duration::from_secs(7));
    let u = h.store.task_usage(t.id).await.unwrap();
    assert_eq!((u.agent_wall_ms, u.agent_running_since), (5_000, None));
    let mrun = m.run_id.clone().unwrap();
    h.store
        .finish_run(&mrun, &finish(RunOutcome::Succeeded))
        .await
        .unwrap();
    h.store.complete(merger.id, &mrun).await.unwrap();
    // A reviewer run whose job was reaped but whose run row was never
    // finished (a crash) is not "in progress" for ever.
    let rev = job(&h, &t, AgentKind::Reviewer).await;
    let rc = claim_exactly(&h, &rev).await;
    h.store.cancel_jobs_for_task(t.id, false).await.unwrap();
    let _ = rc;
    h.clock.advance(Duration::from_secs(60));
    let u = h.store.task_usage(t.id).await.unwrap();
    assert_eq!((u.agent_wall_ms, u.agent_running_since), (5_000, None));
}

/// To Analyse on a done or failed item: the new task retires the old one's
/// keys in the same transaction, the old one keeps its row and history, and
/// both the live key and the old one are found by key.
pub async fn a_fresh_task_retires_the_keys_of_a_done_or_failed_one(h: Harness) {
    for (key, stage) in [("ORCH-40", Stage::Done), ("ORCH-41", Stage::Failed)] {
        let old = task(&h, key, stage).await;
        let mut dup = NewTask::new("demo", "again");
        dup.work_item_id = Some(key.to_owned());
        dup.tracker_id = Some(format!("PL-{key}"));
        assert!(
            matches!(
                h.store.create_task(dup.clone(), "test").await,
                Err(crate::StoreError::Duplicate { .. })
            ),
            "{stage}: without `replaces` the keys are taken"
        );
        dup.replaces = Some(old.id);
        let new = h.store.create_task(dup, "test").await.unwrap();
        let old_now = h.store.get_task(old.id).await.unwrap().unwrap();
        assert_eq!(old_now.stage, stage, "the old task stays {stage}");
        assert_eq!(old_now.work_item_id, format!("{key}#retired-{}", old.id));
        assert_eq!(
            old_now.tracker_id.as_deref(),
            Some(format!("PL-{key}#retired-{}", old.id).as_str())
        );
        assert_eq!(old_now.original_work_item_id(), key);
        let kinds: Vec<&str> = h
            .store
            .events(old.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            ["created", "retired"],
            "history kept, retirement logged"
        );
        let live = h
            .store
            .find_live_task_by_tracker_id(&format!("PL-{key}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live.id, new.id);
        assert_eq!(
            h.store.find_task_by_key(key).await.unwrap().unwrap().id,
            new.id,
            "a key names its live task"
        );
        assert_eq!(
            h.store
                .latest_task_of_item(&format!("PL-{key}"))
                .await
                .unwrap()
                .unwrap()
                .id,
            new.id
        );
    }
    // A key whose only task was cancelled still finds it; a prefix does not.
    let c = task(&h, "ORCH-4", Stage::Review).await;
    h.store.mark_cancelled(c.id, cancel_ev()).await.unwrap();
    assert_eq!(
        h.store
            .find_task_by_key("ORCH-4")
            .await
            .unwrap()
            .unwrap()
            .id,
        c.id
    );
    assert_eq!(
        h.store
            .latest_task_of_item("PL-ORCH-4")
            .await
            .unwrap()
            .unwrap()
            .id,
        c.id
    );
    assert!(h.store.find_task_by_key("ORCH").await.unwrap().is_none());
    assert!(h.store.find_task_by_key("ORCH-4_").await.unwrap().is_none());
}

/// A dependent waits for its dependency's work item: when a failed or
/// cancelled dependency's item runs again, the live dependents wait for the
/// new task; a done one's dependents got what they waited for.
pub async fn dependents_of_a_failed_or_cancelled_task_follow_its_item(h: Harness) {
    for (key, dead) in [("ORCH-50", Stage::Failed), ("ORCH-51", Stage::Cancelled)] {
        let dep = task(&h, key, Stage::Review).await;
        let mut waiting = NewTask::new("demo", "waits");
        waiting.depends_on = vec![dep.id];
        let waiting = h.store.create_task(waiting, "test").await.unwrap();
        let mut finished = NewTask::new("demo", "finished");
        finished.depends_on = vec![dep.id];
        finished.stage = Stage::Done;
        let finished = h.store.create_task(finished, "test").await.unwrap();
        if dead == Stage::Cancelled {
            h.store.mark_cancelled(dep.id, cancel_ev()).await.unwrap();
        } else {
            h.store
                .set_stage(
                    dep.id,
                    Stage::Failed,
                    None,
                    EventInput::new("t", EventKind::Failed, "x"),
                )
                .await
                .unwrap();
        }
        let mut again = NewTask::new("demo", "again");
        again.work_item_id = Some(key.to_owned());
        again.tracker_id = Some(format!("PL-{key}"));
        again.replaces = Some(dep.id);
        let again = h.store.create_task(again, "test").await.unwrap();
        assert_eq!(
            h.store.dependencies(waiting.id).await.unwrap(),
            vec![again.id],
            "{dead}: the live dependent now waits for the new task"
        );
        assert!(
            h.store
                .events(waiting.id)
                .await
                .unwrap()
                .iter()
                .any(|e| e.kind == EventKind::DependencyMoved
                    && e.message.contains(&format!("task {}", again.id))),
            "the move is logged on the dependent"
        );
        assert_eq!(
            h.store.dependencies(finished.id).await.unwrap(),
            vec![dep.id],
            "a terminal dependent keeps its history"
        );
    }
    let done = task(&h, "ORCH-52", Stage::Done).await;
    let mut waiting = NewTask::new("demo", "waits on done");
    waiting.depends_on = vec![done.id];
    let waiting = h.store.create_task(waiting, "test").await.unwrap();
    let mut again = NewTask::new("demo", "again");
    again.work_item_id = Some("ORCH-52".into());
    again.replaces = Some(done.id);
    h.store.create_task(again, "test").await.unwrap();
    assert_eq!(
        h.store.dependencies(waiting.id).await.unwrap(),
        vec![done.id],
        "a done dependency stays done"
    );
}

/// A person's retry takes a failed task back into the pipeline with a job, in
/// one transaction; nothing else is reopened.
pub async fn reopen_takes_a_failed_task_back_into_the_pipeline(h: Harness) {
    let t = task(&h, "ORCH-60", Stage::Failed).await;
    let new = NewJob::new(t.id, AgentKind::Reviewer, "demo", h.clock.now_ts());
    let ev = || EventInput::new("test", EventKind::Retried, "again");
    assert!(matches!(
        h.store.reopen(t.id, Stage::Done, ev(), None).await,
        Err(crate::StoreError::IllegalTransition { .. })
    ));
    let (moved, job) = h
        .store
        .reopen(t.id, Stage::Review, ev(), Some(new.clone()))
        .await
        .unwrap();
    assert_eq!(moved.stage, Stage::Review);
    assert_eq!(job.unwrap().status, JobStatus::Queued);
    let last = h.store.events(t.id).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.from_stage, last.to_stage),
        ("retried", Some(Stage::Failed), Some(Stage::Review))
    );
    assert!(matches!(
        h.store.reopen(t.id, Stage::Review, ev(), None).await,
        Err(crate::StoreError::StageConflict { .. })
    ));
    // A failed task whose item runs again as a newer task is not reopened.
    let old = task(&h, "ORCH-61", Stage::Failed).await;
    let mut again = NewTask::new("demo", "again");
    again.work_item_id = Some("ORCH-61".into());
    again.replaces = Some(old.id);
    h.store.create_task(again, "test").await.unwrap();
    assert!(matches!(
        h.store.reopen(old.id, Stage::Analysis, ev(), None).await,
        Err(crate::StoreError::IllegalTransition { .. })
    ));
}

/// Generate one `#[tokio::test]` per conformance case for an implementation.
/// `$harness` is an expression evaluating to a future of a fresh `Harness`,
/// or of an `Option<Harness>` whose `None` skips the case.
#[macro_export]
macro_rules! conformance_suite {
    ($harness:expr) => {
        $crate::conformance_suite!(@cases $harness;
            changes_rise_after_committed_writes,
            tc03_jobs_cancelled_and_claim_skips,
            tc03_cancel_jobs_helper_only_queued,
            tc04_reaper_does_not_requeue_terminal_task,
            tc12_requeue_running_does_not_revive_cancelled,
            tc13_cancel_tombstones_keys,
            tc14_migrations_idempotent_and_contracts_intact,
            d7_cancel_requested_first_stamp_only,
            d7_merge_lease_holder_and_release,
            lease_of_terminal_task_is_free,
            run_id_fences_stale_attempts,
            a_run_that_succeeds_after_losing_its_job_is_not_counted,
            fail_backs_off_then_gives_up,
            give_up_and_enqueue_checks,
            expired_leases_are_found,
            claim_order_and_run_after,
            claim_skips_terminal_tasks,
            gate_dependency_blocks_until_done,
            dependency_cycles_refused,
            gate_serial_blocks_until_release,
            gate_global_limit,
            gate_repo_limit,
            gate_repo_limit_override,
            gate_agent_limit,
            task_keys_and_stage_moves,
            runs_record_process_outcome_and_usage,
            agent_wall_time_counts_agent_runs_and_the_one_in_progress,
            a_fresh_task_retires_the_keys_of_a_done_or_failed_one,
            dependents_of_a_failed_or_cancelled_task_follow_its_item,
            reopen_takes_a_failed_task_back_into_the_pipeline,
            markers_and_deliveries,
            tracker_items_and_comments,
            notifications_outbox,
            tracker_writes_keep_their_order,
            an_events_tracker_comment_goes_out_with_it,
            a_deferred_stops_comment_goes_out_with_its_stamp,
            outbox_counts_and_resend,
            concurrent_claims_are_exclusive,
            worktree_sizes_are_recorded_and_listed,
            idle_worktrees_skip_active_cleaned_and_terminal_tasks,
            nodes_report_themselves_and_drain_when_asked,
            one_leader_at_a_time_and_a_takeover_after_expiry,
            a_tasks_step_lock_is_taken_and_given_back,
        );
    };
    (@cases $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(h) = $crate::conformance::MaybeHarness::into_harness($harness.await) {
                    $crate::conformance::$case(h).await;
                }
            }
        )*
    };
}
