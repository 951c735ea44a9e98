//! Tracker states → pipeline calls, and the reconciler that
//! repairs missed state changes (R-43, TC-12).

use super::owner::{Command, Outcome};
use super::{CancelResult, Pipeline, PipelineResult};
use orch_config::StateRole;
use orch_core::EventKind;
use orch_core::Stage;
use orch_core::pipeline::Gate;
use serde::Serialize;

/// What a tracker state change led to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "routed", rename_all = "snake_case")]
pub enum Routed {
    Started {
        note: String,
    },
    Gate {
        gate: Gate,
        note: String,
    },
    Stop(CancelResult),
    /// Not a gate state (e.g. orch's own "Development"): nothing to do.
    Ignored,
    /// A state that names no gate or stage of `[tracker.states]` (e.g. Plane's
    /// "In Progress", or a typo): nothing moves, but it is logged on the
    /// item's live task and counted (`orch_tracker_unmapped_states_total`),
    /// never dropped silently.
    Unmapped {
        state: String,
    },
}

/// What one reconciler pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub checked: u32,
    /// Terminal tasks, skipped without a tracker call (TC-12).
    pub skipped_terminal: u32,
    /// Gate states the pipeline had not acted on, applied now.
    pub repaired: u32,
    pub errors: u32,
}

impl Pipeline {
    /// An item moved to `state` on the tracker (a webhook, the CLI, the API).
    pub async fn on_item_state(
        &self,
        item: &str,
        state: &str,
        comment: Option<&str>,
        source: &str,
    ) -> PipelineResult<Routed> {
        // One rule for state names (`orch_config::same_state`): trimmed and
        // case-insensitive, as `orch doctor` and the trackers' writes compare.
        let gate = match self.cfg.tracker.states.role_of(state) {
            Some(StateRole::Stop) => {
                return Ok(Routed::Stop(self.handle_stop(item, source).await));
            }
            Some(StateRole::ToAnalyse) => {
                return Ok(Routed::Started {
                    note: self.start_item(item).await?.note,
                });
            }
            Some(StateRole::Approved) => Gate::Approve,
            Some(StateRole::Rejected) => Gate::Reject,
            Some(StateRole::ConfirmDeploy) => Gate::ConfirmDeploy,
            // A stage's own state: orch wrote it, nothing to do.
            Some(StateRole::Stage(_)) => return Ok(Routed::Ignored),
            None => return self.unmapped_state(item, state, source).await,
        };
        let Some(task) = self.store.find_live_task_by_tracker_id(item).await? else {
            return Ok(Routed::Ignored);
        };
        // A move made on the tracker carries no comment of its own: the
        // person's reason is the comment they left on the item since orch
        // asked, and it reaches the agent as the CLI's `--comment` does.
        let fetched = match comment {
            Some(_) => None,
            None => self.person_comment(&task, item, source).await,
        };
        let comment = comment.or(fetched.as_deref());
        let r = self.gate(task.id, gate, comment).await?;
        Ok(Routed::Gate { gate, note: r.note })
    }

    /// The newest comment a person left on `item` since orch asked for the
    /// decision the task waits on (see [`super::view::asked_at`]), cut to
    /// [`GATE_COMMENT_MAX`]. A tracker that cannot answer delays nothing: the
    /// gate goes on without it, and the task's log says so.
    pub(super) async fn person_comment(
        &self,
        task: &orch_core::Task,
        item: &str,
        source: &str,
    ) -> Option<String> {
        let since = match self.store.events(task.id).await {
            Ok(events) => super::view::asked_at(&events, task),
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "reading the task's events failed");
                task.updated_at
            }
        };
        match self.tracker.person_comment_since(item, since).await {
            Ok(Some(text)) if !text.trim().is_empty() => Some(cut_comment(text.trim())),
            Ok(_) => None,
            Err(e) => {
                let _ = self
                    .store
                    .append_event(
                        task.id,
                        orch_core::EventInput::new(
                            source,
                            EventKind::TrackerError,
                            format!(
                                "reading the person's comment on the item failed ({e}); the gate goes on without it"
                            ),
                        ),
                    )
                    .await;
                None
            }
        }
    }

    /// A tracker state that maps to no gate or stage: logged on the item's
    /// live task (if it has one) and counted, so a misnamed state shows up
    /// instead of a STOP or a start silently doing nothing.
    async fn unmapped_state(
        &self,
        item: &str,
        state: &str,
        source: &str,
    ) -> PipelineResult<Routed> {
        metrics::counter!("orch_tracker_unmapped_states_total").increment(1);
        let msg = format!(
            "the tracker moved the item to {state:?} ({source}), which names no gate or stage of [tracker.states]; nothing was done (state names are compared trimmed and case-insensitively)"
        );
        match self.store.find_live_task_by_tracker_id(item).await? {
            Some(task) => {
                tracing::warn!(task = %task.id, item, state, source, "unmapped tracker state");
                self.store
                    .append_event(
                        task.id,
                        orch_core::EventInput::new(source, EventKind::UnmappedState, msg),
                    )
                    .await?;
            }
            None => tracing::info!(item, state, source, "unmapped tracker state (no task)"),
        }
        Ok(Routed::Unmapped {
            state: state.to_owned(),
        })
    }

    /// One pass over the tasks: terminal ones are skipped and counted; a live
    /// task whose item sits in a gate state the pipeline has not acted on
    /// gets that gate now. A tracker error changes nothing.
    pub async fn reconcile_once(&self) -> PipelineResult<ReconcileReport> {
        let mut rep = ReconcileReport::default();
        let tasks = self
            .store
            .list_tasks(&orch_store::TaskFilter::default())
            .await?;
        let s = self.cfg.tracker.states.clone();
        for task in tasks {
            rep.checked += 1;
            if task.stage.is_terminal() {
                rep.skipped_terminal += 1;
                continue;
            }
            let Some(item_id) = task.original_tracker_id().map(str::to_owned) else {
                continue;
            };
            let item = match self.tracker.item(&item_id).await {
                Ok(Some(i)) => i,
                // Absent or unreachable: never a reason to change a task.
                Ok(None) => continue,
                Err(e) => {
                    rep.errors += 1;
                    tracing::warn!(task = %task.id, error = %e, "reconcile: tracker error; nothing changed");
                    continue;
                }
            };
            let due = match s.role_of(&item.state) {
                Some(StateRole::Stop) => true,
                Some(StateRole::Approved | StateRole::Rejected) => {
                    task.stage == Stage::AwaitingApproval
                }
                Some(StateRole::ConfirmDeploy) => task.stage == Stage::Deploy,
                _ => false,
            };
            if due {
                match self
                    .on_item_state(&item_id, &item.state, None, "reconciler")
                    .await
                {
                    Ok(_) => rep.repaired += 1,
                    Err(e) => {
                        rep.errors += 1;
                        tracing::warn!(task = %task.id, error = %e, "reconcile: applying the gate failed");
                    }
                }
            }
        }
        Ok(rep)
    }

    /// The forge says the task's pull request was closed without merging,
    /// by someone other than orch: the task goes to a person (parked, with a
    /// comment on the item); orch never cancels because of it.
    pub async fn pull_request_closed(
        &self,
        id: orch_core::TaskId,
        why: &str,
    ) -> PipelineResult<String> {
        let why = why.to_owned();
        match self.command(id, Command::PullRequestClosed { why }).await? {
            Outcome::Note(n) => Ok(n),
            other => Err(super::unexpected("pull_request_closed", other)),
        }
    }

    /// The closed pull request, applied by the task's owner.
    pub(super) async fn apply_pull_request_closed(
        &self,
        id: orch_core::TaskId,
        why: &str,
    ) -> PipelineResult<String> {
        let task = self.task(id).await?;
        let view = super::view::task_view(self.store.as_ref(), &task).await?;
        let effects = self.decide_pipeline(
            &task,
            &view,
            &orch_core::decide::Command::PullRequestClosed { why },
        );
        if effects.is_empty() {
            return Ok(format!("the task is {}; nothing to do", task.stage));
        }
        self.apply(&task, effects).await
    }
}

/// The most of a person's tracker comment that reaches an agent's prompt: a
/// reason, not a document (the item's description holds those).
pub const GATE_COMMENT_MAX: usize = 16 * 1024;

fn cut_comment(text: &str) -> String {
    if text.len() <= GATE_COMMENT_MAX {
        return text.to_owned();
    }
    let mut end = GATE_COMMENT_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n[… the comment was cut at {GATE_COMMENT_MAX} bytes; the whole text is on the tracker item]",
        &text[..end]
    )
}
