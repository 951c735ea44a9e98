//! The command line, as clap types.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "orch",
    version,
    about = "Drive AI coding agents through a gated pipeline: analysis → approval → development → review → merge → deploy."
)]
pub struct Cli {
    /// Configuration file (default: ./orch.toml if present, else the embedded defaults).
    #[arg(long, global = true, env = "ORCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented orch.toml with the embedded defaults into a folder.
    Init(InitArgs),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCommand),
    /// Create, list and inspect tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// The queue snapshot: counts, serial gate, dependencies, STOP.
    Status(StatusArgs),
    /// Run the pipeline: HTTP API, dispatcher, supervisor, reaper and ticker.
    Serve(ServeArgs),
    /// Try the whole pipeline: a sample repo, the example agents, one work item driven to done.
    Quickstart(QuickstartArgs),
    /// Check the configuration, the store and each configured provider, and say what to fix.
    Doctor(DoctorArgs),
    /// orch's writes to the tracker that it gave up on: list them, send them again.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The orch engines sharing the store: list them, drain one.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Disk per repo and task (mirrors, worktrees, build outputs); with
    /// --apply, free build outputs of idle worktrees and worktrees of
    /// finished tasks (archived first; archives are kept).
    Gc(GcArgs),
    /// The MCP server (stdio) orch hands to an agent run: tools bound to the
    /// run's task (read the work item, post a note, ask a person). Started by
    /// the agent CLI, not by people.
    #[command(hide = true)]
    Mcp(crate::mcp::McpArgs),
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Free the space instead of only showing it.
    #[arg(long)]
    pub apply: bool,
    /// A worktree is idle when its task had no run for this many hours
    /// (default: cleanup.cleanup_after_hours; 0: any worktree without a
    /// queued or running job).
    #[arg(long, value_name = "HOURS")]
    pub idle_hours: Option<u64>,
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// The tracker writes given up after their last attempt, newest first.
    List(OutboxListArgs),
    /// Send given-up tracker writes again (they are retried as new ones).
    Retry(OutboxRetryArgs),
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Every node that reported itself: alive or not, draining, leading.
    List(NodeListArgs),
    /// Ask a node to finish its running work and claim nothing new (it
    /// says so within a heartbeat); --resume lets it claim again.
    Drain(NodeDrainArgs),
}

#[derive(Debug, Args)]
pub struct NodeListArgs {
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NodeDrainArgs {
    /// The node's name (`orch node list`).
    pub name: String,
    /// Claim again instead.
    #[arg(long)]
    pub resume: bool,
}

#[derive(Debug, Args)]
pub struct OutboxListArgs {
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OutboxRetryArgs {
    /// The ids to send again (from `orch outbox list`).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<i64>,
    /// Every given-up tracker write.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON for scripts instead of lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to initialise.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite an existing orch.toml.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending schema migrations (safe to run any number of times).
    Migrate,
    /// Copy every row of one store into another, empty one (SQLite ⇄
    /// PostgreSQL, or SQLite → SQLite), then compare the row counts of every
    /// table. Stop orch serve first; afterwards point store.url at the copy.
    Copy(DbCopyArgs),
}

#[derive(Debug, Args)]
pub struct DbCopyArgs {
    /// The store to copy: sqlite://PATH or postgres://USER@HOST/DB (default:
    /// the configured store).
    #[arg(long, value_name = "URL")]
    pub from: Option<String>,
    /// The store to copy into. It is migrated first and must hold no orch
    /// data (its tables may be absent or empty).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Drop orch's tables in the target (and what depends on them) and
    /// everything they hold, then copy, instead of refusing a target with data.
    #[arg(long)]
    pub replace: bool,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a work item and start its pipeline (the analyst is queued); an
    /// item whose task is done or failed runs again as a new task.
    Add(TaskAddArgs),
    /// To Analyse: start an item's pipeline, relaunch an idle analysis, resume a parked task,
    /// or run a done or failed item again as a new task.
    Start(TaskActionArgs),
    /// Approve the analysis (or resume a parked task).
    Approve(TaskActionArgs),
    /// Reject the analysis with a comment: the analyst runs again.
    Reject(TaskActionArgs),
    /// Confirm Deploy: run deploy phase B.
    ConfirmDeploy(TaskActionArgs),
    /// STOP: cancel the task (deferred while a merge or deploy is in flight).
    Stop(TaskActionArgs),
    /// Resume a parked (needs_attention) or failed task at the stage it stopped in.
    Retry(TaskActionArgs),
    /// Answer the question an agent asked (the task is parked on it): the
    /// agent's session resumes with the answer.
    Answer(TaskAnswerArgs),
    /// List tasks, newest first.
    List(TaskListArgs),
    /// Show one task with its jobs, runs and event log.
    Show(TaskShowArgs),
    /// Wait until a task is in one of the stages (by default a terminal one):
    /// woken by the running engine's changes, exit 1 at the timeout.
    Wait(TaskWaitArgs),
    /// Print the output of the task's latest agent run; -f follows it live.
    Logs(TaskLogsArgs),
    /// Make a branch `restore/<key>-<N>` from one of the task's archives (the
    /// newest by default) and push it to the repo's remote.
    Restore(TaskRestoreArgs),
}

#[derive(Debug, Args)]
pub struct TaskRestoreArgs {
    /// Task id or work item key.
    pub task: String,
    /// The archive's number, as `orch task show` lists it (default: the newest).
    pub number: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TaskAddArgs {
    /// Repository the task works on (as named in orch.toml).
    #[arg(long)]
    pub repo: String,
    /// One-line title; the branch name is derived from it.
    #[arg(long)]
    pub title: String,
    /// Work item key, e.g. ORCH-90 (default: <REPO>-<task id>).
    #[arg(long = "id", value_name = "KEY")]
    pub key: Option<String>,
    /// Longer description for the agents.
    #[arg(long, default_value = "")]
    pub body: String,
    /// Only create the item; start it later with `orch task start KEY`.
    #[arg(long)]
    pub hold: bool,
    /// Task ids this task waits for (repeatable).
    #[arg(long = "depends-on", value_name = "TASK")]
    pub depends_on: Vec<i64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TaskListArgs {
    #[arg(long)]
    pub repo: Option<String>,
    /// Only tasks in this stage (analysis, awaiting_approval, development, review, merge, deploy, needs_attention, done, cancelled, failed).
    #[arg(long)]
    pub stage: Option<String>,
    /// At most this many tasks.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TaskShowArgs {
    /// Task id or work item key (the key's live task, else the newest that had it).
    pub task: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TaskWaitArgs {
    /// Task id or work item key (the key's live task, else the newest that had it).
    pub task: String,
    /// A stage to wait for; repeat for any of several (default: done, failed
    /// or cancelled).
    #[arg(long)]
    pub stage: Vec<String>,
    /// Give up after this many seconds (exit 1).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Print the task as JSON once it is there.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TaskLogsArgs {
    /// Task id or work item key.
    pub task: String,
    /// Follow: print new output as it is written, and each later run, until the task ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON for scripts instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Redraw every N seconds until interrupted (the screen is cleared only on a terminal).
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<f64>,
}

#[derive(Debug, Args)]
pub struct TaskActionArgs {
    /// Task id or work item key.
    pub task: String,
    /// The person's comment (required by reject; passed to the agent).
    #[arg(long, short = 'm')]
    pub comment: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TaskAnswerArgs {
    /// Task id or work item key.
    pub task: String,
    /// The answer, as the agent will read it.
    pub answer: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAction {
    Start,
    Approve,
    Reject,
    ConfirmDeploy,
    Stop,
    Retry,
    Answer,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default: server.listen from orch.toml).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Log lines as `human` text or one `json` object per line (default:
    /// logging.format from orch.toml).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormatArg>,
    /// This engine's name among the nodes sharing the store (default:
    /// ORCH_WORKER_ID, else the host name). Runs it starts are re-adopted
    /// by a node of the same name.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// A Symphony-style WORKFLOW.md: its front matter beneath orch.toml, its
    /// body the developer's prompt (default: `workflow` from orch.toml).
    #[arg(long, value_name = "PATH")]
    pub workflow: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    Human,
    Json,
}

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Approve the analysis without waiting for a person.
    #[arg(long)]
    pub auto: bool,
    /// A new folder for the sample repo, orch.toml and data.
    #[arg(default_value = "orch-quickstart")]
    pub dir: PathBuf,
}
