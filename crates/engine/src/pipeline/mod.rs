//! The pipeline engine (R-1…R-9, R-30…R-37): carries out the core's
//! decisions against the store, the tracker, the forge and git.
//!
//! ```text
//! tracker / CLI / API ── start · gate · stop ──▶ Pipeline ──▶ orch_core::decide(view, command, policy)
//! supervisor run report, timer, restart ── tick ──▶        └─ effects: step · lease · merge · deploy · park · cancel
//! ```
//!
//! Every input for a task is a typed [`owner::Command`] applied by the
//! task's one owner (`owner.rs`), so a STOP and a finishing run never race
//! inside one process; across processes every move names the stage it
//! expects, and the store refuses a stale one.

pub mod agent_tools;
mod approval;
mod cancel;
mod disk;
mod error;
mod feedback;
mod hand_over;
pub mod intake;
mod lease;
mod leftovers;
mod merge;
mod owner;
mod preparer;
mod pull_request;
mod reflect;
mod route;
mod run_ended;
mod view;

pub use cancel::CancelResult;
pub use disk::CleanupPass;
pub use error::{PipelineError, PipelineResult};
pub use preparer::{PipelinePreparer, prompt_set};
pub use route::{ReconcileReport, Routed};
pub use view::{job_spec, task_view};

use crate::ports::{Forge, Tracker};
use orch_agent::process::StopPolicy;
use orch_config::Config;
use orch_core::EventKind;
use orch_core::decide;
use orch_core::pipeline::{self, DeployPolicy, Effect, Gate, JobSpec, PipelinePolicy};
use orch_core::{AgentKind, EventInput, NewJob, Stage, Task, TaskId, Timestamp};
use orch_git::{ProtectedBranches, RepoStore};
use orch_store::Store;
use owner::{Command, Outcome};
use std::path::PathBuf;
use std::sync::Arc;

/// A command's owner answered with the outcome of another kind of command:
/// a bug in this file, reported rather than panicked on.
fn unexpected(what: &str, got: Outcome) -> PipelineError {
    PipelineError::Internal(format!("internal error: {what} was answered with {got:?}"))
}

/// The tracker comment of a task parked for a person (R-8a).
pub(crate) fn park_comment(why: &str) -> String {
    format!(
        "orch needs a person: {why}. Move the item to To Analyse or Approved to resume, or STOP it."
    )
}

/// The tracker comment of a task parked on its agent's question (R-8a).
pub(crate) fn question_comment(task: TaskId, question: &str) -> String {
    let quoted: String = question.lines().map(|l| format!("> {l}\n")).collect();
    format!(
        "orch: the agent asks a person:\n\n{quoted}\nAnswer with `orch task answer {task} \"…\"` (or Answer on the dashboard): the agent resumes its session with the answer."
    )
}

/// What a gate or start did, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GateResult {
    pub task: TaskId,
    pub stage: Stage,
    /// What happened, in a sentence.
    pub note: String,
    /// False when the gate was refused (it only left a comment saying why).
    pub applied: bool,
}

pub struct Pipeline {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cfg: Arc<Config>,
    pub(crate) repos: RepoStore,
    pub(crate) tracker: Arc<dyn Tracker>,
    pub(crate) forge: Arc<dyn Forge>,
    pub(crate) stop_policy: StopPolicy,
    pub(crate) runs_dir: PathBuf,
    /// Who acts, in the task log: `cli`, `api`, `worker:<id>`.
    actor: String,
    /// The owners of the tasks with commands in flight (`owner.rs`).
    owners: owner::TaskOwners,
    /// This pipeline, for the owners it spawns.
    me: std::sync::Weak<Pipeline>,
    /// Signalled whenever a step queues a job, so the dispatcher of this
    /// process claims it at once instead of at its next poll.
    job_queued: Arc<tokio::sync::Notify>,
    /// Signalled whenever a notification is written to the outbox.
    notification_queued: Arc<tokio::sync::Notify>,
    /// Every write to the tracker goes through it (durable, in order).
    tracker_outbox: Arc<crate::tracker_outbox::TrackerOutbox>,
    /// The supervisor of the engine this pipeline runs in, once attached:
    /// STOP asks it to stop the runs it watches (it is the one code that
    /// signals agents).
    supervisor: std::sync::OnceLock<Arc<crate::supervisor::Supervisor>>,
    /// The engine's live configuration (its reload state is part of `/queue`).
    live_config: std::sync::OnceLock<Arc<crate::live_config::LiveConfig>>,
    /// The last look at each waiting task's CI checks and reviews on the
    /// forge (`feedback.rs`).
    looks: feedback::Looks,
}

impl Pipeline {
    pub fn new(
        store: Arc<dyn Store>,
        cfg: Arc<Config>,
        repos: RepoStore,
        tracker: Arc<dyn Tracker>,
        forge: Arc<dyn Forge>,
        actor: impl Into<String>,
    ) -> Arc<Pipeline> {
        let stop_policy = StopPolicy {
            grace_int: cfg.stop_grace_int(),
            grace_term: cfg.stop_grace_term(),
            kill_wait: std::time::Duration::from_secs(10),
        };
        let runs_dir = cfg.runs_dir();
        // Every port call that fails is counted (orch_tracker/forge_errors_total).
        let tracker: Arc<dyn Tracker> = Arc::new(crate::metered::MeteredTracker(tracker));
        let tracker_outbox = Arc::new(crate::tracker_outbox::TrackerOutbox::new(
            store.clone(),
            tracker.clone(),
            cfg.tracker.states.clone(),
            cfg.features.auto_labels,
        ));
        Arc::new_cyclic(|me| Pipeline {
            store,
            cfg,
            repos,
            tracker,
            tracker_outbox,
            forge: Arc::new(crate::metered::MeteredForge(forge)),
            stop_policy,
            runs_dir,
            actor: actor.into(),
            owners: owner::TaskOwners::default(),
            me: me.clone(),
            job_queued: Arc::new(tokio::sync::Notify::new()),
            notification_queued: Arc::new(tokio::sync::Notify::new()),
            supervisor: std::sync::OnceLock::new(),
            live_config: std::sync::OnceLock::new(),
            looks: feedback::Looks::default(),
        })
    }

    /// The engine's supervisor: from now on a STOP has it stop the runs it
    /// watches instead of signalling their processes itself. Attached once.
    pub fn attach_supervisor(&self, supervisor: Arc<crate::supervisor::Supervisor>) {
        if self.supervisor.set(supervisor).is_err() {
            tracing::warn!("a supervisor was attached to the pipeline twice; the first one stays");
        }
    }

    /// The engine's live configuration, for its reload state. Attached once.
    pub fn attach_live_config(&self, live: Arc<crate::live_config::LiveConfig>) {
        if self.live_config.set(live).is_err() {
            tracing::warn!(
                "a live configuration was attached to the pipeline twice; the first one stays"
            );
        }
    }

    /// How the live configuration stands; `None` before an engine runs this
    /// pipeline or when its configuration does not reload.
    pub fn config_status(&self) -> Option<crate::live_config::ReloadStatus> {
        self.live_config
            .get()
            .filter(|l| l.reloads())
            .map(|l| l.status())
    }

    /// Notified each time this pipeline queues a job (see `job_queued`).
    pub fn job_queued(&self) -> Arc<tokio::sync::Notify> {
        self.job_queued.clone()
    }

    /// Notified each time this pipeline writes a notification to the outbox
    /// (hand it to `notify::Outbox::new`).
    pub fn notification_queued(&self) -> Arc<tokio::sync::Notify> {
        self.notification_queued.clone()
    }

    /// The embedded defaults: builtin tracker and local forge over `repos_dir`.
    pub fn with_defaults(store: Arc<dyn Store>, cfg: Arc<Config>, actor: &str) -> Arc<Pipeline> {
        let repos = RepoStore::new(cfg.repos_dir());
        let tracker = Arc::new(crate::ports::BuiltinTracker::new(store.clone()));
        let forge = Arc::new(crate::ports::LocalForge::new(repos.clone()));
        Pipeline::new(store, cfg, repos, tracker, forge, actor)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn repos(&self) -> &RepoStore {
        &self.repos
    }

    pub(crate) fn event(&self, kind: EventKind, message: impl Into<String>) -> EventInput {
        EventInput::new(self.actor.clone(), kind, message)
    }

    pub(crate) fn policy(&self, repo: &str) -> PipelinePolicy {
        let deploy = self
            .cfg
            .repo(repo)
            .and_then(|r| r.deploy.as_ref())
            .map(|d| DeployPolicy {
                has_prepare: d.prepare.is_some(),
                auto: d.auto,
            });
        PipelinePolicy {
            max_review_rounds: self.cfg.review.max_review_rounds,
            max_rejection_rounds: self.cfg.review.max_rejection_rounds,
            max_ci_rounds: self.cfg.review.max_ci_rounds,
            human_approval: self.cfg.review.human_approval,
            deploy,
            task_deps: self.cfg.features.task_deps,
        }
    }

    /// What the decisions follow for a task of `repo`.
    pub(crate) fn decision_policy(&self, repo: &str) -> decide::Policy {
        decide::Policy {
            pipeline: self.policy(repo),
            stop_applies: self.cfg.stop_scope().applies(repo),
            worktree_limit_mb: self.cfg.limits.worktree_mb,
        }
    }

    pub(crate) fn protected(&self, repo: &str) -> ProtectedBranches {
        let mut p: Vec<String> = vec!["main".into(), "master".into()];
        if let Some(r) = self.cfg.repo(repo) {
            p.push(r.default_branch.clone());
            p.extend(r.protected_branches.iter().cloned());
        }
        ProtectedBranches::new(p)
    }

    pub(crate) fn base_branch(&self, repo: &str) -> String {
        self.cfg
            .repo(repo)
            .map(|r| r.default_branch.clone())
            .unwrap_or_else(|| "main".into())
    }

    async fn task(&self, id: TaskId) -> PipelineResult<Task> {
        self.store
            .get_task(id)
            .await?
            .ok_or_else(|| PipelineError::NotFound(format!("task {id} does not exist")))
    }

    pub(crate) fn new_job(&self, task: &Task, spec: JobSpec) -> NewJob {
        let mut job = NewJob::new(task.id, spec.agent, task.repo.clone(), Timestamp(0));
        job.max_attempts = self.cfg.max_attempts(spec.agent);
        job.payload = serde_json::to_value(&spec).unwrap_or(serde_json::Value::Null);
        job
    }

    /// A person's decision at a gate (Start, Approve, Reject, Confirm Deploy).
    pub async fn gate(
        &self,
        id: TaskId,
        gate: Gate,
        comment: Option<&str>,
    ) -> PipelineResult<GateResult> {
        let comment = comment.map(str::to_owned);
        match self.command(id, Command::Gate { gate, comment }).await? {
            Outcome::Gate(r) => Ok(r),
            other => Err(unexpected("gate", other)),
        }
    }

    /// The gate, applied by the task's owner: the core decides, the
    /// effects are carried out, then whatever the gate made due.
    async fn apply_gate(
        &self,
        id: TaskId,
        gate: Gate,
        comment: Option<&str>,
    ) -> PipelineResult<GateResult> {
        let task = self.task(id).await?;
        let view = task_view(self.store.as_ref(), &task).await?;
        let effects = self.decide_pipeline(&task, &view, &decide::Command::Gate { gate, comment });
        if effects == [Effect::StartAfresh] {
            // The result names the new task, which has its own owner.
            return self.start_afresh(&task).await;
        }
        let only_comments = effects.iter().all(|e| matches!(e, Effect::Comment(_)));
        let note = self.apply(&task, effects).await?;
        // Whatever the gate made due (e.g. a lease to take) happens now; a gate
        // that was refused with a comment moves nothing (TC-10).
        if !only_comments {
            self.apply_tick(id).await?;
        }
        let task = self.task(id).await?;
        Ok(GateResult {
            task: id,
            stage: task.stage,
            note,
            applied: !only_comments,
        })
    }

    /// Remove the task's worktree, its work archived first (R-21; the
    /// archive is logged on the task). No mirror: nothing to remove.
    pub(crate) async fn retire_worktree(&self, task: &Task) -> Result<(), orch_git::GitError> {
        match self
            .repos
            .remove_worktree(&task.repo, &task.branch, task.original_work_item_id())
            .await
        {
            Ok(r) => {
                if let Some(a) = r.archive {
                    let _ = self
                        .store
                        .append_event(
                            task.id,
                            self.event(
                                EventKind::Archived,
                                format!(
                                    "work saved to {} ({}); `orch task restore {}` makes a branch of it",
                                    a.ref_name, a.commit, task.id
                                ),
                            ),
                        )
                        .await;
                }
                Ok(())
            }
            Err(orch_git::GitError::NoMirror { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Do what is due for a task now (level-triggered), until nothing is.
    pub async fn tick(&self, id: TaskId) -> PipelineResult<()> {
        self.command(id, Command::Tick).await.map(|_| ())
    }

    /// The tick, applied by the task's owner.
    async fn apply_tick(&self, id: TaskId) -> PipelineResult<()> {
        let mut lock = None;
        let done = self.tick_steps(id, &mut lock).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        done
    }

    /// What is due, step after step, holding the task's step lock among
    /// the nodes once there is a step to take.
    async fn tick_steps(
        &self,
        id: TaskId,
        lock: &mut Option<orch_store::TaskLock>,
    ) -> PipelineResult<()> {
        // A bounded chain: lease → queue merger, merged → deploy prepare, …
        for _ in 0..8 {
            let task = self.task(id).await?;
            if task.stage.is_terminal() {
                return Ok(());
            }
            let view = self.decision_view(&task).await?;
            let effects = self.decide_pipeline(&task, &view, &decide::Command::Tick);
            if effects.is_empty() {
                return Ok(());
            }
            if lock.is_none() {
                // Every node ticks every task: one at a time takes a step
                // (two merging one task at once would each see the other's
                // merge as interrupted), and decides again once it holds
                // the lock, since the other may just have taken it. A node
                // that finds it held leaves the task to the holder.
                match self.store.try_lock_task(id).await? {
                    Some(l) => *lock = Some(l),
                    None => return Ok(()),
                }
                continue;
            }
            let before = (task.stage, view.clone());
            self.apply(&task, effects).await?;
            let after = self.task(id).await?;
            let view_after = self.decision_view(&after).await?;
            if (after.stage, view_after) == before {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Tick every live task (at start-up and on a timer): repairs anything a
    /// crash left half done.
    pub async fn tick_all(&self) -> PipelineResult<()> {
        let tasks = self
            .store
            .list_tasks(&orch_store::TaskFilter::default())
            .await?;
        for t in tasks.into_iter().filter(|t| !t.stage.is_terminal()) {
            if let Err(e) = self.tick(t.id).await {
                tracing::warn!(task = %t.id, error = %e, "tick failed; retried at the next one");
            }
        }
        Ok(())
    }

    /// What the core decides for a command that calls for pipeline
    /// effects (gates, ticks, a new task's start, a closed pull request).
    pub(crate) fn decide_pipeline(
        &self,
        task: &Task,
        view: &pipeline::TaskView,
        command: &decide::Command<'_>,
    ) -> Vec<Effect> {
        decide::decide(view, command, &self.decision_policy(&task.repo))
            .pipeline_effects()
            .expect("gates, ticks, starts and closed pull requests decide pipeline effects")
    }

    /// Carry out effects in order; returns a note of what happened.
    async fn apply(&self, task: &Task, effects: Vec<Effect>) -> PipelineResult<String> {
        let mut notes = Vec::new();
        for effect in effects {
            let task = self.task(task.id).await?;
            notes.push(self.apply_one(&task, effect).await?);
        }
        Ok(notes.join("; "))
    }

    async fn apply_one(&self, task: &Task, effect: Effect) -> PipelineResult<String> {
        match effect {
            Effect::Step { to, kind, why, job } => self.step(task, to, kind, &why, job).await,
            Effect::Comment(text) => {
                self.store
                    .append_event(
                        task.id,
                        self.event(EventKind::Comment, text.clone())
                            .with_tracker_comment(&text),
                    )
                    .await?;
                self.write_tracker(task, Vec::new()).await;
                Ok(text)
            }
            Effect::AcquireLease => self.acquire_lease(task).await,
            Effect::ReleaseLease => {
                self.store.release_merge_lease(&task.repo, task.id).await?;
                Ok("merge lease released".into())
            }
            // The irreversible steps run only with the lease's proof in hand.
            Effect::Merge => match self.hold_lease(task).await? {
                Ok(lease) => self.merge(task, &lease).await,
                Err(waiting) => Ok(waiting),
            },
            Effect::ResumeMerge => match self.hold_lease(task).await? {
                Ok(lease) => self.resume_merge(task, &lease).await,
                Err(waiting) => Ok(waiting),
            },
            Effect::StartDeployRun => match self.hold_lease(task).await? {
                Ok(lease) => self.start_deploy_run(task, &lease).await,
                Err(waiting) => Ok(waiting),
            },
            Effect::FinishDeploy => match self.hold_lease(task).await? {
                Ok(lease) => self.finish_deploy(task, &lease).await,
                Err(waiting) => Ok(waiting),
            },
            Effect::DeployFailed(why) => self.deploy_failed(task, &why).await,
            Effect::ApplyDeferredCancel => {
                let order = cancel::CancelOrder::deferred("deferred STOP applied");
                let r = self.apply_cancel(task.id, &order).await;
                Ok(format!("deferred STOP applied: {}", r.note))
            }
            Effect::AskConfirmDeploy => {
                let text = "deploy prepared; waiting for Confirm Deploy";
                let comment = format!("orch: {text}.");
                self.store
                    .append_event(
                        task.id,
                        self.event(EventKind::AwaitingConfirmDeploy, text)
                            .with_tracker_comment(&comment),
                    )
                    .await?;
                self.reflect(task, &comment).await;
                Ok(text.into())
            }
            Effect::StartAfresh => Ok(self.start_afresh(task).await?.note),
            Effect::Reopen { to, why, job } => self.reopen(task, to, &why, job).await,
            Effect::Park(why) => self.park(task, &why).await,
            Effect::ReportFailedVerify(why) => {
                self.report_failed_verify(task, &why).await;
                Ok("the failed verify is shown on the forge".into())
            }
            Effect::Begin { job } => self.begin_with(task, job).await,
        }
    }

    /// Move (or stay) with an event and maybe a job, in one transaction.
    pub(crate) async fn step(
        &self,
        task: &Task,
        to: Stage,
        kind: EventKind,
        why: &str,
        job: Option<JobSpec>,
    ) -> PipelineResult<String> {
        // R-4: the work of the agent the move hands over is pushed first.
        let handover = pipeline::hands_over(task.stage, to);
        let pushed = match handover {
            Some(agent) => self.commit_and_push(task, agent).await,
            None => false,
        };
        if pushed && handover == Some(AgentKind::Developer) {
            self.open_pull_request(task).await;
        }
        let job = job.map(|s| self.new_job(task, s));
        let queues = job.is_some();
        // A move tells the tracker why in its own transaction; the analysis
        // handed over asks for the approval with its summary and links.
        let mut event = self.event(kind, why);
        if to != task.stage {
            event = event.with_tracker_comment(match handover {
                Some(AgentKind::Analyst) => self.approval_request(task, pushed).await,
                _ => why.to_owned(),
            });
        }
        let (moved, _) = self
            .store
            .advance(task.id, task.stage, to, event, job)
            .await?;
        if queues {
            self.job_queued.notify_one();
        }
        if moved.stage != task.stage {
            self.reflect(&moved, why).await;
            if moved.stage.is_terminal() {
                self.finish_terminal(&moved).await;
            }
        }
        Ok(why.to_owned())
    }

    /// Commit what `agent` left uncommitted and push the branch; whether the
    /// push succeeded (a failure is logged on the task, and the next push,
    /// at the latest the merge gate's, carries the work).
    async fn commit_and_push(&self, task: &Task, agent: AgentKind) -> bool {
        let base = self.base_branch(&task.repo);
        let wt = match self
            .repos
            .create_or_reuse_worktree(&task.repo, &task.branch, &base)
            .await
        {
            Ok(wt) => wt,
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "no worktree to push");
                return false;
            }
        };
        let msg = format!(
            "{}: uncommitted work left by the {agent}",
            task.original_work_item_id()
        );
        self.repair_worktree(task, &wt).await;
        // On a shared store the run may have been another node's: it pushed
        // its work before it reported, and this copy catches up with it.
        self.catch_up_if_shared(task).await;
        if let Err(e) = self.repos.commit_all(&wt, &msg).await {
            tracing::warn!(task = %task.id, error = %e, "committing leftovers failed");
            let _ = self
                .store
                .append_event(
                    task.id,
                    self.event(
                        EventKind::CommitFailed,
                        format!("committing the {agent}'s work on {}: {e}", task.branch),
                    ),
                )
                .await;
        }
        // Caught up above: pushed as is.
        match self.forge.push_branch(&task.repo, &task.branch).await {
            Ok(_) => true,
            Err(e) => {
                let _ = self
                    .store
                    .append_event(
                        task.id,
                        self.event(
                            EventKind::PushFailed,
                            format!("pushing {}: {e}", task.branch),
                        ),
                    )
                    .await;
                false
            }
        }
    }

    /// To Analyse on a done or failed task: the item runs again as a new
    /// task. The old task keeps its row and history; its keys are retired
    /// with the new task's creation. Like a cancel's reset, its leftovers go
    /// first: the worktree (archived, R-21) and the remote branch (never a
    /// protected one), so the new task starts from the base.
    async fn start_afresh(&self, old: &Task) -> PipelineResult<GateResult> {
        let Some(item) = old.original_tracker_id().map(str::to_owned) else {
            return Err(PipelineError::Invalid(format!(
                "task {} has no tracker item to start again; create a new one (`orch task add`)",
                old.id
            )));
        };
        if let Err(e) = self
            .repos
            .remove_worktree(&old.repo, &old.branch, old.original_work_item_id())
            .await
            && !matches!(e, orch_git::GitError::NoMirror { .. })
        {
            tracing::warn!(task = %old.id, error = %e, "fresh start: removing the old worktree failed");
        }
        if let Err(e) = self
            .forge
            .delete_branch(&old.repo, &old.branch, &self.protected(&old.repo))
            .await
        {
            let _ = self
                .store
                .append_event(
                    old.id,
                    self.event(
                        EventKind::FreshStartProblem,
                        format!("deleting the old remote branch {}: {e}", old.branch),
                    ),
                )
                .await;
        }
        let mut r = self.start_pipeline(&item).await?;
        r.note = format!(
            "task {} was {}: its item runs again as task {} ({})",
            old.id, old.stage, r.task, r.note
        );
        Ok(r)
    }

    /// A person retried a failed task: back to the stage it failed in.
    async fn reopen(
        &self,
        task: &Task,
        to: Stage,
        why: &str,
        job: Option<JobSpec>,
    ) -> PipelineResult<String> {
        let job = job.map(|s| self.new_job(task, s));
        let queues = job.is_some();
        let comment = format!("orch: retried in {to} ({why}).");
        let (moved, _) = self
            .store
            .reopen(
                task.id,
                to,
                self.event(EventKind::Retried, why)
                    .with_tracker_comment(&comment),
                job,
            )
            .await?;
        if queues {
            self.job_queued.notify_one();
        }
        self.reflect(&moved, &comment).await;
        Ok(format!("retried: back to {to}"))
    }

    /// Park the task for a person (R-8a). Its queued jobs are cancelled: they
    /// could run while it waits (or never, held back by a dependency), and a
    /// person's resume queues a fresh one.
    pub(crate) async fn park(&self, task: &Task, why: &str) -> PipelineResult<String> {
        self.park_with(task, EventKind::NeedsAttention, why, &park_comment(why))
            .await
    }

    /// Park the task on its agent's question (R-8a): the question is the
    /// park's event (what `orch task answer` and the dashboard find), and
    /// the tracker item gets it quoted with how to answer.
    pub(crate) async fn park_on_question(
        &self,
        task: &Task,
        question: &str,
    ) -> PipelineResult<String> {
        self.park_with(
            task,
            EventKind::AgentQuestion,
            question,
            &question_comment(task.id, question),
        )
        .await
    }

    /// The park itself: the task's jobs are cancelled, then the stage moves
    /// with its event and the tracker comment in one transaction.
    async fn park_with(
        &self,
        task: &Task,
        kind: EventKind,
        why: &str,
        comment: &str,
    ) -> PipelineResult<String> {
        if task.stage == Stage::NeedsAttention || task.stage.is_terminal() {
            return Ok(why.to_owned());
        }
        self.store.cancel_jobs_for_task(task.id, true).await?;
        let moved = self
            .store
            .set_stage(
                task.id,
                Stage::NeedsAttention,
                Some(task.stage),
                self.event(kind, why)
                    .with_tracker_comment(comment.to_owned()),
            )
            .await?;
        self.reflect(&moved, comment).await;
        Ok(why.to_owned())
    }

    /// A task reached done or failed: release its lease and remove its
    /// worktree (its work archived first, R-21).
    pub(crate) async fn finish_terminal(&self, task: &Task) {
        if let Err(e) = self.store.release_merge_lease(&task.repo, task.id).await {
            tracing::warn!(task = %task.id, error = %e, "releasing the lease failed");
        }
        if let Err(e) = self.retire_worktree(task).await {
            tracing::warn!(task = %task.id, error = %e, "removing the worktree failed");
        }
    }
}
