//! `GET /api/board`: what the dashboard's board draws — every task as a card
//! (stage, what its agent is doing, what it waits for) and the totals (tasks
//! by stage, runs today, tokens and cost per repo).
//!
//! A card's facts beyond the task row come from a [`Context`] read once per
//! board (or once per change the live poller sends), a fixed handful of
//! queries whatever the number of tasks: the running and queued jobs, the
//! merge leases, the dependency waits and the usage per task. Only running
//! runs (their log's last line) and parked tasks (their reason) cost a read
//! each, and there are few of those.

use crate::AppState;
use crate::error::ApiResult;
use axum::Json;
use axum::extract::State;
use orch_config::Config;
use orch_core::gates::{Block, ClaimCandidate, GateContext, Limits, blocked_by};
use orch_core::run::Usage;
use orch_core::{AgentKind, Job, JobStatus, Stage, Task, TaskId, Timestamp};
use orch_store::{RepoUsage, Store, TaskFilter};
use serde::Serialize;
use std::collections::BTreeMap;

/// The board shows at most this many tasks (newest first).
pub const BOARD_LIMIT: u32 = 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;
/// The last log line shown on a card is cut to this many characters.
const LAST_LINE_CHARS: usize = 160;
/// How much of a log's end is read to find its last line.
const LOG_TAIL_BYTES: u64 = 4096;

/// One task as the board shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub id: TaskId,
    /// The work item key (as created, also after a cancel tombstoned it).
    pub key: String,
    pub repo: String,
    pub stage: Stage,
    pub title: String,
    pub updated_at: Timestamp,
    /// The agent of the task's running job, if one runs.
    pub running: Option<AgentKind>,
    /// What the running job is doing: attempt, start, last log line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunNow>,
    /// Tokens (in and out) and cost of the task's runs so far.
    #[serde(skip_serializing_if = "is_zero")]
    pub tokens: u64,
    #[serde(skip_serializing_if = "is_zero_f")]
    pub cost_usd: f64,
    /// Why the task's work cannot start now, if something holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
    /// Why a parked (needs attention) task was parked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked: Option<String>,
    /// A STOP was asked for and waits (the task is in a step that must
    /// finish first, R-33).
    pub cancel_requested: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_f(n: &f64) -> bool {
    *n == 0.0
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunNow {
    pub agent: AgentKind,
    pub attempt: u32,
    pub max_attempts: u32,
    pub started_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_line: Option<String>,
}

/// What holds a task: `dependency`, `serial_gate`, `limit` or `backoff`,
/// with a sentence that names what (the other task, the limit).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Blocked {
    pub kind: &'static str,
    pub detail: String,
}

impl Card {
    pub fn new(t: &Task, ctx: &Context) -> Card {
        let run = ctx.running.get(&t.id).cloned();
        let usage = ctx.usage.get(&t.id);
        Card {
            id: t.id,
            key: t.original_work_item_id().to_owned(),
            repo: t.repo.clone(),
            stage: t.stage,
            title: t.title.clone(),
            updated_at: t.updated_at,
            running: run.as_ref().map(|r| r.agent),
            run,
            tokens: usage.map_or(0, |u| u.input_tokens + u.output_tokens),
            cost_usd: usage.map_or(0.0, |u| u.cost_usd),
            blocked: if t.stage.is_terminal() {
                None
            } else {
                ctx.blocked.get(&t.id).cloned()
            },
            parked: ctx.parked.get(&t.id).cloned(),
            cancel_requested: t.cancel_requested_at.is_some(),
        }
    }
}

/// The facts cards are drawn from, read for a set of tasks.
#[derive(Debug, Default)]
pub struct Context {
    pub running: BTreeMap<TaskId, RunNow>,
    usage: BTreeMap<TaskId, Usage>,
    blocked: BTreeMap<TaskId, Blocked>,
    parked: BTreeMap<TaskId, String>,
}

impl Context {
    /// Read what the cards of `tasks` show.
    pub async fn load(store: &dyn Store, cfg: &Config, tasks: &[Task]) -> ApiResult<Context> {
        let running_jobs = store.list_jobs(Some(JobStatus::Running), 10_000).await?;
        let mut running = BTreeMap::new();
        for j in &running_jobs {
            running.insert(j.task_id, run_now(store, j).await?);
        }
        let usage = match tasks.iter().map(|t| t.id).min() {
            Some(from) => store.usage_by_task(from).await?,
            None => BTreeMap::new(),
        };
        let mut names: BTreeMap<TaskId, (String, Stage)> = tasks
            .iter()
            .map(|t| (t.id, (t.original_work_item_id().to_owned(), t.stage)))
            .collect();
        let blocked = blocked_tasks(store, cfg, &running_jobs, &mut names).await?;
        let mut parked = BTreeMap::new();
        for t in tasks.iter().filter(|t| t.stage == Stage::NeedsAttention) {
            parked.insert(t.id, park_reason(store, t).await?);
        }
        Ok(Context {
            running,
            usage,
            blocked,
            parked,
        })
    }
}

/// The running job's run: its attempt, start and the last line of its log.
async fn run_now(store: &dyn Store, j: &Job) -> ApiResult<RunNow> {
    let run = match &j.run_id {
        Some(id) => store.get_run(id).await?,
        None => None,
    };
    let last_line = match run.as_ref().and_then(|r| r.log_path.as_deref()) {
        Some(path) => last_line(std::path::Path::new(path)).await,
        None => None,
    };
    Ok(RunNow {
        agent: j.agent,
        attempt: run.as_ref().map_or(j.attempts, |r| r.attempt),
        max_attempts: j.max_attempts,
        started_at: run.as_ref().map_or(j.updated_at, |r| r.started_at),
        last_line,
    })
}

/// The last non-empty line of a log, read from its end only (a log can be
/// large), cut to [`LAST_LINE_CHARS`]. `None` when there is none or the file
/// cannot be read: a card without it is still right.
pub async fn last_line(path: &std::path::Path) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await.ok()?;
    let len = f.metadata().await.ok()?.len();
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))
        .await
        .ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty())?;
    Some(clip(line, LAST_LINE_CHARS))
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Why a parked task was parked: the message of its move to needs attention.
pub async fn park_reason(store: &dyn Store, t: &Task) -> ApiResult<String> {
    Ok(park(store, t).await?.1)
}

/// Why a parked task waits, and whether it waits on an agent's question
/// (its park was the question: an `agent_question` event).
pub async fn park(store: &dyn Store, t: &Task) -> ApiResult<(bool, String)> {
    let events = store.events(t.id).await?;
    let park = events
        .iter()
        .rev()
        .find(|e| e.to_stage == Some(Stage::NeedsAttention) && e.from_stage != e.to_stage);
    let asked = park.is_some_and(|e| e.kind == orch_core::EventKind::AgentQuestion);
    let why = park
        .map(|e| e.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "no reason was recorded".into());
    Ok((asked, why))
}

/// Tasks whose queued job the claim gates hold back (the same rules the
/// store's claim applies, `orch_core::gates`), and tasks that wait for a
/// dependency, with which.
async fn blocked_tasks(
    store: &dyn Store,
    cfg: &Config,
    running: &[Job],
    names: &mut BTreeMap<TaskId, (String, Stage)>,
) -> ApiResult<BTreeMap<TaskId, Blocked>> {
    let gates = cfg.gates();
    let limits = cfg.limits();
    let waits = if gates.task_deps {
        store.waiting_on_dependencies().await?
    } else {
        Vec::new()
    };
    let queued = store.list_jobs(Some(JobStatus::Queued), 10_000).await?;
    let mut gc = GateContext::default();
    gc.count_running(running);
    if gates.serial && queued.iter().any(|j| j.agent.is_serial()) {
        for l in store.merge_leases().await? {
            gc.lease_holders.insert(l.repo, l.holder_task);
        }
    }
    gc.waiting_on_deps = waits.iter().map(|(t, _)| *t).collect();
    let mut out = BTreeMap::new();
    for (task, on) in &waits {
        let mut which = Vec::new();
        for dep in on {
            which.push(describe(store, cfg, names, *dep).await?);
        }
        let detail = format!("waits for {}", which.join(", "));
        out.insert(
            *task,
            Blocked {
                kind: "dependency",
                detail,
            },
        );
    }
    let now = now();
    for j in &queued {
        if out.contains_key(&j.task_id) {
            continue;
        }
        let block = blocked_by(&ClaimCandidate::from(j), &gc, &limits, gates, now);
        if let Some(b) = block_of(store, cfg, names, j, block, &gc, &limits).await? {
            out.insert(j.task_id, b);
        }
    }
    Ok(out)
}

async fn block_of(
    store: &dyn Store,
    cfg: &Config,
    names: &mut BTreeMap<TaskId, (String, Stage)>,
    j: &Job,
    block: Option<Block>,
    gc: &GateContext,
    limits: &Limits,
) -> ApiResult<Option<Blocked>> {
    let limit = |detail: String| Blocked {
        kind: "limit",
        detail,
    };
    Ok(match block {
        None | Some(Block::NotQueued) | Some(Block::TaskTerminal) => None,
        Some(Block::Dependency) => None, // listed with its dependencies above
        Some(Block::NotYetDue) => Some(Blocked {
            kind: "backoff",
            detail: format!(
                "attempt {} failed; retried in {}",
                j.attempts,
                in_words(j.run_after.0 - now().0)
            ),
        }),
        Some(Block::SerialGate { holder }) => Some(Blocked {
            kind: "serial_gate",
            detail: format!(
                "merge queue: {} holds {}'s merge lease",
                describe(store, cfg, names, holder).await?,
                j.repo
            ),
        }),
        Some(Block::GlobalLimit) => Some(limit(format!(
            "limit: {} of {} agents run (queue.limits.global)",
            gc.running_total,
            limits.global.unwrap_or(0)
        ))),
        Some(Block::RepoLimit) => Some(limit(format!(
            "limit: {} of {} agents run in {} (queue.limits.per_repo)",
            gc.running_by_repo.get(&j.repo).copied().unwrap_or(0),
            limits.repo_limit(&j.repo).unwrap_or(0),
            j.repo
        ))),
        Some(Block::AgentLimit) => Some(limit(format!(
            "limit: {} of {} {} runs (queue.limits.per_agent)",
            gc.running_by_agent.get(&j.agent).copied().unwrap_or(0),
            limits.per_agent.get(&j.agent).copied().unwrap_or(0),
            j.agent
        ))),
    })
}

/// `DEMO-3 (Development)`: another task as a person knows it.
async fn describe(
    store: &dyn Store,
    cfg: &Config,
    names: &mut BTreeMap<TaskId, (String, Stage)>,
    id: TaskId,
) -> ApiResult<String> {
    if !names.contains_key(&id)
        && let Some(t) = store.get_task(id).await?
    {
        names.insert(id, (t.original_work_item_id().to_owned(), t.stage));
    }
    Ok(match names.get(&id) {
        Some((key, stage)) => format!("{key} ({})", stage_name(cfg, *stage)),
        None => format!("task {id}"),
    })
}

fn in_words(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m {}s", s / 60, s % 60)
    }
}

/// What people call a stage: its tracker state name (`[tracker.states]`,
/// whose defaults are readable), never the enum's name.
pub fn stage_name(cfg: &Config, stage: Stage) -> String {
    cfg.tracker.states.name_of(stage).to_owned()
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Every stage, zero included.
    pub by_stage: BTreeMap<Stage, u64>,
    /// Runs started since midnight UTC.
    pub runs_today: u64,
    pub running: u64,
    pub repos: Vec<RepoUsage>,
    /// Disk the live tasks' worktrees take, per repo (issue 12).
    pub disk: Vec<RepoDisk>,
}

/// One repo's worktrees as last measured (after each run; `orch gc`
/// measures mirrors and archives too).
#[derive(Debug, Clone, Serialize)]
pub struct RepoDisk {
    pub repo: String,
    pub worktrees: u64,
    pub bytes: u64,
    /// `size` in words: "12 MB", or "≥ 12 MB" when a walk stopped at its cap.
    pub size: String,
}

/// Sum the measured worktrees of live tasks per repo: a finished task's
/// worktree is gone, its last figure stale.
fn disk_by_repo(disks: Vec<orch_store::WorktreeDisk>) -> Vec<RepoDisk> {
    // repo → (worktrees, bytes, whether some figure is a lower bound)
    let mut by: BTreeMap<String, (u64, u64, bool)> = BTreeMap::new();
    for d in disks.into_iter().filter(|d| !d.stage.is_terminal()) {
        let e = by.entry(d.repo).or_default();
        e.0 += 1;
        e.1 = e.1.saturating_add(d.size.bytes);
        e.2 |= !d.size.complete;
    }
    by.into_iter()
        .map(|(repo, (worktrees, bytes, capped))| RepoDisk {
            repo,
            worktrees,
            bytes,
            size: orch_core::disk::WorktreeSize {
                bytes,
                complete: !capped,
            }
            .to_string(),
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct Board {
    pub tasks: Vec<Card>,
    pub totals: Totals,
    /// The configured repos, for the filter.
    pub repos: Vec<String>,
    pub stages: Vec<Stage>,
    /// Each stage's name as people know it (see [`stage_name`]).
    pub stage_names: BTreeMap<Stage, String>,
}

pub async fn board(State(s): State<AppState>) -> ApiResult<Json<Board>> {
    let store = s.store();
    let cfg = s.pipeline().config();
    let filter = TaskFilter {
        limit: Some(BOARD_LIMIT),
        ..TaskFilter::default()
    };
    let tasks = store.list_tasks(&filter).await?;
    let ctx = Context::load(store, cfg, &tasks).await?;
    let cards = tasks.iter().map(|t| Card::new(t, &ctx)).collect();
    Ok(Json(Board {
        tasks: cards,
        totals: totals(store, ctx.running.len()).await?,
        repos: cfg.repos.iter().map(|r| r.name.clone()).collect(),
        stages: Stage::ALL.to_vec(),
        stage_names: stage_names(cfg),
    }))
}

pub fn stage_names(cfg: &Config) -> BTreeMap<Stage, String> {
    Stage::ALL
        .iter()
        .map(|s| (*s, stage_name(cfg, *s)))
        .collect()
}

pub async fn totals(store: &dyn Store, running: usize) -> ApiResult<Totals> {
    let counts = store.task_counts_by_stage().await?;
    let repos = store.usage_by_repo(midnight_utc(now())).await?;
    Ok(Totals {
        by_stage: Stage::ALL
            .iter()
            .map(|s| (*s, counts.get(s).copied().unwrap_or(0)))
            .collect(),
        runs_today: repos.iter().map(|r| r.runs_since).sum(),
        running: running as u64,
        repos,
        disk: disk_by_repo(store.worktree_disks().await?),
    })
}

pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(ms)
}

fn midnight_utc(t: Timestamp) -> Timestamp {
    Timestamp(t.0 - t.0.rem_euclid(DAY_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnight() {
        assert_eq!(
            midnight_utc(Timestamp(DAY_MS * 3 + 5)),
            Timestamp(DAY_MS * 3)
        );
        assert_eq!(midnight_utc(Timestamp(DAY_MS * 3)), Timestamp(DAY_MS * 3));
    }

    #[test]
    fn clips_on_characters() {
        assert_eq!(clip("héllo", 2), "hé…");
        assert_eq!(clip("hi", 2), "hi");
        assert_eq!(in_words(61_000), "1m 1s");
        assert_eq!(in_words(1), "1s");
    }

    #[tokio::test]
    async fn the_last_log_line_is_read_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        let mut text = "x".repeat(10_000);
        text.push_str("\nworking on step 2\n\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(last_line(&path).await.as_deref(), Some("working on step 2"));
        assert_eq!(last_line(&dir.path().join("none")).await, None);
    }
}
